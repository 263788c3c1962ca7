//! The one error type of every handler, and its mapping to a status and a
//! `{"error": "..."}` body (turned into HTML for browsers by `http/html.rs`).
//! 4xx bodies say what was wrong; 5xx bodies are generic and the cause chain
//! is logged.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use uk_digest::Sha256;
use uk_wire::ErrorJson;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("the upload exceeds the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("Content-Digest mismatch: the request announced sha256 {expected} but the image has sha256 {actual}")]
    DigestMismatch { expected: Sha256, actual: Sha256 },
    #[error("the requested range is not satisfiable for {size} bytes")]
    RangeNotSatisfiable { size: u64 },
    #[error("the request body stalled for {0:?}")]
    RequestTimeout(std::time::Duration),
    #[error("too many failed logins from this address; try again later")]
    TooManyLogins,
    #[error("the repository has no space left")]
    NoSpace,
    #[error("{0}")]
    Gone(String),
    /// Too much at once (a bounded pool is full): try again shortly.
    #[error("{0}")]
    Busy(String),
    #[error("the server is shutting down; try again shortly")]
    ShuttingDown,
    /// The artifact store or the database does not answer (logged): try again later.
    #[error("{0} is unavailable; try again later")]
    Unavailable(&'static str),
    #[error("internal error")]
    Internal(anyhow::Error),
}

/// Is this failure a full disk or a full database (SQLite's SQLITE_FULL)?
fn is_no_space(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            return matches!(
                io.kind(),
                std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
            );
        }
        matches!(
            c.downcast_ref::<rusqlite::Error>(),
            Some(rusqlite::Error::SqliteFailure(f, _)) if f.code == rusqlite::ErrorCode::DiskFull
        )
    })
}

/// Which engine, if any, failed by being unreachable (rather than by a
/// bug or a bad request): an S3 service down, a PostgreSQL server gone.
fn unavailable(e: &anyhow::Error) -> Option<&'static str> {
    e.chain().find_map(|c| {
        if c.downcast_ref::<std::io::Error>()
            .is_some_and(crate::store::Unavailable::is)
            || c.is::<crate::store::Unavailable>()
        {
            return Some("the artifact store");
        }
        let pg = c.downcast_ref::<tokio_postgres::Error>()?;
        let io = std::error::Error::source(pg).is_some_and(|s| s.is::<std::io::Error>());
        (pg.is_closed() || io).then_some("the database")
    })
}

impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> Self {
        if let Some(what) = unavailable(&e) {
            tracing::error!(error = format!("{e:#}"), "{what} is unavailable");
            return ApiError::Unavailable(what);
        }
        if is_no_space(&e) {
            tracing::warn!(error = format!("{e:#}"), "no space left");
            ApiError::NoSpace
        } else {
            ApiError::Internal(e)
        }
    }
}

impl ApiError {
    pub fn bad_request(e: impl std::fmt::Display) -> Self {
        ApiError::BadRequest(e.to_string())
    }

    /// Maps an I/O failure while storing: a full disk is the client's 507,
    /// anything else is ours.
    pub fn from_io(e: std::io::Error, context: &str) -> Self {
        anyhow::Error::new(e).context(context.to_owned()).into()
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::DigestMismatch { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::RangeNotSatisfiable { .. } => StatusCode::RANGE_NOT_SATISFIABLE,
            ApiError::TooManyLogins => StatusCode::TOO_MANY_REQUESTS,
            ApiError::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::NoSpace => StatusCode::INSUFFICIENT_STORAGE,
            ApiError::Gone(_) => StatusCode::GONE,
            ApiError::Busy(_) | ApiError::ShuttingDown | ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if let ApiError::Internal(e) = &self {
            tracing::error!(error = format!("{e:#}"), "request failed");
        }
        let mut resp = (
            status,
            Json(ErrorJson {
                error: self.to_string(),
            }),
        )
            .into_response();
        let h = resp.headers_mut();
        match &self {
            ApiError::Unauthorized(_) => {
                h.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"unikernel-repo\", Bearer"),
                );
            }
            ApiError::RangeNotSatisfiable { size } => {
                if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                    h.insert(header::CONTENT_RANGE, v);
                }
            }
            ApiError::TooManyLogins => {
                h.insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
            }
            ApiError::Busy(_) | ApiError::ShuttingDown | ApiError::Unavailable(_) => {
                h.insert(header::RETRY_AFTER, HeaderValue::from_static("2"));
            }
            _ => {}
        }
        resp
    }
}

impl From<rusqlite::Error> for ApiError {
    fn from(e: rusqlite::Error) -> Self {
        anyhow::Error::new(e).into()
    }
}
