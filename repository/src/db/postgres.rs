//! PostgreSQL behind [`Sql`]: a tokio-postgres connection driven on the
//! I/O runtime (`bridge.rs`), its statements prepared once and kept.
//! Writers serialise on one transaction-scoped advisory lock, as SQLite's
//! `BEGIN IMMEDIATE` serialises them (see `sql.rs`). Changes are announced
//! with `NOTIFY` on [`CHANNEL`], which every replica `LISTEN`s to
//! (`notify_listen.rs`).

use std::collections::HashMap;

use anyhow::Context;
use bytes::BytesMut;
use tokio_postgres::types::{IsNull, ToSql, Type, to_sql_checked};
use tokio_postgres::{NoTls, Statement};

use super::sql::{Engine, Param, Row, Sql, Value};
use crate::bridge;

/// The `LISTEN`/`NOTIFY` channel of job changes; the payload is a job name.
pub const CHANNEL: &str = "ukrepo_jobs";
/// The advisory lock every write transaction holds (any constant will do;
/// this one spells "ukrepo").
const WRITE_LOCK: i64 = 0x756b_7265_706f;

pub struct PgConn {
    client: tokio_postgres::Client,
    statements: HashMap<String, Statement>,
    in_tx: bool,
}

/// `?1` → `$1`: the queries are written in SQLite's parameter style.
fn dialect(sql: &str) -> String {
    sql.replace('?', "$")
}

impl ToSql for Param<'_> {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match *self {
            Param::Null => Ok(IsNull::Yes),
            // SQLite's truth values are integers (`migrate` copies them).
            Param::Int(v) if *ty == Type::BOOL => (v != 0).to_sql(ty, out),
            Param::Int(v) if *ty == Type::INT4 => i32::try_from(v)?.to_sql(ty, out),
            Param::Int(v) if *ty == Type::INT2 => i16::try_from(v)?.to_sql(ty, out),
            Param::Int(v) => v.to_sql(ty, out),
            Param::Text(s) => s.to_sql(ty, out),
            Param::Bool(b) => b.to_sql(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

fn value(row: &tokio_postgres::Row, i: usize) -> anyhow::Result<Value> {
    let ty = row.columns()[i].type_();
    let v = match *ty {
        Type::INT8 => row.try_get::<_, Option<i64>>(i)?.map(Value::Int),
        Type::INT4 => row.try_get::<_, Option<i32>>(i)?.map(|v| Value::Int(v.into())),
        Type::INT2 => row.try_get::<_, Option<i16>>(i)?.map(|v| Value::Int(v.into())),
        Type::BOOL => row.try_get::<_, Option<bool>>(i)?.map(Value::Bool),
        Type::TEXT | Type::VARCHAR | Type::NAME | Type::BPCHAR => row.try_get::<_, Option<String>>(i)?.map(Value::Text),
        _ => anyhow::bail!("column {i} has the unexpected type {ty}"),
    };
    Ok(v.unwrap_or(Value::Null))
}

impl PgConn {
    /// Connects (the connection is driven on the I/O runtime). Blocks.
    pub fn connect(url: &str) -> anyhow::Result<PgConn> {
        let config: tokio_postgres::Config = url.parse().context("parsing the PostgreSQL URL")?;
        let client = bridge::block_on(async move {
            let (client, connection) = config.connect(NoTls).await?;
            tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::warn!(error = %e, "PostgreSQL connection closed");
                }
            });
            Ok::<_, tokio_postgres::Error>(client)
        })
        .context("connecting to PostgreSQL")?;
        Ok(PgConn {
            client,
            statements: HashMap::new(),
            in_tx: false,
        })
    }

    fn statement(&mut self, sql: &str) -> anyhow::Result<Statement> {
        if let Some(st) = self.statements.get(sql) {
            return Ok(st.clone());
        }
        let text = dialect(sql);
        let st = bridge::block_on(self.client.prepare(&text)).with_context(|| format!("preparing {text}"))?;
        if self.statements.len() >= 512 {
            self.statements.clear();
        }
        self.statements.insert(sql.to_owned(), st.clone());
        Ok(st)
    }

    /// Runs several statements (migrations).
    pub fn batch(&mut self, sql: &str) -> anyhow::Result<()> {
        Ok(bridge::block_on(self.client.batch_execute(sql))?)
    }
}

fn refs<'a>(params: &'a [Param<'a>]) -> Vec<&'a (dyn ToSql + Sync)> {
    params.iter().map(|p| p as &(dyn ToSql + Sync)).collect()
}

impl Sql for PgConn {
    fn engine(&self) -> Engine {
        Engine::Postgres
    }

    fn query(&mut self, sql: &str, params: &[Param<'_>]) -> anyhow::Result<Vec<Row>> {
        let st = self.statement(sql)?;
        let rows = bridge::block_on(self.client.query(&st, &refs(params)))?;
        rows.iter()
            .map(|r| {
                (0..r.len())
                    .map(|i| value(r, i))
                    .collect::<anyhow::Result<Vec<_>>>()
                    .map(Row)
            })
            .collect()
    }

    fn execute(&mut self, sql: &str, params: &[Param<'_>]) -> anyhow::Result<u64> {
        let st = self.statement(sql)?;
        Ok(bridge::block_on(self.client.execute(&st, &refs(params)))?)
    }

    fn begin_write(&mut self) -> anyhow::Result<()> {
        self.batch(&format!("BEGIN; SELECT pg_advisory_xact_lock({WRITE_LOCK})"))?;
        self.in_tx = true;
        Ok(())
    }

    fn commit(&mut self) -> anyhow::Result<()> {
        self.in_tx = false;
        self.batch("COMMIT")
    }

    fn rollback(&mut self) -> anyhow::Result<()> {
        self.in_tx = false;
        self.batch("ROLLBACK")
    }

    fn notify(&mut self, payload: &str) -> anyhow::Result<()> {
        self.execute(
            "SELECT pg_notify(?1, ?2)",
            &[Param::Text(CHANNEL), Param::Text(payload)],
        )?;
        Ok(())
    }

    fn reset(&mut self) {
        if self.in_tx {
            let _ = self.rollback();
        }
    }

    fn is_broken(&self) -> bool {
        self.client.is_closed()
    }
}
