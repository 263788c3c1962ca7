//! The redirects: `latest` (307, so a client re-asks for the same method),
//! `main-binary` (302) and `/hash?sha256=` (302). Locations are paths only.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use uk_digest::Sha256;
use uk_names::{ArtifactPath, JobName};

use super::{PlatformQuery, parse_build, parse_job};
use crate::app::AppState;
use crate::db::builds;
use crate::error::ApiError;

fn redirect(status: StatusCode, location: &str) -> Result<Response, ApiError> {
    let v = HeaderValue::from_str(location).map_err(|e| ApiError::Internal(e.into()))?;
    Ok((status, [(header::LOCATION, v)]).into_response())
}

async fn latest_uuid(st: &AppState, job: JobName, q: &PlatformQuery) -> Result<String, ApiError> {
    let platform = q.parse()?;
    let j = job.clone();
    let row = st
        .db
        .read(move |c| builds::latest(c, &j, platform.as_ref()))
        .await?;
    row.map(|r| format!("/job/{}/build/{}", job, r.uuid))
        .ok_or_else(|| {
            ApiError::NotFound(format!(
                "job {:?} has no build with a main binary",
                job.as_str()
            ))
        })
}

/// `GET /job/{job}/build/latest`
pub async fn latest(
    State(st): State<AppState>,
    Path(job): Path<String>,
    Query(q): Query<PlatformQuery>,
) -> Result<Response, ApiError> {
    let loc = latest_uuid(&st, parse_job(&job)?, &q).await?;
    redirect(StatusCode::TEMPORARY_REDIRECT, &loc)
}

/// `GET /job/{job}/build/latest/{rest…}`
pub async fn latest_rest(
    State(st): State<AppState>,
    Path((job, rest)): Path<(String, String)>,
    Query(q): Query<PlatformQuery>,
) -> Result<Response, ApiError> {
    let loc = latest_uuid(&st, parse_job(&job)?, &q).await?;
    // `rest` was percent-decoded by the router; only plain path characters
    // go back into a Location header.
    if rest
        .split('/')
        .any(|seg| seg.is_empty() || seg == "." || seg == "..")
        || !rest
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-/".contains(&b))
    {
        return Err(ApiError::BadRequest(format!(
            "invalid path {rest:?} after latest/"
        )));
    }
    redirect(StatusCode::TEMPORARY_REDIRECT, &format!("{loc}/{rest}"))
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
    redirect(
        StatusCode::FOUND,
        &format!("/job/{job}/build/{uuid}/f/{main}"),
    )
}

#[derive(serde::Deserialize)]
pub struct HashQuery {
    sha256: Option<String>,
}

/// `GET /hash?sha256=`
pub async fn by_hash(
    State(st): State<AppState>,
    Query(q): Query<HashQuery>,
) -> Result<Response, ApiError> {
    let raw = q
        .sha256
        .ok_or_else(|| ApiError::BadRequest("the query parameter sha256 is required".into()))?;
    let sha: Sha256 = raw.parse().map_err(ApiError::bad_request)?;
    let found = st.db.read(move |c| builds::build_by_hash(c, &sha)).await?;
    let (job, uuid) = found.ok_or_else(|| {
        ApiError::NotFound(format!("no build holds an artifact with sha256 {sha}"))
    })?;
    redirect(StatusCode::FOUND, &format!("/job/{job}/build/{uuid}"))
}
