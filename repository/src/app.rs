//! The server's shape: the router (one handler per endpoint, CONTRACT.md
//! §2) over the shared state of `state.rs`, the headers every answer
//! carries, and `serve` with graceful shutdown. Tests build the same `app`
//! and serve it in-process on 127.0.0.1:0.

use std::future::Future;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::{get, post};
use tokio::net::TcpListener;

use crate::http::{compare, deployments, files, html, redirects, status, upload, views};
use crate::listen::ConnLimits;
use crate::state::AppState;

/// What a browser may do with our pages: nothing but show them (no
/// scripts, no frames, styles and images from here only).
const CSP: &str =
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/", get(views::jobs))
        .route("/all-builds", get(views::all_builds))
        .route("/compare/{left}/{right}", get(compare::compare_builds))
        .route("/hash", get(redirects::by_hash))
        .route("/healthz", get(status::healthz))
        .route("/metrics", get(status::metrics))
        .route("/robots.txt", get(html::robots))
        .route("/style.css", get(html::stylesheet))
        .route("/favicon.ico", get(html::favicon))
        .route("/job/{job}", get(views::job))
        .route("/job/{job}/platform/{platform}/upload", post(upload::upload))
        .route("/job/{job}/build/latest", get(redirects::latest))
        .route("/job/{job}/build/latest/{*rest}", get(redirects::latest_rest))
        .route("/job/{job}/build/{uuid}", get(views::build))
        .route("/job/{job}/build/{uuid}/main-binary", get(redirects::main_binary))
        .route("/job/{job}/build/{uuid}/console", get(files::console))
        .route("/job/{job}/build/{uuid}/script", get(files::script))
        .route("/job/{job}/build/{uuid}/f/{*path}", get(files::artifact))
        .route("/job/{job}/deployments", get(deployments::job_deployments))
        .route(
            "/job/{job}/build/{uuid}/deployments",
            get(deployments::build_deployments).post(deployments::report),
        )
        .fallback(html::not_found)
        // Uploads stream and enforce their own limit.
        .layer(DefaultBodyLimit::disable())
        .layer(axum::middleware::from_fn(every_answer))
        .with_state(state)
}

/// What every answer goes through (one layer: each costs every request an
/// allocation or two): an error page for browsers, then the headers.
async fn every_answer(req: Request, next: Next) -> Response {
    let wants_html = html::wants_html(&req);
    let resp = next.run(req).await;
    security_headers(html::error_page(wants_html, resp).await)
}

/// `nosniff` everywhere; a strict CSP on HTML.
fn security_headers(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    let is_html = h
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    if is_html {
        h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
        h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
    resp
}

fn limits(state: &AppState) -> ConnLimits {
    ConnLimits {
        header_timeout: state.header_timeout,
        send_timeout: state.send_timeout,
        conns: state.conns.clone(),
        metrics: state.metrics.clone(),
        shutdown: state.shutdown.clone(),
        parking: Some(crate::parking::Parker::new(state.clone())),
    }
}

/// When `shutdown` resolves: waiting long-polls answer at once, and the
/// server stops accepting and drains for a few seconds.
fn on_shutdown(
    state: &AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> impl Future<Output = ()> + Send + 'static {
    let token = state.shutdown.clone();
    async move {
        shutdown.await;
        tracing::info!("shutting down");
        token.cancel();
    }
}

/// Serves plain HTTP until `shutdown` resolves, then lets running requests finish.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (l, s) = (limits(&state), on_shutdown(&state, shutdown));
    crate::listen::serve(listener, app(state), None, l, s).await
}

/// As [`serve`], over TLS.
pub async fn serve_tls(
    listener: TcpListener,
    state: AppState,
    tls: tokio_rustls::TlsAcceptor,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (l, s) = (limits(&state), on_shutdown(&state, shutdown));
    crate::listen::serve(listener, app(state), Some(tls), l, s).await
}
