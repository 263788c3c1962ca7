//! What a host decides about each build, and what the repository hears,
//! end to end on real Solo5 (solo5-hvt; spt only with UKREPO_SKIP_KVM=1)
//! with the cron script and the watcher: reports land on the build the host
//! fetched (never found by digest), stay queued while the host's password is
//! wrong, and `upload --wait-deployed` always ends with the host's decision;
//! a manual rollback sticks, a second one never goes forward, `--to` picks
//! an older image; a hold stops deploys and keeps the cron script silent.

use std::time::Duration;

use predicates::prelude::PredicateBooleanExt;
use ukrepo_tests::bins::{cmd, wait_for};
use ukrepo_tests::host::{Host, sha_of};
use ukrepo_tests::server::*;
use ukrepo_tests::solo5::host_target;
use ukrepo_tests::watcher::{Watcher, deploy_latest, reports, status, upload_image};

/// The host's environment; no UKREPO_PLATFORM: the latest build of any
/// platform is deployed, so a re-upload for another platform is a new build.
fn env<'a>(s: &'a Server, user: &'a str, pw: &'a str) -> [(&'static str, &'a str); 4] {
    [
        ("UKREPO_URL", s.url.as_str()),
        ("UKREPO_USER", user),
        ("UKREPO_PASSWORD", pw),
        ("UKREPO_HOST_NAME", "host-a"),
    ]
}

fn setup(test: &str) -> (Server, Host) {
    let s = start();
    s.add_user("ci", "pw", true);
    (s, Host::new(host_target(test), ""))
}

#[test]
fn the_report_lands_on_the_job_the_host_deploys() {
    let (s, host) = setup("the_report_lands_on_the_job_the_host_deploys");
    let web = upload_image(&s, &host, "web", "debian-12", "ticker-v1");
    // The same image, later, in another job: /hash now names that build.
    let staging = upload_image(&s, &host, "web-staging", "debian-12", "ticker-v1");
    deploy_latest(&host, "web", &env(&s, "ci", "pw"), 0);
    assert!(host.runs("ticker-v1"));
    let r = reports(&s.url, "web", &web);
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(
        (r[0]["result"].as_str(), r[0]["action"].as_str()),
        (Some("deployed"), Some("deploy"))
    );
    assert!(reports(&s.url, "web-staging", &staging).is_empty());
}

#[test]
fn a_wrong_host_password_keeps_the_report_queued() {
    let (s, host) = setup("a_wrong_host_password_keeps_the_report_queued");
    s.add_user("host-a", "right", false);
    s.grant("host-a", "web");
    let uuid = upload_image(&s, &host, "web", "debian-12", "ticker-v1");
    let said = deploy_latest(&host, "web", &env(&s, "host-a", "wrong"), 0);
    assert!(said.contains("stays queued"), "{said}");
    assert!(host.runs("ticker-v1"));
    assert!(reports(&s.url, "web", &uuid).is_empty());
    // Still queued after another run.
    host.deploy_hvt("report")
        .envs(env(&s, "host-a", "wrong"))
        .assert()
        .code(0)
        .stderr(predicates::str::contains("401"));
    assert!(reports(&s.url, "web", &uuid).is_empty());
    // The operator fixes the password: the report goes out, once.
    for _ in 0..2 {
        host.deploy_hvt("report")
            .envs(env(&s, "host-a", "right"))
            .assert()
            .code(0)
            .stderr("");
    }
    let r = reports(&s.url, "web", &uuid);
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(
        (r[0]["host"].as_str(), r[0]["result"].as_str()),
        (Some("host-a"), Some("deployed"))
    );
}

