//! The server's configuration (after validation) and its shared state,
//! opened once by `serve` (and by tests) and handed to every handler. This
//! module imports no handler: `app.rs` assembles the router from both.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::auth::{Auth, AuthConfig};
use crate::cache::Caches;
use crate::datadir::DataDirLock;
use crate::db::{Db, DbUrl, Engine};
use crate::longpoll::Notifier;
use crate::metrics::Metrics;
use crate::net::ConnTable;
use crate::store::{ArtifactStore, StoreUrl};

/// How the server is configured, after validation.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Local state: the lock, the staging folder (and by default the
    /// database and the artifacts).
    pub data_dir: PathBuf,
    /// The metadata (`--database-url`).
    pub database: DbUrl,
    /// The artifact bytes (`--store-url`).
    pub store: StoreUrl,
    /// `--store-redirect`: artifact downloads answer 307 to a presigned
    /// URL valid this long (when the store can presign).
    pub store_redirect: Option<Duration>,
    /// At start-up, blobs no build references are removed once they are
    /// this old, when other replicas may be mid-upload (a shared database
    /// or store); on the embedded default, at once.
    pub gc_grace: Duration,
    pub max_upload: u64,
    pub max_failed_logins: u32,
    pub login_lockout: Duration,
    /// Files of the public keys whose tokens are accepted.
    pub token_public_keys: Vec<PathBuf>,
    /// Longest token lifetime (`exp - iat`) accepted.
    pub token_max_ttl: Duration,
    /// A connection must send a complete request head within this (also
    /// before its first byte, and between requests).
    pub header_timeout: Duration,
    /// An upload body may pause at most this long between two chunks.
    pub body_idle_timeout: Duration,
    /// A response to a client that stops reading is dropped after this.
    pub send_timeout: Duration,
    pub max_connections: usize,
    pub max_connections_per_address: usize,
    /// Password checks that may run at once.
    pub password_checks: usize,
    /// How long a login waits for a password-check slot before it gets 503.
    pub password_wait: Duration,
    /// Keep this many builds per job and platform with their files
    /// (`vacuum --keep` after each upload); `None` keeps everything.
    pub keep_builds: Option<u32>,
}

impl ServeConfig {
    /// The defaults of `serve`, for a data dir.
    pub fn new(data_dir: PathBuf) -> ServeConfig {
        ServeConfig {
            database: DbUrl::in_data_dir(&data_dir),
            store: StoreUrl::in_data_dir(&data_dir),
            data_dir,
            store_redirect: None,
            gc_grace: Duration::from_secs(3600),
            max_upload: 4 << 30,
            max_failed_logins: 10,
            login_lockout: Duration::from_secs(300),
            token_public_keys: vec![],
            token_max_ttl: Duration::from_secs(3600),
            header_timeout: Duration::from_secs(30),
            body_idle_timeout: Duration::from_secs(60),
            send_timeout: Duration::from_secs(60),
            max_connections: 16_384,
            max_connections_per_address: 1_024,
            password_checks: std::thread::available_parallelism().map_or(2, |n| n.get()),
            password_wait: Duration::from_secs(5),
            keep_builds: None,
        }
    }
}

/// What every handler shares; cheap to clone (one reference count: it is
/// cloned for every request).
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The server's state, behind [`AppState`].
pub struct Shared {
    pub db: Db,
    pub store: Arc<dyn ArtifactStore>,
    pub auth: Arc<Auth>,
    pub notify: Arc<Notifier>,
    pub caches: Arc<Caches>,
    pub metrics: Arc<Metrics>,
    pub conns: Arc<ConnTable>,
    pub max_upload: u64,
    pub body_idle_timeout: Duration,
    pub header_timeout: Duration,
    pub send_timeout: Duration,
    pub keep_builds: Option<u32>,
    /// `--store-redirect`'s lifetime of presigned URLs.
    pub store_redirect: Option<Duration>,
    /// Cancelled when the server begins to shut down: long-polls answer at once.
    pub shutdown: CancellationToken,
    /// Held while the server runs: a second `serve` on the same data dir is refused.
    _lock: Arc<DataDirLock>,
}

