//! The repository's metadata database: SQLite (WAL, the embedded default)
//! or PostgreSQL (shared by replicas), chosen by `--database-url`; the
//! schema of each engine as numbered migrations; connection handling, and
//! the bridge from async handlers to blocking queries. Queries are written
//! once over [`Sql`] (`sql.rs`) and live in `builds.rs` (jobs, builds,
//! artifacts), `users.rs` (users, access), `jobs.rs` and `deployments.rs`.
//!
//! Writers are serialised by the engine itself (see `sql.rs`), so the
//! admin commands can change users while the server runs.

pub mod builds;
pub mod deployments;
pub mod jobs;
pub mod postgres;
pub mod sql;
pub mod users;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use rusqlite::Connection;

pub use sql::{Engine, Sql};

/// The schema, one step per release that changed it; SQLite's `PRAGMA
/// user_version` records how many have been applied.
const MIGRATIONS: &[(&str, &str)] = &[
    ("0001-base", include_str!("../../migrations/sqlite/0001-base.sql")),
    (
        "0002-operations",
        include_str!("../../migrations/sqlite/0002-operations.sql"),
    ),
];

/// The same steps for PostgreSQL; `schema_migrations` records them.
const PG_MIGRATIONS: &[(&str, &str)] = &[
    ("0001-base", include_str!("../../migrations/postgres/0001-base.sql")),
    (
        "0002-operations",
        include_str!("../../migrations/postgres/0002-operations.sql"),
    ),
];

/// Where the metadata lives (`--database-url`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DbUrl {
    Sqlite(PathBuf),
    Postgres(String),
}

impl DbUrl {
    /// `sqlite://PATH` or `postgres://…` (also `postgresql://…`).
    pub fn parse(s: &str) -> anyhow::Result<DbUrl> {
        if let Some(path) = s.strip_prefix("sqlite://") {
            if path.is_empty() {
                bail!("the database URL {s:?} names no file (sqlite:///path/to/repo.sqlite)");
            }
            return Ok(DbUrl::Sqlite(PathBuf::from(path)));
        }
        if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            s.parse::<tokio_postgres::Config>()
                .with_context(|| format!("the database URL {:?}", redact(s)))?;
            return Ok(DbUrl::Postgres(s.to_owned()));
        }
        bail!(
            "unsupported database URL {:?}: use sqlite://PATH or postgres://…",
            redact(s)
        )
    }

    /// The default: `DATA_DIR/repo.sqlite`.
    pub fn in_data_dir(data_dir: &Path) -> DbUrl {
        DbUrl::Sqlite(db_path(data_dir))
    }

    pub fn engine(&self) -> Engine {
        match self {
            DbUrl::Sqlite(_) => Engine::Sqlite,
            DbUrl::Postgres(_) => Engine::Postgres,
        }
    }

    /// For messages and logs: without a password.
    pub fn display(&self) -> String {
        match self {
            DbUrl::Sqlite(p) => format!("sqlite://{}", p.display()),
            DbUrl::Postgres(u) => redact(u),
        }
    }

    /// Another connection to a database [`DbUrl::open`] has set up.
    fn connect(&self) -> anyhow::Result<Box<dyn Sql>> {
        match self {
            DbUrl::Sqlite(p) => Ok(Box::new(open(p)?)),
            DbUrl::Postgres(u) => Ok(Box::new(
                postgres::PgConn::connect(u).with_context(|| format!("opening database {}", redact(u)))?,
            )),
        }
    }

    /// Opens a connection, creating the database file (SQLite) and applying
    /// the migrations it has not seen.
    pub fn open(&self) -> anyhow::Result<Box<dyn Sql>> {
        match self {
            DbUrl::Sqlite(p) => Ok(Box::new(open(p)?)),
            DbUrl::Postgres(u) => {
                let mut c = postgres::PgConn::connect(u).with_context(|| format!("opening database {}", redact(u)))?;
                migrate_pg(&mut c)?;
                Ok(Box::new(c))
            }
        }
    }

    /// Opens the database of an existing repository, never creating one
    /// (for the admin commands: a mistyped path is an error, not a new
    /// empty repository).
    pub fn open_existing(&self) -> anyhow::Result<Box<dyn Sql>> {
        match self {
            DbUrl::Sqlite(p) => {
                if !p.is_file() {
                    bail!(
                        "{:?} is not a repository database (no such file); check --data-dir / UKREPO_DATA_DIR or --database-url",
                        p.display()
                    );
                }
            }
            DbUrl::Postgres(u) => {
                let mut c = postgres::PgConn::connect(u).with_context(|| format!("opening database {}", redact(u)))?;
                let found =
                    sql::query_one(&mut c, "SELECT to_regclass('schema_migrations') IS NOT NULL", &[])?.bool(0)?;
                if !found {
                    bail!(
                        "the database {} holds no repository (no schema_migrations table); check --database-url",
                        redact(u)
                    );
                }
            }
        }
        self.open()
    }
}