#[test]
fn wait_deployed_ends_with_the_hosts_decision() {
    let (s, host) = setup("wait_deployed_ends_with_the_hosts_decision");
    let e = env(&s, "ci", "pw");
    let watcher = Watcher::spawn("web", &host, &e);
    let upload = |image: &str, platform: &str, code: i32, result: &str| {
        let a = cmd("upload")
            .envs(e)
            .env("UKREPO_PLATFORM", platform)
            .args(["--job", "web", "--name", &format!("web.{}", host.target)])
            .args(["--wait-deployed", "host-a", "--timeout", "30s"])
            .arg(host.image(image))
            .timeout(Duration::from_secs(60))
            .assert();
        let out = a.get_output();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert_eq!(
            out.status.code(),
            Some(code),
            "upload {image}:\n{stdout}\n{}\nwatcher:\n{}\n{}",
            String::from_utf8_lossy(&out.stderr),
            watcher.log(),
            host.listing()
        );
        assert!(
            stdout
                .lines()
                .nth(1)
                .unwrap()
                .starts_with(&format!("host-a\t{result}\t")),
            "{stdout}"
        );
    };
    upload("ticker-v1", "debian-12", 0, "deployed");
    upload("crash", "debian-12", 3, "rolled-back");
    assert!(host.runs("ticker-v1"));
    // The running image again, as a new build (CI reverted a bad commit).
    upload("ticker-v1", "other", 0, "already-running");
    // The image that failed here, as a new build.
    upload("crash", "debian-12", 3, "refused");
    assert!(host.runs("ticker-v1"));
}

#[test]
fn a_manual_rollback_sticks_and_never_goes_forward() {
    let (s, host) = setup("a_manual_rollback_sticks_and_never_goes_forward");
    let e = env(&s, "ci", "pw");
    for v in ["ticker-v1", "ticker-v2", "ticker-v3"] {
        upload_image(&s, &host, "web", "debian-12", v);
        deploy_latest(&host, "web", &e, 0);
    }
    let [v2, v3] = ["ticker-v2", "ticker-v3"].map(|v| sha_of(&host.image(v)));
    host.deploy_hvt("rollback")
        .assert()
        .code(0)
        .stderr(format!("deploy-hvt: rolled back to {v2}: by hand, from {v3}\n"));
    assert!(host.runs("ticker-v2"));
    // The cron job does not undo it, even for a new build of the same image.
    assert_eq!(deploy_latest(&host, "web", &e, 0), "");
    let rebuilt = upload_image(&s, &host, "web", "other", "ticker-v3");
    assert_eq!(deploy_latest(&host, "web", &e, 0), "", "silent");
    assert!(host.runs("ticker-v2"));
    let r = reports(&s.url, "web", &rebuilt);
    assert_eq!(r.last().unwrap()["result"], "refused", "{r:?}");
    // A second rollback goes further back, never forward to v3.
    host.deploy_hvt("rollback").assert().code(0);
    assert!(host.runs("ticker-v1"));
    host.deploy_hvt("rollback")
        .assert()
        .code(2)
        .stderr(predicates::str::contains("no image to roll back to"));
    assert!(host.runs("ticker-v1"));
    assert_eq!(deploy_latest(&host, "web", &e, 0), "");
    assert!(host.runs("ticker-v1"));
    let st = status(&host);
    let why: Vec<(&str, &str)> = st["failed_why"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["sha256"].as_str().unwrap(), f["why"].as_str().unwrap()))
        .collect();
    assert!(why.contains(&(v2.as_str(), "rolled-back-by-hand")), "{why:?}");
    assert!(why.contains(&(v3.as_str(), "rolled-back-by-hand")), "{why:?}");
    // deploy --retry-failed takes v3 again.
    host.deploy_hvt("deploy")
        .arg("--retry-failed")
        .arg(host.image("ticker-v3"))
        .assert()
        .code(0);
    assert!(host.runs("ticker-v3"));
}

