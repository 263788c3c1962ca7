//! Hostile inputs against the running server (CONTRACT.md §2: "Nothing a
//! client sends makes the server panic or serve a partial build"). Each case
//! is sent as raw bytes, so that nothing is normalised on the way, and is
//! checked for its status code; after all of them the build list is
//! unchanged, no staging file is left, and the server still answers. The
//! README's security section lists these cases.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use ukrepo_tests::server::*;

/// Sends `req` and returns the status code of the answer (0: the server
/// closed the connection without answering).
fn send(addr: &str, req: &[u8], half_close: bool) -> u16 {
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let _ = c.write_all(req);
    if half_close {
        let _ = c.shutdown(Shutdown::Write);
    }
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !buf.windows(2).any(|w| w == b"\r\n") {
        match c.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let line = String::from_utf8_lossy(&buf);
    line.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0)
}

fn post(path: &str, auth: &str, headers: &str, body: &[u8]) -> Vec<u8> {
    let mut r = format!("POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nContent-Length: {}\r\n{headers}Connection: close\r\n\r\n", body.len())
        .into_bytes();
    r.extend_from_slice(body);
    r
}

fn get_req(path: &str, headers: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: x\r\n{headers}Connection: close\r\n\r\n").into_bytes()
}

fn multipart_body(parts: &[(&[u8], &[u8])], close: bool) -> (String, Vec<u8>) {
    let b = "XyZzY";
    let mut body = Vec::new();
    for (name, data) in parts {
        body.extend_from_slice(format!("--{b}\r\nContent-Disposition: form-data; name=\"").as_bytes());
        body.extend_from_slice(name);
        body.extend_from_slice(b"\"; filename=\"f\"\r\n\r\n");
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n");
    }
    if close {
        body.extend_from_slice(format!("--{b}--\r\n").as_bytes());
    }
    (format!("Content-Type: multipart/form-data; boundary={b}\r\n"), body)
}