impl AppState {
    /// Locks and opens the data dir (creating it), the database and the
    /// store, removes staging debris and blobs no build references (left by
    /// a crash between storing and committing), and on PostgreSQL starts
    /// listening to the other replicas' commits.
    pub async fn open(cfg: &ServeConfig) -> anyhow::Result<AppState> {
        let c = cfg.clone();
        let (lock, db, store) = tokio::task::spawn_blocking(move || Self::open_storage(&c))
            .await
            .context("opening the repository")??;
        let state = Self::assemble(cfg, lock, db, store)?;
        if let DbUrl::Postgres(url) = &cfg.database {
            crate::replicas::listen(url.clone(), &state).await?;
        }
        Ok(state)
    }

    /// The blocking part of [`AppState::open`].
    fn open_storage(cfg: &ServeConfig) -> anyhow::Result<(DataDirLock, Db, Arc<dyn ArtifactStore>)> {
        std::fs::create_dir_all(&cfg.data_dir)
            .with_context(|| format!("creating data dir {:?}", cfg.data_dir.display()))?;
        let lock = DataDirLock::acquire(&cfg.data_dir)?;
        let db = Db::open(&cfg.database)?;
        let staging = cfg.data_dir.join("staging");
        std::fs::create_dir_all(&staging).with_context(|| format!("creating {:?}", staging.display()))?;
        let store = cfg.store.open(&staging)?;
        store
            .check()
            .with_context(|| format!("the store {} does not answer", store.describe()))?;
        let cleaned = store.clean_staging().context("cleaning the staging folder")?;
        if cleaned > 0 {
            tracing::warn!(files = cleaned, "removed staging files left by an earlier run");
        }
        // Other replicas may have stored blobs they are about to commit.
        let shared = store.shared() || db.engine() == Engine::Postgres;
        let grace = if shared { cfg.gc_grace } else { Duration::ZERO };
        let orphans = crate::gc::remove_unreferenced_blobs_blocking(&db, store.as_ref(), grace)
            .context("removing blobs no build references")?;
        if orphans > 0 {
            tracing::warn!(
                blobs = orphans,
                "removed stored files no build references (an earlier run stopped between storing and committing)"
            );
        }
        Ok((lock, db, store))
    }

    fn assemble(
        cfg: &ServeConfig,
        lock: DataDirLock,
        db: Db,
        store: Arc<dyn ArtifactStore>,
    ) -> anyhow::Result<AppState> {
        let mut keys = Vec::new();
        for p in &cfg.token_public_keys {
            let text =
                std::fs::read_to_string(p).with_context(|| format!("reading token public key {:?}", p.display()))?;
            keys.push(
                uk_tokens::PublicKey::from_text(&text)
                    .with_context(|| format!("token public key {:?}", p.display()))?,
            );
        }
        let metrics = Arc::new(Metrics::default());
        let auth = Auth::new(
            db.clone(),
            AuthConfig {
                max_failures: cfg.max_failed_logins,
                lockout: cfg.login_lockout,
                token_keys: keys,
                token_max_ttl: cfg.token_max_ttl,
                password_slots: cfg.password_checks,
                password_wait: cfg.password_wait,
            },
            metrics.clone(),
        )?;
        Ok(AppState(Arc::new(Shared {
            db,
            store,
            auth: Arc::new(auth),
            notify: Arc::new(Notifier::default()),
            caches: Arc::new(Caches::default()),
            metrics,
            conns: ConnTable::new(cfg.max_connections, cfg.max_connections_per_address),
            max_upload: cfg.max_upload,
            body_idle_timeout: cfg.body_idle_timeout,
            header_timeout: cfg.header_timeout,
            send_timeout: cfg.send_timeout,
            keep_builds: cfg.keep_builds,
            store_redirect: cfg.store_redirect,
            shutdown: CancellationToken::new(),
            _lock: Arc::new(lock),
        })))
    }
}
