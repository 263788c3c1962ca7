//! The read views: `GET /` (jobs), `GET /job/{job}` (its builds, newest
//! first) and `GET /job/{job}/build/{uuid}`, each as JSON for API clients
//! (`Accept: application/json`) and as a small HTML page for people.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{Html, IntoResponse, Response};
use uk_wire::{JobBuildJson, JobFileJson, JobJson, JobSummaryJson, JobsJson, LatestJson};

use super::{PlatformQuery, html, parse_build, parse_job, wants_json};
use crate::app::AppState;
use crate::db::builds::{self, BuildRow};
use crate::db::deployments;
use crate::error::ApiError;

fn job_file(b: &BuildRow) -> Option<JobFileJson> {
    b.main_file().map(|f| JobFileJson {
        filename: f.filepath.file_name().to_owned(),
        sha256: f.sha256,
        size: f.size,
    })
}

/// `GET /`
pub async fn jobs(State(st): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let jobs = st
        .db
        .read(|c| {
            builds::jobs(c)?
                .into_iter()
                .map(|(name, synopsis)| {
                    let latest = builds::latest(c, &name, None)?.map(|b| LatestJson {
                        uuid: b.uuid,
                        platform: b.platform.clone(),
                        finish_time: b.finish_time.clone(),
                        main_binary: job_file(&b),
                    });
                    Ok(JobSummaryJson { name, synopsis, latest })
                })
                .collect::<anyhow::Result<Vec<_>>>()
        })
        .await?;
    if wants_json(&headers) {
        return Ok(Json(JobsJson { jobs }).into_response());
    }
    Ok(Html(html::jobs_page(&jobs)).into_response())
}

/// `GET /job/{job}[?platform=]`
pub async fn job(
    State(st): State<AppState>,
    Path(job): Path<String>,
    Query(q): Query<PlatformQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let job = parse_job(&job)?;
    let platform = q.parse()?;
    let j = job.clone();
    let rows = st
        .db
        .read(move |c| builds::job_builds(c, &j, platform.as_ref()))
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no job {:?}", job.as_str())))?;
    let builds: Vec<JobBuildJson> = rows
        .iter()
        .map(|b| JobBuildJson {
            uuid: b.uuid,
            platform: b.platform.clone(),
            finish_time: b.finish_time.clone(),
            main_binary: job_file(b),
        })
        .collect();
    if wants_json(&headers) {
        return Ok(Json(JobJson { builds }).into_response());
    }
    Ok(Html(html::job_page(&job, &builds)).into_response())
}

/// `GET /job/{job}/build/{uuid}`
pub async fn build(
    State(st): State<AppState>,
    Path((job, uuid)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (job, uuid) = (parse_job(&job)?, parse_build(&uuid)?);
    let j = job.clone();
    let (row, deps) = st
        .db
        .read(move |c| {
            let Some(row) = builds::build(c, &j, &uuid)? else {
                return Ok(None);
            };
            let deps = deployments::last_per_host_of_build(deployments::of_build(c, &j, &uuid)?);
            Ok(Some((row, deps)))
        })
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no build {uuid} of job {:?}", job.as_str())))?;
    let mut json = row.to_json();
    json.deployments = deps;
    if wants_json(&headers) {
        return Ok(Json(json).into_response());
    }
    Ok(Html(html::build_page(&json)).into_response())
}
