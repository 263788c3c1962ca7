//! Two replicas over one PostgreSQL database and one S3 bucket (CONTRACT.md
//! §9), each with its own data dir, as real processes: what one commits
//! the other serves, a long-poll on one wakes when the other commits, and
//! a replica killed mid-upload leaves nothing the other shows.

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use ukrepo_tests::backend::{Backend, Instance, admin, spawn};
use ukrepo_tests::bins::wait_for;
use ukrepo_tests::process::RepoProcess;
use ukrepo_tests::server::*;
use ukrepo_tests::services::skip_scale;

fn image(n: u8, len: usize) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(13).wrapping_add(n)).collect()
}

/// Replicas A and B sharing a fresh database and bucket, with user `ci`.
fn pair() -> (Instance, RepoProcess, RepoProcess, [tempfile::TempDir; 2]) {
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let shared = Instance::new(Backend::PostgresS3, dirs[0].path());
    admin(
        &shared,
        dirs[0].path(),
        &["user", "add", "ci", "--unrestricted", "--create-jobs"],
        "pw\n",
    );
    let a = spawn(&shared, dirs[0].path(), &[]);
    let b = spawn(&shared, dirs[1].path(), &[]);
    (shared, a, b, dirs)
}

#[test]
fn upload_through_one_replica_read_through_the_other() {
    if skip_scale("replicas") {
        return;
    }
    let (_shared, a, b, _dirs) = pair();
    let auth = basic("ci", "pw");
    let img = image(1, 3 << 20);
    let up = upload_raw(&a.url, "web", "web.hvt", &img, Some(&auth), &[]);
    assert_eq!(up.status, 201, "{}", up.text());
    let uuid = up.json()["uuid"].as_str().unwrap().to_owned();

    let l = get(&format!("{}/job/web/build/latest", b.url), &[]);
    assert_eq!(
        (l.status, l.header("location")),
        (307, Some(format!("/job/web/build/{uuid}").as_str())),
        "B names A's build as the latest"
    );
    let f = get(&format!("{}/job/web/build/{uuid}/f/bin/web.hvt", b.url), &[]);
    assert_eq!(f.status, 200);
    assert_eq!(sha256_hex(&f.body), sha256_hex(&img), "B serves A's bytes");
    assert_eq!(f.header("etag"), Some(format!("\"{}\"", sha256_hex(&img)).as_str()));
    let part = get(
        &format!("{}/job/web/build/{uuid}/f/bin/web.hvt", b.url),
        &[("Range", "bytes=100-199")],
    );
    assert_eq!((part.status, &part.body[..]), (206, &img[100..200]));

    // And the other way round: B's upload is A's latest at once (A's
    // cached `latest`, fresh for 2 s, was made stale by B's commit).
    let l = get(&format!("{}/job/web/build/latest", a.url), &[]);
    assert_eq!(l.header("location"), Some(format!("/job/web/build/{uuid}").as_str()));
    let img2 = image(2, 1000);
    let up2 = upload_raw(&b.url, "web", "web.hvt", &img2, Some(&auth), &[]);
    assert_eq!(up2.status, 201, "{}", up2.text());
    let uuid2 = up2.json()["uuid"].as_str().unwrap().to_owned();
    let l = get(&format!("{}/job/web/build/latest", a.url), &[]);
    assert_eq!(l.header("location"), Some(format!("/job/web/build/{uuid2}").as_str()));
}

#[test]
fn a_long_poll_on_one_replica_wakes_on_a_commit_through_the_other() {
    if skip_scale("replicas") {
        return;
    }
    let (_shared, a, b, _dirs) = pair();
    let auth = basic("ci", "pw");
    let first = image(1, 5000);
    assert_eq!(
        upload_raw(&a.url, "web", "web.hvt", &first, Some(&auth), &[]).status,
        201
    );

    let url = format!("{}/job/web/build/latest?wait=60&current={}", b.url, sha256_hex(&first));
    let waiter = std::thread::spawn(move || {
        let r = get(&url, &[]);
        (r.status, r.header("location").map(str::to_owned), Instant::now())
    });
    wait_for("the long-poll to wait on B", Duration::from_secs(20), || {
        b.metric("ukrepo_waiters") == 1
    });
    let up = upload_raw(&a.url, "web", "web.hvt", &image(2, 5000), Some(&auth), &[]);
    let committed = Instant::now();
    assert_eq!(up.status, 201);
    let uuid = up.json()["uuid"].as_str().unwrap().to_owned();
    let (status, location, woke) = waiter.join().unwrap();
    assert_eq!(
        (status, location.as_deref()),
        (307, Some(format!("/job/web/build/{uuid}").as_str()))
    );
    let after = woke.saturating_duration_since(committed);
    assert!(
        after < Duration::from_secs(1),
        "B's waiter woke {after:?} after A's commit"
    );
}

#[test]
fn a_replica_killed_mid_upload_leaves_no_partial_build_on_the_other() {
    if skip_scale("replicas") {
        return;
    }
    let (_shared, mut a, b, dirs) = pair();
    let auth = basic("ci", "pw");
    assert_eq!(
        upload_raw(&a.url, "web", "web.hvt", &image(1, 1000), Some(&auth), &[]).status,
        201
    );
    let before = get_json(&format!("{}/job/web", b.url)).json();

    // Half an upload to A: headers and 2 of 4 MiB.
    let mut half = TcpStream::connect(&a.addr).unwrap();
    write!(
        half,
        "POST /job/web/platform/p/upload?binary_name=web.hvt HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nContent-Length: {}\r\n\r\n",
        4 << 20
    )
    .unwrap();
    half.write_all(&vec![7u8; 2 << 20]).unwrap();
    let staging = dirs[0].path().join("staging");
    wait_for("A to stage the half upload", Duration::from_secs(20), || {
        std::fs::read_dir(&staging)
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .any(|e| e.metadata().is_ok_and(|m| m.len() >= 1 << 20))
            })
            .unwrap_or(false)
    });
    a.child.kill().unwrap(); // SIGKILL
    a.child.wait().unwrap();

    let after = get_json(&format!("{}/job/web", b.url)).json();
    assert_eq!(after, before, "B shows no trace of the killed upload");
    let l = get(&format!("{}/job/web/build/latest", b.url), &[]);
    assert_eq!(
        l.header("location"),
        before["builds"][0]["uuid"]
            .as_str()
            .map(|u| format!("/job/web/build/{u}"))
            .as_deref()
    );
    // B still takes uploads.
    assert_eq!(
        upload_raw(&b.url, "web", "web.hvt", &image(3, 1000), Some(&auth), &[]).status,
        201
    );
}

#[test]
fn the_start_up_sweep_spares_young_blobs_of_a_shared_bucket() {
    if skip_scale("replicas") {
        return;
    }
    let data = tempfile::tempdir().unwrap();
    let shared = Instance::new(Backend::PostgresS3, data.path());
    let staging = data.path().join("staging");
    std::fs::create_dir_all(&staging).unwrap();
    let store = shared.store.open(&staging).unwrap();
    // A blob no build references: another replica's upload, not committed yet.
    let mut f = store.begin().unwrap();
    f.write_all(b"stored, not yet committed").unwrap();
    let staged = f.finish().unwrap();
    let sha = staged.sha256;
    store.put(staged).unwrap();

    drop(spawn(&shared, data.path(), &[]));
    assert!(store.exists(&sha).unwrap(), "a young blob survives a replica's start");
    drop(spawn(&shared, data.path(), &["--orphan-grace", "0s"]));
    assert!(!store.exists(&sha).unwrap(), "past the grace period it goes");
}
