//! Users and their per-job access. Passwords are stored as argon2id PHC
//! strings (see `auth/password.rs`); this file only stores and looks up.

use anyhow::{Context, bail};
use uk_names::JobName;

use super::sql::{Row, Sql, query_opt, write_tx};
use crate::params;

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

pub fn add(c: &mut dyn Sql, name: &str, password_hash: &str, rights: Rights) -> anyhow::Result<()> {
    let n = c.execute(
        "INSERT INTO users (name, password_hash, unrestricted, create_jobs) VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
        params![name, password_hash, rights.unrestricted, rights.create_jobs],
    )?;
    if n == 0 {
        bail!("user {name:?} already exists");
    }
    Ok(())
}

pub fn set_password(c: &mut dyn Sql, name: &str, password_hash: &str) -> anyhow::Result<()> {
    let id = id_of(c, name)?;
    c.execute(
        "UPDATE users SET password_hash = ?2 WHERE id = ?1",
        params![id, password_hash],
    )?;
    Ok(())
}

fn user_from_row(r: &Row) -> anyhow::Result<UserRow> {
    Ok(UserRow {
        id: r.int(0)?,
        name: r.text(1)?,
        password_hash: r.text(2)?,
        unrestricted: r.bool(3)?,
        create_jobs: r.bool(4)?,
        disabled: r.bool(5)?,
    })
}

pub fn find(c: &mut dyn Sql, name: &str) -> anyhow::Result<Option<UserRow>> {
    query_opt(
        c,
        "SELECT id, name, password_hash, unrestricted, create_jobs, disabled FROM users WHERE name = ?1",
        params![name],
    )
    .context("looking up a user")?
    .map(|r| user_from_row(&r))
    .transpose()
}

fn id_of(c: &mut dyn Sql, name: &str) -> anyhow::Result<i64> {
    Ok(find(c, name)?.with_context(|| format!("no user {name:?}"))?.id)
}

pub fn list(c: &mut dyn Sql) -> anyhow::Result<Vec<UserSummary>> {
    let rows = c.query(
        "SELECT id, name, unrestricted, create_jobs, disabled FROM users ORDER BY name",
        &[],
    )?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let id = r.int(0)?;
        let mut jobs = |report_only: bool| -> anyhow::Result<Vec<String>> {
            c.query(
                "SELECT job FROM access WHERE user_id = ?1 AND report_only = ?2 ORDER BY job",
                params![id, report_only],
            )?
            .iter()
            .map(|j| j.text(0))
            .collect()
        };
        let (upload, report) = (jobs(false)?, jobs(true)?);
        out.push(UserSummary {
            name: r.text(1)?,
            unrestricted: r.bool(2)?,
            create_jobs: r.bool(3)?,
            disabled: r.bool(4)?,
            jobs: upload,
            report_jobs: report,
        });
    }
    Ok(out)
}

pub fn remove(c: &mut dyn Sql, name: &str) -> anyhow::Result<()> {
    let id = id_of(c, name)?;
    c.execute("DELETE FROM access WHERE user_id = ?1", params![id])?;
    c.execute("DELETE FROM users WHERE id = ?1", params![id])?;
    Ok(())
}

pub fn set_disabled(c: &mut dyn Sql, name: &str, disabled: bool) -> anyhow::Result<()> {
    let id = id_of(c, name)?;
    c.execute("UPDATE users SET disabled = ?1 WHERE id = ?2", params![disabled, id])?;
    Ok(())
}

/// Grants `job` to `user` (to upload and report, or with `report_only`
/// just to send deployment reports). The job must exist: jobs are created
/// on purpose (`job add`), never by a typo in a grant.
pub fn grant(c: &mut dyn Sql, user: &str, job: &JobName, report_only: bool) -> anyhow::Result<()> {
    write_tx(c, |tx| {
        let id = id_of(tx, user)?;
        if !super::builds::job_exists(tx, job)? {
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
        Ok(())
    })
}

pub fn revoke(c: &mut dyn Sql, user: &str, job: &JobName) -> anyhow::Result<()> {
    let id = id_of(c, user)?;
    let n = c.execute(
        "DELETE FROM access WHERE user_id = ?1 AND job = ?2",
        params![id, job.as_str()],
    )?;
    if n == 0 {
        bail!("user {user:?} had no access to job {:?}", job.as_str());
    }
    Ok(())
}

/// `Some(report_only)` when user `user_id` was granted `job`.
pub fn access(c: &mut dyn Sql, user_id: i64, job: &JobName) -> anyhow::Result<Option<bool>> {
    query_opt(
        c,
        "SELECT report_only FROM access WHERE user_id = ?1 AND job = ?2",
        params![user_id, job.as_str()],
    )?
    .map(|r| r.bool(0))
    .transpose()
}
