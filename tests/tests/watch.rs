//! Deploy within a second, with feedback to CI: a watcher (watch-deploy.sh)
//! runs against the real server and a real Solo5 tender; `upload
//! --wait-deployed` learns each outcome; the job's deployments page shows
//! them; a host that cannot reach the repository still deploys and reports
//! later.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use ukrepo_tests::bins::{cmd, path_with_tools};
use ukrepo_tests::host::{Host, sha_of};
use ukrepo_tests::server::*;

/// The watcher, in its own process group so the test can stop all of it.
struct Watcher(Child);

impl Drop for Watcher {
    fn drop(&mut self) {
        unsafe {
            libc::kill(-(self.0.id() as i32), libc::SIGTERM);
        }
        let _ = self.0.wait();
    }
}

fn env(s: &Server) -> [(&'static str, &str); 5] {
    [
        ("UKREPO_URL", s.url.as_str()),
        ("UKREPO_USER", "ci"),
        ("UKREPO_PASSWORD", "pw"),
        ("UKREPO_PLATFORM", "test"),
        ("UKREPO_HOST_NAME", "host-a"),
    ]
}

#[test]
fn watcher_deploys_and_upload_waits_for_the_outcome() {
    let s = start();
    s.add_user("ci", "pw", true);
    let host = Host::new("spt", "");
    let log = host.dir.path().join("watcher.log");
    let watcher = Watcher(
        Command::new(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/watch-deploy.sh"))
            .arg("web")
            .arg(&host.config)
            .envs(env(&s))
            .env("PATH", path_with_tools())
            .env("UKREPO_WATCH_WAIT", "30s")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .process_group(0)
            .spawn()
            .unwrap(),
    );
    let upload = |image: &str, code: i32| {
        let a = cmd("upload")
            .envs(env(&s))
            .args([
                "--job",
                "web",
                "--name",
                "web.spt",
                "--wait-deployed",
                "host-a",
                "--timeout",
                "60s",
            ])
            .arg(host.image(image))
            .assert();
        let out = a.get_output();
        assert_eq!(
            out.status.code(),
            Some(code),
            "upload of {image}:\n{}\n{}\nwatcher:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(&log).unwrap_or_default(),
            host.listing()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };

    let out = upload("ticker-v1", 0);
    assert!(out.lines().nth(1).unwrap().starts_with("host-a\tdeployed\t"), "{out}");
    let v1 = sha_of(&host.image("ticker-v1"));
    assert!(host.the_tender().image.to_string_lossy().contains(&v1));

    let out = upload("crash", 3);
    assert!(
        out.lines().nth(1).unwrap().starts_with("host-a\trolled-back\t"),
        "{out}"
    );
    assert!(host.the_tender().image.to_string_lossy().contains(&v1), "v1 runs again");
    assert!(host.console().contains("version: v1"));

    let page = get_json(&format!("{}/job/web/deployments", s.url)).json();
    assert_eq!(page["deployments"][0]["host"], "host-a");
    assert_eq!(page["deployments"][0]["result"], "rolled-back");
    let history: Vec<&str> = page["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["result"].as_str().unwrap())
        .collect();
    assert_eq!(history, ["rolled-back", "deployed"]);
    let html = get(&format!("{}/job/web/deployments", s.url), &[("Accept", "text/html")]).text();
    assert!(
        html.contains("host-a") && html.contains("rolled-back") && html.contains("deployed"),
        "{html}"
    );
    drop(watcher);
}

#[test]
fn a_host_that_cannot_reach_the_repository_deploys_and_reports_later() {
    let s = start();
    s.add_user("ci", "pw", true);
    let host = Host::new("spt", "");
    let v1 = host.image("ticker-v1");
    let build = upload_raw(
        &s.url,
        "web",
        "web.spt",
        &std::fs::read(&v1).unwrap(),
        Some(&basic("ci", "pw")),
        &[],
    )
    .json();
    let uuid = build["uuid"].as_str().unwrap().to_owned();
    let addr = s.addr().to_owned();
    let url = s.url.clone();
    let data = s.stop();
    let host_b = [
        ("UKREPO_URL", url.as_str()),
        ("UKREPO_USER", "ci"),
        ("UKREPO_PASSWORD", "pw"),
        ("UKREPO_HOST_NAME", "host-b"),
    ];

    // The host knows which build it deploys (as deploy-latest.sh tells it).
    host.deploy_hvt("deploy")
        .envs(host_b)
        .args(["--build", &uuid])
        .arg(&v1)
        .timeout(Duration::from_secs(60))
        .assert()
        .code(0)
        .stderr(predicates::str::contains("sent later"));
    assert!(host.the_tender().image.to_string_lossy().contains(&sha_of(&v1)));

    let s = start_in(data, &addr, |_| {});
    assert_eq!(
        get_json(&format!("{}/job/web/deployments", s.url)).json()["deployments"],
        serde_json::json!([])
    );
    host.deploy_hvt("report").envs(host_b).assert().code(0);
    let page = get_json(&format!("{}/job/web/deployments", s.url)).json();
    assert_eq!(page["deployments"][0]["host"], "host-b", "{page}");
    assert_eq!(page["deployments"][0]["result"], "deployed");
    // Delivered once: a second flush sends nothing more.
    host.deploy_hvt("report").envs(host_b).assert().code(0);
    assert_eq!(
        get_json(&format!("{}/job/web/deployments", s.url)).json()["history"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}