#[test]
fn rollback_to_an_older_kept_image() {
    let (s, host) = setup("rollback_to_an_older_kept_image");
    let e = env(&s, "ci", "pw");
    for v in ["ticker-v1", "ticker-v2", "ticker-v3"] {
        upload_image(&s, &host, "web", "debian-12", v);
        deploy_latest(&host, "web", &e, 0);
    }
    let v1 = sha_of(&host.image("ticker-v1"));
    host.deploy_hvt("rollback").args(["--to", &v1[..12]]).assert().code(0);
    assert!(host.runs("ticker-v1"));
    assert!(host.console().contains("version: v1"));
    // Nothing older than v1 is kept: v2 (newer) is not a way back.
    assert_eq!(host.link_sha("previous"), None, "{}", host.listing());
    host.deploy_hvt("rollback").assert().code(2);
    assert_eq!(deploy_latest(&host, "web", &e, 0), "");
    assert!(host.runs("ticker-v1"));
    host.deploy_hvt("rollback")
        .args(["--to", "0000"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("no kept image"));
}

#[test]
fn a_hold_stops_deploys_and_the_cron_script_stays_silent() {
    let (s, host) = setup("a_hold_stops_deploys_and_the_cron_script_stays_silent");
    let e = env(&s, "ci", "pw");
    upload_image(&s, &host, "web", "debian-12", "ticker-v1");
    deploy_latest(&host, "web", &e, 0);
    host.deploy_hvt("hold")
        .args(["--reason", "release freeze"])
        .assert()
        .code(0);
    host.deploy_hvt("status")
        .assert()
        .code(0)
        .stdout(predicates::str::contains("held:").and(predicates::str::contains("release freeze")));
    let v2 = upload_image(&s, &host, "web", "debian-12", "ticker-v2");
    assert_eq!(deploy_latest(&host, "web", &e, 0), "", "silent while held");
    assert_eq!(deploy_latest(&host, "web", &e, 0), "");
    assert!(host.runs("ticker-v1"));
    let r = reports(&s.url, "web", &v2);
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(
        (r[0]["result"].as_str(), r[0]["action"].as_str()),
        (Some("refused"), Some("hold"))
    );
    // By hand too: changes nothing, exit 1.
    host.deploy_hvt("deploy")
        .arg(host.image("ticker-v2"))
        .assert()
        .code(1)
        .stderr(predicates::str::contains("held"));
    assert!(host.runs("ticker-v1"));
    host.deploy_hvt("unhold").assert().code(0);
    let said = deploy_latest(&host, "web", &e, 0);
    assert!(
        said.contains(&format!("deployed {}", sha_of(&host.image("ticker-v2")))),
        "{said}"
    );
    assert!(host.runs("ticker-v2"));
}

#[test]
fn unhold_is_acted_on_at_once_under_the_watcher() {
    let (s, host) = setup("unhold_is_acted_on_at_once_under_the_watcher");
    let e = env(&s, "ci", "pw");
    let watcher = Watcher::spawn("web", &host, &e);
    upload_image(&s, &host, "web", "debian-12", "ticker-v1");
    wait_for("v1 deployed", Duration::from_secs(30), || {
        host.tenders().len() == 1 && host.runs("ticker-v1")
    });
    host.deploy_hvt("hold").assert().code(0);
    let v2 = upload_image(&s, &host, "web", "debian-12", "ticker-v2");
    wait_for("v2 refused while held", Duration::from_secs(30), || {
        reports(&s.url, "web", &v2).len() == 1
    });
    assert!(host.runs("ticker-v1"));
    host.deploy_hvt("unhold").assert().code(0);
    // The watcher's long-poll (30 s here) ends as soon as unhold forgets the decision.
    wait_for("v2 deployed after unhold", Duration::from_secs(10), || {
        reports(&s.url, "web", &v2).len() == 2
    });
    assert!(host.runs("ticker-v2"));
    let r = reports(&s.url, "web", &v2);
    let seen: Vec<(&str, &str)> = r
        .iter()
        .map(|d| (d["action"].as_str().unwrap(), d["result"].as_str().unwrap()))
        .collect();
    assert_eq!(seen, [("hold", "refused"), ("deploy", "deployed")], "{}", watcher.log());
}
