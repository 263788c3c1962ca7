//! The configuration the server under test runs on, one parameter for
//! every suite: `UKREPO_TEST_BACKEND` is `default` (SQLite + files in the
//! data dir, also when unset), `s3` (SQLite + an S3 bucket) or
//! `postgres-s3` (PostgreSQL + an S3 bucket). `scripts/test.sh` runs the
//! shared suites (api, upload rules, crash, hostile inputs, the builder-web
//! conformance, pages, client replays and the admin commands) once per value.
//!
//! Each data directory gets its own database and bucket on the engines of
//! this test process (`services.rs`), remembered by path, so a restart on
//! the same directory (in-process or a child process) finds its data
//! again. Child processes get the same configuration through [`env`].

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use unikernel_repo::db::DbUrl;
use unikernel_repo::store::StoreUrl;

use crate::services::{Postgres, S3};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Default,
    S3,
    PostgresS3,
}

impl Backend {
    /// The one `UKREPO_TEST_BACKEND` names.
    pub fn current() -> Backend {
        match std::env::var("UKREPO_TEST_BACKEND").as_deref() {
            Err(_) | Ok("") | Ok("default") => Backend::Default,
            Ok("s3") => Backend::S3,
            Ok("postgres-s3") => Backend::PostgresS3,
            Ok(other) => panic!("UKREPO_TEST_BACKEND={other:?}: use default, s3 or postgres-s3"),
        }
    }
}

/// Where one repository of a test lives.
#[derive(Debug, Clone)]
pub struct Instance {
    pub database: DbUrl,
    pub store: StoreUrl,
    /// Variables a child process (`unikernel-repo …`) needs for it.
    pub env: Vec<(String, String)>,
}

/// The engines of this process, started on first use by a thread that
/// lives as long as the process (their parent-death signal is tied to it).
pub struct Engines {
    pub postgres: Postgres,
    pub s3: S3,
}

pub fn engines() -> &'static Engines {
    static ENGINES: OnceLock<Engines> = OnceLock::new();
    ENGINES.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            // Spawned from this thread, which never ends: the children's
            // parent-death signal comes only when the process ends.
            let s3 = S3::start();
            let postgres = Postgres::start();
            tx.send(Engines { postgres, s3 }).unwrap();
            loop {
                std::thread::park();
            }
        });
        let engines = rx.recv().expect("starting PostgreSQL and the S3 server failed");
        // The in-process servers read the standard AWS_* variables, as the
        // real one does; every bucket of this process is on this server.
        for (k, v) in engines.s3.env() {
            // SAFETY: set once, before any S3 client of this process reads them.
            unsafe { std::env::set_var(k, v) };
        }
        engines
    })
}

impl Instance {
    /// A fresh repository on `backend` whose local files are in `data`.
    pub fn new(backend: Backend, data: &Path) -> Instance {
        let default = Instance {
            database: DbUrl::in_data_dir(data),
            store: StoreUrl::in_data_dir(data),
            env: vec![],
        };
        if backend == Backend::Default {
            return default;
        }
        let e = engines();
        let store = StoreUrl::S3 {
            bucket: e.s3.create_bucket(),
            prefix: "repo".into(),
        };
        let database = match backend {
            Backend::PostgresS3 => DbUrl::Postgres(e.postgres.create_database()),
            _ => default.database,
        };
        let mut env = e.s3.env();
        env.push(("UKREPO_STORE_URL".into(), store.to_string()));
        if let DbUrl::Postgres(url) = &database {
            env.push(("UKREPO_DATABASE_URL".into(), url.clone()));
        }
        Instance { database, store, env }
    }

    /// SQLite in `data` with a new bucket of `s3` (a server of the test's own).
    pub fn sqlite_on(s3: &S3, data: &Path) -> Instance {
        let store = StoreUrl::S3 {
            bucket: s3.create_bucket(),
            prefix: "repo".into(),
        };
        let mut env = s3.env();
        env.push(("UKREPO_STORE_URL".into(), store.to_string()));
        Instance {
            database: DbUrl::in_data_dir(data),
            store,
            env,
        }
    }

    /// The instance of `data` on the current backend (made on first use).
    pub fn of(data: &Path) -> Instance {
        static BY_DIR: OnceLock<Mutex<HashMap<PathBuf, Instance>>> = OnceLock::new();
        let mut map = BY_DIR.get_or_init(Default::default).lock().unwrap();
        map.entry(data.to_owned())
            .or_insert_with(|| Instance::new(Backend::current(), data))
            .clone()
    }
}

/// The variables a child process needs for the repository in `data`.
pub fn env(data: &Path) -> Vec<(String, String)> {
    Instance::of(data).env
}

/// `unikernel-repo --data-dir DATA ARGS…` on `instance`, with `stdin`;
/// asserts it succeeds and returns its stdout.
pub fn admin(instance: &Instance, data: &Path, args: &[&str], stdin: &str) -> String {
    let out = crate::bins::cmd("unikernel-repo")
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .envs(instance.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .write_stdin(stdin)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "unikernel-repo {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The real server on `instance` with its own data dir `data`.
pub fn spawn(instance: &Instance, data: &Path, flags: &[&str]) -> crate::process::RepoProcess {
    let env: Vec<(&str, &str)> = instance.env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    crate::process::RepoProcess::spawn_env(data, flags, &env)
}
