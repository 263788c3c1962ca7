//! `unikernel-repo`: the repository server and its admin commands.
//!
//! `serve` runs the HTTP API of CONTRACT.md §2 over a data directory (one
//! SQLite database plus content-addressed artifact files); `user` and
//! `access` manage who may upload (§3), on the same data directory, also
//! while the server runs. See `app.rs` for the server's shape.

pub mod admin;
pub mod app;
pub mod auth;
pub mod cache;
pub mod db;
pub mod error;
pub mod http;
pub mod listen;
pub mod notify;
mod size;

/// One line of results on stdout; a closed pipe is an error to return, not a panic.
pub(crate) fn out(line: impl std::fmt::Display) -> std::io::Result<()> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{line}")?;
    stdout.flush()
}
mod staging;
pub mod store;
mod time;
mod token_cmd;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};

pub use size::parse_size;

#[derive(Parser, Debug)]
#[command(
    name = "unikernel-repo",
    version,
    about = "The unikernel repository: keeps every build, names the latest, serves them over HTTP."
)]
pub struct Args {
    /// Data directory: the SQLite database and the artifact files.
    #[arg(
        long,
        env = "UKREPO_DATA_DIR",
        default_value = "/var/lib/unikernel-repo",
        global = true
    )]
    pub data_dir: PathBuf,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the HTTP server.
    Serve(ServeArgs),
    /// Manage the users who may upload.
    #[command(subcommand)]
    User(admin::UserCommand),
    /// Grant or revoke a restricted user's access to a job.
    #[command(subcommand)]
    Access(admin::AccessCommand),
    /// Make token keys and mint tokens (what a CI coordinator does).
    #[command(subcommand)]
    Token(token_cmd::TokenCommand),
}

#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on; port 0 picks a free port (the bound address is printed).
    #[arg(long, env = "UKREPO_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Largest accepted upload (all files of one build), e.g. 512M, 4G, 1073741824.
    #[arg(long, env = "UKREPO_MAX_UPLOAD_SIZE", default_value = "4G", value_parser = parse_size)]
    pub max_upload_size: u64,

    /// Failed logins from one address before it gets 429.
    #[arg(long, env = "UKREPO_MAX_FAILED_LOGINS", default_value_t = 10)]
    pub max_failed_logins: u32,

    /// How long an address stays locked out after too many failed logins.
    #[arg(long, env = "UKREPO_LOGIN_LOCKOUT", default_value = "5m", value_parser = humantime::parse_duration)]
    pub login_lockout: Duration,

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
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        Command::Serve(s) => serve(args.data_dir, s),
        Command::User(cmd) => admin::user(&args.data_dir, cmd),
        Command::Access(cmd) => admin::access(&args.data_dir, cmd),
        Command::Token(cmd) => token_cmd::run(cmd),
    }
}

fn serve(data_dir: PathBuf, s: ServeArgs) -> anyhow::Result<ExitCode> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    let cfg = app::ServeConfig {
        data_dir,
        max_upload: s.max_upload_size,
        max_failed_logins: s.max_failed_logins,
        login_lockout: s.login_lockout,
        token_public_keys: s.token_public_keys,
        ..app::ServeConfig::new(PathBuf::new())
    };
    raise_fd_limit();
    tune_malloc();
    let rt = tokio::runtime::Runtime::new().context("starting the tokio runtime")?;
    rt.block_on(async {
        let state = app::AppState::open(&cfg)?;
        let tls = match (&s.tls_cert, &s.tls_key) {
            (Some(c), Some(k)) => Some(listen::tls_acceptor(c, k)?),
            _ => None,
        };
        let listener = tokio::net::TcpListener::bind(s.listen)
            .await
            .with_context(|| format!("binding {}", s.listen))?;
        let addr = listener.local_addr()?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        out(format!("listening on {scheme}://{addr}"))?;
        tracing::info!(%addr, data_dir = %cfg.data_dir.display(), "serving");
        match tls {
            Some(t) => app::serve_tls(listener, state, t, shutdown_signal()).await,
            None => app::serve(listener, state, shutdown_signal()).await,
        }
        .context("serving")?;
        Ok(ExitCode::SUCCESS)
    })
}

/// Long-polling clients each hold a connection: allow as many open files as
/// the hard limit permits (the soft default is often 1024).
/// Memory: a fixed mmap threshold stops glibc from keeping large freed
/// buffers (file chunks) in its arenas, and two arenas are plenty for our
/// two kinds of threads.
fn tune_malloc() {
    #[cfg(target_env = "gnu")]
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

fn raise_fd_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
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
