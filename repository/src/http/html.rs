//! What the pages share that is not a page: the stylesheet, the icon, robots.txt,
//! the fallback 404, and the middleware that turns a JSON error body into
//! an error page when a browser asked (the pages themselves are in
//! `pages/`).

use askama::Template;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use uk_wire::ErrorJson;

use super::pages::error::ErrorPage;

/// `GET /style.css`
pub async fn stylesheet() -> impl axum::response::IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("style.css"),
    )
}

/// `GET /favicon.ico`: browsers ask for it on every page (a 404 would be
/// an error in their console); a PNG, which they all take at that path.
pub async fn favicon() -> impl axum::response::IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "image/png"),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        &include_bytes!("favicon.png")[..],
    )
}

/// `GET /robots.txt`: builder-web's rules (no crawling of downloads).
pub async fn robots() -> impl axum::response::IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "User-agent: *\nDisallow: /job/*/build/*/f/\nDisallow: /job/*/build/*/main-binary\n\
         Disallow: /job/*/build/*/script\nDisallow: /job/*/build/*/console\n\
         Disallow: /job/*/build/*/all.tar.gz\nDisallow: /job/*/build/*/exec\nDisallow: /compare/\n",
    )
}

/// Every route we do not have: the same error body as any 404.
pub async fn not_found(uri: axum::http::Uri) -> crate::error::ApiError {
    crate::error::ApiError::NotFound(format!("there is no page {:?} here", uri.path()))
}

/// Does the client (a browser) want HTML rather than JSON?
pub fn wants_html(req: &Request) -> bool {
    req.headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html") && !a.contains("application/json"))
}

/// A JSON error answer (4xx, 5xx) as an HTML page, for a browser (`wants_html`).
pub async fn error_page(wants_html: bool, resp: Response) -> Response {
    if !wants_html || !(resp.status().is_client_error() || resp.status().is_server_error()) {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, 64 * 1024).await else {
        return Response::from_parts(parts, Body::empty());
    };
    let msg = serde_json::from_slice::<ErrorJson>(&bytes)
        .map(|e| e.error)
        .unwrap_or_default();
    let page = ErrorPage {
        status: parts.status.to_string(),
        message: msg,
    };
    let html = page.render().unwrap_or_else(|_| format!("{}\n", parts.status));
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(html))
}
