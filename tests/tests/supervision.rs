//! Supervision of the builtin tender, end to end on real Solo5 (solo5-hvt;
//! spt only with UKREPO_SKIP_KVM=1): a tender killed with SIGKILL is back
//! within 2 s under the watcher, and after one cron run without it; a new
//! image that dies 3 s after becoming healthy, three times, is rolled back
//! (exit 3 from the cron script, a report to the repository); a unikernel
//! stopped by hand stays stopped.

use std::time::Duration;

use ukrepo_tests::bins::wait_for;
use ukrepo_tests::host::{Host, sha_of};
use ukrepo_tests::server::*;
use ukrepo_tests::solo5::host_target;
use ukrepo_tests::watcher::{Watcher, deploy_latest, reports, status, upload_image};

fn env(s: &Server) -> [(&'static str, &str); 5] {
    [
        ("UKREPO_URL", s.url.as_str()),
        ("UKREPO_USER", "ci"),
        ("UKREPO_PASSWORD", "pw"),
        ("UKREPO_PLATFORM", "debian-12"),
        ("UKREPO_HOST_NAME", "host-a"),
    ]
}

fn setup(test: &str) -> (Server, Host) {
    let s = start();
    s.add_user("ci", "pw", true);
    (s, Host::new(host_target(test), ""))
}

fn kill9(pid: i32) {
    // SAFETY: kill(2) on a tender of this test's host.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
    }
}

