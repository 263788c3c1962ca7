//! Artifact bytes: `GET /job/{job}/build/{uuid}/f/{path…}` and `…/console`.
//! Every answer carries the strong `ETag` (the sha256), `If-None-Match` gives
//! 304, a single `Range` gives 206; full answers carry `Content-Digest`,
//! all carry `Repr-Digest` (RFC 9530) so a resumed download can be verified.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use uk_digest::{Sha256, content_digest_header};
use uk_names::ArtifactPath;

use super::{parse_build, parse_job};
use crate::app::AppState;
use crate::db::builds;
use crate::error::ApiError;

/// `GET /job/{job}/build/{uuid}/f/{path…}`
pub async fn artifact(
    State(st): State<AppState>,
    Path((job, uuid, path)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let path: ArtifactPath = path.parse().map_err(ApiError::bad_request)?;
    serve(st, &job, &uuid, path, &headers, "application/octet-stream").await
}

/// `GET /job/{job}/build/{uuid}/console`
pub async fn console(
    State(st): State<AppState>,
    Path((job, uuid)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let path: ArtifactPath = "console".parse().map_err(ApiError::bad_request)?;
    serve(st, &job, &uuid, path, &headers, "text/plain; charset=utf-8").await
}

fn if_none_match(headers: &HeaderMap, sha: &Sha256) -> bool {
    let Some(v) = headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let hex = sha.to_hex();
    v.split(',')
        .map(str::trim)
        .any(|t| t == "*" || t.trim_start_matches("W/").trim_matches('"') == hex)
}

/// The single range asked for, `None` for the whole file.
fn requested_range(headers: &HeaderMap, size: u64) -> Result<Option<(u64, u64)>, ApiError> {
    let Some(v) = headers.get(header::RANGE) else {
        return Ok(None);
    };
    let v = v.to_str().map_err(|_| ApiError::RangeNotSatisfiable { size })?;
    let ranges = http_range_header::parse_range_header(v)
        .and_then(|r| r.validate(size))
        .map_err(|_| ApiError::RangeNotSatisfiable { size })?;
    match ranges.as_slice() {
        [r] => Ok(Some((*r.start(), r.end() - r.start() + 1))),
        // Several ranges: answering with the whole file is allowed (RFC 9110).
        _ => Ok(None),
    }
}

fn hv(s: &str) -> Result<HeaderValue, ApiError> {
    HeaderValue::from_str(s).map_err(|e| ApiError::Internal(e.into()))
}

async fn serve(
    st: AppState,
    job: &str,
    uuid: &str,
    path: ArtifactPath,
    headers: &HeaderMap,
    ctype: &'static str,
) -> Result<Response, ApiError> {
    let (job, uuid) = (parse_job(job)?, parse_build(uuid)?);
    let (sha, size) = match st.caches.artifact(&job, &uuid, &path) {
        Some(v) => v,
        None => {
            let (j, p) = (job.clone(), path.clone());
            let v = st
                .db
                .read(move |c| builds::artifact(c, &j, &uuid, &p))
                .await?
                .ok_or_else(|| {
                    ApiError::NotFound(format!(
                        "build {uuid} of job {:?} has no file {:?}",
                        job.as_str(),
                        path.as_str()
                    ))
                })?;
            st.caches.put_artifact(&job, &uuid, &path, v);
            v
        }
    };
    let etag = hv(&format!("\"{sha}\""))?;
    let mut builder = Response::builder()
        .header(header::ETAG, etag)
        .header(header::ACCEPT_RANGES, "bytes")
        .header("repr-digest", hv(&content_digest_header(&sha))?);
    if if_none_match(headers, &sha) {
        return builder
            .status(StatusCode::NOT_MODIFIED)
            .body(Body::empty())
            .map_err(|e| ApiError::Internal(e.into()));
    }
    let range = requested_range(headers, size)?;
    let body = st
        .store
        .get(&sha, range)
        .map_err(|e| ApiError::from_io(e, "opening an artifact"))?
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("artifact {sha} is recorded but missing from the store")))?;
    builder = builder
        .header(header::CONTENT_TYPE, ctype)
        .header(header::CONTENT_LENGTH, body.len);
    builder = match range {
        Some((start, len)) => builder.status(StatusCode::PARTIAL_CONTENT).header(
            header::CONTENT_RANGE,
            hv(&format!("bytes {start}-{}/{size}", start + len - 1))?,
        ),
        None => builder
            .status(StatusCode::OK)
            .header("content-digest", hv(&content_digest_header(&sha))?),
    };
    builder
        .body(Body::from_stream(body.stream))
        .map_err(|e| ApiError::Internal(e.into()))
}
