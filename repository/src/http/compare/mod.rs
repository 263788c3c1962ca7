//! `GET /compare/{left}/{right}`: builder-web's comparison of two builds
//! (of any jobs) from their `opam-switch`, `build-environment` and
//! `system-packages` artifacts, as JSON in builder-web's shape (what
//! mollymawk's `compare_of_json` decodes) or as a page. Unlike builder-web,
//! a build without those artifacts (or whose files were vacuumed) is
//! compared as if they were empty instead of answering 404.

pub mod opam;
pub mod opamdiff;
pub mod packages;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use uk_names::{BuildId, JobName, PlatformName};

use super::read::{self, Text};
use super::{pages, parse_build, wants_json};
use crate::db::builds::{self, BuildRow};
use crate::error::ApiError;
use crate::state::AppState;
use opam::SwitchExport;
use packages::DiffMap;

/// The inputs of a comparison, by their builder-web artifact paths.
pub const INPUTS: [&str; 3] = ["opam-switch", "build-environment", "system-packages"];
/// Largest input read (an opam switch export with every overlay is a few
/// hundred KiB).
const MAX_INPUT: u64 = 8 << 20;
/// Comparisons that may run at once: each holds up to six inputs in memory
/// and parses them on the blocking pool; more requests wait their turn.
static RUNNING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);

/// One side, as builder-web's `left`/`right` objects.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CompareBuild {
    pub job: JobName,
    pub uuid: BuildId,
    pub platform: PlatformName,
    pub start_time: String,
    pub finish_time: String,
    pub main_binary: bool,
    pub main_binary_size: Option<u64>,
}

/// builder-web's comparison JSON, keys in its order.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CompareJson {
    pub left: CompareBuild,
    pub right: CompareBuild,
    pub env_diff: DiffMap,
    pub package_diff: DiffMap,
    pub opam_diff: opamdiff::OpamDiff,
}

fn side(b: &BuildRow) -> CompareBuild {
    let main = b.main_file();
    CompareBuild {
        job: b.job.clone(),
        uuid: b.uuid,
        platform: b.platform.clone(),
        start_time: b.start_time.clone(),
        finish_time: b.finish_time.clone(),
        main_binary: main.is_some(),
        main_binary_size: main.map(|m| m.size),
    }
}

/// The three inputs of a build (empty texts where absent) and the names of
/// those that were absent.
async fn inputs(st: &AppState, b: &BuildRow) -> Result<([String; 3], Vec<&'static str>), ApiError> {
    let mut texts: [String; 3] = Default::default();
    let mut missing = Vec::new();
    for (i, path) in INPUTS.iter().enumerate() {
        match read::whole(st, b, path, MAX_INPUT).await? {
            Text::Text(t) => texts[i] = t,
            Text::Absent => missing.push(*path),
        }
    }
    Ok((texts, missing))
}

/// The comparison of two builds' inputs.
pub fn compare(left: &BuildRow, l: &[String; 3], right: &BuildRow, r: &[String; 3]) -> CompareJson {
    CompareJson {
        left: side(left),
        right: side(right),
        env_diff: packages::compare_env(&l[1], &r[1]),
        package_diff: packages::compare_pkgs(&l[2], &r[2]),
        opam_diff: opamdiff::compare(&SwitchExport::parse(&l[0]), &SwitchExport::parse(&r[0])),
    }
}

/// `GET /compare/{left}/{right}`
pub async fn compare_builds(
    State(st): State<AppState>,
    Path((left, right)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (l, r) = (parse_build(&left)?, parse_build(&right)?);
    let (lb, rb) = st
        .db
        .read(move |c| Ok((builds::build_by_uuid(c, &l)?, builds::build_by_uuid(c, &r)?)))
        .await?;
    let lb = lb.ok_or_else(|| ApiError::NotFound(format!("no build {l}")))?;
    let rb = rb.ok_or_else(|| ApiError::NotFound(format!("no build {r}")))?;
    let _slot = RUNNING
        .acquire()
        .await
        .map_err(|_| ApiError::Busy("comparisons are not available".into()))?;
    let (lt, lmissing) = inputs(&st, &lb).await?;
    let (rt, rmissing) = inputs(&st, &rb).await?;
    let (json, lb, rb) = tokio::task::spawn_blocking(move || (compare(&lb, &lt, &rb, &rt), lb, rb))
        .await
        .map_err(|e| ApiError::Internal(anyhow::Error::new(e).context("comparing two builds")))?;
    if wants_json(&headers) {
        return Ok(Json(json).into_response());
    }
    let note = |side: &str, b: &BuildRow, missing: &[&str]| -> Vec<String> {
        match (&b.vacuumed, missing) {
            (_, []) => vec![],
            (Some(when), _) => vec![format!(
                "The files of the {side} build were removed by vacuum on {when}: its inputs are compared as empty."
            )],
            (None, _) => missing
                .iter()
                .map(|p| format!("The {side} build has no {p}: compared as empty."))
                .collect(),
        }
    };
    let mut missing = note("left", &lb, &lmissing);
    missing.extend(note("right", &rb, &rmissing));
    pages::render(&pages::compare::ComparePage::new(&json, missing))
}
