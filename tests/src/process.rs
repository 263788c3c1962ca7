//! The real `unikernel-repo serve` binary as a child process, observed the
//! way an operator would: its log (stderr, captured to a file), its
//! `/metrics`, and what the kernel says it uses (RSS, peak RSS, threads,
//! open files). The hostile-load tests attack it and assert on these.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::bins::{bin, wait_for};

pub struct RepoProcess {
    pub child: Child,
    /// `http://127.0.0.1:PORT`
    pub url: String,
    /// `127.0.0.1:PORT`
    pub addr: String,
    log: tempfile::NamedTempFile,
}

/// What the kernel says a process uses.
#[derive(Debug, Clone, Copy)]
pub struct ProcStats {
    pub rss_kib: u64,
    pub peak_rss_kib: u64,
    pub threads: u64,
    pub fds: u64,
}

pub fn stats(pid: u32) -> ProcStats {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("the server is running");
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().trim_end_matches("kB").trim().parse().unwrap_or(0))
            .unwrap_or(0)
    };
    ProcStats {
        rss_kib: field("VmRSS:"),
        peak_rss_kib: field("VmHWM:"),
        threads: field("Threads:"),
        fds: std::fs::read_dir(format!("/proc/{pid}/fd"))
            .map(|d| d.count() as u64)
            .unwrap_or(0),
    }
}

impl RepoProcess {
    /// `unikernel-repo --data-dir DATA serve --listen 127.0.0.1:0 FLAGS…`, logging at
    /// the default level into a file; waits for the address it prints.
    pub fn spawn(data: &Path, flags: &[&str]) -> RepoProcess {
        Self::spawn_env(data, flags, &[])
    }

    pub fn spawn_env(data: &Path, flags: &[&str], env: &[(&str, &str)]) -> RepoProcess {
        let log = tempfile::NamedTempFile::new().unwrap();
        let mut cmd = Command::new(bin("unikernel-repo"));
        cmd.arg("--data-dir")
            .arg(data)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(flags)
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(log.reopen().unwrap());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| {
                panic!(
                    "unexpected first line {line:?}; log:\n{}",
                    std::fs::read_to_string(log.path()).unwrap_or_default()
                )
            })
            .to_owned();
        let addr = url.trim_start_matches("http://").to_owned();
        RepoProcess { child, url, addr, log }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn stats(&self) -> ProcStats {
        stats(self.pid())
    }

    /// Everything the server logged so far.
    pub fn log(&self) -> Vec<u8> {
        std::fs::read(self.log.path()).unwrap_or_default()
    }

    pub fn log_path(&self) -> PathBuf {
        self.log.path().to_owned()
    }

    /// A counter or gauge of `/metrics`.
    pub fn metric(&self, name: &str) -> u64 {
        let text = crate::server::get(&format!("{}/metrics", self.url), &[]).text();
        text.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(' ')))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no metric {name} in:\n{text}"))
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.pid() as i32, libc::SIGTERM);
        }
    }

    /// Waits (with a deadline) for the process to exit; its exit status.
    pub fn wait_exit(&mut self, deadline: Duration) -> std::process::ExitStatus {
        let mut status = None;
        wait_for("the server to exit", deadline, || {
            status = self.child.try_wait().unwrap();
            status.is_some()
        });
        status.unwrap()
    }
}

impl Drop for RepoProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // A failing test shows what the server said.
        if std::thread::panicking() {
            eprintln!(
                "--- log of the server at {} ---\n{}",
                self.url,
                String::from_utf8_lossy(&self.log())
            );
        }
    }
}
