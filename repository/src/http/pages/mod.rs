//! The HTML pages, one module per page, each an askama template (under
//! `repository/templates/`, escaping every value by construction) fed by a
//! small view model built from the same data as the page's JSON twin. No
//! JavaScript and no inline styles: the CSP allows neither, the looks come
//! from `/style.css`.

pub mod build;
pub mod compare;
pub mod deployments;
pub mod error;
pub mod front;
pub mod job;

use askama::Template;
use axum::response::{Html, IntoResponse, Response};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::error::ApiError;

/// Renders a page; a template failure is ours (500).
pub fn render(t: &impl Template) -> Result<Response, ApiError> {
    let html = t
        .render()
        .map_err(|e| ApiError::Internal(anyhow::Error::new(e).context("rendering a page")))?;
    Ok(Html(html).into_response())
}

/// Bytes for people: `5.2 MiB`.
pub fn human_size(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// How long ago an RFC 3339 time was, roughly: `3 hours ago`.
pub fn age(rfc3339: &str, now: OffsetDateTime) -> String {
    let Ok(t) = OffsetDateTime::parse(rfc3339, &Rfc3339) else {
        return String::new();
    };
    let secs = (now - t).whole_seconds();
    if secs < 0 {
        return "just now".into();
    }
    let (n, unit) = match secs {
        0..60 => return "just now".into(),
        60..3600 => (secs / 60, "minute"),
        3600..86_400 => (secs / 3600, "hour"),
        86_400..2_592_000 => (secs / 86_400, "day"),
        2_592_000..31_536_000 => (secs / 2_592_000, "month"),
        _ => (secs / 31_536_000, "year"),
    };
    format!("{n} {unit}{} ago", if n == 1 { "" } else { "s" })
}

/// A build id cut to its first group, as labels show it (links carry all).
pub fn short(uuid: &impl std::fmt::Display) -> String {
    uuid.to_string().chars().take(8).collect()
}

/// A sha256 cut for tables (the full digest is one click away).
pub fn short_sha(sha: &impl std::fmt::Display) -> String {
    sha.to_string().chars().take(16).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_ages_for_people() {
        assert_eq!(human_size(17), "17 B");
        assert_eq!(human_size(5 * 1024 * 1024 + 200 * 1024), "5.2 MiB");
        let now = OffsetDateTime::parse("2026-01-10T12:00:00Z", &Rfc3339).unwrap();
        assert_eq!(age("2026-01-10T11:59:30Z", now), "just now");
        assert_eq!(age("2026-01-10T11:00:00Z", now), "1 hour ago");
        assert_eq!(age("2026-01-07T12:00:00Z", now), "3 days ago");
        assert_eq!(age("not a time", now), "");
    }
}
