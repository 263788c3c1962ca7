//! The read views: `GET /` (jobs), `GET /job/{job}` (its builds) and
//! `GET /job/{job}/build/{uuid}`, each as JSON for API clients (`Accept:
//! application/json`) and as a page for people (`pages/`), from the same
//! data.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use uk_wire::{JobBuildJson, JobFileJson, JobSummaryJson, LatestJson};

use super::pages::{self, build::BuildPageJson, job::JobPageJson};
use super::running::{self, HostState};
use super::{parse_build, parse_job, read, wants_json};
use crate::db::builds::{self, BuildRow};
use crate::db::deployments;
use crate::error::ApiError;
use crate::state::AppState;

/// Reports read to work out which build each host runs.
pub const REPORTS_READ: usize = 1000;
/// The console excerpt on a build page: its last lines, from its last bytes.
const CONSOLE_LINES: usize = 40;
const CONSOLE_BYTES: u64 = 16 * 1024;

fn job_file(b: &BuildRow) -> Option<JobFileJson> {
    b.main_file().map(|f| JobFileJson {
        filename: f.filepath.file_name().to_owned(),
        sha256: f.sha256,
        size: f.size,
    })
}

/// Every job with its latest build and its hosts (`GET /`, `GET /all-builds`).
async fn job_list(st: &AppState) -> Result<Vec<(JobSummaryJson, Vec<HostState>)>, ApiError> {
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
                    let hosts = running::hosts(&deployments::recent(c, &name, REPORTS_READ)?);
                    let job = JobSummaryJson {
                        name,
                        synopsis: synopsis.unwrap_or_default(),
                        latest,
                    };
                    Ok((job, hosts))
                })
                .collect::<anyhow::Result<Vec<_>>>()
        })
        .await?)
}

/// `GET /`
pub async fn jobs(State(st): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let json = pages::front::json(job_list(&st).await?);
    if wants_json(&headers) {
        return Ok(Json(json).into_response());
    }
    let now = time::OffsetDateTime::now_utc();
    pages::render(&pages::front::FrontPage::new(&json, now))
}

/// `GET /all-builds`: as `/` (builder-web hides long-inactive jobs on `/`;
/// we show every job on both).
pub async fn all_builds(state: State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    jobs(state, headers).await
}

#[derive(serde::Deserialize, Default)]
pub struct JobQuery {
    platform: Option<String>,
    page: Option<String>,
}

/// `GET /job/{job}[?platform=][&page=]`
pub async fn job(
    State(st): State<AppState>,
    Path(job): Path<String>,
    Query(q): Query<JobQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let job = parse_job(&job)?;
    let platform = super::PlatformQuery {
        platform: q.platform.clone(),
    }
    .parse()?;
    let page: usize = match q.page.as_deref() {
        None => 1,
        Some(p) => p
            .parse()
            .map_err(|_| ApiError::BadRequest(format!("page {p:?} is not a page number")))?,
    };
    let j = job.clone();
    let (rows, synopsis) = st
        .db
        .read(move |c| {
            let Some(rows) = builds::job_builds(c, &j, None)? else {
                return Ok(None);
            };
            let synopsis = builds::jobs(c)?
                .into_iter()
                .find(|(n, _)| n == &j)
                .and_then(|(_, s)| s)
                .unwrap_or_default();
            Ok(Some((rows, synopsis)))
        })
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no job {:?}", job.as_str())))?;
    let mut platforms: Vec<String> = rows.iter().map(|b| b.platform.to_string()).collect();
    platforms.sort();
    platforms.dedup();
    let builds: Vec<JobBuildJson> = rows
        .iter()
        .filter(|b| platform.as_ref().is_none_or(|p| &b.platform == p))
        .map(|b| JobBuildJson {
            uuid: b.uuid,
            platform: b.platform.clone(),
            finish_time: b.finish_time.clone(),
            main_binary: job_file(b),
            vacuumed: b.vacuumed.is_some(),
        })
        .collect();
    let (groups, page, pages) = pages::job::paginate(pages::job::group(&builds), page);
    let json = JobPageJson {
        builds,
        job: job.to_string(),
        synopsis,
        platform: platform.map(|p| p.to_string()),
        platforms,
        groups,
        page,
        pages,
    };
    if wants_json(&headers) {
        return Ok(Json(json).into_response());
    }
    pages::render(&pages::job::JobPage::new(&json))
}

/// `GET /job/{job}/build/{uuid}`
pub async fn build(
    State(st): State<AppState>,
    Path((job, uuid)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (job, uuid) = (parse_job(&job)?, parse_build(&uuid)?);
    let j = job.clone();
    let (row, deps, previous) = st
        .db
        .read(move |c| {
            let Some(row) = builds::build(c, &j, &uuid)? else {
                return Ok(None);
            };
            let deps = deployments::last_per_host_of_build(deployments::of_build(c, &j, &uuid)?);
            let previous = builds::previous(c, &row)?;
            Ok(Some((row, deps, previous)))
        })
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no build {uuid} of job {:?}", job.as_str())))?;
    let mut build = row.to_json();
    build.deployments = deps;
    let console = read::tail(&st, &row, "console", CONSOLE_BYTES, CONSOLE_LINES).await?;
    let json = BuildPageJson {
        build,
        previous,
        console_truncated: console.as_ref().is_some_and(|(_, cut)| *cut),
        console_excerpt: console.map(|(text, _)| text),
    };
    if wants_json(&headers) {
        return Ok(Json(json).into_response());
    }
    pages::render(&pages::build::BuildPage::new(&json))
}
