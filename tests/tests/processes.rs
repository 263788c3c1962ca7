//! Safe process handling on the host, on real Solo5 (solo5-hvt; spt only
//! with UKREPO_SKIP_KVM=1, and for the unprivileged tender, see there): a
//! hung restart command and a hung health command end at the deadline with
//! their process groups killed; a decoy process whose arguments name one of
//! our images is never signalled; `user = "…"` runs the tender as that user,
//! who can write nothing under the state folder.

use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use ukrepo_tests::bins::wait_for;
use ukrepo_tests::host::{Host, sha_of};
use ukrepo_tests::solo5::host_target;
use ukrepo_tests::watcher::set_top_level;

/// Live processes whose command line contains `needle`.
fn processes_with(needle: &str) -> Vec<i32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let zombie = stat
            .rsplit_once(')')
            .is_some_and(|(_, r)| r.trim_start().starts_with('Z'));
        if !zombie && String::from_utf8_lossy(&cmd).replace('\0', " ").contains(needle) {
            out.push(pid);
        }
    }
    out
}

/// A `sleep` no other test runs, so that its processes can be found.
fn unique_sleep() -> String {
    format!("sleep {}", 600_000 + std::process::id())
}

fn set_health(config: &Path, from: &str, to: &str) {
    let cfg = std::fs::read_to_string(config).unwrap();
    assert!(cfg.contains(from), "{cfg}");
    std::fs::write(config, cfg.replace(from, to)).unwrap();
}

#[test]
fn a_hung_restart_command_ends_at_the_deadline_with_no_leftover() {
    let host = Host::new(
        host_target("a_hung_restart_command_ends_at_the_deadline"),
        "command = \"true\"\n",
    );
    let v1 = sha_of(&host.image("ticker-v1"));
    let sleep = unique_sleep();
    // The restart command hangs for anything but v1.
    set_top_level(
        &host.config,
        &format!(
            "restart = \"readlink {} | grep -q {v1} || exec {sleep}\"",
            host.state().join("current").display()
        ),
    );
    set_health(&host.config, "console = \"(?m)^ready$\"\n", "");
    set_health(&host.config, "timeout = \"5s\"", "timeout = \"1s\"");
    host.deploy_hvt("deploy").arg(host.image("ticker-v1")).assert().code(0);
    host.deploy_hvt("deploy")
        .arg(host.image("ticker-v2"))
        .timeout(Duration::from_secs(30))
        .assert()
        .code(3)
        .stderr(predicates::str::contains("did not finish within 1s and was killed"));
    assert_eq!(host.link_sha("current"), Some(v1));
    wait_for("the hung command's group to be gone", Duration::from_secs(5), || {
        processes_with(&sleep).is_empty()
    });
}

#[test]
fn a_hung_health_command_ends_at_the_deadline_with_no_leftover() {
    let host = Host::new(host_target("a_hung_health_command_ends_at_the_deadline"), "");
    let v1 = sha_of(&host.image("ticker-v1"));
    let sleep = unique_sleep();
    set_health(&host.config, "timeout = \"5s\"", "timeout = \"1s\"");
    // Healthy for v1; for anything else the check hangs.
    let cfg = std::fs::read_to_string(&host.config).unwrap()
        + &format!(
            "command = \"readlink {} | grep -q {v1} || exec {sleep}\"\n",
            host.state().join("current").display()
        );
    std::fs::write(&host.config, cfg).unwrap();
    host.deploy_hvt("deploy").arg(host.image("ticker-v1")).assert().code(0);
    host.deploy_hvt("deploy")
        .arg(host.image("ticker-v2"))
        .timeout(Duration::from_secs(30))
        .assert()
        .code(3)
        .stderr(predicates::str::contains("did not finish in time and was killed"));
    assert!(host.the_tender().image.to_string_lossy().contains(&v1));
    wait_for("the hung check's group to be gone", Duration::from_secs(5), || {
        processes_with(&sleep).is_empty()
    });
}

/// A process in its own process group whose arguments name one of our
/// images but that is no tender of ours: `sh -c 'sleep 600; :' <image>`, or
/// `tail -f -n 0 <image>` (an operator looking at it; the image is even its
/// first argument that is not an option, as a tender's is).
struct Decoy(std::process::Child);

impl Decoy {
    fn spawn(program: &str, args: &[&str], image: &Path) -> Decoy {
        Decoy(
            Command::new(program)
                .args(args)
                .arg(image)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .process_group(0)
                .spawn()
                .unwrap(),
        )
    }

    fn alive(&mut self) -> bool {
        self.0.try_wait().unwrap().is_none()
    }
}

