//! `unikernel-repo`: the repository server and its admin commands.
//!
//! `serve` runs the HTTP API of CONTRACT.md §2 over a data directory (one
//! SQLite database plus content-addressed artifact files); `user`, `access`,
//! `job`, `build` and `vacuum` manage it (§3, §8), on the same data
//! directory, also while the server runs. See `app.rs` for the server's
//! shape and `state.rs` for what its handlers share.

pub mod access_log;
pub mod admin;
pub mod app;
pub mod auth;
pub mod bridge;
pub mod cache;
pub mod datadir;
pub mod db;
pub mod error;
pub mod gc;
pub mod http;
pub mod listen;
pub mod longpoll;
pub mod metrics;
pub mod net;
pub mod parking;
pub mod plain;
pub mod replicas;
pub mod s3;
pub mod sendfile;
mod staging;
pub mod state;
pub mod store;
mod time;
mod token_cmd;
pub mod vacuum;

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};

pub use uk_cli::size::parse_size;

#[derive(Parser, Debug)]
#[command(
    name = "unikernel-repo",
    version,
    about = "The unikernel repository: keeps every build, names the latest, serves them over HTTP."
)]
pub struct Args {
    /// Data directory: the SQLite database and the artifact files by
    /// default, and always the staging folder of uploads.
    #[arg(
        long,
        env = "UKREPO_DATA_DIR",
        default_value = "/var/lib/unikernel-repo",
        global = true
    )]
    pub data_dir: PathBuf,

    /// The metadata database: sqlite://PATH or postgres://USER@HOST/DB
    /// (shared by replicas) [default: sqlite://DATA_DIR/repo.sqlite].
    #[arg(long, env = "UKREPO_DATABASE_URL", value_name = "URL", value_parser = db::DbUrl::parse, global = true)]
    pub database_url: Option<db::DbUrl>,

    /// The artifact store: file://DIR (on the data dir's file system:
    /// uploads staged there are renamed into it) or s3://BUCKET[/PREFIX] (configured by
    /// AWS_ENDPOINT_URL, AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)
    /// [default: file://DATA_DIR/artifacts].
    #[arg(long, env = "UKREPO_STORE_URL", value_name = "URL", value_parser = store::StoreUrl::parse, global = true)]
    pub store_url: Option<store::StoreUrl>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the HTTP server.
    Serve(ServeArgs),
    /// Manage the users who may upload.
    #[command(subcommand)]
    User(admin::users::UserCommand),
    /// Grant or revoke a restricted user's access to a job.
    #[command(subcommand)]
    Access(admin::users::AccessCommand),
    /// List, create and remove jobs.
    #[command(subcommand)]
    Job(admin::jobs::JobCommand),
    /// List and remove builds.
    #[command(subcommand)]
    Build(admin::jobs::BuildCommand),
    /// Drop the files of old builds, keeping their rows and digests (/hash still answers).
    Vacuum(admin::jobs::VacuumArgs),
    /// Copy the repository into another database and store (e.g. PostgreSQL
    /// and S3), verifying every blob; run again to resume.
    Migrate(admin::migrate::MigrateArgs),
    /// Make token keys and mint tokens (what a CI coordinator does).
    #[command(subcommand)]
    Token(token_cmd::TokenCommand),
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One human-readable line per event.
    Text,
    /// One JSON object per line.
    Json,
}

