//! Jobs as the operator manages them (CONTRACT.md §8): listed with their
//! builds and latest, added on purpose, removed with their builds. Removing
//! returns the digests the removed builds held, so the caller can collect
//! the blobs no other build uses (`gc.rs`).

use anyhow::{Context, bail};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use uk_digest::Sha256;
use uk_names::JobName;

/// A job as `job list` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct JobSummary {
    pub name: JobName,
    pub synopsis: String,
    pub builds: u64,
    /// Builds whose files vacuum dropped.
    pub vacuumed: u64,
    pub latest: Option<String>,
    pub latest_finish_time: Option<String>,
}

/// Creates a job; an error if it exists.
pub fn add(conn: &Connection, name: &JobName) -> anyhow::Result<()> {
    let n = conn.execute("INSERT OR IGNORE INTO jobs (name) VALUES (?1)", [name.as_str()])?;
    if n == 0 {
        bail!("job {:?} already exists", name.as_str());
    }
    Ok(())
}

pub fn list(conn: &Connection) -> anyhow::Result<Vec<JobSummary>> {
    let mut st = conn.prepare(
        "SELECT j.name, COALESCE(j.synopsis, ''),
                (SELECT COUNT(*) FROM builds b WHERE b.job_id = j.id),
                (SELECT COUNT(*) FROM builds b WHERE b.job_id = j.id AND b.vacuumed IS NOT NULL),
                (SELECT b.uuid FROM builds b WHERE b.job_id = j.id AND b.main_binary IS NOT NULL AND b.vacuumed IS NULL ORDER BY b.id DESC LIMIT 1),
                (SELECT b.finish_time FROM builds b WHERE b.job_id = j.id AND b.main_binary IS NOT NULL AND b.vacuumed IS NULL ORDER BY b.id DESC LIMIT 1)
         FROM jobs j ORDER BY j.name",
    )?;
    let rows = st.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, i64>(2)?,
            r.get::<_, i64>(3)?,
            r.get::<_, Option<String>>(4)?,
            r.get::<_, Option<String>>(5)?,
        ))
    })?;
    let mut out = Vec::new();
    for r in rows {
        let (name, synopsis, builds, vacuumed, latest, latest_finish_time) = r?;
        out.push(JobSummary {
            name: name.parse().context("a job name in the database")?,
            synopsis,
            builds: builds as u64,
            vacuumed: vacuumed as u64,
            latest,
            latest_finish_time,
        });
    }
    Ok(out)
}

/// Removes a job, its builds, their artifacts, reports and grants; returns
/// how many builds went and the digests they held.
pub fn remove(conn: &mut Connection, name: &JobName) -> anyhow::Result<(u64, Vec<Sha256>)> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let id: i64 = tx
        .query_row("SELECT id FROM jobs WHERE name = ?1", [name.as_str()], |r| r.get(0))
        .optional()?
        .with_context(|| format!("there is no job {:?}", name.as_str()))?;
    let shas = digests_of(
        &tx,
        "SELECT DISTINCT a.sha256 FROM artifacts a JOIN builds b ON b.id = a.build_id WHERE b.job_id = ?1",
        id,
    )?;
    tx.execute(
        "DELETE FROM deployments WHERE build_id IN (SELECT id FROM builds WHERE job_id = ?1)",
        [id],
    )?;
    tx.execute(
        "DELETE FROM artifacts WHERE build_id IN (SELECT id FROM builds WHERE job_id = ?1)",
        [id],
    )?;
    let builds = tx.execute("DELETE FROM builds WHERE job_id = ?1", [id])?;
    tx.execute("DELETE FROM access WHERE job = ?1", [name.as_str()])?;
    tx.execute("DELETE FROM jobs WHERE id = ?1", [id])?;
    tx.commit()?;
    Ok((builds as u64, shas))
}

pub(crate) fn digests_of(conn: &Connection, sql: &str, id: i64) -> anyhow::Result<Vec<Sha256>> {
    let mut st = conn.prepare(sql)?;
    let rows = st.query_map(params![id], |r| r.get::<_, String>(0))?;
    let mut out = Vec::new();
    for r in rows {
        out.push(r?.parse().context("a digest in the database")?);
    }
    Ok(out)
}

/// Sets a job's one-line description (from an upload's `synopsis`).
pub fn set_synopsis(conn: &Connection, job: &JobName, text: &str) -> anyhow::Result<()> {
    conn.execute(
        "UPDATE jobs SET synopsis = ?2 WHERE name = ?1",
        params![job.as_str(), text],
    )?;
    Ok(())
}
