//! `unikernel-repo migrate` (CONTRACT.md §9) from the embedded default to
//! PostgreSQL + S3: every build (vacuumed ones too), user, grant and report
//! arrives, a server on the copy answers exactly as the original did, and
//! every blob it serves verifies; a second run resumes (copies nothing); a
//! blob whose bytes do not match its digest is refused.

use ukrepo_tests::backend::{Backend, Instance, admin, engines, spawn};
use ukrepo_tests::bins::cmd;
use ukrepo_tests::server::*;
use ukrepo_tests::services::skip_scale;

/// Every JSON answer of a repository a client can see, bytes verified.
fn snapshot(url: &str) -> Vec<serde_json::Value> {
    let mut out = vec![get_json(&format!("{url}/")).json()];
    for job in out[0]["jobs"].as_array().unwrap().clone() {
        let name = job["name"].as_str().unwrap();
        let builds = get_json(&format!("{url}/job/{name}")).json();
        for b in builds["builds"].as_array().unwrap() {
            let uuid = b["uuid"].as_str().unwrap();
            let build = get_json(&format!("{url}/job/{name}/build/{uuid}")).json();
            for a in build["artifacts"].as_array().unwrap() {
                let f = get(
                    &format!("{url}/job/{name}/build/{uuid}/f/{}", a["filepath"].as_str().unwrap()),
                    &[],
                );
                if build["vacuumed"].is_string() {
                    assert_eq!(f.status, 410);
                    continue;
                }
                assert_eq!(f.status, 200, "{name} {uuid} {}", a["filepath"]);
                assert_eq!(sha256_hex(&f.body), a["sha256"].as_str().unwrap(), "blob verifies");
            }
            out.push(build);
        }
        out.push(builds);
        out.push(get_json(&format!("{url}/job/{name}/deployments")).json());
        out.push(serde_json::json!(
            get(&format!("{url}/job/{name}/build/latest"), &[]).header("location")
        ));
    }
    out
}

fn report(url: &str, job: &str, uuid: &str, sha: &str, auth: &str) {
    let body = serde_json::json!({
        "host": "host-1", "sha256": sha, "result": "deployed", "action": "deploy", "message": "ok",
        "started": "2026-01-01T00:00:00Z", "finished": "2026-01-01T00:00:05Z"
    });
    let r = agent()
        .post(format!("{url}/job/{job}/build/{uuid}/deployments"))
        .header("Authorization", auth)
        .header("Content-Type", "application/json")
        .send(body.to_string())
        .unwrap();
    assert_eq!(r.status(), 201);
}

