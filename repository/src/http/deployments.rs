//! Deployment reports: hosts `POST /job/{job}/build/{uuid}/deployments` what
//! their deploy did; `GET /job/{job}/deployments` shows each host's last
//! result (HTML or JSON); `GET /job/{job}/build/{uuid}/deployments` lists a
//! build's reports and, with `?wait=S&after=N`, holds the answer until there
//! are more than N of them (this is what `upload --wait-deployed` waits on).

use std::net::SocketAddr;
use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use uk_wire::{DeploymentReport, DeploymentsJson};

use super::pages::{self, deployments::DeploymentsPage, deployments::DeploymentsPageJson};
use super::views::REPORTS_READ;
use super::{parse_build, parse_job, running, wants_json};
use crate::db::{builds, deployments};
use crate::error::ApiError;
use crate::longpoll::{Waited, wait_for};
use crate::state::AppState;
use crate::time::now_rfc3339;

/// Longest a client may hold a request open, whatever it asks.
pub const MAX_WAIT: Duration = Duration::from_secs(300);
const MAX_REPORT: usize = 64 * 1024;
/// Reports shown in a job's history.
const HISTORY: usize = 50;

/// `POST /job/{job}/build/{uuid}/deployments`
pub async fn report(
    State(st): State<AppState>,
    Path((job, uuid)): Path<(String, String)>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let (job, uuid) = (parse_job(&job)?, parse_build(&uuid)?);
    let who = st.auth.authenticate(&headers, peer.ip()).await?;
    st.auth.authorize_report(&who, &job).await?;
    let bytes = axum::body::to_bytes(body, MAX_REPORT)
        .await
        .map_err(|_| ApiError::BadRequest(format!("the report is not readable or larger than {MAX_REPORT} bytes")))?;
    let mut rep: DeploymentReport =
        serde_json::from_slice(&bytes).map_err(|e| ApiError::BadRequest(format!("malformed report: {e}")))?;
    rep.message = rep.message.chars().take(4096).collect();
    let (j, u) = (job.clone(), uuid);
    let build = st
        .db
        .read(move |c| builds::build(c, &j, &u))
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no build {uuid} of job {:?}", job.as_str())))?;
    let main = build.main_file().map(|f| f.sha256);
    if main != Some(rep.sha256) {
        return Err(ApiError::Conflict(format!(
            "the report is about sha256 {} but build {uuid} has another main binary",
            rep.sha256
        )));
    }
    let (j, r) = (job.clone(), rep.clone());
    let id = st
        .db
        .write(move |c| deployments::insert(c, &j, &uuid, &r, &now_rfc3339()))
        .await?;
    if id.is_none() {
        return Err(ApiError::NotFound(format!("no build {uuid} of job {:?}", job.as_str())));
    }
    tracing::info!(job = %job, build = %uuid, host = %rep.host, result = rep.result.as_str(), "deployment reported");
    st.notify.bump(&job);
    Ok((StatusCode::CREATED, Json(serde_json::json!({"id": id}))).into_response())
}

/// `GET /job/{job}/deployments`: each host's last report, and the recent history.
pub async fn job_deployments(
    State(st): State<AppState>,
    Path(job): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let job = parse_job(&job)?;
    let j = job.clone();
    let (list, reports, latest) = st
        .db
        .read(move |c| {
            if !builds::job_exists(c, &j)? {
                return Ok(None);
            }
            Ok(Some((
                deployments::last_per_host(c, &j)?,
                deployments::recent(c, &j, REPORTS_READ)?,
                builds::latest(c, &j, None)?.map(|b| (b.uuid, b.main_file().map(|f| f.sha256))),
            )))
        })
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no job {:?}", job.as_str())))?;
    let json = DeploymentsPageJson {
        deployments: list,
        hosts: running::hosts(&reports),
        history: reports.into_iter().take(HISTORY).collect(),
        latest: latest.map(|(u, _)| u),
        latest_sha256: latest.and_then(|(_, s)| s),
    };
    if wants_json(&headers) {
        return Ok(Json(json).into_response());
    }
    pages::render(&DeploymentsPage::new(job.as_str(), &json))
}

#[derive(serde::Deserialize)]
pub struct WaitQuery {
    wait: Option<u64>,
    after: Option<usize>,
}

/// `GET /job/{job}/build/{uuid}/deployments[?wait=S&after=N]`
pub async fn build_deployments(
    State(st): State<AppState>,
    Path((job, uuid)): Path<(String, String)>,
    Query(q): Query<WaitQuery>,
) -> Result<Response, ApiError> {
    let (job, uuid) = (parse_job(&job)?, parse_build(&uuid)?);
    let after = q.after.unwrap_or(0);
    let wait = q.wait.map(|w| Duration::from_secs(w).min(MAX_WAIT));
    let look = || async {
        let (j, u) = (job.clone(), uuid);
        let list = st
            .db
            .read(move |c| {
                if builds::build(c, &j, &u)?.is_some() {
                    Ok(Some(deployments::of_build(c, &j, &u)?))
                } else {
                    Ok(None)
                }
            })
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("no build {uuid} of job {:?}", job.as_str())))?;
        Ok::<_, ApiError>(Some(list))
    };
    // Held while there are no more than `after` reports.
    let found = wait_for(&st.notify, &st.shutdown, &job, wait, || async {
        Ok::<_, ApiError>(look().await?.filter(|l| wait.is_none() || l.len() > after))
    })
    .await?;
    let deployments = match found {
        Waited::Ready(list) => list,
        Waited::Nothing => look().await?.unwrap_or_default(),
        Waited::ShuttingDown => return Err(ApiError::ShuttingDown),
    };
    Ok(Json(DeploymentsJson { deployments }).into_response())
}
