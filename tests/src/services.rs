//! The real engines the scale-out configurations run on, started by the
//! tests themselves: a throwaway PostgreSQL cluster (Debian's `postgresql`:
//! `initdb` into a temporary directory, `postgres` listening only on a unix
//! socket there, so no port is chosen) and an S3 server (`s3s-fs`, built
//! into `target/tools/` by `scripts/tools.sh`, listening on 127.0.0.1:0 and
//! printing the address it got). Both are children that die with the test
//! process (a parent-death signal), and with their [`Drop`]. The engines of
//! a test process live until it exits (they are never dropped), so their
//! folders are removed by a small reaper that outlives it
//! ([`remove_after_exit`]).
//!
//! Without these programs a test that needs them fails, saying how to get
//! them; `UKREPO_SKIP_SCALE=1` turns that into a skip (see [`skip_scale`]).

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::bins::wait_for;

/// The access key pair the S3 server checks.
pub const S3_ACCESS_KEY: &str = "ukrepo-test";
pub const S3_SECRET_KEY: &str = "ukrepo-test-secret";

/// `UKREPO_SKIP_SCALE=1`: tests that need PostgreSQL or the S3 server
/// return at once (saying so) instead of failing.
pub fn skip_scale(test: &str) -> bool {
    let skip = std::env::var("UKREPO_SKIP_SCALE").is_ok_and(|v| v == "1");
    if skip {
        eprintln!("{test}: skipped (UKREPO_SKIP_SCALE=1)");
    }
    skip
}

/// Runs in the child before exec: it gets `signal` when the thread that
/// spawned it ends (spawn from a thread that lives as long as the process).
fn die_with_parent(cmd: &mut Command, signal: i32) {
    // SAFETY: prctl is async-signal-safe and touches only the child.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, signal as libc::c_ulong) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// A PostgreSQL binary: on `PATH`, else in Debian's versioned folder.
fn pg_bin(name: &str) -> PathBuf {
    if let Some(p) = std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
    {
        return p;
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.path().join("bin").join(name))
                .collect()
        })
        .unwrap_or_default();
    versions.sort();
    versions.into_iter().rev().find(|p| p.is_file()).unwrap_or_else(|| {
        panic!(
            "PostgreSQL's {name} was not found (Debian package postgresql, installed by scripts/test.sh); \
             set UKREPO_SKIP_SCALE=1 to skip the tests that need it"
        )
    })
}

/// PostgreSQL refuses to run as root: then its files and processes belong
/// to the `postgres` user.
fn postgres_user() -> Option<(u32, u32)> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    let out = Command::new("id").args(["-u", "postgres"]).output().ok()?;
    let uid = String::from_utf8_lossy(&out.stdout).trim().parse().ok()?;
    let out = Command::new("id").args(["-g", "postgres"]).output().ok()?;
    let gid = String::from_utf8_lossy(&out.stdout).trim().parse().ok()?;
    Some((uid, gid))
}

fn as_postgres(cmd: &mut Command, user: Option<(u32, u32)>) {
    if let Some((uid, gid)) = user {
        cmd.uid(uid).gid(gid);
    }
}

/// Removes `dir` once this process has exited, however it ends: a shell
/// in a process group of its own reads a pipe whose only writer is this
/// process, and on end of file removes the folder (again while the engine,
/// dying by its parent-death signal, may still write in it).
pub fn remove_after_exit(dir: &Path) {
    let mut reaper = Command::new("sh");
    reaper
        .args([
            "-c",
            r#"cat >/dev/null; for i in $(seq 50); do rm -rf -- "$1"; [ -e "$1" ] || exit 0; sleep 0.2; done"#,
            "reaper",
        ])
        .arg(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0);
    // Never waited for: it ends only after this process has (init reaps it).
    #[allow(clippy::zombie_processes)]
    let mut child = reaper.spawn().expect("starting the folder reaper (sh)");
    // The write end stays open for the life of this process; it is
    // close-on-exec, so no other child holds it.
    std::mem::forget(child.stdin.take());
}

/// A throwaway PostgreSQL cluster.
pub struct Postgres {
    child: Child,
    dir: tempfile::TempDir,
    databases: AtomicUsize,
}

