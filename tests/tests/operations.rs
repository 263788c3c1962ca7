//! Operating the repository (issue 12, CONTRACT.md §3, §8): the admin
//! commands run against the data directory of a running server, as an
//! operator runs them: jobs and builds listed and removed, retention that
//! keeps `/hash` answering, jobs created on purpose, report-only grants,
//! password changes, key files that say what they are, and read-only
//! commands that never create a repository.

use std::path::Path;

use ukrepo_tests::bins::cmd;
use ukrepo_tests::server::*;

fn admin(data: &Path) -> assert_cmd::Command {
    let mut c = cmd("unikernel-repo");
    c.arg("--data-dir").arg(data).envs(ukrepo_tests::backend::env(data));
    c
}

fn builds(s: &Server, job: &str) -> Vec<serde_json::Value> {
    get_json(&format!("{}/job/{job}", s.url)).json()["builds"]
        .as_array()
        .unwrap()
        .clone()
}

/// Bytes in the server's store (files under the data dir, or the bucket).
fn stored_bytes(s: &Server) -> u64 {
    let store = s.store();
    store
        .list()
        .unwrap()
        .iter()
        .map(|(sha, _)| store.size_of(sha).unwrap().unwrap_or(0))
        .sum()
}

fn up(s: &Server, job: &str, platform: &str, bytes: &[u8]) -> serde_json::Value {
    let url = format!("{}/job/{job}/platform/{platform}/upload?binary_name=x.hvt", s.url);
    let r = agent()
        .post(&url)
        .header("Authorization", basic("ci", "pw"))
        .send(bytes)
        .unwrap();
    assert_eq!(r.status(), 201);
    serde_json::from_reader(r.into_body().into_reader()).unwrap()
}

