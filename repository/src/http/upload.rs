//! `POST /job/{job}/platform/{platform}/upload?binary_name=`: authenticate,
//! stage every file while hashing (raw body or multipart), check the
//! `Content-Digest`, read the Solo5 notes, move the files into the store
//! (fsynced), then commit the build in one transaction. Any failure before
//! the commit leaves nothing visible; staged files are removed on drop.

use std::net::SocketAddr;

use axum::Json;
use axum::body::Body;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use uk_digest::{Staged, parse_content_digest};
use uk_names::{ArtifactPath, BinaryName, BuildId, JobName, PlatformName};
use uk_wire::FileJson;

use crate::db::builds::{Inserted, NewBuild};
use crate::error::ApiError;
use crate::staging::{Lingering, lingering, stage_stream};
use crate::state::AppState;
use crate::time::now_rfc3339;

/// At most this many parts in one multipart upload.
const MAX_PARTS: usize = 32;

#[derive(serde::Deserialize)]
pub struct UploadQuery {
    binary_name: Option<String>,
}

/// What the body held, staged and hashed.
struct Received {
    main: Option<(ArtifactPath, Staged)>,
    others: Vec<(ArtifactPath, Staged)>,
    /// The job's one-line description (a `synopsis` part).
    synopsis: Option<String>,
    /// The image's digest from a `content-digest` part, which a client may
    /// send after the image so that it reads the image only once (the
    /// multipart form of an HTTP trailer).
    digest: Option<uk_digest::Sha256>,
}

/// What is drained of a refused upload before the answer (see `Lingering`).
const LINGER_BYTES: u64 = 16 << 20;
const LINGER_TIME: std::time::Duration = std::time::Duration::from_secs(2);

/// Longest synopsis kept (characters).
const MAX_SYNOPSIS: usize = 1024;

pub async fn upload(
    State(st): State<AppState>,
    Path(path): Path<(String, String)>,
    Query(q): Query<UploadQuery>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let (body, drain) = lingering(body);
    match receive_and_commit(st, path, q, peer, headers, body).await {
        Ok(r) => Ok(r),
        Err(e) => {
            // Refused before the client finished sending (bad credentials,
            // too large, disk full, …): let it read this answer.
            drain.run(LINGER_BYTES, LINGER_TIME).await;
            Err(e)
        }
    }
}

