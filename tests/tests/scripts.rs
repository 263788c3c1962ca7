//! The host scripts as cron and systemd run them, on real Solo5 (solo5-hvt;
//! spt only with UKREPO_SKIP_KVM=1): `deploy-latest.sh` under `env -i
//! PATH=/usr/bin:/bin` finds its tools beside itself (the README's cron line,
//! tools and script in /usr/local/bin) or in UKREPO_BIN_DIR (and deploy-hvt
//! finds a tender given by name there too); the watcher exits within a
//! second of SIGTERM or SIGINT and leaves no fetch-latest or supervisor
//! behind, while the unikernel keeps running.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use ukrepo_tests::bins::{bin, wait_for};
use ukrepo_tests::host::{Host, sha_of};
use ukrepo_tests::server::*;
use ukrepo_tests::solo5::{host_target, tender};
use ukrepo_tests::watcher::{Watcher, marked, scripts_dir, upload_image};

/// A folder with links to the tools (as `/usr/local/bin` holds them).
fn tool_dir(dir: &Path, extra: &[(&str, &Path)]) {
    std::fs::create_dir_all(dir).unwrap();
    for t in ["fetch-latest", "compare-hash", "deploy-hvt"] {
        std::os::unix::fs::symlink(bin(t), dir.join(t)).unwrap();
    }
    for (name, target) in extra {
        std::os::unix::fs::symlink(target, dir.join(name)).unwrap();
    }
}

/// `env -i PATH=/usr/bin:/bin UKREPO_URL=… SCRIPT web CONFIG`, as cron
/// runs it; asserts its exit code, returns its stderr.
fn under_cron(script: &Path, host: &Host, url: &str, extra: &[&str], code: i32) -> String {
    let out = Command::new("/usr/bin/env")
        .args(["-i", "PATH=/usr/bin:/bin"])
        .arg(format!("UKREPO_URL={url}"))
        .args(extra)
        .arg(script)
        .arg("web")
        .arg(&host.config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(code), "{stderr}\n{}", host.listing());
    stderr
}

#[test]
fn deploy_latest_runs_under_crons_environment() {
    let target = host_target("deploy_latest_runs_under_crons_environment");
    let s = start();
    s.add_user("ci", "pw", true);
    let host = Host::new(target, "");
    let tools = host.dir.path().join("usr-local-bin");
    tool_dir(&tools, &[]);
    // The README's setup: the script installed beside the tools.
    for script in ["deploy-latest.sh", "find-tool.sh"] {
        std::fs::copy(scripts_dir().join(script), tools.join(script)).unwrap();
    }
    upload_image(&s, &host, "web", "debian-12", "ticker-v1");
    let said = under_cron(&tools.join("deploy-latest.sh"), &host, &s.url, &[], 0);
    assert!(
        said.contains(&format!("deployed {}", sha_of(&host.image("ticker-v1")))),
        "{said}"
    );
    assert!(host.runs("ticker-v1"));

    // From its own folder, with the tools (and a tender named in the
    // config, not a path) in UKREPO_BIN_DIR.
    let bin_dir = host.dir.path().join("bin-dir");
    let tender_name = format!("solo5-{target}");
    tool_dir(&bin_dir, &[(&tender_name, &tender(&tender_name))]);
    let cfg = std::fs::read_to_string(&host.config).unwrap().replace(
        &format!("tender = \"{}\"", tender(&tender_name).display()),
        &format!("tender = \"{tender_name}\""),
    );
    std::fs::write(&host.config, cfg).unwrap();
    upload_image(&s, &host, "web", "debian-12", "ticker-v2");
    under_cron(
        &scripts_dir().join("deploy-latest.sh"),
        &host,
        &s.url,
        &[&format!("UKREPO_BIN_DIR={}", bin_dir.display())],
        0,
    );
    assert!(host.runs("ticker-v2"));
    // Without a way to find the tools: a clear error, exit 2.
    let said = under_cron(&scripts_dir().join("deploy-latest.sh"), &host, &s.url, &[], 2);
    assert!(said.contains("not found on PATH, beside"), "{said}");
}

fn watcher_exits_at_once_on(signal: i32, name: &str) {
    let target = host_target(name);
    let s = start();
    s.add_user("ci", "pw", true);
    let host = Host::new(target, "");
    let env = [("UKREPO_URL", s.url.as_str())];
    let mut w = Watcher::spawn("web", &host, &env);
    upload_image(&s, &host, "web", "debian-12", "ticker-v1");
    wait_for("v1 deployed", Duration::from_secs(30), || host.tenders().len() == 1);
    // Now it waits in a long-poll, with its supervisor beside it.
    wait_for("the long-poll and the supervisor", Duration::from_secs(10), || {
        let m = marked(&w.marker);
        m.iter()
            .any(|(_, c)| c.contains("fetch-latest") && c.contains("--wait"))
            && m.iter().any(|(_, c)| c.contains("supervise"))
    });
    let tender = host.the_tender();
    // SAFETY: kill(2) on the watcher's pid (the script alone, as systemd's
    // KillMode=process does).
    unsafe {
        libc::kill(w.child.id() as i32, signal);
    }
    let status = w.wait_exit(Duration::from_secs(1));
    assert!(status.success(), "{status:?}\n{}", w.log());
    wait_for("its children to be gone", Duration::from_secs(1), || {
        marked(&w.marker).iter().all(|(pid, _)| *pid == tender.pid)
    });
    assert_eq!(host.the_tender(), tender, "the unikernel keeps running");
}

#[test]
fn the_watcher_exits_within_a_second_of_sigterm() {
    watcher_exits_at_once_on(libc::SIGTERM, "the_watcher_exits_within_a_second_of_sigterm");
}

#[test]
fn the_watcher_exits_within_a_second_of_sigint() {
    watcher_exits_at_once_on(libc::SIGINT, "the_watcher_exits_within_a_second_of_sigint");
}
