//! The redirects: `latest` (307, so a client re-asks for the same method),
//! `main-binary` (302) and `/hash?sha256=` (302). Locations are paths only.

use std::time::Duration;

use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use uk_digest::Sha256;
use uk_names::{ArtifactPath, BuildId, JobName, PlatformName};

use super::deployments::MAX_WAIT;
use super::{PlatformQuery, parse_build, parse_job};
use crate::cache::Latest;
use crate::db::builds;
use crate::error::ApiError;
use crate::longpoll::{Waited, wait_for};
use crate::parking::ParkedUntil;
use crate::state::AppState;

fn redirect(status: StatusCode, location: &str) -> Result<Response, ApiError> {
    let v = HeaderValue::from_str(location).map_err(|e| ApiError::Internal(e.into()))?;
    Ok((status, [(header::LOCATION, v)]).into_response())
}

/// `?platform=`, and for long-polling `?wait=SECONDS&current=SHA256` (or
/// `current=BUILD_UUID`: held while that build is the latest, so a new
/// build of the same image wakes the waiter too).
#[derive(serde::Deserialize, Default)]
pub struct LatestQuery {
    pub(crate) platform: Option<String>,
    pub(crate) wait: Option<u64>,
    pub(crate) current: Option<String>,
}

/// The latest build, from the cache while the job has not changed. Only
/// answers about builds are cached, so made-up job names cost nothing.
pub(crate) async fn cached_latest(
    st: &AppState,
    job: &JobName,
    platform: &Option<PlatformName>,
) -> Result<Latest, ApiError> {
    if let Some(v) = latest_in_memory(st, job, platform) {
        return Ok(v);
    }
    if !job_known(st, job).await? {
        return Ok(None);
    }
    // One read at a time; whoever waited finds it cached.
    let _refill = st.caches.refill(job).lock().await;
    let generation = st.notify.generation(job);
    if let Some(v) = st.caches.latest(job, platform, generation) {
        return Ok(v);
    }
    let (j, p) = (job.clone(), platform.clone());
    let row = st.db.read(move |c| builds::latest(c, &j, p.as_ref())).await?;
    let v = row.map(|r| (r.uuid, r.main_file().map(|f| f.sha256)));
    if v.is_some() {
        st.caches.put_latest(job, platform, generation, v);
    }
    Ok(v)
}

/// [`cached_latest`]'s answer when the caches have it (no database read).
pub(crate) fn latest_in_memory(st: &AppState, job: &JobName, platform: &Option<PlatformName>) -> Option<Latest> {
    match st.caches.job_known(job)? {
        false => Some(None),
        true => st.caches.latest(job, platform, st.notify.generation(job)),
    }
}

/// Where `latest` sends a client: the build's page.
pub(crate) fn build_location(job: &JobName, uuid: &impl std::fmt::Display) -> String {
    format!("/job/{job}/build/{uuid}")
}

/// What a long-polling client already has.
#[derive(Clone, Copy)]
pub(crate) enum Current {
    Image(Sha256),
    Build(BuildId),
}

impl Current {
    pub(crate) fn parse(s: &str) -> Result<Current, ApiError> {
        if let Ok(sha) = s.parse() {
            return Ok(Current::Image(sha));
        }
        s.parse().map(Current::Build).map_err(|_| {
            ApiError::BadRequest(format!(
                "current={s:?} is neither a sha256 (64 hex digits) nor a build id (UUIDv4)"
            ))
        })
    }

    /// Is the latest build (`uuid`, main binary `sha`) what the client has?
    pub(crate) fn is(&self, uuid: &BuildId, sha: Option<&Sha256>) -> bool {
        match self {
            Current::Image(c) => sha == Some(c),
            Current::Build(b) => b == uuid,
        }
    }
}

/// Does the job exist? From the in-memory list of jobs (refreshed every
/// few seconds), so floods of made-up names never reach the database.
pub async fn job_known(st: &AppState, job: &JobName) -> Result<bool, ApiError> {
    if let Some(known) = st.caches.job_known(job) {
        return Ok(known);
    }
    let names = st
        .db
        .read(|c| Ok(builds::jobs(c)?.into_iter().map(|(n, _)| n).collect::<Vec<_>>()))
        .await?;
    st.caches.put_jobs(names);
    Ok(st.caches.job_known(job).unwrap_or(false))
}

/// A little jitter (up to a tenth, at most 10 s), so that a crowd of waiters
/// does not come back at the same instant.
pub(crate) fn jittered(wait: Duration) -> Duration {
    use std::hash::{BuildHasher, Hasher};
    let r = std::collections::hash_map::RandomState::new().build_hasher().finish();
    let max = (wait / 10).min(Duration::from_secs(10)).as_millis() as u64;
    wait + Duration::from_millis(if max == 0 { 0 } else { r % max })
}

