//! `deploy-hvt` on real Solo5 (solo5-spt, which needs no KVM): refusals that
//! leave the running unikernel untouched, health failures, crash safety at
//! every step, concurrent deploys, and `status --json`.

use std::os::unix::process::ExitStatusExt;

use predicates::prelude::PredicateBooleanExt;
use ukrepo_tests::host::{Host, sha_of};

fn deployed(target: &'static str, image: &str) -> Host {
    let h = Host::new(target, "");
    h.deploy_hvt("deploy").arg(h.image(image)).assert().code(0);
    h
}

/// No temporary or unexpected files in images/.
fn images_in(h: &Host) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(h.state().join("images"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn refusals_leave_the_running_unikernel_untouched() {
    let h = deployed("spt", "ticker-v1");
    let before = h.the_tender();
    let images = images_in(&h);
    let v2 = h.image("ticker-v2");
    let hvt_image = h.image("ticker-v1").with_extension("hvt");
    let not_elf = h.dir.path().join("not-an-elf.spt");
    std::fs::write(&not_elf, b"#!/bin/sh\necho hello\n").unwrap();
    let cases: Vec<(Vec<std::ffi::OsString>, &str)> = vec![
        (
            vec!["--expect-sha256".into(), "0".repeat(64).into(), v2.clone().into()],
            "expected 0000",
        ),
        (vec![hvt_image.into()], "built for Solo5 target hvt"),
        (
            vec![h.image("needsnet").into()],
            "device manifest asks for [net:service] but the tender is configured with [none]",
        ),
        (vec![not_elf.into()], "not a Solo5 unikernel"),
        (vec![h.dir.path().join("missing.spt").into()], "opening the image"),
    ];
    for (args, msg) in cases {
        h.deploy_hvt("deploy")
            .args(&args)
            .assert()
            .code(2)
            .stderr(predicates::str::contains(msg));
        assert_eq!(h.the_tender(), before, "{args:?} touched the running tender");
        assert_eq!(images_in(&h), images, "{args:?} left files in images/");
        assert!(h.console().contains("version: v1"));
    }
    let log = std::fs::read_to_string(h.state().join("deploy.log")).unwrap();
    assert_eq!(log.matches("\"refused\"").count(), 5, "{log}");
    // Malformed digests never reach the deploy.
    h.deploy_hvt("deploy")
        .args(["--expect-sha256", "xyz"])
        .arg(&v2)
        .assert()
        .code(2);
}

#[test]
fn redeploying_the_current_image_is_a_no_op() {
    let h = deployed("spt", "ticker-v1");
    let before = h.the_tender();
    h.deploy_hvt("deploy")
        .arg(h.image("ticker-v1"))
        .assert()
        .code(0)
        .stderr(predicates::str::contains("already current"));
    assert_eq!(h.the_tender(), before);
}

#[test]
fn an_image_that_never_gets_ready_is_rolled_back() {
    let h = Host::new("spt", "");
    h.deploy_hvt("deploy").arg(h.image("ticker-v1")).assert().code(0);
    let v1 = sha_of(&h.image("ticker-v1"));
    let cfg = std::fs::read_to_string(&h.config)
        .unwrap()
        .replace("timeout = \"5s\"", "timeout = \"1s\"");
    std::fs::write(&h.config, cfg).unwrap();
    h.deploy_hvt("deploy")
        .arg(h.image("noready"))
        .assert()
        .code(3)
        .stderr(predicates::str::contains("console never matched"));
    assert!(h.the_tender().image.to_string_lossy().contains(&v1));
    // A second attempt is refused as already failed (exit 1), unless forced.
    h.deploy_hvt("deploy")
        .arg(h.image("noready"))
        .assert()
        .code(1)
        .stderr(predicates::str::contains("already failed"));
    h.deploy_hvt("deploy")
        .arg("--retry-failed")
        .arg(h.image("noready"))
        .assert()
        .code(3);
}

#[test]
fn a_failing_first_deploy_has_nothing_to_restore() {
    let h = Host::new("spt", "");
    h.deploy_hvt("deploy")
        .arg(h.image("crash"))
        .assert()
        .code(4)
        .stderr(predicates::str::contains("no previous image"));
    assert!(h.tenders().is_empty());
}

#[test]
fn the_health_command_check_is_polled() {
    let h = Host::new("spt", "");
    let flag = h.dir.path().join("healthy");
    let cfg = std::fs::read_to_string(&h.config).unwrap() + &format!("command = \"test -e {}\"\n", flag.display());
    std::fs::write(&h.config, cfg).unwrap();
    // The flag appears only once the unikernel said ready: a real check.
    let watcher = {
        let (console, flag) = (h.state().join("console.log"), flag.clone());
        std::thread::spawn(move || {
            ukrepo_tests::bins::wait_for("ready on the console", std::time::Duration::from_secs(10), || {
                std::fs::read_to_string(&console).is_ok_and(|c| c.contains("ready"))
            });
            std::fs::write(&flag, "").unwrap();
        })
    };
    h.deploy_hvt("deploy").arg(h.image("ticker-v1")).assert().code(0);
    watcher.join().unwrap();

    // And a command that never succeeds fails the deploy.
    std::fs::remove_file(&flag).unwrap();
    let cfg = std::fs::read_to_string(&h.config)
        .unwrap()
        .replace("timeout = \"5s\"", "timeout = \"1s\"");
    std::fs::write(&h.config, cfg).unwrap();
    // The previous image fails the same check, so nothing healthy is left: 4.
    h.deploy_hvt("deploy")
        .arg(h.image("ticker-v2"))
        .assert()
        .code(4)
        .stderr(predicates::str::contains("the health command"))
        .stderr(predicates::str::contains("failed too"));
}

#[test]
fn status_json_reports_digest_pid_and_last_result() {
    let h = deployed("spt", "ticker-v1");
    let out = h
        .deploy_hvt("status")
        .arg("--json")
        .assert()
        .code(0)
        .get_output()
        .stdout
        .clone();
    let s: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let t = h.the_tender();
    assert_eq!(s["running"]["pid"], t.pid);
    assert_eq!(s["running"]["sha256"], sha_of(&h.image("ticker-v1")));
    assert_eq!(s["current"], sha_of(&h.image("ticker-v1")));
    assert_eq!(s["last_deploy"]["result"], "deployed");
    h.deploy_hvt("deploy").arg(h.image("crash")).assert().code(3);
    let out = h
        .deploy_hvt("status")
        .arg("--json")
        .assert()
        .code(0)
        .get_output()
        .stdout
        .clone();
    let s: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(s["last_deploy"]["result"], "rolled-back");
    assert_eq!(s["failed"][0], sha_of(&h.image("crash")));
    h.deploy_hvt("stop").assert().code(0);
    assert!(h.tenders().is_empty());
    // Not running: exit 1.
    let out = h
        .deploy_hvt("status")
        .arg("--json")
        .assert()
        .code(1)
        .get_output()
        .stdout
        .clone();
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&out).unwrap()["running"],
        serde_json::Value::Null
    );
}

