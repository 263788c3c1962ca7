//! HTTP handlers, one function per endpoint of CONTRACT.md §2, grouped by
//! what they serve: uploads, views (HTML or JSON), redirects, artifact bytes.

pub mod deployments;
pub mod files;
pub mod html;
pub mod redirects;
pub mod upload;
pub mod views;

use axum::http::{HeaderMap, header};
use uk_names::{BuildId, JobName, PlatformName};

use crate::error::ApiError;

/// JSON when the client asks for it, HTML otherwise (as builder-web).
pub fn wants_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/json"))
}

pub fn parse_job(s: &str) -> Result<JobName, ApiError> {
    s.parse().map_err(ApiError::bad_request)
}

pub fn parse_build(s: &str) -> Result<BuildId, ApiError> {
    s.parse().map_err(ApiError::bad_request)
}

/// The optional `?platform=` filter.
#[derive(serde::Deserialize, Default)]
pub struct PlatformQuery {
    pub platform: Option<String>,
}

impl PlatformQuery {
    pub fn parse(&self) -> Result<Option<PlatformName>, ApiError> {
        self.platform
            .as_deref()
            .map(|p| p.parse().map_err(ApiError::bad_request))
            .transpose()
    }
}