/// The latest build's path; with `wait` and `current`, held until the latest
/// main binary is no longer `current` (then `Some`) or the wait ends (`None`).
async fn latest_uuid(
    st: &AppState,
    job: JobName,
    q: &LatestQuery,
    parked: Option<Extension<ParkedUntil>>,
) -> Result<Option<String>, ApiError> {
    let platform = PlatformQuery {
        platform: q.platform.clone(),
    }
    .parse()?;
    let current: Option<Current> = q.current.as_deref().map(Current::parse).transpose()?;
    let wait = match (q.wait, current) {
        (Some(w), Some(_)) => Some(match parked {
            // Parked (`parking.rs`), it has waited already: the rest of its wait.
            Some(Extension(ParkedUntil(until))) => until.saturating_duration_since(tokio::time::Instant::now()),
            None => jittered(Duration::from_secs(w).min(MAX_WAIT)),
        }),
        (Some(_), None) => {
            return Err(ApiError::BadRequest(
                "wait needs current=SHA256 (the digest the client has) or current=BUILD_UUID".into(),
            ));
        }
        _ => None,
    };
    let found = wait_for(&st.notify, &st.shutdown, &job, wait, || async {
        Ok::<_, ApiError>(match cached_latest(st, &job, &platform).await? {
            Some((uuid, sha)) if wait.is_none() || current.is_none_or(|c| !c.is(&uuid, sha.as_ref())) => {
                Some(build_location(&job, &uuid))
            }
            _ => None,
        })
    })
    .await?;
    match found {
        Waited::Ready(loc) => Ok(Some(loc)),
        Waited::Nothing if wait.is_some() => Ok(None),
        Waited::Nothing => Err(ApiError::NotFound(format!(
            "job {:?} has no build with a main binary",
            job.as_str()
        ))),
        Waited::ShuttingDown => Err(ApiError::ShuttingDown),
    }
}

/// `rest` (percent-decoded by the router) is made of plain path
/// characters only, so it can go back into a Location header.
pub(crate) fn plain_rest(rest: &str) -> bool {
    !rest.split('/').any(|seg| seg.is_empty() || seg == "." || seg == "..")
        && rest
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-+~@,/".contains(&b))
}

fn not_modified() -> Result<Response, ApiError> {
    Ok(StatusCode::NOT_MODIFIED.into_response())
}

/// `GET /job/{job}/build/latest[?platform=][&wait=S&current=SHA256]`
pub async fn latest(
    State(st): State<AppState>,
    Path(job): Path<String>,
    Query(q): Query<LatestQuery>,
    parked: Option<Extension<ParkedUntil>>,
) -> Result<Response, ApiError> {
    match latest_uuid(&st, parse_job(&job)?, &q, parked).await? {
        Some(loc) => redirect(StatusCode::TEMPORARY_REDIRECT, &loc),
        None => not_modified(),
    }
}

/// `GET /job/{job}/build/latest/{rest…}`
pub async fn latest_rest(
    State(st): State<AppState>,
    Path((job, rest)): Path<(String, String)>,
    Query(q): Query<LatestQuery>,
    parked: Option<Extension<ParkedUntil>>,
) -> Result<Response, ApiError> {
    if !plain_rest(&rest) {
        return Err(ApiError::BadRequest(format!("invalid path {rest:?} after latest/")));
    }
    match latest_uuid(&st, parse_job(&job)?, &q, parked).await? {
        Some(loc) => redirect(StatusCode::TEMPORARY_REDIRECT, &format!("{loc}/{rest}")),
        None => not_modified(),
    }
}

/// `GET /job/{job}/build/{uuid}/main-binary`
pub async fn main_binary(
    State(st): State<AppState>,
    Path((job, uuid)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let (job, uuid) = (parse_job(&job)?, parse_build(&uuid)?);
    let j = job.clone();
    let row = st
        .db
        .read(move |c| builds::build(c, &j, &uuid))
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no build {uuid} of job {:?}", job.as_str())))?;
    let main: &ArtifactPath = row
        .main_binary
        .as_ref()
        .ok_or_else(|| ApiError::NotFound(format!("build {uuid} has no main binary")))?;
    redirect(StatusCode::FOUND, &format!("/job/{job}/build/{uuid}/f/{main}"))
}

#[derive(serde::Deserialize)]
pub struct HashQuery {
    sha256: Option<String>,
}

/// `GET /hash?sha256=`
pub async fn by_hash(State(st): State<AppState>, Query(q): Query<HashQuery>) -> Result<Response, ApiError> {
    let raw = q
        .sha256
        .ok_or_else(|| ApiError::BadRequest("the query parameter sha256 is required".into()))?;
    let sha: Sha256 = raw.parse().map_err(ApiError::bad_request)?;
    let found = st.db.read(move |c| builds::build_by_hash(c, &sha)).await?;
    let (job, uuid) =
        found.ok_or_else(|| ApiError::NotFound(format!("no build holds an artifact with sha256 {sha}")))?;
    redirect(StatusCode::FOUND, &format!("/job/{job}/build/{uuid}"))
}