async fn receive_and_commit(
    st: AppState,
    (job, platform): (String, String),
    q: UploadQuery,
    peer: SocketAddr,
    headers: HeaderMap,
    body: Lingering,
) -> Result<Response, ApiError> {
    let start_time = now_rfc3339();
    let job: JobName = job.parse().map_err(ApiError::bad_request)?;
    let platform: PlatformName = platform.parse().map_err(ApiError::bad_request)?;
    let binary_name: Option<BinaryName> = q
        .binary_name
        .map(|b| b.parse())
        .transpose()
        .map_err(ApiError::bad_request)?;
    let who = st.auth.authenticate(&headers, peer.ip()).await?;
    st.auth.authorize_upload(&who, &job).await?;

    let expected = match headers.get("content-digest") {
        Some(v) => {
            let v = v
                .to_str()
                .map_err(|_| ApiError::BadRequest("Content-Digest is not ASCII".into()))?;
            parse_content_digest(v).map_err(ApiError::bad_request)?
        }
        None => None,
    };
    let announced = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > st.max_upload) {
        return Err(ApiError::TooLarge { limit: st.max_upload });
    }

    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let received = if content_type.to_ascii_lowercase().starts_with("multipart/form-data") {
        receive_multipart(&st, &job, content_type, body, binary_name).await
    } else {
        let name = binary_name.unwrap_or_else(|| default_binary_name(&job));
        let mut budget = st.max_upload;
        stage_stream(&st.store, body, &mut budget, st.max_upload, st.body_idle_timeout)
            .await
            .map(|staged| Received {
                main: Some((ArtifactPath::main_binary(&name), staged)),
                others: vec![],
                synopsis: None,
                digest: None,
            })
    }?;

    let Some((main_path, main)) = received.main else {
        return Err(ApiError::BadRequest(
            "the upload has no image (a part named \"binary\")".into(),
        ));
    };
    let expected = match (expected, received.digest) {
        (Some(h), Some(p)) if h != p => {
            return Err(ApiError::BadRequest(format!(
                "the Content-Digest header (sha256 {h}) and the content-digest part (sha256 {p}) disagree"
            )));
        }
        (h, p) => h.or(p),
    };
    if let Some(expected) = expected
        && expected != main.sha256
    {
        return Err(ApiError::DigestMismatch {
            expected,
            actual: main.sha256,
        });
    }
    let (solo5_abi, solo5_manifest) = solo5_json(main.path()).await;

    let mut artifacts = vec![FileJson {
        filepath: main_path.clone(),
        sha256: main.sha256,
        size: main.size,
    }];
    artifacts.extend(received.others.iter().map(|(p, s)| FileJson {
        filepath: p.clone(),
        sha256: s.sha256,
        size: s.size,
    }));
    let mut staged = vec![main];
    staged.extend(received.others.into_iter().map(|(_, s)| s));
    let store = st.store.clone();
    let fresh: Vec<_> = tokio::task::spawn_blocking(move || {
        let mut fresh = Vec::new();
        for s in staged {
            let sha = s.sha256;
            if store.put(s)? {
                fresh.push(sha);
            }
        }
        Ok::<_, std::io::Error>(fresh)
    })
    .await
    .map_err(|e| ApiError::Internal(e.into()))?
    .map_err(|e| ApiError::from_io(e, "storing the artifacts"))?;

    let new = NewBuild {
        uuid: BuildId::new_random(),
        job: job.clone(),
        platform,
        start_time,
        main_binary: Some(main_path),
        solo5_abi,
        solo5_manifest,
        uploader: who.label(),
        artifacts,
    };
    let store = st.store.clone();
    let synopsis = received.synopsis;
    let committed = st
        .db
        .write(move |c| {
            let inserted = crate::db::builds::insert_build(c, new, now_rfc3339(), &|sha| store.exists(sha))?;
            if let Some(text) = &synopsis {
                crate::db::jobs::set_synopsis(c, &job_of(&inserted), text)?;
            }
            Ok(inserted)
        })
        .await;
    // Blobs this upload stored that no build references now (the commit
    // failed, or it repeated the latest build with new side files) go again.
    if !fresh.is_empty() && !matches!(committed, Ok(Inserted::Created(_))) {
        let store = st.store.clone();
        let cleaned = st
            .db
            .write(move |c| crate::gc::collect(c, store.as_ref(), std::time::Duration::ZERO, Some(&fresh), false))
            .await;
        if let Err(e) = cleaned {
            tracing::warn!(
                error = format!("{e:#}"),
                "removing the blobs of a failed upload (the next start removes them)"
            );
        }
    }
    let (status, row) = match committed? {
        Inserted::Created(row) => (StatusCode::CREATED, row),
        Inserted::Existing(row) => (StatusCode::OK, row),
    };
    if status == StatusCode::CREATED {
        tracing::info!(job = %job, build = %row.uuid, uploader = %who.label(), "build committed");
        st.caches.add_job(&job);
        st.notify.bump(&job);
        if let Some(keep) = st.keep_builds {
            crate::vacuum::after_upload(&st, &job, keep).await;
        }
    }
    let location = format!("/job/{}/build/{}", row.job, row.uuid);
    let mut resp = (status, Json(row.to_json())).into_response();
    resp.headers_mut().insert(
        header::LOCATION,
        HeaderValue::from_str(&location).map_err(|e| ApiError::Internal(e.into()))?,
    );
    Ok(resp)
}

/// A small text part (`synopsis`, `content-digest`), read with a size
/// limit: a part that is not small is refused, not buffered.
async fn small_part(mut field: multer::Field<'_>, idle: std::time::Duration, what: &str) -> Result<String, ApiError> {
    const LIMIT: usize = 4096;
    let mut buf = Vec::new();
    while let Some(chunk) = tokio::time::timeout(idle, field.chunk())
        .await
        .map_err(|_| ApiError::RequestTimeout(idle))?
        .map_err(|e| ApiError::BadRequest(format!("reading the {what} part: {e}")))?
    {
        if buf.len() + chunk.len() > LIMIT {
            return Err(ApiError::BadRequest(format!(
                "the {what} part is longer than {LIMIT} bytes"
            )));
        }
        buf.extend_from_slice(&chunk);
    }
    String::from_utf8(buf).map_err(|_| ApiError::BadRequest(format!("the {what} part is not UTF-8")))
}

