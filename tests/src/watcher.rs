//! The host side as it runs for real: `scripts/watch-deploy.sh` as a child
//! in its own process group (its log captured), `scripts/deploy-latest.sh`
//! runs, and the processes they leave behind, found by a marker in their
//! environment so that parallel tests never see each other's.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use crate::bins::{path_with_tools, script, wait_for};
use crate::host::Host;

pub fn scripts_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts")
}

/// A marker unique to this test process and call.
pub fn new_marker() -> String {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    format!(
        "ukrepo-test-{}-{}",
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
    )
}

/// `UKREPO_TEST_MARKER`: set on the watcher, inherited by all it starts.
pub const MARKER: &str = "UKREPO_TEST_MARKER";

/// Live processes (not zombies) whose environment carries `marker`, with
/// their command lines.
pub fn marked(marker: &str) -> Vec<(i32, String)> {
    let needle = format!("{MARKER}={marker}");
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(env) = std::fs::read(format!("/proc/{pid}/environ")) else {
            continue;
        };
        if !env.split(|&b| b == 0).any(|v| v == needle.as_bytes()) {
            continue;
        }
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        if stat
            .rsplit_once(')')
            .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
        {
            continue;
        }
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline"))
            .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
            .unwrap_or_default();
        out.push((pid, cmd));
    }
    out
}

/// The watcher for `job` on `host`, with `env` (repository, credentials).
pub struct Watcher {
    pub child: Child,
    pub log: PathBuf,
    pub marker: String,
}

impl Watcher {
    pub fn spawn(job: &str, host: &Host, env: &[(&str, &str)]) -> Watcher {
        let log = host.dir.path().join(format!("watcher-{}.log", new_marker()));
        let marker = new_marker();
        let child = Command::new(scripts_dir().join("watch-deploy.sh"))
            .arg(job)
            .arg(&host.config)
            .envs(env.iter().copied())
            .env("PATH", path_with_tools())
            .env("UKREPO_WATCH_WAIT", "30s")
            .env(MARKER, &marker)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .process_group(0)
            .spawn()
            .unwrap();
        Watcher { child, log, marker }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM to the watcher alone, as `systemctl stop` (KillMode=process) does.
    pub fn terminate(&self) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
    }

    pub fn wait_exit(&mut self, deadline: Duration) -> ExitStatus {
        let mut status = None;
        wait_for("the watcher to exit", deadline, || {
            status = self.child.try_wait().unwrap();
            status.is_some()
        });
        status.unwrap()
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the process group we made for the watcher.
        unsafe {
            libc::kill(-(self.child.id() as i32), libc::SIGTERM);
        }
        let _ = self.child.wait();
    }
}

/// Runs `scripts/deploy-latest.sh JOB CONFIG` once with `env`; asserts its
/// exit code (printing its stderr and the host's state when it differs) and
/// returns its stderr.
pub fn deploy_latest(host: &Host, job: &str, env: &[(&str, &str)], code: i32) -> String {
    let out = script("deploy-latest.sh")
        .env("PATH", path_with_tools())
        .envs(env.iter().copied())
        .arg(job)
        .arg(&host.config)
        .timeout(Duration::from_secs(120))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(code),
        "deploy-latest.sh {job}:\n{stderr}\n{}",
        host.listing()
    );
    stderr
}

/// `deploy-hvt status --json` of `host`.
pub fn status(host: &Host) -> serde_json::Value {
    let out = host.deploy_hvt("status").arg("--json").output().unwrap();
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The build's reports on the repository, oldest first.
pub fn reports(url: &str, job: &str, uuid: &str) -> Vec<serde_json::Value> {
    crate::server::get_json(&format!("{url}/job/{job}/build/{uuid}/deployments")).json()["deployments"]
        .as_array()
        .unwrap()
        .clone()
}

/// Uploads the test image `name` (for the host's target) to `job` as
/// `platform`, as user `ci` (password `pw`); the build's uuid.
pub fn upload_image(s: &crate::server::Server, host: &Host, job: &str, platform: &str, name: &str) -> String {
    use crate::server::{agent, basic};
    let url = format!(
        "{}/job/{job}/platform/{platform}/upload?binary_name=web.{}",
        s.url, host.target
    );
    let r = agent()
        .post(&url)
        .header("Authorization", &basic("ci", "pw"))
        .send(&std::fs::read(host.image(name)).unwrap()[..])
        .unwrap();
    let status = r.status().as_u16();
    let body: serde_json::Value = serde_json::from_reader(r.into_body().into_reader()).unwrap();
    assert!(status == 201 || status == 200, "upload {name} to {job}: {body}");
    body["uuid"].as_str().unwrap().to_owned()
}

/// Inserts `line` among the top-level keys of a host's TOML (before `[health]`).
pub fn set_top_level(config: &Path, line: &str) {
    let cfg = std::fs::read_to_string(config).unwrap();
    std::fs::write(config, cfg.replacen("[health]", &format!("{line}\n[health]"), 1)).unwrap();
}
