//! Deployment reports: what each host did with a build. Kept forever (they
//! are small); the views show the last report per host.

use rusqlite::{Connection, Row, params};
use uk_names::{BuildId, JobName};
use uk_wire::{DeploymentJson, DeploymentReport};

const COLS: &str =
    "d.id, d.host, j.name, b.uuid, d.sha256, d.result, d.message, d.started, d.finished, d.received, d.action";

fn text_err(e: impl std::fmt::Display) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, e.to_string().into())
}

fn from_row(r: &Row<'_>) -> rusqlite::Result<DeploymentJson> {
    let result: String = r.get(5)?;
    Ok(DeploymentJson {
        id: r.get(0)?,
        host: r.get::<_, String>(1)?.parse().map_err(text_err)?,
        job: r.get::<_, String>(2)?.parse().map_err(text_err)?,
        uuid: r.get::<_, String>(3)?.parse().map_err(text_err)?,
        sha256: r.get::<_, String>(4)?.parse().map_err(text_err)?,
        result: serde_json::from_value(serde_json::Value::String(result)).map_err(text_err)?,
        message: r.get(6)?,
        started: r.get(7)?,
        finished: r.get(8)?,
        received: r.get(9)?,
        action: serde_json::from_value(serde_json::Value::String(r.get(10)?)).map_err(text_err)?,
    })
}

/// Stores a report for a build; `None` when the build does not exist.
pub fn insert(
    conn: &Connection,
    job: &JobName,
    uuid: &BuildId,
    rep: &DeploymentReport,
    received: &str,
) -> anyhow::Result<Option<i64>> {
    let n = conn.execute(
        "INSERT INTO deployments (build_id, host, sha256, result, message, started, finished, received, action)
         SELECT b.id, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10 FROM builds b JOIN jobs j ON j.id = b.job_id WHERE j.name = ?1 AND b.uuid = ?2",
        params![
            job.as_str(),
            uuid.to_string(),
            rep.host.as_str(),
            rep.sha256.to_hex(),
            rep.result.as_str(),
            rep.message,
            rep.started,
            rep.finished,
            received,
            rep.action.as_str()
        ],
    )?;
    Ok((n == 1).then(|| conn.last_insert_rowid()))
}

/// All reports of one build, oldest first.
pub fn of_build(conn: &Connection, job: &JobName, uuid: &BuildId) -> anyhow::Result<Vec<DeploymentJson>> {
    let sql = format!(
        "SELECT {COLS} FROM deployments d JOIN builds b ON b.id = d.build_id JOIN jobs j ON j.id = b.job_id
         WHERE j.name = ?1 AND b.uuid = ?2 ORDER BY d.id"
    );
    let mut st = conn.prepare_cached(&sql)?;
    let rows = st.query_map(params![job.as_str(), uuid.to_string()], from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The last report of each host for a job (any build), by host.
pub fn last_per_host(conn: &Connection, job: &JobName) -> anyhow::Result<Vec<DeploymentJson>> {
    let sql = format!(
        "SELECT {COLS} FROM deployments d JOIN builds b ON b.id = d.build_id JOIN jobs j ON j.id = b.job_id
         WHERE d.id IN (SELECT MAX(d2.id) FROM deployments d2 JOIN builds b2 ON b2.id = d2.build_id JOIN jobs j2 ON j2.id = b2.job_id
                        WHERE j2.name = ?1 GROUP BY d2.host)
         ORDER BY d.host"
    );
    let mut st = conn.prepare_cached(&sql)?;
    let rows = st.query_map([job.as_str()], from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The newest `n` reports of a job, newest first.
pub fn recent(conn: &Connection, job: &JobName, n: usize) -> anyhow::Result<Vec<DeploymentJson>> {
    let sql = format!(
        "SELECT {COLS} FROM deployments d JOIN builds b ON b.id = d.build_id JOIN jobs j ON j.id = b.job_id
         WHERE j.name = ?1 ORDER BY d.id DESC LIMIT ?2"
    );
    let mut st = conn.prepare_cached(&sql)?;
    let rows = st.query_map(params![job.as_str(), n as i64], from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The last report of each host for one build.
pub fn last_per_host_of_build(all: Vec<DeploymentJson>) -> Vec<DeploymentJson> {
    let mut by_host: std::collections::BTreeMap<String, DeploymentJson> = Default::default();
    for d in all {
        by_host.insert(d.host.to_string(), d);
    }
    by_host.into_values().collect()
}
