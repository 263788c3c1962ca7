//! The whole pipeline with the real binaries, the real server and real Solo5
//! tenders: upload v1 → deploy-latest → v1 runs → upload v2 → v2 runs, v1 is
//! `previous` → upload a crashing image → exit 3, v2 runs again →
//! `deploy-hvt rollback` → v1 runs, and v2 (rolled back from by hand) is
//! not `previous`. Under solo5-spt always, and under solo5-hvt, which fails
//! when /dev/kvm does not open unless UKREPO_SKIP_KVM=1.

use ukrepo_tests::bins::{cmd, path_with_tools, script};
use ukrepo_tests::host::{Host, sha_of};
use ukrepo_tests::server::*;
use ukrepo_tests::solo5::hvt_or_skip;

fn pipeline(target: &'static str) {
    let s = start();
    s.add_user("ci", "pw", true);
    let host = Host::new(target, "");
    let env = [
        ("UKREPO_URL", s.url.as_str()),
        ("UKREPO_USER", "ci"),
        ("UKREPO_PASSWORD", "pw"),
        ("UKREPO_PLATFORM", "test"),
    ];
    let upload = |name: &str| {
        cmd("upload")
            .envs(env)
            .args(["--job", "web", "--name", &format!("web.{target}")])
            .arg(host.image(name))
            .assert()
            .code(0);
    };
    let path = path_with_tools();
    let deploy_latest = |code: i32| {
        let a = script("deploy-latest.sh")
            .env("PATH", &path)
            .envs(env)
            .arg("web")
            .arg(&host.config)
            .assert();
        let out = a.get_output().clone();
        assert_eq!(
            out.status.code(),
            Some(code),
            "deploy-latest.sh\n{}\n{}",
            String::from_utf8_lossy(&out.stderr),
            host.listing()
        );
        out
    };
    let (v1, v2, crash) = (
        sha_of(&host.image("ticker-v1")),
        sha_of(&host.image("ticker-v2")),
        sha_of(&host.image("crash")),
    );

    upload("ticker-v1");
    deploy_latest(0);
    assert!(host.console().contains("version: v1\n"), "{}", host.console());
    assert!(host.the_tender().image.to_string_lossy().contains(&v1));
    assert_eq!(host.link_sha("current").as_deref(), Some(v1.as_str()));

    // Nothing new: silent, exit 0, nothing restarted.
    let pid = host.the_tender().pid;
    let out = deploy_latest(0);
    assert!(
        out.stdout.is_empty() && out.stderr.is_empty(),
        "not silent: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(host.the_tender().pid, pid);

    upload("ticker-v2");
    let out = deploy_latest(0);
    // One line per change, for cron mail.
    let said = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(said, format!("deploy-hvt: deployed {v2} (was {v1})\n"));
    assert!(host.console().contains("version: v2\n"), "{}", host.console());
    assert!(host.the_tender().image.to_string_lossy().contains(&v2));
    assert_eq!(host.link_sha("previous").as_deref(), Some(v1.as_str()));

    upload("crash");
    let out = deploy_latest(3);
    let said = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        said.starts_with(&format!("deploy-hvt: rolled back to {v2}: {crash} is unhealthy: ")),
        "{said}"
    );
    assert_eq!(said.lines().count(), 1, "{said}");
    assert!(host.the_tender().image.to_string_lossy().contains(&v2), "v2 runs again");
    assert!(host.console().contains("version: v2\n"));
    assert_eq!(host.link_sha("current").as_deref(), Some(v2.as_str()));
    let failed = std::fs::read_to_string(host.state().join("failed")).unwrap();
    assert!(failed.contains(&crash), "{failed}");
    // The failed image's console is kept beside its journal entry.
    let log = std::fs::read_to_string(host.state().join("deploy.log")).unwrap();
    let entry: serde_json::Value = serde_json::from_str(log.lines().last().unwrap()).unwrap();
    assert_eq!(
        (entry["sha256"].as_str(), entry["result"].as_str()),
        (Some(crash.as_str()), Some("rolled-back"))
    );
    let kept = std::fs::read_to_string(host.state().join(entry["console"].as_str().unwrap())).unwrap();
    assert!(
        kept.contains("fatal: giving up") && !kept.contains("version: v2"),
        "{kept}"
    );
    // The failed build is not retried by the next cron run.
    let pid = host.the_tender().pid;
    deploy_latest(0);
    assert_eq!(host.the_tender().pid, pid);

    host.deploy_hvt("rollback").assert().code(0);
    assert!(
        host.the_tender().image.to_string_lossy().contains(&v1),
        "rollback runs v1\n{}",
        host.listing()
    );
    assert!(host.console().contains("version: v1\n"));
    assert_eq!(host.link_sha("current").as_deref(), Some(v1.as_str()));
    // A second rollback must never go forward to the image rolled back from.
    assert_ne!(host.link_sha("previous").as_deref(), Some(v2.as_str()));
}

#[test]
fn pipeline_under_solo5_spt() {
    pipeline("spt");
}

#[test]
fn pipeline_under_solo5_hvt() {
    if hvt_or_skip("pipeline_under_solo5_hvt") {
        pipeline("hvt");
    }
}