#[test]
fn migrate_from_the_default_to_postgres_and_s3() {
    if skip_scale("migrate") {
        return;
    }
    let src_dir = tempfile::tempdir().unwrap();
    let src = Instance::new(Backend::Default, src_dir.path());
    for (user, flags) in [
        ("ci", &["--unrestricted", "--create-jobs"][..]),
        ("alice", &[][..]),
        ("host", &[][..]),
    ] {
        let mut args = vec!["user", "add", user];
        args.extend(flags);
        admin(&src, src_dir.path(), &args, &format!("{user}-pw\n"));
    }
    admin(&src, src_dir.path(), &["job", "add", "web"], "");
    admin(&src, src_dir.path(), &["access", "add", "alice", "web"], "");
    admin(
        &src,
        src_dir.path(),
        &["access", "add", "host", "web", "--report-only"],
        "",
    );
    admin(&src, src_dir.path(), &["user", "disable", "alice"], "");

    let server = spawn(&src, src_dir.path(), &[]);
    let ci = basic("ci", "ci-pw");
    let mut last = None;
    for i in 0..4u8 {
        let img = vec![i; 100_000 + usize::from(i)];
        let parts: [(&str, Option<&str>, &[u8]); 3] = [
            ("binary", Some("web.hvt"), &img),
            ("console", None, b"booted\n"),
            ("synopsis", None, b"the web server"),
        ];
        let up = upload_multipart(&server.url, "web", "", &parts, &ci);
        assert_eq!(up.status, 201, "{}", up.text());
        last = Some(up.json());
    }
    let other = upload_raw(&server.url, "dns", "dns.hvt", &vec![9u8; 5000], Some(&ci), &[]);
    assert_eq!(other.status, 201);
    let last = last.unwrap();
    report(
        &server.url,
        "web",
        last["uuid"].as_str().unwrap(),
        last["main_binary_file"]["sha256"].as_str().unwrap(),
        &basic("host", "host-pw"),
    );
    admin(&src, src_dir.path(), &["vacuum", "--keep", "2"], "");
    let before = snapshot(&server.url);
    assert!(
        before.iter().any(|v| v["vacuumed"].is_string()),
        "a vacuumed build is copied too"
    );
    let users_before = admin(&src, src_dir.path(), &["user", "list", "--json"], "");
    drop(server);

    let e = engines();
    let (db, bucket) = (e.postgres.create_database(), e.s3.create_bucket());
    let store = format!("s3://{bucket}/copy");
    let migrate = |db: &str| {
        cmd("unikernel-repo")
            .arg("--data-dir")
            .arg(src_dir.path())
            .args(["migrate", "--to-database-url", db, "--to-store-url", &store])
            .envs(e.s3.env())
            .output()
            .unwrap()
    };
    let out = migrate(&db);
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{log}");
    assert!(log.contains("copied and verified"), "{log}");
    // Resumable: a second run finds every blob there and changes nothing.
    let again = migrate(&db);
    let log = String::from_utf8_lossy(&again.stderr).into_owned();
    assert!(again.status.success(), "{log}");
    assert!(log.contains("0 blobs copied") && log.contains("already there"), "{log}");

    let dst = Instance {
        database: unikernel_repo::db::DbUrl::Postgres(db.clone()),
        store: unikernel_repo::store::StoreUrl::parse(&store).unwrap(),
        env: {
            let mut env = e.s3.env();
            env.push(("UKREPO_DATABASE_URL".into(), db.clone()));
            env.push(("UKREPO_STORE_URL".into(), store.clone()));
            env
        },
    };
    let dst_dir = tempfile::tempdir().unwrap();
    let copy = spawn(&dst, dst_dir.path(), &[]);
    assert_eq!(snapshot(&copy.url), before, "the copy answers as the original");
    assert_eq!(
        admin(&dst, dst_dir.path(), &["user", "list", "--json"], ""),
        users_before
    );
    // Passwords and grants work on the copy; new builds continue after the copied ones.
    let up = upload_raw(&copy.url, "web", "web.hvt", &vec![42u8; 1000], Some(&ci), &[]);
    assert_eq!(up.status, 201, "{}", up.text());
    let alice = upload_raw(
        &copy.url,
        "web",
        "web.hvt",
        &[1],
        Some(&basic("alice", "alice-pw")),
        &[],
    );
    assert_eq!(alice.status, 401, "alice stays disabled");
    let l = get(&format!("{}/job/web/build/latest", copy.url), &[]);
    assert_eq!(
        l.header("location"),
        Some(format!("/job/web/build/{}", up.json()["uuid"].as_str().unwrap()).as_str())
    );

    // A blob whose bytes changed on disk is refused, and nothing is committed.
    let victim = last["main_binary_file"]["sha256"].as_str().unwrap();
    let path = src_dir.path().join("artifacts").join(&victim[..2]).join(victim);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[0] ^= 1;
    std::fs::write(&path, bytes).unwrap();
    let fresh = e.postgres.create_database();
    let bad = cmd("unikernel-repo")
        .arg("--data-dir")
        .arg(src_dir.path())
        .args([
            "migrate",
            "--to-database-url",
            &fresh,
            "--to-store-url",
            &format!("s3://{}/x", e.s3.create_bucket()),
        ])
        .envs(e.s3.env())
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(bad.status.code(), Some(2), "{log}");
    assert!(log.contains(victim) && log.contains("not copied"), "{log}");
    let probe = Instance {
        database: unikernel_repo::db::DbUrl::Postgres(fresh),
        store: unikernel_repo::store::StoreUrl::parse("s3://unused").unwrap(),
        env: vec![],
    };
    let mut conn = probe.database.open().unwrap();
    let n = unikernel_repo::db::sql::query_one(conn.as_mut(), "SELECT COUNT(*) FROM builds", &[]).unwrap();
    assert_eq!(n.int(0).unwrap(), 0, "no row was copied");
}
