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
    pub create_jobs: bool,
    pub disabled: bool,
}

/// A user as `user list` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct UserSummary {
    pub name: String,
    pub unrestricted: bool,
    pub create_jobs: bool,
    pub disabled: bool,
    /// Jobs the user may upload to (and report on).
    pub jobs: Vec<String>,
    /// Jobs the user may only send deployment reports for.
    pub report_jobs: Vec<String>,
}

/// What a new user may do.
#[derive(Debug, Clone, Copy, Default)]
pub struct Rights {
    pub unrestricted: bool,
    pub create_jobs: bool,
}

pub fn add(conn: &Connection, name: &str, password_hash: &str, rights: Rights) -> anyhow::Result<()> {
    let n = conn.execute(
        "INSERT OR IGNORE INTO users (name, password_hash, unrestricted, create_jobs) VALUES (?1, ?2, ?3, ?4)",
        params![name, password_hash, rights.unrestricted, rights.create_jobs],
    )?;
    if n == 0 {
        bail!("user {name:?} already exists");
    }
    Ok(())
}

pub fn set_password(conn: &Connection, name: &str, password_hash: &str) -> anyhow::Result<()> {
    let id = id_of(conn, name)?;
    conn.execute(
        "UPDATE users SET password_hash = ?2 WHERE id = ?1",
        params![id, password_hash],
    )?;
    Ok(())
}

pub fn find(conn: &Connection, name: &str) -> anyhow::Result<Option<UserRow>> {
    conn.prepare_cached(
        "SELECT id, name, password_hash, unrestricted, create_jobs, disabled FROM users WHERE name = ?1",
    )?
    .query_row([name], |r| {
        Ok(UserRow {
            id: r.get(0)?,
            name: r.get(1)?,
            password_hash: r.get(2)?,
            unrestricted: r.get(3)?,
            create_jobs: r.get(4)?,
            disabled: r.get(5)?,
        })
    })
    .optional()
    .context("looking up a user")
}

fn id_of(conn: &Connection, name: &str) -> anyhow::Result<i64> {
    Ok(find(conn, name)?.with_context(|| format!("no user {name:?}"))?.id)
}

pub fn list(conn: &Connection) -> anyhow::Result<Vec<UserSummary>> {
    let mut st = conn.prepare("SELECT id, name, unrestricted, create_jobs, disabled FROM users ORDER BY name")?;
    let rows: Vec<(i64, UserSummary)> = st
        .query_map([], |r| {
            Ok((
                r.get(0)?,
                UserSummary {
                    name: r.get(1)?,
                    unrestricted: r.get(2)?,
                    create_jobs: r.get(3)?,
                    disabled: r.get(4)?,
                    jobs: vec![],
                    report_jobs: vec![],
                },
            ))
        })?
        .collect::<Result<_, _>>()?;
    let mut jobs = conn.prepare("SELECT job FROM access WHERE user_id = ?1 AND report_only = ?2 ORDER BY job")?;
    rows.into_iter()
        .map(|(id, mut u)| {
            u.jobs = jobs
                .query_map(params![id, false], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            u.report_jobs = jobs
                .query_map(params![id, true], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
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

/// Grants `job` to `user` (to upload and report, or with `report_only`
/// just to send deployment reports). The job must exist: jobs are created
/// on purpose (`job add`), never by a typo in a grant.
pub fn grant(conn: &mut Connection, user: &str, job: &JobName, report_only: bool) -> anyhow::Result<()> {
    let tx = conn.transaction()?;
    let id = id_of(&tx, user)?;
    if !super::builds::job_exists(&tx, job)? {
        bail!(
            "there is no job {:?}: create it first with `unikernel-repo job add {}`",
            job.as_str(),
            job.as_str()
        );
    }
    tx.execute(
        "INSERT INTO access (user_id, job, report_only) VALUES (?1, ?2, ?3)
         ON CONFLICT (user_id, job) DO UPDATE SET report_only = excluded.report_only",
        params![id, job.as_str(), report_only],
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

/// `Some(report_only)` when user `user_id` was granted `job`.
pub fn access(conn: &Connection, user_id: i64, job: &JobName) -> anyhow::Result<Option<bool>> {
    Ok(conn
        .prepare_cached("SELECT report_only FROM access WHERE user_id = ?1 AND job = ?2")?
        .query_row(params![user_id, job.as_str()], |r| r.get(0))
        .optional()?)
}
