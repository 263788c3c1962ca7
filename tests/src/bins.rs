//! The workspace's binaries as built by cargo (beside the test executable),
//! and waiting for conditions with a deadline instead of sleeping.

use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Path of a workspace binary (`upload`, `fetch-latest`, …).
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap();
    let p = dir.join(name);
    assert!(
        p.exists(),
        "{} is not built; run the tests with scripts/test.sh (it builds every binary first)",
        p.display()
    );
    p
}

/// An assert_cmd command for a workspace binary, with a clean UKREPO_ environment.
pub fn cmd(name: &str) -> assert_cmd::Command {
    let mut c = assert_cmd::Command::new(bin(name));
    for (k, _) in std::env::vars() {
        if k.starts_with("UKREPO_") {
            c.env_remove(k);
        }
    }
    c
}

/// Polls `cond` until it holds, failing the test after `deadline`.
pub fn wait_for(what: &str, deadline: Duration, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + deadline;
    while !cond() {
        assert!(Instant::now() < end, "timed out after {deadline:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Runs a workspace binary under GNU time (`/usr/bin/time`, Debian package
/// `time`) and returns its exit code and peak RSS in KiB. GNU time forks from
/// its own small process, so the figure is the tool's own.
pub fn run_measuring_rss(name: &str, args: &[&std::ffi::OsStr], envs: &[(&str, &str)]) -> (i32, u64, String) {
    let report = tempfile::NamedTempFile::new().unwrap();
    let mut c = std::process::Command::new("/usr/bin/time");
    c.arg("-f")
        .arg("%M")
        .arg("-o")
        .arg(report.path())
        .arg(bin(name))
        .args(args);
    for (k, v) in envs {
        c.env(k, v);
    }
    let out = c
        .output()
        .expect("/usr/bin/time (Debian package `time`, installed by scripts/test.sh)");
    let kib = std::fs::read_to_string(report.path())
        .unwrap()
        .trim()
        .lines()
        .last()
        .unwrap_or("")
        .parse()
        .unwrap_or(u64::MAX);
    (
        out.status.code().unwrap_or(-1),
        kib,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A script from `scripts/`, with a clean UKREPO_ environment.
pub fn script(name: &str) -> assert_cmd::Command {
    let p = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../scripts")
        .join(name);
    let mut c = assert_cmd::Command::new(p);
    for (k, _) in std::env::vars() {
        if k.starts_with("UKREPO_") {
            c.env_remove(k);
        }
    }
    c
}

/// `unikernel-repo user add NAME --unrestricted --create-jobs` on `data`, password on stdin.
pub fn add_user_cli(data: &std::path::Path, name: &str, password: &str) {
    use std::io::Write;
    let mut add = std::process::Command::new(bin("unikernel-repo"))
        .arg("--data-dir")
        .arg(data)
        .args(["user", "add", name, "--unrestricted", "--create-jobs"])
        .envs(crate::backend::env(data))
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    add.stdin
        .take()
        .unwrap()
        .write_all(format!("{password}\n").as_bytes())
        .unwrap();
    assert!(add.wait().unwrap().success(), "user add failed");
}

/// The server as a child process on 127.0.0.1:0; returns it and the URL it printed.
pub fn spawn_server(data: &std::path::Path) -> (std::process::Child, String) {
    spawn_server_with(data, &[])
}

/// As [`spawn_server`], with extra `serve` flags.
pub fn spawn_server_with(data: &std::path::Path, flags: &[&str]) -> (std::process::Child, String) {
    use std::io::BufRead;
    let mut child = std::process::Command::new(bin("unikernel-repo"))
        .arg("--data-dir")
        .arg(data)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(flags)
        .envs(crate::backend::env(data))
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    (child, url)
}

/// `PATH` with the built binaries and `scripts/` first, for the shell scripts.
pub fn path_with_tools() -> String {
    let bins = bin("deploy-hvt").parent().unwrap().to_owned();
    let scripts = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts");
    format!(
        "{}:{}:{}",
        bins.display(),
        scripts.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

/// `unikernel-repo token keygen` into `dir`: `(NAME.key, NAME.pub)`.
pub fn keygen(dir: &std::path::Path, name: &str) -> (PathBuf, PathBuf) {
    let (sk, pk) = (dir.join(format!("{name}.key")), dir.join(format!("{name}.pub")));
    cmd("unikernel-repo")
        .args(["token", "keygen", "--secret-key"])
        .arg(&sk)
        .arg("--public-key")
        .arg(&pk)
        .assert()
        .code(0);
    (sk, pk)
}

/// A small tmpfs mounted on a fresh folder for as long as the guard lives
/// (the tests run as root, as CI does): a disk that fills up on purpose.
pub struct Tmpfs {
    pub dir: tempfile::TempDir,
}

impl Tmpfs {
    pub fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        let st = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(
            st.success(),
            "mounting a small tmpfs (the tests run as root, as CI does)"
        );
        Tmpfs { dir }
    }

    pub fn path(&self) -> &std::path::Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(self.dir.path()).status();
    }
}
