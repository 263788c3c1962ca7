//! The repository's SQLite database (WAL): schema, connection handling, and the
//! bridge from async handlers to blocking rusqlite calls. Queries live in
//! `builds.rs` (jobs, builds, artifacts) and `users.rs` (users, access).
//!
//! Writers are serialised by SQLite itself (`BEGIN IMMEDIATE` + busy timeout),
//! so the admin commands can change users while the server runs.

pub mod builds;
pub mod deployments;
pub mod users;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use rusqlite::Connection;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    synopsis TEXT
);
CREATE TABLE IF NOT EXISTS builds (
    id INTEGER PRIMARY KEY,
    uuid TEXT NOT NULL UNIQUE,
    job_id INTEGER NOT NULL REFERENCES jobs(id),
    platform TEXT NOT NULL,
    start_time TEXT NOT NULL,
    finish_time TEXT NOT NULL,
    main_binary TEXT,
    main_sha256 TEXT,
    solo5_abi TEXT,
    solo5_manifest TEXT,
    uploader TEXT
);
CREATE INDEX IF NOT EXISTS builds_by_job ON builds(job_id, id);
CREATE TABLE IF NOT EXISTS artifacts (
    build_id INTEGER NOT NULL REFERENCES builds(id),
    filepath TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    size INTEGER NOT NULL,
    PRIMARY KEY (build_id, filepath)
);
CREATE INDEX IF NOT EXISTS artifacts_by_sha ON artifacts(sha256);
CREATE TABLE IF NOT EXISTS users (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    unrestricted INTEGER NOT NULL,
    disabled INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS access (
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    job TEXT NOT NULL,
    PRIMARY KEY (user_id, job)
);
";

/// The database file inside a data directory.
pub fn db_path(data_dir: &Path) -> PathBuf {
    data_dir.join("repo.sqlite")
}

/// Opens (creating if needed) the database with WAL and the schema.
pub fn open(path: &Path) -> anyhow::Result<Connection> {
    let conn = Connection::open(path).with_context(|| format!("opening database {:?}", path.display()))?;
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // NORMAL is durable in WAL mode except for the last commits before a
    // power loss; FULL makes every committed build survive that too.
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.execute_batch(SCHEMA).context("creating the schema")?;
    conn.execute_batch(deployments::SCHEMA)
        .context("creating the deployments schema")?;
    Ok(conn)
}

/// Shared handle: one writer connection, a small pool of readers.
#[derive(Clone)]
pub struct Db {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    writer: Mutex<Connection>,
    readers: Mutex<Vec<Connection>>,
    /// Bounds concurrent reads, and so the number of reader connections and
    /// blocking threads, however many requests arrive at once.
    read_slots: tokio::sync::Semaphore,
}

/// Reads that may run at once.
const READ_SLOTS: usize = 8;

impl Db {
    pub fn open(path: &Path) -> anyhow::Result<Db> {
        let writer = open(path)?;
        Ok(Db {
            inner: Arc::new(Inner {
                path: path.to_owned(),
                writer: Mutex::new(writer),
                readers: Mutex::new(Vec::new()),
                read_slots: tokio::sync::Semaphore::new(READ_SLOTS),
            }),
        })
    }

    /// Runs `f` on a reader connection on the blocking pool.
    pub async fn read<T, F>(&self, f: F) -> anyhow::Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> anyhow::Result<T> + Send + 'static,
    {
        let _slot = self
            .inner
            .read_slots
            .acquire()
            .await
            .context("the database is closed")?;
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let pooled = inner.readers.lock().unwrap_or_else(|e| e.into_inner()).pop();
            let conn = match pooled {
                Some(c) => c,
                None => open(&inner.path)?,
            };
            let out = f(&conn);
            inner.readers.lock().unwrap_or_else(|e| e.into_inner()).push(conn);
            out
        })
        .await
        .context("database task failed")?
    }

    /// Runs `f` on the writer connection on the blocking pool.
    pub async fn write<T, F>(&self, f: F) -> anyhow::Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> anyhow::Result<T> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = inner.writer.lock().unwrap_or_else(|e| e.into_inner());
            f(&mut conn)
        })
        .await
        .context("database task failed")?
    }
}