/// A PostgreSQL URL without its password.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let cred = &url[s + 3..at];
            match cred.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// The database file inside a data directory.
pub fn db_path(data_dir: &Path) -> PathBuf {
    data_dir.join("repo.sqlite")
}

/// Opens (creating if needed) an SQLite database with WAL and the schema.
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

/// PostgreSQL's migrations, in one transaction under the writers' lock
/// (replicas starting together apply them once).
fn migrate_pg(c: &mut postgres::PgConn) -> anyhow::Result<()> {
    let done = |c: &mut postgres::PgConn| -> anyhow::Result<usize> {
        if !sql::query_one(c, "SELECT to_regclass('schema_migrations') IS NOT NULL", &[])?.bool(0)? {
            return Ok(0);
        }
        Ok(sql::query_one(c, "SELECT COUNT(*) FROM schema_migrations", &[])?.int(0)? as usize)
    };
    if done(c)? >= PG_MIGRATIONS.len() {
        return Ok(());
    }
    c.begin_write()?;
    let result = (|| -> anyhow::Result<()> {
        let n = done(c)?;
        if n == 0 {
            c.batch("CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL)")?;
        }
        for (i, (name, text)) in PG_MIGRATIONS.iter().enumerate().skip(n) {
            c.batch(text)
                .with_context(|| format!("applying database migration {name}"))?;
            c.execute(
                "INSERT INTO schema_migrations (version, name) VALUES (?1, ?2)",
                crate::params![(i + 1) as i64, *name],
            )?;
        }
        Ok(())
    })();
    match result {
        Ok(()) => c.commit().context("committing the migrations"),
        Err(e) => {
            let _ = c.rollback();
            Err(e)
        }
    }
}

/// Shared handle: one writer connection, a small pool of readers.
#[derive(Clone)]
pub struct Db {
    inner: Arc<Inner>,
}

struct Inner {
    url: DbUrl,
    writer: Mutex<Option<Box<dyn Sql>>>,
    readers: Mutex<Vec<Box<dyn Sql>>>,
    /// Bounds concurrent reads, and so the number of reader connections and
    /// blocking threads, however many requests arrive at once.
    read_slots: tokio::sync::Semaphore,
    /// Writers queue here, in the runtime, not on blocking threads.
    write_slot: tokio::sync::Semaphore,
}

/// Reads that may run at once.
const READ_SLOTS: usize = 8;

impl Db {
    /// Opens (creating) the database and applies the migrations. Blocks.
    pub fn open(url: &DbUrl) -> anyhow::Result<Db> {
        let writer = url.open()?;
        Ok(Db {
            inner: Arc::new(Inner {
                url: url.clone(),
                writer: Mutex::new(Some(writer)),
                readers: Mutex::new(Vec::new()),
                read_slots: tokio::sync::Semaphore::new(READ_SLOTS),
                write_slot: tokio::sync::Semaphore::new(1),
            }),
        })
    }

    pub fn url(&self) -> &DbUrl {
        &self.inner.url
    }

    pub fn engine(&self) -> Engine {
        self.inner.url.engine()
    }

    /// Runs `f` on a reader connection on the blocking pool.
    pub async fn read<T, F>(&self, f: F) -> anyhow::Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut dyn Sql) -> anyhow::Result<T> + Send + 'static,
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
            let mut conn = match pooled {
                Some(c) if !c.is_broken() => c,
                _ => inner.url.connect()?,
            };
            conn.reset();
            let out = f(conn.as_mut());
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
        F: FnOnce(&mut dyn Sql) -> anyhow::Result<T> + Send + 'static,
    {
        let _slot = self
            .inner
            .write_slot
            .acquire()
            .await
            .context("the database is closed")?;
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || Self::with_writer(&inner, f))
            .await
            .context("database task failed")?
    }

    /// Runs `f` on the writer connection on this thread (start-up, outside
    /// request handling).
    pub fn write_blocking<T>(&self, f: impl FnOnce(&mut dyn Sql) -> anyhow::Result<T>) -> anyhow::Result<T> {
        Self::with_writer(&self.inner, f)
    }

    fn with_writer<T>(inner: &Inner, f: impl FnOnce(&mut dyn Sql) -> anyhow::Result<T>) -> anyhow::Result<T> {
        let mut slot = inner.writer.lock().unwrap_or_else(|e| e.into_inner());
        if slot.as_ref().is_none_or(|c| c.is_broken()) {
            *slot = None;
            *slot = Some(inner.url.connect()?);
        }
        let conn = slot.as_mut().expect("opened above");
        conn.reset();
        f(conn.as_mut())
    }
}
