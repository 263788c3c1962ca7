//! Artifact bytes: `GET /job/{job}/build/{uuid}/f/{path…}`, `…/console` and
//! `…/script`. Every answer carries the strong `ETag` (the sha256);
//! `If-None-Match` with it, or with builder-web's form (the unquoted base64
//! of the digest), gives 304; a single `Range` gives 206; full answers carry
//! `Content-Digest`, all carry `Repr-Digest` (RFC 9530) so a resumed
//! download can be verified. Files of a vacuumed build answer 410. With
//! `serve --store-redirect` (an S3 store) the answer is instead a 307 to a
//! presigned URL of the object, valid for minutes: the store sends the bytes.

use std::sync::Arc;

use axum::Extension;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use uk_digest::{Sha256, content_digest_header};
use uk_names::{ArtifactPath, BuildId, JobName};

use super::{parse_build, parse_job};
use crate::db::builds::{self, StoredFile};
use crate::error::ApiError;
use crate::sendfile::Sending;
use crate::state::AppState;

/// The connection's sendfile queue (plain HTTP/1 connections, `listen.rs`).
type Zc = Option<Extension<Arc<Sending>>>;

/// `GET /job/{job}/build/{uuid}/f/{path…}`
pub async fn artifact(
    State(st): State<AppState>,
    Path((job, uuid, path)): Path<(String, String, String)>,
    zc: Zc,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    // A trailing slash is tolerated on every GET route.
    let path: ArtifactPath = path.trim_end_matches('/').parse().map_err(ApiError::bad_request)?;
    let ctype = content_type(&path);
    serve(st, &parse_job(&job)?, &parse_build(&uuid)?, path, &headers, ctype, zc).await
}

/// `GET /job/{job}/build/{uuid}/console`: empty (200) when none was
/// attached, as builder-web answers for a build without output.
pub async fn console(
    State(st): State<AppState>,
    Path((job, uuid)): Path<(String, String)>,
    zc: Zc,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    text_artifact(st, &job, &uuid, "console", &headers, zc).await
}

/// `GET /job/{job}/build/{uuid}/script`: the attached build script.
pub async fn script(
    State(st): State<AppState>,
    Path((job, uuid)): Path<(String, String)>,
    zc: Zc,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    text_artifact(st, &job, &uuid, "script", &headers, zc).await
}

const TEXT: &str = "text/plain; charset=utf-8";

async fn text_artifact(
    st: AppState,
    job: &str,
    uuid: &str,
    name: &str,
    headers: &HeaderMap,
    zc: Zc,
) -> Result<Response, ApiError> {
    let (job, uuid) = (parse_job(job)?, parse_build(uuid)?);
    let path: ArtifactPath = name.parse().map_err(ApiError::bad_request)?;
    let (j, p) = (job.clone(), path.clone());
    let found = st
        .db
        .read(move |c| {
            let exists = builds::build(c, &j, &uuid)?.is_some();
            Ok((exists, builds::artifact(c, &j, &uuid, &p)?))
        })
        .await?;
    match found {
        (false, _) => Err(no_build(&job, &uuid)),
        (true, None) => Ok(([(header::CONTENT_TYPE, TEXT)], "").into_response()),
        (true, Some(_)) => serve(st, &job, &uuid, path, headers, TEXT, zc).await,
    }
}

fn no_build(job: &JobName, uuid: &BuildId) -> ApiError {
    ApiError::NotFound(format!("no build {uuid} of job {:?}", job.as_str()))
}

/// The media type of an artifact, as builder-web picks it: main binaries are
/// bytes, build metadata is text, the rest by extension.
pub fn content_type(path: &ArtifactPath) -> &'static str {
    let p = path.as_str();
    if matches!(
        p,
        "build-environment" | "opam-switch" | "system-packages" | "console" | "script"
    ) || p.ends_with(".build-hashes")
    {
        return TEXT;
    }
    if p.starts_with("bin/") {
        return "application/octet-stream";
    }
    let ext = path
        .file_name()
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "txt" | "log" | "minisig" | "sig" | "asc" | "sha256" | "md" => TEXT,
        "html" | "htm" => "text/html; charset=utf-8",
        "json" => "application/json",
        "deb" => "application/vnd.debian.binary-package",
        "tar" => "application/x-tar",
        "gz" | "tgz" => "application/gzip",
        "xz" => "application/x-xz",
        "zst" => "application/zstd",
        "sh" => "text/x-shellscript; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        _ => "application/octet-stream",
    }
}

