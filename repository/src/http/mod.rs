//! HTTP handlers, one function per endpoint of CONTRACT.md §2, grouped by
//! what they serve: uploads, views (JSON, or the pages of `pages/`), the
//! comparison of two builds, redirects, artifact bytes.

pub mod compare;
pub mod deployments;
pub mod files;
pub mod html;
pub mod pages;
pub mod read;
pub mod redirects;
pub mod running;
pub mod status;
pub mod upload;
pub mod views;

use axum::http::{HeaderMap, header};
use uk_names::{BuildId, JobName, PlatformName};

use crate::error::ApiError;

/// Every `GET` route also answers with one trailing slash (builder-web's
/// links and bookmarks have them): the slash is dropped before routing.
pub fn tolerate_trailing_slash(req: &mut axum::extract::Request) {
    if req.method() != axum::http::Method::GET && req.method() != axum::http::Method::HEAD {
        return;
    }
    let uri = req.uri();
    let path = uri.path();
    if path.len() < 2 || !path.ends_with('/') || path.ends_with("//") {
        return;
    }
    let mut s = path[..path.len() - 1].to_owned();
    if let Some(q) = uri.query() {
        s.push('?');
        s.push_str(q);
    }
    if let Ok(pq) = s.parse::<axum::http::uri::PathAndQuery>() {
        let mut parts = uri.clone().into_parts();
        parts.path_and_query = Some(pq);
        if let Ok(u) = axum::http::Uri::from_parts(parts) {
            *req.uri_mut() = u;
        }
    }
}

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