/// builder-web's default for an upload without `binary_name`.
fn default_binary_name(job: &JobName) -> BinaryName {
    format!("{job}.bin")
        .parse()
        .unwrap_or_else(|_| "main.bin".parse().expect("a valid name"))
}

fn job_of(i: &Inserted) -> JobName {
    match i {
        Inserted::Created(r) | Inserted::Existing(r) => r.job.clone(),
    }
}

async fn receive_multipart(
    st: &AppState,
    job: &JobName,
    content_type: &str,
    body: Lingering,
    binary_name: Option<BinaryName>,
) -> Result<Received, ApiError> {
    let boundary = multer::parse_boundary(content_type)
        .map_err(|e| ApiError::BadRequest(format!("bad multipart Content-Type: {e}")))?;
    let mut mp = multer::Multipart::new(body, boundary);
    let mut budget = st.max_upload;
    let mut got = Received {
        main: None,
        others: vec![],
        synopsis: None,
        digest: None,
    };
    let mut seen = std::collections::HashSet::new();
    let mut parts = 0;
    while let Some(field) = mp
        .next_field()
        .await
        .map_err(|e| ApiError::BadRequest(format!("malformed multipart body: {e}")))?
    {
        parts += 1;
        if parts > MAX_PARTS {
            return Err(ApiError::BadRequest(format!(
                "too many parts: at most {MAX_PARTS} are allowed"
            )));
        }
        let name = field.name().unwrap_or("").to_owned();
        if name == "synopsis" {
            let text = small_part(field, st.body_idle_timeout, "synopsis").await?;
            let line = text.lines().next().unwrap_or("").trim();
            if line.chars().any(char::is_control) {
                return Err(ApiError::BadRequest("the synopsis has control characters".into()));
            }
            got.synopsis = Some(line.chars().take(MAX_SYNOPSIS).collect());
            continue;
        }
        if name == "content-digest" {
            let text = small_part(field, st.body_idle_timeout, "content-digest").await?;
            got.digest = parse_content_digest(text.trim())
                .map_err(ApiError::bad_request)?
                .ok_or_else(|| ApiError::BadRequest("the content-digest part has no sha-256 digest".into()))
                .map(Some)?;
            continue;
        }
        let path = if name == "binary" {
            let bin = match (&binary_name, field.file_name()) {
                (Some(b), _) => b.clone(),
                (None, Some(f)) => f.parse().map_err(ApiError::bad_request)?,
                (None, None) => default_binary_name(job),
            };
            ArtifactPath::main_binary(&bin)
        } else {
            name.parse::<ArtifactPath>().map_err(ApiError::bad_request)?
        };
        if !seen.insert(path.clone()) {
            return Err(ApiError::BadRequest(format!(
                "artifact {:?} appears twice",
                path.as_str()
            )));
        }
        if name != "binary" && got.main.as_ref().is_some_and(|(p, _)| p == &path) {
            return Err(ApiError::BadRequest(format!(
                "artifact {:?} collides with the image",
                path.as_str()
            )));
        }
        let staged = stage_stream(&st.store, field, &mut budget, st.max_upload, st.body_idle_timeout).await?;
        if name == "binary" {
            got.main = Some((path, staged));
        } else {
            got.others.push((path, staged));
        }
    }
    if let Some((main, _)) = &got.main
        && got.others.iter().any(|(p, _)| p == main)
    {
        return Err(ApiError::BadRequest(format!(
            "artifact {:?} collides with the image",
            main.as_str()
        )));
    }
    Ok(got)
}

/// The image's Solo5 notes as builder-web shows them; nulls for other files.
async fn solo5_json(path: &std::path::Path) -> (Option<serde_json::Value>, Option<serde_json::Value>) {
    let path = path.to_owned();
    let info = tokio::task::spawn_blocking(move || {
        let f = std::io::BufReader::new(std::fs::File::open(path).ok()?);
        solo5_elf::read_solo5_info(f).ok().flatten()
    })
    .await
    .ok()
    .flatten();
    match info {
        Some(i) => (
            serde_json::to_value(&i.abi).ok(),
            i.manifest.and_then(|m| serde_json::to_value(&m).ok()),
        ),
        None => (None, None),
    }
}
