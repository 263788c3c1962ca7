//! Small artifacts read into memory for the pages that show what is in
//! them: the comparison's inputs (`opam-switch`, `build-environment`,
//! `system-packages`) and the build page's console excerpt. Bounded: a
//! file over the limit is an error (compare) or read from its end only
//! (console).

use futures_util::StreamExt;

use crate::db::builds::BuildRow;
use crate::error::ApiError;
use crate::state::AppState;

/// What a build holds under one artifact path.
pub enum Text {
    /// No such artifact, or its bytes were vacuumed.
    Absent,
    Text(String),
}

async fn collect(st: &AppState, sha: &uk_digest::Sha256, range: Option<(u64, u64)>) -> Result<Vec<u8>, ApiError> {
    let Some(body) = st
        .store
        .get_async(*sha, range)
        .await
        .map_err(|e| ApiError::from_io(e, "opening an artifact"))?
    else {
        return Ok(Vec::new());
    };
    let mut out = Vec::with_capacity(body.len as usize);
    let mut stream = body.into_stream();
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk.map_err(|e| ApiError::from_io(e, "reading an artifact"))?);
    }
    Ok(out)
}

/// The whole artifact as (lossy) UTF-8 text, if it is at most `limit` bytes.
pub async fn whole(st: &AppState, b: &BuildRow, path: &str, limit: u64) -> Result<Text, ApiError> {
    let Some(f) = b.artifacts.iter().find(|a| a.filepath.as_str() == path) else {
        return Ok(Text::Absent);
    };
    if b.vacuumed.is_some() {
        return Ok(Text::Absent);
    }
    if f.size > limit {
        return Err(ApiError::BadRequest(format!(
            "artifact {path:?} of build {} is {} bytes, more than the {limit} bytes a comparison reads",
            b.uuid, f.size
        )));
    }
    let bytes = collect(st, &f.sha256, None).await?;
    Ok(Text::Text(String::from_utf8_lossy(&bytes).into_owned()))
}

/// The last `lines` lines of an artifact, read from its last `bytes` bytes;
/// and whether anything before them was left out.
pub async fn tail(
    st: &AppState,
    b: &BuildRow,
    path: &str,
    bytes: u64,
    lines: usize,
) -> Result<Option<(String, bool)>, ApiError> {
    let Some(f) = b.artifacts.iter().find(|a| a.filepath.as_str() == path) else {
        return Ok(None);
    };
    if b.vacuumed.is_some() || f.size == 0 {
        return Ok(None);
    }
    let start = f.size.saturating_sub(bytes);
    let raw = collect(st, &f.sha256, Some((start, f.size - start))).await?;
    let text = String::from_utf8_lossy(&raw);
    // A cut first line is dropped rather than shown half.
    let text = if start > 0 {
        text.split_once('\n').map_or("", |(_, rest)| rest)
    } else {
        &text
    };
    let all: Vec<&str> = text.lines().collect();
    let keep = &all[all.len().saturating_sub(lines)..];
    Ok(Some((keep.join("\n"), start > 0 || keep.len() < all.len())))
}