#[test]
fn a_killed_tender_is_back_within_2s_under_the_watcher() {
    let (s, host) = setup("a_killed_tender_is_back_within_2s_under_the_watcher");
    let watcher = Watcher::spawn("web", &host, &env(&s));
    upload_image(&s, &host, "web", "debian-12", "ticker-v1");
    let v1 = sha_of(&host.image("ticker-v1"));
    // Deployed means healthy, decided and journalled, not merely started:
    // killing it during its health check would be a failed deploy.
    wait_for("v1 deployed by the watcher", Duration::from_secs(30), || {
        host.tenders().len() == 1 && host.link_sha("current").as_deref() == Some(v1.as_str()) && host.deployed(&v1)
    });
    for round in 0..2 {
        let old = host.the_tender();
        kill9(old.pid);
        let t0 = std::time::Instant::now();
        while !host.tenders().iter().any(|t| t.pid != old.pid) {
            assert!(
                t0.elapsed() < Duration::from_secs(2),
                "round {round}: no new tender within 2 s\n{}\n{}",
                watcher.log(),
                host.listing()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        let t = host.the_tender();
        assert!(t.image.to_string_lossy().contains(&v1), "{}", watcher.log());
        // Back means healthy again: a kill during the restart's own health
        // check is a failed start, not the next crash of a running unikernel.
        wait_for("the restart to pass its health check", Duration::from_secs(10), || {
            watcher.log().matches(&format!("restarted {v1}")).count() == round + 1
        });
    }
    assert_eq!(status(&host)["runs"], true);
}

#[test]
fn a_killed_tender_is_back_after_one_cron_run() {
    let (s, host) = setup("a_killed_tender_is_back_after_one_cron_run");
    let uuid = upload_image(&s, &host, "web", "debian-12", "ticker-v1");
    let v1 = sha_of(&host.image("ticker-v1"));
    deploy_latest(&host, "web", &env(&s), 0);
    let old = host.the_tender();
    kill9(old.pid);
    wait_for("the tender to die", Duration::from_secs(5), || {
        host.tenders().is_empty()
    });
    host.deploy_hvt("status").assert().code(1);
    let said = deploy_latest(&host, "web", &env(&s), 0);
    assert!(said.contains(&format!("restarted {v1}")), "{said}");
    assert_eq!(said.lines().count(), 1, "one line per change: {said}");
    assert_ne!(host.the_tender().pid, old.pid);
    host.deploy_hvt("status").assert().code(0);
    // The repository heard the deploy and the restart, once each.
    let r = reports(&s.url, "web", &uuid);
    let seen: Vec<(&str, &str)> = r
        .iter()
        .map(|d| (d["action"].as_str().unwrap(), d["result"].as_str().unwrap()))
        .collect();
    assert_eq!(seen, [("deploy", "deployed"), ("start", "deployed")], "{r:?}");
    // Nothing to do now: silent.
    assert_eq!(deploy_latest(&host, "web", &env(&s), 0), "");
}

#[test]
fn a_new_image_that_keeps_dying_is_rolled_back_by_the_cron_script() {
    let (s, host) = setup("a_new_image_that_keeps_dying_is_rolled_back_by_the_cron_script");
    upload_image(&s, &host, "web", "debian-12", "ticker-v1");
    deploy_latest(&host, "web", &env(&s), 0);
    let (v1, bad) = (sha_of(&host.image("ticker-v1")), sha_of(&host.image("crashlater")));
    let uuid = upload_image(&s, &host, "web", "debian-12", "crashlater");
    let said = deploy_latest(&host, "web", &env(&s), 0);
    assert!(said.contains(&format!("deployed {bad} (was {v1})")), "{said}");
    for death in 1..=3 {
        wait_for(
            &format!("death {death} of the new image"),
            Duration::from_secs(15),
            || host.tenders().is_empty(),
        );
        if death < 3 {
            let said = deploy_latest(&host, "web", &env(&s), 0);
            assert!(said.contains(&format!("restarted {bad}")), "{said}");
        }
    }
    let said = deploy_latest(&host, "web", &env(&s), 3);
    assert!(said.contains(&format!("rolled back to {v1}: {bad}")), "{said}");
    assert!(host.the_tender().image.to_string_lossy().contains(&v1));
    let st = status(&host);
    assert_eq!(st["failed_why"][0]["sha256"], bad.as_str());
    assert_eq!(st["failed_why"][0]["why"], "crash-loop");
    let last = reports(&s.url, "web", &uuid).pop().unwrap();
    assert_eq!(
        (last["action"].as_str(), last["result"].as_str()),
        (Some("start"), Some("rolled-back"))
    );
    // It is not tried again.
    assert_eq!(deploy_latest(&host, "web", &env(&s), 0), "");
    assert!(host.the_tender().image.to_string_lossy().contains(&v1));
}

#[test]
fn a_new_image_that_keeps_dying_is_rolled_back_under_the_watcher() {
    let (s, host) = setup("a_new_image_that_keeps_dying_is_rolled_back_under_the_watcher");
    let watcher = Watcher::spawn("web", &host, &env(&s));
    upload_image(&s, &host, "web", "debian-12", "ticker-v1");
    let (v1, bad) = (sha_of(&host.image("ticker-v1")), sha_of(&host.image("crashlater")));
    wait_for("v1 deployed", Duration::from_secs(30), || {
        host.link_sha("current").as_deref() == Some(v1.as_str()) && host.deployed(&v1)
    });
    let uuid = upload_image(&s, &host, "web", "debian-12", "crashlater");
    wait_for("the new image rolled back", Duration::from_secs(60), || {
        reports(&s.url, "web", &uuid)
            .last()
            .is_some_and(|d| d["result"] == "rolled-back")
    });
    let r = reports(&s.url, "web", &uuid);
    let seen: Vec<(&str, &str)> = r
        .iter()
        .map(|d| (d["action"].as_str().unwrap(), d["result"].as_str().unwrap()))
        .collect();
    assert_eq!(
        seen,
        [
            ("deploy", "deployed"),
            ("start", "deployed"),
            ("start", "deployed"),
            ("start", "rolled-back")
        ],
        "{}",
        watcher.log()
    );
    assert!(host.the_tender().image.to_string_lossy().contains(&v1));
    assert!(
        watcher.log().contains(&format!("rolled back to {v1}: {bad}")),
        "{}",
        watcher.log()
    );
}

#[test]
fn a_unikernel_stopped_by_hand_stays_stopped() {
    let (s, host) = setup("a_unikernel_stopped_by_hand_stays_stopped");
    upload_image(&s, &host, "web", "debian-12", "ticker-v1");
    deploy_latest(&host, "web", &env(&s), 0);
    host.deploy_hvt("stop").assert().code(0);
    assert_eq!(deploy_latest(&host, "web", &env(&s), 0), "", "silent");
    assert!(host.tenders().is_empty(), "the cron script left it stopped");
    let st = status(&host);
    assert_eq!(
        (st["runs"].as_bool(), st["stopped"].as_bool()),
        (Some(false), Some(true))
    );
    host.deploy_hvt("start").assert().code(0);
    assert_eq!(host.tenders().len(), 1);
}
