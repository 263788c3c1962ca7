//! The server about itself: `GET /healthz` (for load balancers and
//! monitoring: `200 ok` while the database and the store answer) and
//! `GET /metrics` (counters and gauges, Prometheus text format).

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::state::AppState;

/// `GET /healthz`
pub async fn healthz(State(st): State<AppState>) -> Response {
    let db = st
        .db
        .read(|c| crate::db::sql::query_one(c, "SELECT 1", &[])?.int(0))
        .await;
    let store = {
        let store = st.store.clone();
        tokio::task::spawn_blocking(move || store.check()).await
    };
    let text = |code: StatusCode, body: String| {
        (code, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response()
    };
    match (db, store) {
        (Ok(_), Ok(Ok(()))) => text(StatusCode::OK, "ok\n".into()),
        (Err(e), _) => {
            tracing::error!(error = format!("{e:#}"), "health check: the database does not answer");
            text(StatusCode::SERVICE_UNAVAILABLE, "the database does not answer\n".into())
        }
        (_, Ok(Err(e))) => {
            tracing::error!(error = %e, "health check: the store does not answer");
            text(
                StatusCode::SERVICE_UNAVAILABLE,
                "the artifact store does not answer\n".into(),
            )
        }
        (_, Err(e)) => text(StatusCode::SERVICE_UNAVAILABLE, format!("health check failed: {e}\n")),
    }
}

/// `GET /metrics`
pub async fn metrics(State(st): State<AppState>) -> String {
    st.metrics.render(&[
        ("ukrepo_waiters", "long-polls waiting now", st.notify.waiters() as u64),
        (
            "ukrepo_parked_long_polls",
            "long-polls waiting outside hyper now (their connection holds only the socket and the request head)",
            st.metrics.parked.load(std::sync::atomic::Ordering::Relaxed),
        ),
        (
            "ukrepo_notifier_entries",
            "jobs the long-poll notifier holds an entry for",
            st.notify.entries() as u64,
        ),
        (
            "ukrepo_connections_open",
            "open connections",
            st.conns.open_count() as u64,
        ),
    ])
}