#[test]
fn forty_odd_hostile_requests_change_nothing() {
    let s = start_with(|c| {
        c.max_upload = 100_000;
        c.max_failed_logins = 10_000;
        c.header_timeout = Duration::from_secs(1);
        c.body_idle_timeout = Duration::from_secs(1);
    });
    s.add_user("ci", "pw", true);
    let auth = basic("ci", "pw");
    let good = upload_raw(&s.url, "web", "web.hvt", b"the good image", Some(&auth), &[]).json();
    let uuid = good["uuid"].as_str().unwrap().to_owned();
    let before = get_json(&format!("{}/", s.url)).json();
    let addr = s.addr().to_owned();
    let up =
        |job: &str, platform: &str, name: &str| format!("/job/{job}/platform/{platform}/upload?binary_name={name}");
    let long = "a".repeat(129);
    let long_file = "a".repeat(256);

    let mut cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("job ..", post(&up("%2E%2E", "p", "x"), &auth, "", b"x"), 400),
        ("job a/b encoded", post(&up("a%2Fb", "p", "x"), &auth, "", b"x"), 400),
        ("job /", post(&up("%2F", "p", "x"), &auth, "", b"x"), 400),
        ("job .hidden", post(&up(".hidden", "p", "x"), &auth, "", b"x"), 400),
        ("job NUL", post(&up("a%00b", "p", "x"), &auth, "", b"x"), 400),
        ("job non-UTF-8", post(&up("a%FFb", "p", "x"), &auth, "", b"x"), 400),
        ("job 129 characters", post(&up(&long, "p", "x"), &auth, "", b"x"), 400),
        ("job with a space", post(&up("a%20b", "p", "x"), &auth, "", b"x"), 400),
        ("platform ..", post(&up("web", "%2E%2E", "x"), &auth, "", b"x"), 400),
        ("platform a/b", post(&up("web", "a%2Fb", "x"), &auth, "", b"x"), 400),
        ("binary_name ..", post(&up("web", "p", ".."), &auth, "", b"x"), 400),
        ("binary_name a/b", post(&up("web", "p", "a/b"), &auth, "", b"x"), 400),
        (
            "binary_name /../etc encoded",
            post(&up("web", "p", "%2F..%2Fetc"), &auth, "", b"x"),
            400,
        ),
        ("binary_name empty", post(&up("web", "p", ""), &auth, "", b"x"), 400),
        ("binary_name NUL", post(&up("web", "p", "a%00"), &auth, "", b"x"), 400),
        (
            "binary_name non-UTF-8",
            post(&up("web", "p", "%C3%28"), &auth, "", b"x"),
            400,
        ),
        (
            "binary_name 256 characters",
            post(&up("web", "p", &long_file), &auth, "", b"x"),
            400,
        ),
        (
            "binary_name with a slash",
            post("/job/web/platform/p/upload?binary_name=a%2Fb", &auth, "", b"x"),
            400,
        ),
    ];
    for (what, name) in [
        ("attachment ../etc/passwd", &b"../etc/passwd"[..]),
        ("attachment /abs", b"/abs"),
        ("attachment a//b", b"a//b"),
        ("attachment bin/..", b"bin/.."),
        ("attachment of 5 components", b"a/b/c/d/e"),
        ("attachment with NUL", b"con\0sole"),
        ("attachment non-UTF-8", b"con\xffsole"),
    ] {
        let (ct, body) = multipart_body(&[(b"binary", b"img"), (name, b"x")], true);
        cases.push((what, post(&up("web", "p", "x"), &auth, &ct, &body), 400));
    }
    let (ct, body) = multipart_body(&[(b"binary", b"img"), (b"console", b"a"), (b"console", b"b")], true);
    cases.push(("duplicated part", post(&up("web", "p", "x"), &auth, &ct, &body), 400));
    let many: Vec<(Vec<u8>, Vec<u8>)> = (0..33).map(|i| (format!("a{i}").into_bytes(), b"x".to_vec())).collect();
    let many: Vec<(&[u8], &[u8])> = many.iter().map(|(a, b)| (&a[..], &b[..])).collect();
    let (ct, body) = multipart_body(&many, true);
    cases.push(("33 parts", post(&up("web", "p", "x"), &auth, &ct, &body), 400));
    let (ct, body) = multipart_body(&[(b"binary", b"img")], false);
    cases.push((
        "multipart without its closing boundary",
        post(&up("web", "p", "x"), &auth, &ct, &body),
        400,
    ));
    cases.push((
        "multipart without a boundary",
        post(
            &up("web", "p", "x"),
            &auth,
            "Content-Type: multipart/form-data\r\n",
            b"--x\r\n",
        ),
        400,
    ));
    let (ct, body) = multipart_body(&[(b"console", b"log only")], true);
    cases.push((
        "multipart without the image",
        post(&up("web", "p", "x"), &auth, &ct, &body),
        400,
    ));
    cases.push((
        "body over the limit",
        post(&up("web", "p", "x"), &auth, "", &vec![1u8; 100_001]),
        413,
    ));
    let mut chunked = format!(
        "POST {} HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        up("web", "p", "x")
    )
    .into_bytes();
    for _ in 0..3 {
        chunked.extend_from_slice(format!("{:x}\r\n", 40_000).as_bytes());
        chunked.extend_from_slice(&[2u8; 40_000]);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    cases.push(("chunked body over the limit", chunked, 413));
    let wrong = uk_digest::content_digest_header(&uk_digest::hash_reader(&b"other"[..]).unwrap().0);
    cases.push((
        "wrong Content-Digest",
        post(
            &up("web", "p", "x"),
            &auth,
            &format!("Content-Digest: {wrong}\r\n"),
            b"image",
        ),
        422,
    ));
    cases.push((
        "malformed Content-Digest",
        post(
            &up("web", "p", "x"),
            &auth,
            "Content-Digest: sha-256=:AAAA:\r\n",
            b"image",
        ),
        400,
    ));
    cases.push((
        "no credentials",
        post(&up("web", "p", "x"), "", "", b"x").into_iter().collect(),
        401,
    ));
    cases.push((
        "malformed Basic credentials",
        post(&up("web", "p", "x"), "Basic !!!", "", b"x"),
        401,
    ));
    cases.push((
        "a token the server has no key for",
        post(&up("web", "p", "x"), "Bearer ukrepo.v1.e30.AAAA", "", b"x"),
        401,
    ));
    cases.push((
        "an unknown authorization scheme",
        post(&up("web", "p", "x"), "Digest x", "", b"x"),
        401,
    ));
    cases.push((
        "huge header",
        get_req("/", &format!("X-Big: {}\r\n", "a".repeat(100_000))),
        431,
    ));
    cases.push((
        "unknown build id",
        get_req(
            &format!("/job/web/build/{}", "6a1f0c2e-8d3b-4c5e-9f7a-0b1c2d3e4f50"),
            "",
        ),
        404,
    ));
    cases.push(("malformed build id", get_req("/job/web/build/not-a-uuid", ""), 400));
    cases.push(("malformed sha256 in /hash", get_req("/hash?sha256=xyz", ""), 400));
    cases.push((
        "sha256 of 63 digits in /hash",
        get_req(&format!("/hash?sha256={}", "0".repeat(63)), ""),
        400,
    ));
    cases.push(("/hash without sha256", get_req("/hash", ""), 400));
    cases.push((
        "artifact path traversal",
        get_req(&format!("/job/web/build/{uuid}/f/..%2F..%2Fetc%2Fpasswd"), ""),
        400,
    ));
    cases.push((
        "artifact path with NUL",
        get_req(&format!("/job/web/build/{uuid}/f/bin%00"), ""),
        400,
    ));
    cases.push(("latest/ with ..", get_req("/job/web/build/latest/f/%2E%2E/x", ""), 400));
    cases.push((
        "unsatisfiable Range",
        get_req(
            &format!("/job/web/build/{uuid}/f/bin/web.hvt"),
            "Range: bytes=999999-\r\n",
        ),
        416,
    ));
    cases.push((
        "malformed Range",
        get_req(&format!("/job/web/build/{uuid}/f/bin/web.hvt"), "Range: bytes=z-y\r\n"),
        416,
    ));
    cases.push((
        "long-poll with a malformed current",
        get_req("/job/web/build/latest?wait=5&current=nope", ""),
        400,
    ));
    cases.push((
        "a report for another build's image",
        post(
            &format!("/job/web/build/{uuid}/deployments"),
            &auth,
            "Content-Type: application/json\r\n",
            format!(
                r#"{{"host":"h","sha256":"{}","result":"deployed","message":"","started":"x","finished":"y"}}"#,
                "0".repeat(64)
            )
            .as_bytes(),
        ),
        409,
    ));
    cases.push((
        "a malformed report",
        post(&format!("/job/web/build/{uuid}/deployments"), &auth, "", b"{not json"),
        400,
    ));

    let n = cases.len();
    for (what, req, want) in cases {
        let got = send(&addr, &req, false);
        assert_eq!(got, want, "{what}");
    }

    // Truncated body: half the announced bytes, then the client stops sending.
    let mut req = format!(
        "POST {} HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nContent-Length: 1000\r\n\r\n",
        up("web", "p", "x")
    )
    .into_bytes();
    req.extend_from_slice(&[3u8; 500]);
    assert_eq!(send(&addr, &req, true), 400, "truncated body");
    // Slow body: headers, a few bytes, then nothing: 408 after the idle timeout.
    let t = Instant::now();
    let mut req = format!(
        "POST {} HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nContent-Length: 1000\r\n\r\n",
        up("web", "p", "x")
    )
    .into_bytes();
    req.extend_from_slice(&[3u8; 10]);
    assert_eq!(send(&addr, &req, false), 408, "stalled body");
    assert!(t.elapsed() < Duration::from_secs(10));
    // Slow client: never finishes its headers; the connection is dropped.
    let t = Instant::now();
    let code = send(&addr, b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ", false);
    assert!(code == 0 || code == 408, "slow headers got {code}");
    assert!(t.elapsed() < Duration::from_secs(10), "held for {:?}", t.elapsed());

    assert_eq!(
        get_json(&format!("{}/", s.url)).json(),
        before,
        "the build list changed"
    );
    assert_eq!(s.staging_count(), 0, "staging debris");
    assert_eq!(
        get(&format!("{}/job/web/build/{uuid}/f/bin/web.hvt", s.url), &[]).body,
        b"the good image"
    );
    eprintln!("{} hostile cases answered as expected", n + 3);
    // The README's "Hostile inputs" table lists every case of this test
    // (plus the full-disk one below): they must not drift apart.
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    let last_row = readme
        .lines()
        .skip_while(|l| !l.starts_with("### Hostile inputs"))
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .filter_map(|l| {
            l.strip_prefix("| ")?
                .split(' ')
                .next()?
                .split('–')
                .next_back()?
                .parse::<usize>()
                .ok()
        })
        .max()
        .expect("the README's hostile-inputs table");
    assert_eq!(
        n + 3 + 1,
        last_row,
        "README table rows vs cases in this test (+1: the full disk)"
    );
}

/// A file system that fills up mid-upload: 507, and nothing partial.
#[test]
fn a_full_disk_gives_507_and_leaves_nothing() {
    let mnt = ukrepo_tests::bins::Tmpfs::mount("3m");
    let data = mnt.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let dir = tempfile::TempDir::new_in(&data).unwrap();
    let s = start_in(dir, "127.0.0.1:0", |c| c.max_upload = 64 << 20);
    s.add_user("ci", "pw", true);
    let auth = basic("ci", "pw");
    let small = upload_raw(&s.url, "web", "x", b"fits", Some(&auth), &[]);
    assert_eq!(small.status, 201);
    let r = upload_raw(&s.url, "web", "x", &vec![9u8; 5 << 20], Some(&auth), &[]);
    assert_eq!(r.status, 507, "{}", r.text());
    assert_eq!(s.staging_count(), 0);
    assert_eq!(
        get_json(&format!("{}/job/web", s.url)).json()["builds"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let again = upload_raw(&s.url, "web", "x", b"fits too", Some(&auth), &[]);
    assert_eq!(again.status, 201, "the server recovers once there is room");
}
