//! `fetch-latest` against a lying server: every failure must exit 2, leave
//! the output untouched and leave no temporary file; transient failures
//! (500s, a cut connection) are retried and resumed with `Range`.

use std::path::Path;

use ukrepo_tests::bins::cmd;
use ukrepo_tests::hostile::{Reply, build_json, start};
use ukrepo_tests::server::sha256_hex;

fn image() -> Vec<u8> {
    (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect()
}

/// Runs fetch-latest into a directory that already holds an old image.
fn fetch(url: &str, dir: &Path) -> assert_cmd::assert::Assert {
    std::fs::write(dir.join("web.hvt"), b"old image").unwrap();
    cmd("fetch-latest")
        .args(["--url", url, "--job", "web", "--retries", "2", "--output"])
        .arg(dir.join("web.hvt"))
        .assert()
}

fn assert_untouched(dir: &Path) {
    assert_eq!(std::fs::read(dir.join("web.hvt")).unwrap(), b"old image");
    let names: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        names,
        vec![std::ffi::OsString::from("web.hvt")],
        "temporary files left behind"
    );
}

#[test]
fn truncated_body_every_time_fails_cleanly() {
    let img = image();
    let s = start(build_json("web", &sha256_hex(&img), img.len() as u64), move |req| {
        let start = req.range_start.unwrap_or(0) as usize;
        let mut r = Reply::new(if start > 0 { 206 } else { 200 }, img[start..].to_vec());
        r.cut_after = Some(1000);
        r
    });
    let d = tempfile::tempdir().unwrap();
    fetch(&s.url, d.path())
        .code(2)
        .stderr(predicates::str::contains("cut short"));
    assert_untouched(d.path());
    assert_eq!(
        s.file_requests.load(std::sync::atomic::Ordering::SeqCst),
        3,
        "1 try + 2 retries"
    );
}

#[test]
fn truncated_once_then_resumed_with_range() {
    let img = image();
    let full = img.clone();
    let s = start(build_json("web", &sha256_hex(&img), img.len() as u64), move |req| {
        if req.nth == 0 {
            let mut r = Reply::new(200, img.clone());
            r.cut_after = Some(70_000);
            return r;
        }
        let start = req.range_start.expect("the second request resumes with Range") as usize;
        assert_eq!(start, 70_000);
        let mut r = Reply::new(206, img[start..].to_vec());
        r.headers.push((
            "Content-Range".into(),
            format!("bytes {start}-{}/{}", img.len() - 1, img.len()),
        ));
        r
    });
    let d = tempfile::tempdir().unwrap();
    fetch(&s.url, d.path()).code(0).stdout(format!(
        "{}  {}\n",
        sha256_hex(&full),
        d.path().join("web.hvt").display()
    ));
    assert_eq!(std::fs::read(d.path().join("web.hvt")).unwrap(), full);
}

#[test]
fn one_flipped_byte_is_refused() {
    let img = image();
    let sha = sha256_hex(&img);
    let s = start(build_json("web", &sha, img.len() as u64), move |_| {
        let mut bad = img.clone();
        bad[12345] ^= 1;
        Reply::new(200, bad)
    });
    let d = tempfile::tempdir().unwrap();
    fetch(&s.url, d.path())
        .code(2)
        .stderr(predicates::str::contains(format!("the build says {sha}")));
    assert_untouched(d.path());
}

#[test]
fn wrong_content_length_is_refused() {
    let img = image();
    let s = start(build_json("web", &sha256_hex(&img), img.len() as u64), move |_| {
        let mut r = Reply::new(200, img[..150_000].to_vec());
        r.headers = vec![("Content-Length".into(), "150000".into())];
        r
    });
    let d = tempfile::tempdir().unwrap();
    fetch(&s.url, d.path()).code(2).stderr(predicates::str::contains(
        "announces 150000 bytes but the build says 200000",
    ));
    assert_untouched(d.path());
}

#[test]
fn json_with_a_wrong_sha256_is_refused() {
    let img = image();
    let wrong = sha256_hex(b"something else");
    let s = start(build_json("web", &wrong, img.len() as u64), move |_| {
        Reply::new(200, img.clone())
    });
    let d = tempfile::tempdir().unwrap();
    fetch(&s.url, d.path())
        .code(2)
        .stderr(predicates::str::contains(format!("the build says {wrong}")));
    assert_untouched(d.path());
}

#[test]
fn server_errors_then_success_is_retried() {
    let img = image();
    let full = img.clone();
    let s = start(build_json("web", &sha256_hex(&img), img.len() as u64), move |req| {
        if req.nth < 2 {
            Reply::new(500, b"{\"error\":\"internal error\"}".to_vec())
        } else {
            Reply::new(200, img.clone())
        }
    });
    let d = tempfile::tempdir().unwrap();
    fetch(&s.url, d.path()).code(0);
    assert_eq!(std::fs::read(d.path().join("web.hvt")).unwrap(), full);
}

#[test]
fn server_errors_forever_exit_2() {
    let img = image();
    let s = start(build_json("web", &sha256_hex(&img), img.len() as u64), |_| {
        Reply::new(503, b"busy".to_vec())
    });
    let d = tempfile::tempdir().unwrap();
    fetch(&s.url, d.path())
        .code(2)
        .stderr(predicates::str::contains("the server answered 503"));
    assert_untouched(d.path());
}