#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on; port 0 picks a free port (the bound address is printed).
    #[arg(long, env = "UKREPO_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Largest accepted upload (all files of one build), e.g. 512M, 4G, 1073741824.
    #[arg(long, env = "UKREPO_MAX_UPLOAD_SIZE", default_value = "4G", value_parser = parse_size)]
    pub max_upload_size: u64,

    /// Failed logins from one address (IPv6: one /64) before it gets 429;
    /// at most this many of its guesses are ever checked per lockout window.
    #[arg(long, env = "UKREPO_MAX_FAILED_LOGINS", default_value_t = 10)]
    pub max_failed_logins: u32,

    /// How long an address stays locked out after too many failed logins.
    #[arg(long, env = "UKREPO_LOGIN_LOCKOUT", default_value = "5m", value_parser = humantime::parse_duration)]
    pub login_lockout: Duration,

    /// Password checks that may run at once (each takes 19 MiB); more wait
    /// up to 5 s, then get 503 [default: the number of CPUs].
    #[arg(long, env = "UKREPO_PASSWORD_CHECKS")]
    pub password_checks: Option<usize>,

    /// Serve HTTPS with this certificate chain (PEM); needs --tls-key.
    #[arg(long, env = "UKREPO_TLS_CERT", value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// The private key (PEM) of --tls-cert.
    #[arg(long, env = "UKREPO_TLS_KEY", value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Accept bearer tokens signed by this key (repeatable, for rotation).
    #[arg(
        long = "token-public-key",
        env = "UKREPO_TOKEN_PUBLIC_KEYS",
        value_delimiter = ',',
        value_name = "FILE"
    )]
    pub token_public_keys: Vec<PathBuf>,

    /// Refuse tokens valid for longer than this (exp - iat).
    #[arg(long, env = "UKREPO_TOKEN_MAX_TTL", default_value = "1h", value_parser = humantime::parse_duration)]
    pub token_max_ttl: Duration,

    /// A connection must send a complete request head within this (also
    /// before its first byte and between requests), or it is closed.
    #[arg(long, env = "UKREPO_HEADER_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub header_timeout: Duration,

    /// An upload may pause at most this long between two chunks (408).
    #[arg(long, env = "UKREPO_BODY_TIMEOUT", default_value = "60s", value_parser = humantime::parse_duration)]
    pub body_timeout: Duration,

    /// A response the client stops reading is dropped after this.
    #[arg(long, env = "UKREPO_SEND_TIMEOUT", default_value = "60s", value_parser = humantime::parse_duration)]
    pub send_timeout: Duration,

    /// Open connections at most, in total.
    #[arg(long, env = "UKREPO_MAX_CONNECTIONS", default_value_t = 16_384)]
    pub max_connections: usize,

    /// Open connections at most from one address (IPv6: one /64).
    #[arg(long, env = "UKREPO_MAX_CONNECTIONS_PER_ADDRESS", default_value_t = 1_024)]
    pub max_connections_per_address: usize,

    /// After each upload, keep the files of the newest N builds of its job
    /// per platform (as `vacuum --keep N --job JOB`).
    #[arg(long, env = "UKREPO_KEEP_BUILDS", value_name = "N")]
    pub keep_builds: Option<u32>,

    /// Log format on stderr.
    #[arg(long, env = "UKREPO_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,

    /// Answer artifact downloads with a 307 to a presigned URL of the store
    /// (S3), so the bytes come from the store, not through this server.
    #[arg(long, env = "UKREPO_STORE_REDIRECT")]
    pub store_redirect: bool,

    /// How long the presigned URLs of --store-redirect stay valid.
    #[arg(long, env = "UKREPO_STORE_REDIRECT_TTL", default_value = "5m", value_parser = humantime::parse_duration)]
    pub store_redirect_ttl: Duration,

    /// With a shared database or store (replicas), the start-up sweep of
    /// blobs no build references spares those younger than this (another
    /// replica may be about to commit them).
    #[arg(long, env = "UKREPO_ORPHAN_GRACE", default_value = "1h", value_parser = humantime::parse_duration)]
    pub orphan_grace: Duration,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let loc = admin::Location::new(args.data_dir, args.database_url, args.store_url);
    match args.command {
        Command::Serve(s) => serve(loc, s),
        Command::User(cmd) => admin::users::user(&loc, cmd),
        Command::Access(cmd) => admin::users::access(&loc, cmd),
        Command::Job(cmd) => admin::jobs::job(&loc, cmd),
        Command::Build(cmd) => admin::jobs::build(&loc, cmd),
        Command::Vacuum(a) => admin::jobs::vacuum(&loc, a),
        Command::Migrate(a) => admin::migrate::migrate(&loc, a),
        Command::Token(cmd) => token_cmd::run(cmd),
    }
}

