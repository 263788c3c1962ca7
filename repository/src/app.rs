//! The server's shape: shared state, the router (one handler per endpoint),
//! and `serve` with graceful shutdown. Tests build the same `app` and serve
//! it in-process on 127.0.0.1:0.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use tokio::net::TcpListener;
use tower_http::trace::TraceLayer;

use crate::auth::Auth;
use crate::cache::Caches;
use crate::db::{self, Db};
use crate::http::{deployments, files, html, redirects, upload, views};
use crate::notify::Notifier;
use crate::store::{ArtifactStore, LocalStore};

/// How the server is configured, after validation.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub data_dir: PathBuf,
    pub max_upload: u64,
    pub max_failed_logins: u32,
    pub login_lockout: Duration,
    /// Files of the public keys whose tokens are accepted.
    pub token_public_keys: Vec<PathBuf>,
    /// A client must send its request headers within this.
    pub header_timeout: Duration,
    /// An upload body may pause at most this long between two chunks.
    pub body_idle_timeout: Duration,
}

impl ServeConfig {
    /// The defaults of `serve`, for a data dir.
    pub fn new(data_dir: PathBuf) -> ServeConfig {
        ServeConfig {
            data_dir,
            max_upload: 4 << 30,
            max_failed_logins: 10,
            login_lockout: Duration::from_secs(300),
            token_public_keys: vec![],
            header_timeout: Duration::from_secs(30),
            body_idle_timeout: Duration::from_secs(60),
        }
    }
}

#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub store: Arc<dyn ArtifactStore>,
    pub auth: Arc<Auth>,
    pub notify: Arc<Notifier>,
    pub caches: Arc<Caches>,
    pub max_upload: u64,
    pub body_idle_timeout: Duration,
    pub header_timeout: Duration,
}

impl AppState {
    /// Opens the data dir (creating it), the database and the store, and
    /// removes staging debris left by a crash.
    pub fn open(cfg: &ServeConfig) -> anyhow::Result<AppState> {
        std::fs::create_dir_all(&cfg.data_dir)
            .with_context(|| format!("creating data dir {:?}", cfg.data_dir.display()))?;
        let db = Db::open(&db::db_path(&cfg.data_dir))?;
        let store = LocalStore::open(&cfg.data_dir)
            .with_context(|| format!("opening the store in {:?}", cfg.data_dir.display()))?;
        let cleaned = store.clean_staging().context("cleaning the staging folder")?;
        if cleaned > 0 {
            tracing::warn!(files = cleaned, "removed staging files left by an earlier run");
        }
        let mut keys = Vec::new();
        for p in &cfg.token_public_keys {
            let text =
                std::fs::read_to_string(p).with_context(|| format!("reading token public key {:?}", p.display()))?;
            keys.push(
                uk_tokens::PublicKey::from_text(&text)
                    .with_context(|| format!("token public key {:?}", p.display()))?,
            );
        }
        let auth = Auth::new(db.clone(), cfg.max_failed_logins, cfg.login_lockout, keys)?;
        Ok(AppState {
            db,
            store: Arc::new(store),
            auth: Arc::new(auth),
            notify: Arc::new(Notifier::default()),
            caches: Arc::new(Caches::default()),
            max_upload: cfg.max_upload,
            body_idle_timeout: cfg.body_idle_timeout,
            header_timeout: cfg.header_timeout,
        })
    }
}

pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/", get(views::jobs))
        .route("/hash", get(redirects::by_hash))
        .route("/metrics", get(deployments::metrics))
        .route("/job/{job}", get(views::job))
        .route("/job/{job}/platform/{platform}/upload", post(upload::upload))
        .route("/job/{job}/build/latest", get(redirects::latest))
        .route("/job/{job}/build/latest/{*rest}", get(redirects::latest_rest))
        .route("/job/{job}/build/{uuid}", get(views::build))
        .route("/job/{job}/build/{uuid}/main-binary", get(redirects::main_binary))
        .route("/job/{job}/build/{uuid}/console", get(files::console))
        .route("/job/{job}/build/{uuid}/f/{*path}", get(files::artifact))
        .route("/job/{job}/deployments", get(deployments::job_deployments))
        .route(
            "/job/{job}/build/{uuid}/deployments",
            get(deployments::build_deployments).post(deployments::report),
        )
        // Uploads stream and enforce their own limit.
        .layer(DefaultBodyLimit::disable())
        .layer(axum::middleware::from_fn(html::error_pages))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// Serves plain HTTP until `shutdown` resolves, then lets running requests finish.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let t = state.header_timeout;
    crate::listen::serve(listener, app(state), None, t, shutdown).await
}

/// As [`serve`], over TLS.
pub async fn serve_tls(
    listener: TcpListener,
    state: AppState,
    tls: tokio_rustls::TlsAcceptor,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let t = state.header_timeout;
    crate::listen::serve(listener, app(state), Some(tls), t, shutdown).await
}