/// After a crash, exactly one tender runs `current`, which is a complete,
/// hash-correct image.
fn assert_consistent(h: &Host) {
    let cur = h.link_sha("current").expect("current exists");
    let t = h.the_tender();
    assert!(
        t.image.to_string_lossy().contains(&cur),
        "the tender runs {:?}, current is {cur}\n{}",
        t.image,
        h.listing()
    );
    if h.link_sha("previous").is_some() {
        // link_sha checked it.
    }
}

#[test]
fn sigkill_at_every_step_then_deploy_or_start_recovers() {
    for point in [
        "after-store",
        "after-previous",
        "after-switch",
        "after-restart",
        "during-health",
    ] {
        for follow_up in ["deploy", "start"] {
            let h = deployed("spt", "ticker-v1");
            let status = h
                .deploy_hvt("deploy")
                .env("DEPLOY_HVT_CRASH_AT", point)
                .arg(h.image("ticker-v2"))
                .output()
                .unwrap()
                .status;
            assert_eq!(
                status.signal(),
                Some(libc::SIGKILL),
                "{point}: deploy-hvt was not killed there"
            );
            match follow_up {
                "deploy" => h.deploy_hvt("deploy").arg(h.image("ticker-v2")).assert().code(0),
                _ => h.deploy_hvt("start").assert().code(0),
            };
            assert_consistent(&h);
            if follow_up == "deploy" {
                assert!(
                    h.the_tender()
                        .image
                        .to_string_lossy()
                        .contains(&sha_of(&h.image("ticker-v2"))),
                    "{point}: v2 runs"
                );
            }
            let leftovers: Vec<String> = images_in(&h).into_iter().filter(|n| n.starts_with('.')).collect();
            assert!(leftovers.is_empty(), "{point}: {leftovers:?}");
        }
    }
}