/// Logs to stderr: colours only on a terminal, text or JSON lines.
fn init_logs(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let ansi = std::io::stderr().is_terminal();
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    match format {
        LogFormat::Text => b.init(),
        LogFormat::Json => b.json().flatten_event(true).init(),
    }
}

fn serve(loc: admin::Location, s: ServeArgs) -> anyhow::Result<ExitCode> {
    init_logs(s.log_format);
    let defaults = state::ServeConfig::new(loc.data_dir);
    let cfg = state::ServeConfig {
        database: loc.database,
        store: loc.store,
        store_redirect: s.store_redirect.then_some(s.store_redirect_ttl),
        gc_grace: s.orphan_grace,
        max_upload: s.max_upload_size,
        max_failed_logins: s.max_failed_logins,
        login_lockout: s.login_lockout,
        token_public_keys: s.token_public_keys,
        token_max_ttl: s.token_max_ttl,
        header_timeout: s.header_timeout,
        body_idle_timeout: s.body_timeout,
        send_timeout: s.send_timeout,
        max_connections: s.max_connections,
        max_connections_per_address: s.max_connections_per_address,
        password_checks: s.password_checks.unwrap_or(defaults.password_checks),
        keep_builds: s.keep_builds,
        ..defaults
    };
    raise_fd_limit();
    tune_malloc();
    // Blocking work is short (file chunks, queries, password checks, each
    // bounded by its own limit): a small pool suffices and bounds threads.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(64)
        .build()
        .context("starting the tokio runtime")?;
    let result = rt.block_on(async {
        let state = state::AppState::open(&cfg).await?;
        let tls = match (&s.tls_cert, &s.tls_key) {
            (Some(c), Some(k)) => Some(listen::tls_acceptor(c, k)?),
            _ => None,
        };
        let listener = tokio::net::TcpListener::bind(s.listen)
            .await
            .with_context(|| format!("binding {}", s.listen))?;
        let addr = listener.local_addr()?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        uk_cli::out(format!("listening on {scheme}://{addr}"))?;
        tracing::info!(
            %addr,
            data_dir = %cfg.data_dir.display(),
            database = %cfg.database.display(),
            store = %cfg.store,
            "serving"
        );
        match tls {
            Some(t) => app::serve_tls(listener, state, t, shutdown_signal()).await,
            None => app::serve(listener, state, shutdown_signal()).await,
        }
        .context("serving")?;
        Ok(ExitCode::SUCCESS)
    });
    // Tasks still running (a handshake, a stalled client) are dropped now.
    rt.shutdown_timeout(Duration::from_millis(500));
    if result.is_ok() {
        tracing::info!("stopped");
    }
    result
}

/// Memory: a fixed mmap threshold stops glibc from keeping large freed
/// buffers (file chunks) in its arenas, and two arenas are plenty for our
/// two kinds of threads.
fn tune_malloc() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only sets allocator parameters; called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

/// Long-polling clients each hold a connection: allow as many open files as
/// the hard limit permits (the soft default is often 1024).
fn raise_fd_limit() {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let lim = getrlimit(Resource::Nofile);
    let target = lim.maximum.unwrap_or(1 << 20);
    if lim.current.is_some_and(|c| c < target) {
        let _ = setrlimit(
            Resource::Nofile,
            Rlimit {
                current: Some(target),
                maximum: lim.maximum,
            },
        );
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing a SIGTERM handler");
    tokio::select! {
        _ = ctrl_c => {},
        _ = term.recv() => {},
    }
}