impl Postgres {
    pub fn start() -> Postgres {
        let user = postgres_user();
        let dir = tempfile::Builder::new().prefix("ukrepo-pg").tempdir().unwrap();
        remove_after_exit(dir.path());
        if let Some((uid, gid)) = user {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).unwrap();
        }
        let data = dir.path().join("data");
        let mut initdb = Command::new(pg_bin("initdb"));
        initdb
            .args(["-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync", "-D"])
            .arg(&data)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        as_postgres(&mut initdb, user);
        let out = initdb.output().expect("running initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut cmd = Command::new(pg_bin("postgres"));
        cmd.arg("-D")
            .arg(&data)
            .args([
                "-c",
                "listen_addresses=",
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
            ])
            .args(["-c", "full_page_writes=off", "-c", "max_connections=200"])
            .arg("-c")
            .arg(format!("unix_socket_directories={}", dir.path().display()))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("log")).unwrap());
        as_postgres(&mut cmd, user);
        // SIGQUIT: immediate shutdown, children included.
        die_with_parent(&mut cmd, libc::SIGQUIT);
        let child = cmd.spawn().expect("starting postgres");
        let pg = Postgres {
            child,
            dir,
            databases: AtomicUsize::new(0),
        };
        let socket = pg.dir.path().join(".s.PGSQL.5432");
        wait_for("PostgreSQL to listen", Duration::from_secs(60), || socket.exists());
        let ready = pg_bin("pg_isready");
        wait_for("PostgreSQL to accept connections", Duration::from_secs(60), || {
            Command::new(&ready)
                .arg("-h")
                .arg(pg.dir.path())
                .arg("-q")
                .status()
                .is_ok_and(|s| s.success())
        });
        pg
    }

    /// The URL of database `name` (unix socket, user `postgres`).
    pub fn url(&self, name: &str) -> String {
        let host: String = self
            .dir
            .path()
            .to_str()
            .unwrap()
            .bytes()
            .map(|b| match b {
                b'/' => "%2F".to_owned(),
                b => (b as char).to_string(),
            })
            .collect();
        format!("postgres://postgres@{host}/{name}")
    }

    /// A new, empty database; its URL.
    pub fn create_database(&self) -> String {
        let name = format!("ukrepo{}", self.databases.fetch_add(1, Ordering::SeqCst));
        let out = Command::new(pg_bin("psql"))
            .arg("-h")
            .arg(self.dir.path())
            .args(["-U", "postgres", "-d", "postgres", "-q", "-c"])
            .arg(format!("CREATE DATABASE {name}"))
            .output()
            .expect("running psql");
        assert!(
            out.status.success(),
            "CREATE DATABASE failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.url(&name)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGQUIT);
        }
        let _ = self.child.wait();
    }
}

/// The S3 server's program.
pub fn s3s_fs() -> PathBuf {
    if let Some(p) = std::env::var_os("UKREPO_S3S_FS") {
        return p.into();
    }
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/tools/bin/s3s-fs");
    assert!(
        p.is_file(),
        "{} is not installed: run scripts/test.sh (it runs scripts/tools.sh s3s-fs), \
         or set UKREPO_SKIP_SCALE=1 to skip the tests that need it",
        p.display()
    );
    p
}

/// An S3 server over a directory (a bucket is a folder in it).
pub struct S3 {
    child: Option<Child>,
    root: tempfile::TempDir,
    /// `http://127.0.0.1:PORT`
    pub endpoint: String,
    buckets: AtomicUsize,
}

impl S3 {
    pub fn start() -> S3 {
        let root = tempfile::Builder::new().prefix("ukrepo-s3").tempdir().unwrap();
        remove_after_exit(root.path());
        let (child, endpoint) = Self::spawn(root.path(), "127.0.0.1", "0");
        S3 {
            child: Some(child),
            root,
            endpoint,
            buckets: AtomicUsize::new(0),
        }
    }

    fn spawn(root: &Path, host: &str, port: &str) -> (Child, String) {
        let mut cmd = Command::new(s3s_fs());
        cmd.args(["--host", host, "--port", port])
            .args(["--access-key", S3_ACCESS_KEY, "--secret-key", S3_SECRET_KEY])
            .arg(root)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        die_with_parent(&mut cmd, libc::SIGKILL);
        let mut child = cmd.spawn().expect("starting s3s-fs");
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut seen = String::new();
        let endpoint = loop {
            let mut line = String::new();
            if out.read_line(&mut line).unwrap() == 0 {
                panic!("s3s-fs exited without saying where it listens:\n{seen}");
            }
            seen.push_str(&line);
            if let Some(at) = line.find("server is running at http://") {
                let url = &line[at + "server is running at ".len()..];
                break url.split_whitespace().next().unwrap().to_owned();
            }
        };
        // Keep reading its log so that it never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut sink = String::new();
            while out.read_line(&mut sink).is_ok_and(|n| n > 0) {
                sink.clear();
            }
        });
        (child, endpoint)
    }

    /// A new, empty bucket; its name.
    pub fn create_bucket(&self) -> String {
        let name = format!("bucket{}", self.buckets.fetch_add(1, Ordering::SeqCst));
        std::fs::create_dir(self.root.path().join(&name)).unwrap();
        name
    }

    /// The environment an S3 client of this server needs.
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ENDPOINT_URL", self.endpoint.as_str()),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", S3_ACCESS_KEY),
            ("AWS_SECRET_ACCESS_KEY", S3_SECRET_KEY),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    /// Kills the server (connections refused from now on).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the address it had, over the same data.
    pub fn restart(&mut self) {
        self.stop();
        let addr = self.endpoint.trim_start_matches("http://").to_owned();
        let (host, port) = addr.rsplit_once(':').unwrap();
        let (child, endpoint) = Self::spawn(self.root.path(), host, port);
        assert_eq!(endpoint, self.endpoint);
        self.child = Some(child);
    }
}

impl Drop for S3 {
    fn drop(&mut self) {
        self.stop();
    }
}
