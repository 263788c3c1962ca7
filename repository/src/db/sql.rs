//! One interface over the two SQL engines, so that every query is written
//! once (`builds.rs`, `users.rs`, `jobs.rs`, `deployments.rs`, `gc.rs`) and
//! runs on SQLite (rusqlite, the embedded default) or PostgreSQL
//! (`postgres.rs`). The SQL they share is the common dialect: `?1`-style
//! parameters (rewritten to `$1` for PostgreSQL), `INSERT … ON CONFLICT`,
//! `RETURNING`. Values are the four kinds the schema uses.
//!
//! Writers are serialised by both engines in the same way: [`Sql::begin_write`]
//! is SQLite's `BEGIN IMMEDIATE`, and on PostgreSQL a transaction that takes
//! one advisory lock, so id order is commit order ("latest" is the highest
//! id) and a commit's check that its blobs exist excludes the collector
//! (`gc.rs`) on every engine and every replica.

use anyhow::Context;
use rusqlite::types::{ToSqlOutput, ValueRef};

/// A query parameter.
#[derive(Debug, Clone, Copy)]
pub enum Param<'a> {
    Null,
    Int(i64),
    Text(&'a str),
    Bool(bool),
}

impl From<i64> for Param<'_> {
    fn from(v: i64) -> Self {
        Param::Int(v)
    }
}

impl<'a> From<&'a str> for Param<'a> {
    fn from(v: &'a str) -> Self {
        Param::Text(v)
    }
}

impl<'a> From<&'a String> for Param<'a> {
    fn from(v: &'a String) -> Self {
        Param::Text(v)
    }
}

impl From<bool> for Param<'_> {
    fn from(v: bool) -> Self {
        Param::Bool(v)
    }
}

impl<'a, T: Into<Param<'a>>> From<Option<T>> for Param<'a> {
    fn from(v: Option<T>) -> Self {
        v.map_or(Param::Null, Into::into)
    }
}

/// Parameters of a query: `params![a, b]`.
#[macro_export]
macro_rules! params {
    ($($p:expr),* $(,)?) => { &[$($crate::db::sql::Param::from($p)),*][..] };
}

/// A value read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Null,
    Int(i64),
    Text(String),
    Bool(bool),
}

/// One row of a result.
#[derive(Debug, Clone)]
pub struct Row(pub Vec<Value>);

impl Row {
    fn at(&self, i: usize) -> anyhow::Result<&Value> {
        self.0.get(i).with_context(|| format!("no column {i} in a result row"))
    }

    pub fn int(&self, i: usize) -> anyhow::Result<i64> {
        self.opt_int(i)?.with_context(|| format!("column {i} is NULL"))
    }

    pub fn opt_int(&self, i: usize) -> anyhow::Result<Option<i64>> {
        match self.at(i)? {
            Value::Null => Ok(None),
            Value::Int(v) => Ok(Some(*v)),
            Value::Bool(b) => Ok(Some(i64::from(*b))),
            Value::Text(_) => anyhow::bail!("column {i} is text, not an integer"),
        }
    }

    pub fn text(&self, i: usize) -> anyhow::Result<String> {
        self.opt_text(i)?.with_context(|| format!("column {i} is NULL"))
    }

    pub fn opt_text(&self, i: usize) -> anyhow::Result<Option<String>> {
        match self.at(i)? {
            Value::Null => Ok(None),
            Value::Text(s) => Ok(Some(s.clone())),
            other => anyhow::bail!("column {i} is {other:?}, not text"),
        }
    }

    /// A truth value: SQLite stores integers, PostgreSQL booleans; NULL is false.
    pub fn bool(&self, i: usize) -> anyhow::Result<bool> {
        match self.at(i)? {
            Value::Null => Ok(false),
            Value::Bool(b) => Ok(*b),
            Value::Int(v) => Ok(*v != 0),
            Value::Text(_) => anyhow::bail!("column {i} is text, not a boolean"),
        }
    }

    /// A text column parsed into a domain type.
    pub fn parse<T>(&self, i: usize, what: &str) -> anyhow::Result<T>
    where
        T: std::str::FromStr,
        T::Err: std::fmt::Display,
    {
        let s = self.text(i)?;
        s.parse()
            .map_err(|e: T::Err| anyhow::anyhow!("bad {what} {s:?} in the database: {e}"))
    }
}

/// Which engine a connection talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

