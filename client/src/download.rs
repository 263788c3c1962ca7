//! Verified, resumable downloads into a temporary file beside the
//! destination. Each attempt appends to the same temporary file; after a
//! break the next attempt asks for the rest with `Range` (and `If-Range` on
//! the digest, so a changed file restarts from zero). The result is fsynced
//! and checked against the size and sha256 the build JSON promised; only then
//! may the caller rename it into place. Any failure drops (removes) it.

use std::io::{Read, Write};
use std::path::Path;

use uk_digest::{AtomicFile, Sha256, Staged};

use crate::client::{Client, ClientError};
use crate::retry::{Attempt, with_retries};
use uk_cli::progress;

#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    #[error(transparent)]
    Http(#[from] ClientError),
    #[error("writing {path:?}: {source}")]
    Write { path: String, source: std::io::Error },
    #[error("{url}: the server announces {announced} bytes but the build says {expected}")]
    WrongLength { url: String, announced: u64, expected: u64 },
    #[error("{url}: the body was cut short after {got} of {expected} bytes")]
    Truncated { url: String, got: u64, expected: u64 },
    #[error("{url}: no byte arrived for {idle:?} (after {got} of {expected} bytes)")]
    Stalled {
        url: String,
        idle: std::time::Duration,
        got: u64,
        expected: u64,
    },
    #[error("{url}: the server sent more than the {expected} bytes the build says")]
    TooLong { url: String, expected: u64 },
    #[error("{url}: the downloaded bytes have sha256 {actual} but the build says {expected}")]
    DigestMismatch {
        url: String,
        expected: Sha256,
        actual: Sha256,
    },
}

impl DownloadError {
    fn transient(&self) -> bool {
        match self {
            DownloadError::Http(e) => e.is_transient(),
            DownloadError::Truncated { .. } | DownloadError::Stalled { .. } => true,
            _ => false,
        }
    }
}

/// Downloads `url` into a temporary file beside `dest`, verified against
/// `sha256` and `size`. The caller persists the returned file.
pub fn download_verified(
    client: &Client,
    url: &str,
    dest: &Path,
    sha256: &Sha256,
    size: u64,
) -> Result<Staged, DownloadError> {
    let werr = |e: std::io::Error| DownloadError::Write {
        path: dest.display().to_string(),
        source: e,
    };
    let mut file = AtomicFile::beside(dest).map_err(werr)?;
    let bar = progress::bar(
        size,
        dest.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
            .as_str(),
    );
    let result = with_retries(client.retries, client.verbose, |_| {
        match attempt(client, url, &mut file, sha256, size, &bar, dest) {
            Ok(()) => Attempt::Done(()),
            Err(e) if e.transient() => Attempt::Transient(e),
            Err(e) => Attempt::Fatal(e),
        }
    });
    bar.finish_and_clear();
    result?;
    let staged = file.finish().map_err(werr)?;
    if staged.size != size {
        return Err(DownloadError::Truncated {
            url: url.to_owned(),
            got: staged.size,
            expected: size,
        });
    }
    if staged.sha256 != *sha256 {
        return Err(DownloadError::DigestMismatch {
            url: url.to_owned(),
            expected: *sha256,
            actual: staged.sha256,
        });
    }
    Ok(staged)
}

/// A read that hit the idle timeout (ureq wraps its own error in an `io::Error`).
fn is_timeout(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::TimedOut
        || e.get_ref()
            .and_then(|inner| inner.downcast_ref::<ureq::Error>())
            .is_some_and(|u| matches!(u, ureq::Error::Timeout(_)))
}

fn attempt(
    client: &Client,
    url: &str,
    file: &mut AtomicFile,
    sha256: &Sha256,
    size: u64,
    bar: &progress::ProgressBar,
    dest: &Path,
) -> Result<(), DownloadError> {
    let have = file.len();
    if have == size {
        return Ok(());
    }
    // Every read of the connection, headers and body, must bring a byte
    // within the idle timeout: a server that drips or stalls is given up on.
    let mut req = client
        .get(url)
        .config()
        .timeout_per_read(Some(client.idle_timeout))
        .build();
    if have > 0 {
        req = req
            .header("Range", format!("bytes={have}-"))
            .header("If-Range", format!("\"{sha256}\""));
    }
    let resp = req.call().map_err(|e| match e {
        ureq::Error::Timeout(_) => DownloadError::Stalled {
            url: url.to_owned(),
            idle: client.idle_timeout,
            got: have,
            expected: size,
        },
        e => ClientError::Transport {
            method: "GET",
            url: url.to_owned(),
            source: e,
        }
        .into(),
    })?;
    let resp = Client::check("GET", url, resp)?;
    let partial = resp.status().as_u16() == 206;
    if have > 0 && !partial {
        // The server sent the whole file again: start over.
        *file = AtomicFile::beside(dest).map_err(|e| DownloadError::Write {
            path: dest.display().to_string(),
            source: e,
        })?;
        bar.set_position(0);
    }
    let start = file.len();
    let announced = resp
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(n) = announced
        && n != size - start
    {
        return Err(DownloadError::WrongLength {
            url: url.to_owned(),
            announced: start + n,
            expected: size,
        });
    }
    let mut reader = resp.into_body().into_reader();
    let mut buf = vec![0u8; uk_digest::BUF_SIZE];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) if is_timeout(&e) => {
                return Err(DownloadError::Stalled {
                    url: url.to_owned(),
                    idle: client.idle_timeout,
                    got: file.len(),
                    expected: size,
                });
            }
            // A broken body: keep what arrived, the next attempt resumes.
            Err(_) => {
                return Err(DownloadError::Truncated {
                    url: url.to_owned(),
                    got: file.len(),
                    expected: size,
                });
            }
        };
        if file.len() + n as u64 > size {
            return Err(DownloadError::TooLong {
                url: url.to_owned(),
                expected: size,
            });
        }
        file.write_all(&buf[..n]).map_err(|e| DownloadError::Write {
            path: dest.display().to_string(),
            source: e,
        })?;
        bar.inc(n as u64);
    }
    if file.len() < size {
        return Err(DownloadError::Truncated {
            url: url.to_owned(),
            got: file.len(),
            expected: size,
        });
    }
    Ok(())
}
