//! The repository's SQLite database (WAL): schema, connection handling, and the
//! bridge from async handlers to blocking rusqlite calls. Queries live in
//! `builds.rs` (jobs, builds, artifacts) and `users.rs` (users, access).
//!
//! Writers are serialised by SQLite itself (`BEGIN IMMEDIATE` + busy timeout),
//! so the admin commands can change users while the server runs.

pub mod builds;
pub mod deployments;
pub mod jobs;
pub mod users;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use rusqlite::Connection;

/// The schema, one step per release that changed it; `PRAGMA user_version`
/// records how many have been applied.
const MIGRATIONS: &[(&str, &str)] = &[
    ("0001-base", include_str!("../../migrations/sqlite/0001-base.sql")),
    (
        "0002-operations",
        include_str!("../../migrations/sqlite/0002-operations.sql"),
    ),
];

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
    migrate(&conn)?;
    Ok(conn)
}

/// Applies the migrations the database has not seen yet, each in its own
/// transaction (a second process racing us waits on the write lock and
/// then finds them applied).
fn migrate(conn: &Connection) -> anyhow::Result<()> {
    let version = |c: &Connection| -> rusqlite::Result<usize> {
        c.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))
            .map(|v| v as usize)
    };
    if version(conn)? >= MIGRATIONS.len() {
        return Ok(());
    }
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let result = (|| -> anyhow::Result<()> {
        for (i, (name, sql)) in MIGRATIONS.iter().enumerate().skip(version(conn)?) {
            conn.execute_batch(sql)
                .with_context(|| format!("applying database migration {name}"))?;
            conn.pragma_update(None, "user_version", (i + 1) as i64)?;
        }
        Ok(())
    })();
    match result {
        Ok(()) => conn.execute_batch("COMMIT").context("committing the migrations"),
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

/// Opens the database of an existing repository, never creating one (for
/// the admin commands: a mistyped `--data-dir` is an error, not a new
/// empty repository).
pub fn open_existing(data_dir: &Path) -> anyhow::Result<Connection> {
    crate::datadir::require_existing(data_dir)?;
    open(&db_path(data_dir))
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
    /// Writers queue here, in the runtime, not on blocking threads.
    write_slot: tokio::sync::Semaphore,
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
                write_slot: tokio::sync::Semaphore::new(1),
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
        let _slot = self
            .inner
            .write_slot
            .acquire()
            .await
            .context("the database is closed")?;
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = inner.writer.lock().unwrap_or_else(|e| e.into_inner());
            f(&mut conn)
        })
        .await
        .context("database task failed")?
    }

    /// Runs `f` on the writer connection on this thread (start-up, outside
    /// request handling).
    pub fn write_blocking<T>(&self, f: impl FnOnce(&mut Connection) -> anyhow::Result<T>) -> anyhow::Result<T> {
        let mut conn = self.inner.writer.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut conn)
    }
}