/// A connection of either engine. Methods block (call them off the async
/// runtime, as rusqlite's).
pub trait Sql: Send {
    fn engine(&self) -> Engine;
    fn query(&mut self, sql: &str, params: &[Param<'_>]) -> anyhow::Result<Vec<Row>>;
    /// Runs a statement; returns the rows it changed.
    fn execute(&mut self, sql: &str, params: &[Param<'_>]) -> anyhow::Result<u64>;
    /// Starts a write transaction that excludes every other writer.
    fn begin_write(&mut self) -> anyhow::Result<()>;
    fn commit(&mut self) -> anyhow::Result<()>;
    fn rollback(&mut self) -> anyhow::Result<()>;
    /// Tells every replica listening that `job` changed (PostgreSQL
    /// `NOTIFY`, delivered at commit); nothing to do on SQLite, whose one
    /// server wakes its own waiters.
    fn notify(&mut self, payload: &str) -> anyhow::Result<()>;
    /// Ends a transaction a failed caller left open (before the connection
    /// is used again).
    fn reset(&mut self);
    /// The connection is gone (the server closed it): open another.
    fn is_broken(&self) -> bool;
}

/// The first row, if any.
pub fn query_opt(c: &mut dyn Sql, sql: &str, params: &[Param<'_>]) -> anyhow::Result<Option<Row>> {
    Ok(c.query(sql, params)?.into_iter().next())
}

/// Exactly one row.
pub fn query_one(c: &mut dyn Sql, sql: &str, params: &[Param<'_>]) -> anyhow::Result<Row> {
    query_opt(c, sql, params)?.context("the query returned no row")
}

/// Runs `f` in a write transaction: committed when it returns `Ok`,
/// rolled back otherwise.
pub fn write_tx<T>(c: &mut dyn Sql, f: impl FnOnce(&mut dyn Sql) -> anyhow::Result<T>) -> anyhow::Result<T> {
    c.begin_write()?;
    match f(c) {
        Ok(v) => {
            c.commit().context("committing")?;
            Ok(v)
        }
        Err(e) => {
            let _ = c.rollback();
            Err(e)
        }
    }
}

impl rusqlite::ToSql for Param<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match *self {
            Param::Null => ToSqlOutput::Owned(rusqlite::types::Value::Null),
            Param::Int(v) => ToSqlOutput::Owned(rusqlite::types::Value::Integer(v)),
            Param::Text(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
            Param::Bool(b) => ToSqlOutput::Owned(rusqlite::types::Value::Integer(i64::from(b))),
        })
    }
}

impl Sql for rusqlite::Connection {
    fn engine(&self) -> Engine {
        Engine::Sqlite
    }

    fn query(&mut self, sql: &str, params: &[Param<'_>]) -> anyhow::Result<Vec<Row>> {
        let mut st = self.prepare_cached(sql)?;
        let n = st.column_count();
        let mut rows = st.query(rusqlite::params_from_iter(params.iter()))?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            let mut row = Vec::with_capacity(n);
            for i in 0..n {
                row.push(match r.get_ref(i)? {
                    ValueRef::Null => Value::Null,
                    ValueRef::Integer(v) => Value::Int(v),
                    ValueRef::Real(v) => Value::Int(v as i64),
                    ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
                    ValueRef::Blob(_) => anyhow::bail!("column {i} is a blob"),
                });
            }
            out.push(Row(row));
        }
        Ok(out)
    }

    fn execute(&mut self, sql: &str, params: &[Param<'_>]) -> anyhow::Result<u64> {
        let mut st = self.prepare_cached(sql)?;
        Ok(st.execute(rusqlite::params_from_iter(params.iter()))? as u64)
    }

    fn begin_write(&mut self) -> anyhow::Result<()> {
        Ok(self.execute_batch("BEGIN IMMEDIATE")?)
    }

    fn commit(&mut self) -> anyhow::Result<()> {
        Ok(self.execute_batch("COMMIT")?)
    }

    fn rollback(&mut self) -> anyhow::Result<()> {
        Ok(self.execute_batch("ROLLBACK")?)
    }

    fn notify(&mut self, _payload: &str) -> anyhow::Result<()> {
        Ok(())
    }

    fn reset(&mut self) {
        if !self.is_autocommit() {
            let _ = self.execute_batch("ROLLBACK");
        }
    }

    fn is_broken(&self) -> bool {
        false
    }
}