/// Does `If-None-Match` name this digest, in our form (`"<hex>"`, also weak
/// or unquoted) or builder-web's (unquoted standard base64)?
fn if_none_match(headers: &HeaderMap, sha: &Sha256) -> bool {
    let Some(v) = headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let hex = sha.to_hex();
    let b64 = base64::engine::general_purpose::STANDARD.encode(sha.as_bytes());
    v.split(',')
        .map(|t| t.trim().trim_start_matches("W/").trim_matches('"'))
        .any(|t| t == "*" || t == hex || t == b64)
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

async fn lookup(st: &AppState, job: &JobName, uuid: &BuildId, path: &ArtifactPath) -> Result<StoredFile, ApiError> {
    let (j, u, p) = (job.clone(), *uuid, path.clone());
    let found = st.db.read(move |c| builds::artifact(c, &j, &u, &p)).await?;
    let file = found.ok_or_else(|| {
        ApiError::NotFound(format!(
            "build {uuid} of job {:?} has no file {:?}",
            job.as_str(),
            path.as_str()
        ))
    })?;
    if !file.vacuumed {
        st.caches.put_artifact(job, uuid, path, file);
    }
    Ok(file)
}

fn gone(job: &JobName, uuid: &BuildId, path: &ArtifactPath) -> ApiError {
    ApiError::Gone(format!(
        "the files of build {uuid} of job {:?} were removed by vacuum ({:?}); its digests are still listed on the build page",
        job.as_str(),
        path.as_str()
    ))
}

async fn serve(
    st: AppState,
    job: &JobName,
    uuid: &BuildId,
    path: ArtifactPath,
    headers: &HeaderMap,
    ctype: &'static str,
    zc: Zc,
) -> Result<Response, ApiError> {
    let file = match st.caches.artifact(job, uuid, &path) {
        Some(v) => v,
        None => lookup(&st, job, uuid, &path).await?,
    };
    if file.vacuumed {
        return Err(gone(job, uuid, &path));
    }
    let (sha, size) = (file.sha256, file.size);
    let mut builder = Response::builder()
        .header(header::ETAG, hv(&format!("\"{sha}\""))?)
        .header(header::ACCEPT_RANGES, "bytes")
        .header("repr-digest", hv(&content_digest_header(&sha))?);
    if if_none_match(headers, &sha) {
        return builder
            .status(StatusCode::NOT_MODIFIED)
            .body(Body::empty())
            .map_err(|e| ApiError::Internal(e.into()));
    }
    if let Some(ttl) = st.store_redirect
        && let Some(url) = st
            .store
            .presign(sha, ttl)
            .await
            .map_err(|e| ApiError::from_io(e, "presigning an artifact's URL"))?
    {
        // `--store-redirect`: the store serves the bytes (and the range).
        return builder
            .status(StatusCode::TEMPORARY_REDIRECT)
            .header(header::LOCATION, hv(&url)?)
            .header(header::CACHE_CONTROL, "no-store")
            .body(Body::empty())
            .map_err(|e| ApiError::Internal(e.into()));
    }
    let range = requested_range(headers, size)?;
    let body = match st
        .store
        .get_async(sha, range)
        .await
        .map_err(|e| ApiError::from_io(e, "opening an artifact"))?
    {
        Some(b) => b,
        None => {
            // Vacuumed since it was cached (perhaps by `vacuum` in another process)?
            st.caches.forget_artifact(job, uuid, &path);
            if lookup(&st, job, uuid, &path).await?.vacuumed {
                return Err(gone(job, uuid, &path));
            }
            return Err(ApiError::Internal(anyhow::anyhow!(
                "artifact {sha} is recorded but missing from the store"
            )));
        }
    };
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
    let body = match zc {
        Some(Extension(sending)) => match body.into_file() {
            Ok((file, start, len)) => Body::new(sending.body(file, start, len)),
            Err(body) => Body::from_stream(body.into_stream()),
        },
        None => Body::from_stream(body.into_stream()),
    };
    builder.body(body).map_err(|e| ApiError::Internal(e.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types_follow_builder_web() {
        let ct = |p: &str| content_type(&p.parse().unwrap());
        assert_eq!(ct("bin/web.hvt"), "application/octet-stream");
        assert_eq!(ct("bin/notes.txt"), "application/octet-stream");
        assert_eq!(ct("opam-switch"), TEXT);
        assert_eq!(ct("build-environment"), TEXT);
        assert_eq!(ct("index.html"), "text/html; charset=utf-8");
        assert_eq!(ct("report.json"), "application/json");
        assert_eq!(ct("x.deb"), "application/vnd.debian.binary-package");
        assert_eq!(ct("bin/web.hvt.minisig"), "application/octet-stream");
        assert_eq!(ct("web.hvt.minisig"), TEXT);
        assert_eq!(ct("blob"), "application/octet-stream");
    }

    #[test]
    fn if_none_match_takes_our_etag_and_builder_webs() {
        let (sha, _) = uk_digest::hash_reader(&b""[..]).unwrap();
        let h = |v: &str| {
            let mut m = HeaderMap::new();
            m.insert(header::IF_NONE_MATCH, HeaderValue::from_str(v).unwrap());
            m
        };
        assert!(if_none_match(&h(&format!("\"{sha}\"")), &sha));
        assert!(if_none_match(&h("47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="), &sha));
        assert!(if_none_match(&h(&format!("W/\"x\", \"{sha}\"")), &sha));
        assert!(!if_none_match(&h("\"abc\""), &sha));
    }
}