#[test]
fn jobs_and_builds_are_listed_and_removed_while_the_server_runs() {
    let s = start();
    s.add_user("ci", "pw", true);
    let shared = vec![1u8; 100_000];
    let a1 = up(&s, "alpha", "p", &shared);
    let a2 = up(&s, "alpha", "p", &[2u8; 100_000]);
    let b1 = up(&s, "beta", "p", &shared);
    let data = s.data.path();

    let out = admin(data).args(["job", "list"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("alpha\t2 builds") && text.contains("beta\t1 builds"),
        "{text}"
    );
    let json: serde_json::Value =
        serde_json::from_slice(&admin(data).args(["job", "list", "--json"]).output().unwrap().stdout).unwrap();
    assert_eq!(json.as_array().unwrap().len(), 2);
    let out = admin(data).args(["build", "list", "alpha"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let a2_uuid = a2["uuid"].as_str().unwrap();
    assert!(
        text.lines().next().unwrap().starts_with(a2_uuid),
        "newest first: {text}"
    );

    // Removing a build: it answers 404, the other job's copy of the shared blob stays.
    let a1_uuid = a1["uuid"].as_str().unwrap();
    admin(data).args(["build", "remove", a1_uuid]).assert().success();
    assert_eq!(get_json(&format!("{}/job/alpha/build/{a1_uuid}", s.url)).status, 404);
    let b1_file = format!("{}/job/beta/build/{}/f/bin/x.hvt", s.url, b1["uuid"].as_str().unwrap());
    assert_eq!(get(&b1_file, &[]).body, shared, "a blob another build uses stays");

    // Removing a job: its builds go, and the blob no build uses any more goes too.
    let files_before = s.blob_count();
    admin(data).args(["job", "remove", "beta"]).assert().success();
    assert_eq!(get_json(&format!("{}/job/beta", s.url)).status, 404);
    assert_eq!(s.blob_count(), files_before - 1);
    assert_eq!(builds(&s, "alpha").len(), 1);
    admin(data)
        .args(["build", "remove", a1_uuid])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("no build"));
}

#[test]
fn vacuum_drops_old_files_keeps_hash_and_latest_and_frees_space() {
    let s = start();
    s.add_user("ci", "pw", true);
    let data = s.data.path();
    let mut web = Vec::new();
    for i in 0..4u8 {
        web.push(up(&s, "web", "p", &vec![i; 200_000]));
    }
    // Another platform's only build is its latest: never vacuumed.
    let other = up(&s, "web", "q", &[9u8; 200_000]);
    let oldest = &web[0];
    let oldest_sha = oldest["main_binary_file"]["sha256"].as_str().unwrap();
    let oldest_file = format!(
        "{}/job/web/build/{}/f/bin/x.hvt",
        s.url,
        oldest["uuid"].as_str().unwrap()
    );

    // Dry run: says what would go, changes nothing.
    let before = stored_bytes(&s);
    let out = admin(data)
        .args(["vacuum", "--keep", "2", "--dry-run", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["builds"].as_array().unwrap().len(), 2, "{report}");
    assert!(report["bytes_freed"].as_u64().unwrap() >= 400_000, "{report}");
    assert_eq!(stored_bytes(&s), before);
    assert_eq!(get(&oldest_file, &[]).status, 200);

    admin(data).args(["vacuum", "--keep", "2"]).assert().success();
    assert!(stored_bytes(&s) <= before - 400_000, "disk usage falls");
    let r = get(&oldest_file, &[]);
    assert_eq!(r.status, 410, "{}", r.text());
    assert!(r.text().contains("vacuum"), "{}", r.text());
    // /hash still maps the old image to its build (albatross relies on it).
    let r = get(&format!("{}/hash?sha256={oldest_sha}", s.url), &[]);
    assert_eq!(r.status, 302);
    assert_eq!(
        r.header("location").unwrap(),
        format!("/job/web/build/{}", oldest["uuid"].as_str().unwrap())
    );
    // The build page still answers, and the job page marks it.
    let page = get_json(&format!("{}/job/web/build/{}", s.url, oldest["uuid"].as_str().unwrap()));
    assert_eq!(page.status, 200);
    assert_eq!(page.json()["main_binary_file"]["sha256"], oldest_sha);
    assert!(page.json()["vacuumed"].is_string(), "{}", page.text());
    let list = builds(&s, "web");
    let marked: Vec<bool> = list.iter().map(|b| b["vacuumed"].as_bool().unwrap()).collect();
    assert_eq!(marked.iter().filter(|v| **v).count(), 2, "{list:?}");
    // The newest two of platform p and the only build of q keep their files.
    for b in [&web[2], &web[3], &other] {
        let f = format!("{}/job/web/build/{}/f/bin/x.hvt", s.url, b["uuid"].as_str().unwrap());
        assert_eq!(get(&f, &[]).status, 200);
    }
    admin(data)
        .args(["vacuum"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("--keep"));
}

#[test]
fn serve_keep_builds_vacuums_after_each_upload() {
    let s = start_with(|c| c.keep_builds = Some(1));
    s.add_user("ci", "pw", true);
    let first = up(&s, "web", "p", &[1u8; 50_000]);
    let second = up(&s, "web", "p", &[2u8; 50_000]);
    let f = |b: &serde_json::Value| format!("{}/job/web/build/{}/f/bin/x.hvt", s.url, b["uuid"].as_str().unwrap());
    assert_eq!(get(&f(&first), &[]).status, 410);
    assert_eq!(get(&f(&second), &[]).status, 200);
    assert_eq!(s.blob_count(), 1);
    let latest = get(&format!("{}/job/web/build/latest", s.url), &[]);
    assert_eq!(
        latest.header("location").unwrap(),
        format!("/job/web/build/{}", second["uuid"].as_str().unwrap())
    );
}

#[test]
fn jobs_are_created_on_purpose_and_report_only_grants_cannot_upload() {
    let s = start();
    s.add_user_with(
        "ci",
        "pw",
        unikernel_repo::db::users::Rights {
            unrestricted: true,
            create_jobs: false,
        },
    );
    s.add_user_with(
        "maker",
        "pw",
        unikernel_repo::db::users::Rights {
            unrestricted: true,
            create_jobs: true,
        },
    );
    let r = upload_raw(&s.url, "typo-job", "x", b"img", Some(&basic("ci", "pw")), &[]);
    assert_eq!(r.status, 404, "{}", r.text());
    assert!(r.text().contains("unikernel-repo job add typo-job"), "{}", r.text());
    assert_eq!(
        upload_raw(&s.url, "new-job", "x", b"img", Some(&basic("maker", "pw")), &[]).status,
        201
    );
    admin(s.data.path()).args(["job", "add", "typo-job"]).assert().success();
    assert_eq!(
        upload_raw(&s.url, "typo-job", "x", b"img", Some(&basic("ci", "pw")), &[]).status,
        201
    );

    // A host account: reports yes, uploads no.
    s.add_user("host-a", "pw", false);
    admin(s.data.path())
        .args(["access", "add", "host-a", "new-job", "--report-only"])
        .assert()
        .success();
    admin(s.data.path())
        .args(["access", "add", "host-a", "no-such-job"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("job add no-such-job"));
    let r = upload_raw(&s.url, "new-job", "x", b"other", Some(&basic("host-a", "pw")), &[]);
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(r.text().contains("report"), "{}", r.text());
    let build = get_json(&format!("{}/job/new-job/build/latest", s.url));
    let loc = get(
        &format!("{}{}", s.url, build.header("location").unwrap()),
        &[("Accept", "application/json")],
    )
    .json();
    let report = serde_json::json!({
        "host": "host-a", "sha256": loc["main_binary_file"]["sha256"], "result": "deployed",
        "action": "deploy", "message": "ok", "started": "2026-01-01T00:00:00Z", "finished": "2026-01-01T00:00:01Z"
    });
    let r = agent()
        .post(format!(
            "{}/job/new-job/build/{}/deployments",
            s.url,
            loc["uuid"].as_str().unwrap()
        ))
        .header("Authorization", basic("host-a", "pw"))
        .header("Content-Type", "application/json")
        .send(report.to_string().as_bytes())
        .unwrap();
    assert_eq!(r.status(), 201);
    let list = admin(s.data.path()).args(["user", "list"]).output().unwrap();
    assert!(String::from_utf8_lossy(&list.stdout).contains("host-a\tjobs: ; reports: new-job"));
}

#[test]
fn user_passwd_replaces_the_password() {
    let s = start();
    s.add_user("ci", "old-pw", true);
    let data = s.data.path();
    admin(data)
        .args(["user", "passwd", "ci"])
        .write_stdin("new-pw\n")
        .assert()
        .success();
    assert_eq!(
        upload_raw(&s.url, "web", "x", b"1", Some(&basic("ci", "old-pw")), &[]).status,
        401
    );
    assert_eq!(
        upload_raw(&s.url, "web", "x", b"1", Some(&basic("ci", "new-pw")), &[]).status,
        201
    );
    admin(data)
        .args(["user", "passwd", "nobody"])
        .write_stdin("x\n")
        .assert()
        .code(2)
        .stderr(predicates::str::contains("no user"));
}

#[test]
fn read_only_commands_refuse_a_missing_data_dir_and_create_nothing() {
    let d = tempfile::tempdir().unwrap();
    let missing = d.path().join("typo");
    // On PostgreSQL the repository is the database: an empty one is refused
    // the same way (and the data directory is still not created).
    let refusal = match ukrepo_tests::backend::Backend::current() {
        ukrepo_tests::backend::Backend::PostgresS3 => "holds no repository",
        _ => "not a repository data directory",
    };
    for args in [
        &["user", "list"][..],
        &["job", "list"],
        &["build", "list", "web"],
        &["vacuum", "--keep", "1"],
        &["access", "add", "a", "web"],
        &["user", "disable", "a"],
    ] {
        admin(&missing)
            .args(args)
            .assert()
            .code(2)
            .stderr(predicates::str::contains(refusal));
        assert!(!missing.exists(), "{args:?} created {}", missing.display());
    }
}

#[test]
fn key_files_say_what_they_are_and_the_wrong_kind_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let (sk, pk) = ukrepo_tests::bins::keygen(d.path(), "token");
    assert!(
        std::fs::read_to_string(&sk)
            .unwrap()
            .starts_with("# ukrepo token secret key")
    );
    assert!(
        std::fs::read_to_string(&pk)
            .unwrap()
            .starts_with("# ukrepo token public key")
    );
    cmd("unikernel-repo")
        .args(["token", "mint", "--job", "web", "--scope", "upload", "--key"])
        .arg(&pk)
        .assert()
        .code(2)
        .stderr(predicates::str::contains(
            "this is a token public key, but a secret key is needed",
        ));
    let data = d.path().join("data");
    cmd("unikernel-repo")
        .arg("--data-dir")
        .arg(&data)
        .args(["serve", "--listen", "127.0.0.1:0", "--token-public-key"])
        .arg(&sk)
        .assert()
        .code(2)
        .stderr(predicates::str::contains(
            "this is a token secret key, but a public key is needed",
        ));
    // And the right ones work.
    cmd("unikernel-repo")
        .args(["token", "mint", "--job", "web", "--scope", "upload", "--key"])
        .arg(&sk)
        .assert()
        .success()
        .stdout(predicates::str::starts_with("ukrepo.v1."));
}
