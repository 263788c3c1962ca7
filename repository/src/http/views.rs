//! The read views: `GET /` (jobs), `GET /job/{job}` (its builds, newest
//! first) and `GET /job/{job}/build/{uuid}`, each as JSON for API clients
//! (`Accept: application/json`) and as a small HTML page for people.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{Html, IntoResponse, Response};
use uk_wire::{JobBuildJson, JobFileJson, JobJson, JobSummaryJson, JobsJson, LatestJson};

use super::{PlatformQuery, html, parse_build, parse_job, wants_json};
use crate::db::builds::{self, BuildRow};
use crate::db::deployments;
use crate::error::ApiError;
use crate::state::AppState;

fn job_file(b: &BuildRow) -> Option<JobFileJson> {
    b.main_file().map(|f| JobFileJson {
        filename: f.filepath.file_name().to_owned(),
        sha256: f.sha256,
        size: f.size,
    })
}

/// Every job with its latest build (`GET /`, `GET /all-builds`).
async fn job_list(st: &AppState) -> Result<Vec<JobSummaryJson>, ApiError> {
    Ok(st
        .db
        .read(|c| {
            builds::jobs(c)?
                .into_iter()
                .map(|(name, synopsis)| {
                    let latest = builds::latest(c, &name, None)?.map(|b| LatestJson {
                        uuid: b.uuid,
                        solo5_manifest: b.solo5_manifest.clone(),
                        solo5_abi: b.solo5_abi.clone(),
                        platform: b.platform.clone(),
                        finish_time: b.finish_time.clone(),
                        main_binary: job_file(&b),
                    });
                    Ok(JobSummaryJson {
                        name,
                        synopsis: synopsis.unwrap_or_default(),
                        latest,
                    })
                })
                .collect::<anyhow::Result<Vec<_>>>()
        })
        .await?)
}

fn jobs_json(jobs: Vec<JobSummaryJson>) -> JobsJson {
    let mut by_section = std::collections::BTreeMap::new();
    if !jobs.is_empty() {
        by_section.insert("Uncategorized".to_owned(), jobs.clone());
    }
    JobsJson {
        jobs,
        jobs_by_section: by_section,
    }
}

/// `GET /`
pub async fn jobs(State(st): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let jobs = job_list(&st).await?;
    if wants_json(&headers) {
        return Ok(Json(jobs_json(jobs)).into_response());
    }
    Ok(Html(html::jobs_page(&jobs)).into_response())
}

/// `GET /all-builds`: as `/` (builder-web hides long-inactive jobs on `/`;
/// we show every job on both).
pub async fn all_builds(state: State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    jobs(state, headers).await
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
            vacuumed: b.vacuumed.is_some(),
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