impl Drop for Decoy {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the process group made for the decoy.
        unsafe {
            libc::kill(-(self.0.id() as i32), libc::SIGKILL);
        }
        let _ = self.0.wait();
    }
}

#[test]
fn a_decoy_naming_our_image_survives_stop_deploy_and_rollback() {
    let host = Host::new(host_target("a_decoy_naming_our_image_survives"), "");
    host.deploy_hvt("deploy").arg(host.image("ticker-v1")).assert().code(0);
    let image = host.the_tender().image;
    let mut decoys = [
        Decoy::spawn("sh", &["-c", "sleep 600; :"], &image),
        Decoy::spawn("tail", &["-f", "-n", "0"], &image),
    ];
    let mut all_alive = |after: &str| {
        for (i, d) in decoys.iter_mut().enumerate() {
            assert!(d.alive(), "{after} signalled decoy {i}");
        }
    };
    host.deploy_hvt("deploy").arg(host.image("ticker-v2")).assert().code(0);
    all_alive("deploy");
    host.deploy_hvt("rollback").assert().code(0);
    all_alive("rollback");
    // The decoys now name the running image: still not tenders of ours.
    assert_eq!(host.the_tender().image, image);
    host.deploy_hvt("status").assert().code(0);
    host.deploy_hvt("stop").assert().code(0);
    all_alive("stop");
    assert!(host.tenders().is_empty());
    host.deploy_hvt("status").assert().code(1);
}

/// A throwaway system user, removed when dropped.
struct User(String);

impl User {
    fn add() -> User {
        let name = format!("ukt{}", std::process::id());
        let out = Command::new("useradd")
            .args(["--system", "--no-create-home", "--shell", "/usr/sbin/nologin", &name])
            .output()
            .expect("useradd (the tests run as root)");
        assert!(
            out.status.success(),
            "useradd: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        User(name)
    }

    fn id(&self, flag: &str) -> u32 {
        let out = Command::new("id").arg(flag).arg(&self.0).output().unwrap();
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
    }
}

impl Drop for User {
    fn drop(&mut self) {
        let _ = Command::new("userdel").arg(&self.0).output();
    }
}

/// The real, effective, saved and file-system ids of a process
/// (`Uid:` or `Gid:` in /proc/PID/status).
fn ids(pid: i32, which: &str) -> Vec<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(which))
        .unwrap()
        .split_whitespace()
        .map(|v| v.parse().unwrap())
        .collect()
}

/// Paths under `dir` that `uid` (with group `gid`) could write to.
fn writable_by(dir: &Path, uid: u32, gid: u32) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        let m = std::fs::symlink_metadata(&p).unwrap();
        if m.file_type().is_symlink() {
            continue;
        }
        let mode = m.mode();
        if m.uid() == uid || mode & 0o002 != 0 || (m.gid() == gid && mode & 0o020 != 0) {
            out.push(format!("{} ({:o})", p.display(), mode));
        }
        if m.is_dir() {
            out.extend(writable_by(&p, uid, gid));
        }
    }
    out
}

/// solo5-spt: solo5-hvt would need /dev/kvm for the user (the `kvm` group),
/// which this machine may not grant, and the point here is the uid.
#[test]
fn the_tender_runs_as_the_configured_user() {
    let user = User::add();
    let (uid, gid) = (user.id("-u"), user.id("-g"));
    let host = Host::new("spt", "");
    // The test's temporary folder is private; /var/lib/unikernels is not.
    std::fs::set_permissions(host.dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    set_top_level(&host.config, &format!("user = \"{}\"", user.0));
    host.deploy_hvt("deploy").arg(host.image("ticker-v1")).assert().code(0);
    let t = host.the_tender();
    assert_eq!(ids(t.pid, "Uid:"), [uid; 4], "the tender's uids");
    assert_eq!(ids(t.pid, "Gid:"), [gid; 4], "the tender's gids");
    assert!(
        host.console().contains("version: v1"),
        "its console reached console.log"
    );
    let writable = writable_by(&host.state(), uid, gid);
    assert!(writable.is_empty(), "{} may write: {writable:?}", user.0);
    // A deploy and a rollback keep it unprivileged.
    host.deploy_hvt("deploy").arg(host.image("ticker-v2")).assert().code(0);
    assert_eq!(ids(host.the_tender().pid, "Uid:"), [uid; 4]);
    // root is refused outright.
    set_top_level(&host.config, "");
    let cfg = std::fs::read_to_string(&host.config)
        .unwrap()
        .replace(&format!("user = \"{}\"", user.0), "user = \"root\"");
    std::fs::write(&host.config, cfg).unwrap();
    host.deploy_hvt("status")
        .assert()
        .code(2)
        .stderr(predicates::str::contains("unprivileged"));
}
