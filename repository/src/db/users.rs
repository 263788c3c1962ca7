//! Users and their per-job access. Passwords are stored as argon2id PHC
//! strings (see `auth/password.rs`); this file only stores and looks up.

use anyhow::{Context, bail};
use rusqlite::{Connection, OptionalExtension, params};
use uk_names::JobName;

/// A user as the authentication path needs it.
#[derive(Debug, Clone)]
pub struct UserRow {
    pub id: i64,
    pub name: String,
    pub password_hash: String,
    pub unrestricted: bool,
    pub disabled: bool,
}

/// A user as `user list` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct UserSummary {
    pub name: String,
    pub unrestricted: bool,
    pub disabled: bool,
    pub jobs: Vec<String>,
}

pub fn add(conn: &Connection, name: &str, password_hash: &str, unrestricted: bool) -> anyhow::Result<()> {
    let n = conn.execute(
        "INSERT OR IGNORE INTO users (name, password_hash, unrestricted) VALUES (?1, ?2, ?3)",
        params![name, password_hash, unrestricted],
    )?;
    if n == 0 {
        bail!("user {name:?} already exists");
    }
    Ok(())
}

pub fn find(conn: &Connection, name: &str) -> anyhow::Result<Option<UserRow>> {
    conn.prepare_cached("SELECT id, name, password_hash, unrestricted, disabled FROM users WHERE name = ?1")?
        .query_row([name], |r| {
            Ok(UserRow {
                id: r.get(0)?,
                name: r.get(1)?,
                password_hash: r.get(2)?,
                unrestricted: r.get(3)?,
                disabled: r.get(4)?,
            })
        })
        .optional()
        .context("looking up a user")
}

fn id_of(conn: &Connection, name: &str) -> anyhow::Result<i64> {
    Ok(find(conn, name)?.with_context(|| format!("no user {name:?}"))?.id)
}

pub fn list(conn: &Connection) -> anyhow::Result<Vec<UserSummary>> {
    let mut st = conn.prepare("SELECT id, name, unrestricted, disabled FROM users ORDER BY name")?;
    let rows: Vec<(i64, UserSummary)> = st
        .query_map([], |r| {
            Ok((
                r.get(0)?,
                UserSummary {
                    name: r.get(1)?,
                    unrestricted: r.get(2)?,
                    disabled: r.get(3)?,
                    jobs: vec![],
                },
            ))
        })?
        .collect::<Result<_, _>>()?;
    let mut jobs = conn.prepare("SELECT job FROM access WHERE user_id = ?1 ORDER BY job")?;
    rows.into_iter()
        .map(|(id, mut u)| {
            u.jobs = jobs.query_map([id], |r| r.get(0))?.collect::<Result<_, _>>()?;
            Ok(u)
        })
        .collect()
}

pub fn remove(conn: &Connection, name: &str) -> anyhow::Result<()> {
    let id = id_of(conn, name)?;
    conn.execute("DELETE FROM access WHERE user_id = ?1", [id])?;
    conn.execute("DELETE FROM users WHERE id = ?1", [id])?;
    Ok(())
}

pub fn set_disabled(conn: &Connection, name: &str, disabled: bool) -> anyhow::Result<()> {
    let id = id_of(conn, name)?;
    conn.execute("UPDATE users SET disabled = ?1 WHERE id = ?2", params![disabled, id])?;
    Ok(())
}

/// Grants `job` to `user`; the job is created if it does not exist yet, so a
/// restricted user never has to create one.
pub fn grant(conn: &mut Connection, user: &str, job: &JobName) -> anyhow::Result<()> {
    let tx = conn.transaction()?;
    let id = id_of(&tx, user)?;
    tx.execute("INSERT OR IGNORE INTO jobs (name) VALUES (?1)", [job.as_str()])?;
    tx.execute(
        "INSERT OR IGNORE INTO access (user_id, job) VALUES (?1, ?2)",
        params![id, job.as_str()],
    )?;
    tx.commit()?;
    Ok(())
}

pub fn revoke(conn: &Connection, user: &str, job: &JobName) -> anyhow::Result<()> {
    let id = id_of(conn, user)?;
    let n = conn.execute(
        "DELETE FROM access WHERE user_id = ?1 AND job = ?2",
        params![id, job.as_str()],
    )?;
    if n == 0 {
        bail!("user {user:?} had no access to job {:?}", job.as_str());
    }
    Ok(())
}

pub fn has_access(conn: &Connection, user_id: i64, job: &JobName) -> anyhow::Result<bool> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM access WHERE user_id = ?1 AND job = ?2")?
        .query_row(params![user_id, job.as_str()], |_| Ok(()))
        .optional()?
        .is_some())
}