#[test]
fn concurrent_deploys_never_interleave() {
    let h = deployed("spt", "ticker-v1");
    let cfg = std::fs::read_to_string(&h.config)
        .unwrap()
        .replace("settle = \"200ms\"", "settle = \"700ms\"");
    std::fs::write(&h.config, cfg).unwrap();
    let spawn = |img: &str| h.deploy_hvt("deploy").arg(h.image(img)).output();
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| spawn("ticker-v2"));
        let b = s.spawn(|| spawn("ticker-v3"));
        (a.join().unwrap().unwrap(), b.join().unwrap().unwrap())
    });
    assert_eq!((a.status.code(), b.status.code()), (Some(0), Some(0)));
    let waited = [&a, &b]
        .iter()
        .filter(|o| String::from_utf8_lossy(&o.stderr).contains("waiting for another deploy-hvt"))
        .count();
    assert_eq!(waited, 1, "exactly one waited for the other");
    // The log holds two complete deploys; the last one is what runs.
    let log: Vec<serde_json::Value> = std::fs::read_to_string(h.state().join("deploy.log"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let last = log.last().unwrap();
    assert_eq!(last["result"], "deployed");
    assert!(
        h.the_tender()
            .image
            .to_string_lossy()
            .contains(last["sha256"].as_str().unwrap())
    );
    assert_consistent(&h);
}

#[test]
fn restart_by_command_and_tcp_http_checks() {
    // A repository server gives the HTTP and TCP checks something real to reach.
    let s = ukrepo_tests::server::start();
    let addr = s.url.trim_start_matches("http://").to_owned();
    let h = Host::new("spt", "");
    let marker = h.dir.path().join("restarted");
    let cfg = std::fs::read_to_string(&h.config)
        .unwrap()
        .replace("console = \"(?m)^ready$\"\n", "")
        .replace(
            "[health]",
            &format!(
                "restart = \"readlink {} >> {}\"\n[health]",
                h.state().join("current").display(),
                marker.display()
            ),
        )
        + &format!("tcp = \"{addr}\"\nhttp = \"{}/\"\n", s.url);
    std::fs::write(&h.config, &cfg).unwrap();
    h.deploy_hvt("deploy").arg(h.image("ticker-v1")).assert().code(0);
    h.deploy_hvt("deploy").arg(h.image("ticker-v2")).assert().code(0);
    let restarted = std::fs::read_to_string(&marker).unwrap();
    let v1 = sha_of(&h.image("ticker-v1"));
    let v2 = sha_of(&h.image("ticker-v2"));
    assert_eq!(restarted.lines().count(), 2, "{restarted}");
    assert!(
        restarted.lines().next().unwrap().contains(&v1) && restarted.lines().nth(1).unwrap().contains(&v2),
        "{restarted}"
    );
    assert!(h.tenders().is_empty(), "a command restart starts no tender of ours");

    // A TCP check that cannot pass: rolled back by running the command on v1 again.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let cfg = cfg
        .replace(&format!("tcp = \"{addr}\""), &format!("tcp = \"{closed}\""))
        .replace("timeout = \"5s\"", "timeout = \"1s\"");
    std::fs::write(&h.config, cfg).unwrap();
    h.deploy_hvt("deploy")
        .arg(h.image("ticker-v3"))
        .assert()
        .code(4)
        .stderr(predicates::str::contains(format!("no TCP connection to {closed}")));
    assert_eq!(h.link_sha("current").unwrap(), v2, "current switched back");
}

#[test]
fn start_falls_back_to_the_previous_image_when_current_is_unhealthy() {
    let h = deployed("spt", "ticker-v1");
    h.deploy_hvt("deploy").arg(h.image("ticker-v2")).assert().code(0);
    h.deploy_hvt("stop").assert().code(0);
    assert!(h.tenders().is_empty());
    // After the "reboot", only v1 would pass the health check.
    let cfg = std::fs::read_to_string(&h.config)
        .unwrap()
        .replace("console = \"(?m)^ready$\"", "console = \"version: v1\\n\"")
        .replace("timeout = \"5s\"", "timeout = \"1s\"");
    std::fs::write(&h.config, cfg).unwrap();
    h.deploy_hvt("start")
        .assert()
        .code(3)
        .stderr(predicates::str::contains(format!(
            "rolled back to {}",
            sha_of(&h.image("ticker-v1"))
        )));
    let v1 = sha_of(&h.image("ticker-v1"));
    assert!(
        h.the_tender().image.to_string_lossy().contains(&v1),
        "v1 runs\n{}",
        h.listing()
    );
    assert_eq!(h.link_sha("current").unwrap(), v1);
    let log = std::fs::read_to_string(h.state().join("deploy.log")).unwrap();
    let last: serde_json::Value = serde_json::from_str(log.lines().last().unwrap()).unwrap();
    assert_eq!(
        (last["action"].as_str(), last["result"].as_str()),
        (Some("start"), Some("rolled-back"))
    );
    assert_eq!(last["sha256"], sha_of(&h.image("ticker-v2")));
}

#[test]
fn old_images_are_pruned_to_keep_never_current_or_previous() {
    let h = deployed("spt", "ticker-v1");
    for img in ["ticker-v2", "ticker-v3", "ticker"] {
        h.deploy_hvt("deploy").arg(h.image(img)).assert().code(0);
    }
    // keep = 3: the newest three images stay; v1, the oldest, is gone.
    let names = images_in(&h);
    assert_eq!(names.len(), 3, "{names:?}");
    assert!(
        !names.iter().any(|n| n.starts_with(&sha_of(&h.image("ticker-v1")))),
        "{names:?}"
    );
    assert_eq!(h.link_sha("current").unwrap(), sha_of(&h.image("ticker")));
    assert_eq!(h.link_sha("previous").unwrap(), sha_of(&h.image("ticker-v3")));
    // Rolling back to previous still finds its image.
    h.deploy_hvt("rollback").assert().code(0);
    assert!(h.console().contains("version: v3"));
}

#[test]
fn staging_takes_only_bounded_regular_files_and_cleans_up_after_a_killed_run() {
    let h = deployed("spt", "ticker-v1");
    let before = h.the_tender();
    // What a deploy-hvt killed while copying an image leaves behind.
    let stale = h.state().join("images").join(".incoming.Ab12Cd.tmp");
    std::fs::write(&stale, b"half an image").unwrap();
    h.deploy_hvt("deploy")
        .args(["--max-size", "1K"])
        .arg(h.image("ticker-v2"))
        .assert()
        .code(2)
        .stderr(predicates::str::contains("more than --max-size 1 KiB"));
    h.deploy_hvt("deploy")
        .arg("/dev/zero")
        .assert()
        .code(2)
        .stderr(predicates::str::contains("not a regular file"));
    assert_eq!(h.the_tender(), before);
    assert!(!stale.exists(), "the stale staging file is removed");
    assert!(images_in(&h).iter().all(|n| !n.starts_with('.')), "{:?}", images_in(&h));
}

#[test]
fn a_failed_redeploy_of_the_current_image_goes_back_to_the_previous_one() {
    let h = deployed("spt", "ticker-v1");
    h.deploy_hvt("deploy").arg(h.image("ticker-v2")).assert().code(0);
    h.deploy_hvt("stop").assert().code(0);
    // Now only v1 passes the health check; v2 (current) is deployed again.
    let cfg = std::fs::read_to_string(&h.config)
        .unwrap()
        .replace("console = \"(?m)^ready$\"", "console = \"version: v1\\n\"")
        .replace("timeout = \"5s\"", "timeout = \"1s\"");
    std::fs::write(&h.config, cfg).unwrap();
    let v1 = sha_of(&h.image("ticker-v1"));
    h.deploy_hvt("deploy")
        .arg(h.image("ticker-v2"))
        .assert()
        .code(3)
        .stderr(predicates::str::contains(format!("rolled back to {v1}")))
        .stderr(predicates::str::contains("no previous image").not());
    assert!(h.the_tender().image.to_string_lossy().contains(&v1), "{}", h.listing());
    assert_eq!(h.link_sha("current"), Some(v1));
}

#[test]
fn a_failing_health_command_is_polled_with_backoff_not_forked_every_few_ms() {
    let h = Host::new("spt", "");
    let runs = h.dir.path().join("runs");
    let cfg = std::fs::read_to_string(&h.config)
        .unwrap()
        .replace("timeout = \"5s\"", "timeout = \"2s\"")
        + &format!("command = \"echo run >> {}; false\"\n", runs.display());
    std::fs::write(&h.config, cfg).unwrap();
    h.deploy_hvt("deploy")
        .arg(h.image("ticker-v1"))
        .assert()
        .code(4)
        .stderr(predicates::str::contains("the health command"));
    // 10 ms doubling to 500 ms: about 10 runs in 2 s (every 20 ms: 100).
    let n = std::fs::read_to_string(&runs).unwrap().lines().count();
    assert!((3..=15).contains(&n), "the health command ran {n} times in 2 s");
}
