//! Crash safety: the server runs as a child process, is killed with SIGKILL
//! while uploads are in flight (one of them provably half-staged), and is
//! restarted on the same data dir. Every build it then lists must be
//! complete and hash-correct, and no staging debris may remain.

use ukrepo_tests::bins::{add_user_cli, spawn_server, wait_for};
use ukrepo_tests::server::*;

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

#[test]
fn sigkill_during_uploads_leaves_only_complete_builds() {
    let data = tempfile::tempdir().unwrap();
    add_user_cli(data.path(), "ci", "pw");

    let (mut child, url) = spawn_server(data.path());
    let auth = basic("ci", "pw");

    // Some complete builds first.
    for i in 0..3u8 {
        assert_eq!(
            upload_raw(&url, "crash", "x.hvt", &vec![i; 200_000], Some(&auth), &[]).status,
            201
        );
    }
    // Background uploaders keep the server busy until it dies.
    let uploaders: Vec<_> = (0..3u8)
        .map(|t| {
            let (url, auth) = (url.clone(), auth.clone());
            std::thread::spawn(move || {
                for i in 0..1000u32 {
                    let img: Vec<u8> = (0..1_000_000u32).map(|j| (j ^ i) as u8 ^ t).collect();
                    let r = agent()
                        .post(format!("{url}/job/crash/platform/p/upload?binary_name=x.hvt"))
                        .header("Authorization", &auth)
                        .send(&img[..]);
                    if r.is_err() {
                        return;
                    }
                }
            })
        })
        .collect();
    // And one upload provably half-staged: headers and half the body sent.
    let addr = url.trim_start_matches("http://");
    let mut half = TcpStream::connect(addr).unwrap();
    write!(
        half,
        "POST /job/crash/platform/p/upload?binary_name=x.hvt HTTP/1.1\r\nHost: {addr}\r\nAuthorization: {auth}\r\nContent-Length: 2000000\r\n\r\n"
    )
    .unwrap();
    half.write_all(&vec![9u8; 1_000_000]).unwrap();
    let staging = data.path().join("staging");
    wait_for("a staging file of the half upload", Duration::from_secs(20), || {
        std::fs::read_dir(&staging)
            .unwrap()
            .filter_map(|e| e.ok())
            .any(|e| e.metadata().map(|m| m.len() >= 500_000).unwrap_or(false))
    });

    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    for u in uploaders {
        u.join().unwrap();
    }
    assert!(
        std::fs::read_dir(&staging).unwrap().count() > 0,
        "the kill left staging debris to clean"
    );

    let (mut child, url) = spawn_server(data.path());
    assert_eq!(
        std::fs::read_dir(&staging).unwrap().count(),
        0,
        "staging debris removed at start"
    );
    let job = get_json(&format!("{url}/job/crash")).json();
    let builds = job["builds"].as_array().unwrap();
    assert!(builds.len() >= 3, "the committed builds survive: {job}");
    for b in builds {
        let uuid = b["uuid"].as_str().unwrap();
        let json = get_json(&format!("{url}/job/crash/build/{uuid}")).json();
        for a in json["artifacts"].as_array().unwrap() {
            let f = get(
                &format!("{url}/job/crash/build/{uuid}/f/{}", a["filepath"].as_str().unwrap()),
                &[],
            );
            assert_eq!(f.status, 200, "build {uuid}");
            assert_eq!(f.body.len() as u64, a["size"].as_u64().unwrap(), "build {uuid} size");
            assert_eq!(
                sha256_hex(&f.body),
                a["sha256"].as_str().unwrap(),
                "build {uuid} digest"
            );
            // Only whole images the uploaders sent became builds: the half
            // upload (all 9s) never did, and nothing was cut short.
            assert!(
                [200_000, 1_000_000].contains(&f.body.len()),
                "build {uuid} has {} bytes",
                f.body.len()
            );
            assert!(!f.body.iter().all(|&x| x == 9), "the half upload became build {uuid}");
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
}
