//! Jobs as the operator manages them (CONTRACT.md §8): listed with their
//! builds and latest, added on purpose, removed with their builds. Removing
//! returns the digests the removed builds held, so the caller can collect
//! the blobs no other build uses (`gc.rs`).

use anyhow::{Context, bail};
use uk_digest::Sha256;
use uk_names::JobName;

use super::sql::{Sql, query_opt, write_tx};
use crate::params;

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
pub fn add(c: &mut dyn Sql, name: &JobName) -> anyhow::Result<()> {
    let n = c.execute(
        "INSERT INTO jobs (name) VALUES (?1) ON CONFLICT DO NOTHING",
        params![name.as_str()],
    )?;
    if n == 0 {
        bail!("job {:?} already exists", name.as_str());
    }
    c.notify(name.as_str())?;
    Ok(())
}

pub fn list(c: &mut dyn Sql) -> anyhow::Result<Vec<JobSummary>> {
    let rows = c.query(
        "SELECT j.name, COALESCE(j.synopsis, ''),
                (SELECT COUNT(*) FROM builds b WHERE b.job_id = j.id),
                (SELECT COUNT(*) FROM builds b WHERE b.job_id = j.id AND b.vacuumed IS NOT NULL),
                (SELECT b.uuid FROM builds b WHERE b.job_id = j.id AND b.main_binary IS NOT NULL AND b.vacuumed IS NULL ORDER BY b.id DESC LIMIT 1),
                (SELECT b.finish_time FROM builds b WHERE b.job_id = j.id AND b.main_binary IS NOT NULL AND b.vacuumed IS NULL ORDER BY b.id DESC LIMIT 1)
         FROM jobs j ORDER BY j.name",
        &[],
    )?;
    rows.iter()
        .map(|r| {
            Ok(JobSummary {
                name: r.parse(0, "job name")?,
                synopsis: r.text(1)?,
                builds: r.int(2)? as u64,
                vacuumed: r.int(3)? as u64,
                latest: r.opt_text(4)?,
                latest_finish_time: r.opt_text(5)?,
            })
        })
        .collect()
}

/// Removes a job, its builds, their artifacts, reports and grants; returns
/// how many builds went and the digests they held.
pub fn remove(c: &mut dyn Sql, name: &JobName) -> anyhow::Result<(u64, Vec<Sha256>)> {
    write_tx(c, |tx| {
        let id = query_opt(tx, "SELECT id FROM jobs WHERE name = ?1", params![name.as_str()])?
            .with_context(|| format!("there is no job {:?}", name.as_str()))?
            .int(0)?;
        let shas = digests_of(
            tx,
            "SELECT DISTINCT a.sha256 FROM artifacts a JOIN builds b ON b.id = a.build_id WHERE b.job_id = ?1",
            id,
        )?;
        tx.execute(
            "DELETE FROM deployments WHERE build_id IN (SELECT id FROM builds WHERE job_id = ?1)",
            params![id],
        )?;
        tx.execute(
            "DELETE FROM artifacts WHERE build_id IN (SELECT id FROM builds WHERE job_id = ?1)",
            params![id],
        )?;
        let builds = tx.execute("DELETE FROM builds WHERE job_id = ?1", params![id])?;
        tx.execute("DELETE FROM access WHERE job = ?1", params![name.as_str()])?;
        tx.execute("DELETE FROM jobs WHERE id = ?1", params![id])?;
        tx.notify(&format!("-{name}"))?;
        Ok((builds, shas))
    })
}

pub(crate) fn digests_of(c: &mut dyn Sql, sql: &str, id: i64) -> anyhow::Result<Vec<Sha256>> {
    c.query(sql, params![id])?
        .iter()
        .map(|r| r.parse(0, "digest"))
        .collect()
}

/// Sets a job's one-line description (from an upload's `synopsis`).
pub fn set_synopsis(c: &mut dyn Sql, job: &JobName, text: &str) -> anyhow::Result<()> {
    c.execute(
        "UPDATE jobs SET synopsis = ?2 WHERE name = ?1",
        params![job.as_str(), text],
    )?;
    Ok(())
}
