//! Deployment reports: what each host did with a build. Kept forever (they
//! are small); the views show the last report per host.

use uk_names::{BuildId, JobName};
use uk_wire::{DeploymentJson, DeploymentReport};

use super::sql::{Row, Sql, query_opt};
use crate::params;

const COLS: &str =
    "d.id, d.host, j.name, b.uuid, d.sha256, d.result, d.message, d.started, d.finished, d.received, d.action";

fn from_row(r: &Row) -> anyhow::Result<DeploymentJson> {
    let word = |i: usize| -> anyhow::Result<serde_json::Value> { Ok(serde_json::Value::String(r.text(i)?)) };
    Ok(DeploymentJson {
        id: r.int(0)?,
        host: r.parse(1, "host")?,
        job: r.parse(2, "job")?,
        uuid: r.parse(3, "uuid")?,
        sha256: r.parse(4, "sha256")?,
        result: serde_json::from_value(word(5)?)?,
        message: r.text(6)?,
        started: r.text(7)?,
        finished: r.text(8)?,
        received: r.text(9)?,
        action: serde_json::from_value(word(10)?)?,
    })
}

/// Stores a report for a build; `None` when the build does not exist.
pub fn insert(
    c: &mut dyn Sql,
    job: &JobName,
    uuid: &BuildId,
    rep: &DeploymentReport,
    received: &str,
) -> anyhow::Result<Option<i64>> {
    let row = query_opt(
        c,
        "INSERT INTO deployments (build_id, host, sha256, result, message, started, finished, received, action)
         SELECT b.id, CAST(?3 AS TEXT), CAST(?4 AS TEXT), CAST(?5 AS TEXT), CAST(?6 AS TEXT), CAST(?7 AS TEXT),
                CAST(?8 AS TEXT), CAST(?9 AS TEXT), CAST(?10 AS TEXT)
         FROM builds b JOIN jobs j ON j.id = b.job_id WHERE j.name = ?1 AND b.uuid = ?2
         RETURNING id",
        params![
            job.as_str(),
            &uuid.to_string(),
            rep.host.as_str(),
            &rep.sha256.to_hex(),
            rep.result.as_str(),
            &rep.message,
            &rep.started,
            &rep.finished,
            received,
            rep.action.as_str()
        ],
    )?;
    let id = row.map(|r| r.int(0)).transpose()?;
    if id.is_some() {
        c.notify(job.as_str())?;
    }
    Ok(id)
}

/// All reports of one build, oldest first.
pub fn of_build(c: &mut dyn Sql, job: &JobName, uuid: &BuildId) -> anyhow::Result<Vec<DeploymentJson>> {
    let sql = format!(
        "SELECT {COLS} FROM deployments d JOIN builds b ON b.id = d.build_id JOIN jobs j ON j.id = b.job_id
         WHERE j.name = ?1 AND b.uuid = ?2 ORDER BY d.id"
    );
    c.query(&sql, params![job.as_str(), &uuid.to_string()])?
        .iter()
        .map(from_row)
        .collect()
}

/// The last report of each host for a job (any build), by host.
pub fn last_per_host(c: &mut dyn Sql, job: &JobName) -> anyhow::Result<Vec<DeploymentJson>> {
    let sql = format!(
        "SELECT {COLS} FROM deployments d JOIN builds b ON b.id = d.build_id JOIN jobs j ON j.id = b.job_id
         WHERE d.id IN (SELECT MAX(d2.id) FROM deployments d2 JOIN builds b2 ON b2.id = d2.build_id JOIN jobs j2 ON j2.id = b2.job_id
                        WHERE j2.name = ?1 GROUP BY d2.host)
         ORDER BY d.host"
    );
    c.query(&sql, params![job.as_str()])?.iter().map(from_row).collect()
}

/// The newest `n` reports of a job, newest first.
pub fn recent(c: &mut dyn Sql, job: &JobName, n: usize) -> anyhow::Result<Vec<DeploymentJson>> {
    let sql = format!(
        "SELECT {COLS} FROM deployments d JOIN builds b ON b.id = d.build_id JOIN jobs j ON j.id = b.job_id
         WHERE j.name = ?1 ORDER BY d.id DESC LIMIT ?2"
    );
    c.query(&sql, params![job.as_str(), n as i64])?
        .iter()
        .map(from_row)
        .collect()
}

/// The last report of each host for one build.
pub fn last_per_host_of_build(all: Vec<DeploymentJson>) -> Vec<DeploymentJson> {
    let mut by_host: std::collections::BTreeMap<String, DeploymentJson> = Default::default();
    for d in all {
        by_host.insert(d.host.to_string(), d);
    }
    by_host.into_values().collect()
}
