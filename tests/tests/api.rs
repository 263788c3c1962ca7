//! The HTTP API of CONTRACT.md §2 against the real server over real HTTP:
//! every route, with the bytes, headers and statuses a client relies on.

use ukrepo_tests::server::*;
use ukrepo_tests::solo5::solo5_images;

fn image(n: u8, len: usize) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(n)).collect()
}

#[test]
fn upload_then_every_read_route() {
    let s = start();
    s.add_user("ci", "pw", true);
    let auth = basic("ci", "pw");
    let img = image(1, 300_000);
    let sha = sha256_hex(&img);

    let up = upload_raw(&s.url, "web", "web.hvt", &img, Some(&auth), &[]);
    assert_eq!(up.status, 201, "{}", up.text());
    let build = up.json();
    let uuid = build["uuid"].as_str().unwrap().to_owned();
    assert_eq!(up.header("location"), Some(format!("/job/web/build/{uuid}").as_str()));
    assert_eq!(build["job"], "web");
    assert_eq!(build["platform"], "debian-12");
    assert_eq!(build["main_binary"], true);
    assert_eq!(build["main_binary_file"]["filepath"], "bin/web.hvt");
    assert_eq!(build["main_binary_file"]["sha256"], sha.as_str());
    assert_eq!(build["main_binary_file"]["size"], 300_000);
    assert_eq!(build["main_binary_file"]["signature"], serde_json::Value::Null);
    assert_eq!(build["solo5_abi"], serde_json::Value::Null, "not a Solo5 image");
    for t in ["start_time", "finish_time"] {
        let v = build[t].as_str().unwrap();
        assert!(time_ok(v), "{t} {v} is not RFC 3339");
    }

    // GET / as JSON and HTML.
    let jobs = get_json(&format!("{}/", s.url));
    assert_eq!(jobs.status, 200);
    assert_eq!(jobs.json()["jobs"][0]["name"], "web");
    assert_eq!(jobs.json()["jobs"][0]["latest"]["uuid"], uuid.as_str());
    let html = get(&format!("{}/", s.url), &[("Accept", "text/html")]);
    assert!(html.header("content-type").unwrap().starts_with("text/html"));
    assert!(html.text().contains("href=\"/job/web\""), "{}", html.text());

    // GET /job/web
    let job = get_json(&format!("{}/job/web", s.url)).json();
    assert_eq!(job["builds"][0]["uuid"], uuid.as_str());
    assert_eq!(job["builds"][0]["main_binary"]["filename"], "web.hvt");
    assert_eq!(job["builds"][0]["main_binary"]["sha256"], sha.as_str());
    assert_eq!(get_json(&format!("{}/job/nope", s.url)).status, 404);

    // latest redirects: 307, relative, with the rest of the path.
    let l = get(&format!("{}/job/web/build/latest", s.url), &[]);
    assert_eq!(
        (l.status, l.header("location")),
        (307, Some(format!("/job/web/build/{uuid}").as_str()))
    );
    let l = get(&format!("{}/job/web/build/latest/f/bin/web.hvt", s.url), &[]);
    assert_eq!(
        (l.status, l.header("location")),
        (307, Some(format!("/job/web/build/{uuid}/f/bin/web.hvt").as_str()))
    );
    assert_eq!(get(&format!("{}/job/nope/build/latest", s.url), &[]).status, 404);

    // build JSON
    let b = get_json(&format!("{}/job/web/build/{uuid}", s.url));
    // The page's JSON twin is the upload's build JSON plus the page's extras.
    let mut page = b.json();
    for extra in ["previous", "console_excerpt", "console_truncated"] {
        assert!(page.as_object_mut().unwrap().remove(extra).is_some(), "{extra} missing");
    }
    assert_eq!(page, build);
    assert_eq!(
        get_json(&format!("{}/job/web/build/{}", s.url, uuid_v4_other(&uuid))).status,
        404
    );

    // main-binary → f/…
    let m = get(&format!("{}/job/web/build/{uuid}/main-binary", s.url), &[]);
    assert_eq!(
        (m.status, m.header("location")),
        (302, Some(format!("/job/web/build/{uuid}/f/bin/web.hvt").as_str()))
    );

    // bytes with ETag, Content-Length, Content-Digest
    let f = get(&format!("{}/job/web/build/{uuid}/f/bin/web.hvt", s.url), &[]);
    assert_eq!(f.status, 200);
    assert_eq!(f.body, img);
    assert_eq!(f.header("content-length"), Some("300000"));
    assert_eq!(f.header("etag"), Some(format!("\"{sha}\"").as_str()));
    let cd = uk_digest::parse_content_digest(f.header("content-digest").unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(cd.to_string(), sha);

    // 304 and 206
    let nm = get(
        &format!("{}/job/web/build/{uuid}/f/bin/web.hvt", s.url),
        &[("If-None-Match", &format!("\"{sha}\""))],
    );
    assert_eq!(nm.status, 304);
    assert!(nm.body.is_empty());
    let other = get(
        &format!("{}/job/web/build/{uuid}/f/bin/web.hvt", s.url),
        &[("If-None-Match", "\"abc\"")],
    );
    assert_eq!(other.status, 200);
    let r = get(
        &format!("{}/job/web/build/{uuid}/f/bin/web.hvt", s.url),
        &[("Range", "bytes=100-199")],
    );
    assert_eq!(r.status, 206);
    assert_eq!(r.body, &img[100..200]);
    assert_eq!(r.header("content-range"), Some("bytes 100-199/300000"));
    let r = get(
        &format!("{}/job/web/build/{uuid}/f/bin/web.hvt", s.url),
        &[("Range", "bytes=299990-")],
    );
    assert_eq!((r.status, r.body.as_slice()), (206, &img[299_990..]));
    let r = get(
        &format!("{}/job/web/build/{uuid}/f/bin/web.hvt", s.url),
        &[("Range", "bytes=400000-500000")],
    );
    assert_eq!(r.status, 416);
    assert_eq!(
        get(&format!("{}/job/web/build/{uuid}/f/bin/other", s.url), &[]).status,
        404
    );

    // /hash
    let h = get(&format!("{}/hash?sha256={sha}", s.url), &[]);
    assert_eq!(
        (h.status, h.header("location")),
        (302, Some(format!("/job/web/build/{uuid}").as_str()))
    );
    assert_eq!(
        get(&format!("{}/hash?sha256={}", s.url, "0".repeat(64)), &[]).status,
        404
    );
    let bad = get(&format!("{}/hash?sha256=xyz", s.url), &[]);
    assert_eq!(bad.status, 400);
    assert!(
        bad.json()["error"].as_str().unwrap().contains("\"xyz\""),
        "{}",
        bad.text()
    );
}

fn time_ok(s: &str) -> bool {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).is_ok()
}

/// A different valid v4 uuid.
fn uuid_v4_other(u: &str) -> String {
    let mut c: Vec<char> = u.chars().collect();
    c[0] = if c[0] == 'a' { 'b' } else { 'a' };
    c.into_iter().collect()
}

#[test]
fn multipart_with_console_and_signature_and_platform_filter() {
    let s = start();
    s.add_user("ci", "pw", true);
    let auth = basic("ci", "pw");
    let img = image(2, 5000);
    let up = upload_multipart(
        &s.url,
        "web",
        "?binary_name=web.hvt",
        &[
            ("binary", Some("whatever"), &img),
            ("console", None, b"booting\nready\n"),
            ("bin/web.hvt.minisig", None, b"sig"),
        ],
        &auth,
    );
    assert_eq!(up.status, 201, "{}", up.text());
    let b = up.json();
    let uuid = b["uuid"].as_str().unwrap();
    assert_eq!(b["main_binary_file"]["signature"], "bin/web.hvt.minisig");
    assert_eq!(b["artifacts"].as_array().unwrap().len(), 3);
    let c = get(&format!("{}/job/web/build/{uuid}/console", s.url), &[]);
    assert_eq!((c.status, c.text().as_str()), (200, "booting\nready\n"));
    assert!(c.header("content-type").unwrap().starts_with("text/plain"));

    // A second platform; ?platform= picks per platform.
    let url = format!("{}/job/web/platform/ubuntu-24.04/upload?binary_name=web.hvt", s.url);
    let resp = agent()
        .post(&url)
        .header("Authorization", &auth)
        .send(&image(3, 100)[..])
        .unwrap();
    assert_eq!(resp.status(), 201);
    let other_uuid = resp.headers()["location"]
        .to_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    let l = get(&format!("{}/job/web/build/latest?platform=debian-12", s.url), &[]);
    assert_eq!(l.header("location"), Some(format!("/job/web/build/{uuid}").as_str()));
    let l = get(&format!("{}/job/web/build/latest", s.url), &[]);
    assert_eq!(
        l.header("location"),
        Some(format!("/job/web/build/{other_uuid}").as_str())
    );
    let j = get_json(&format!("{}/job/web?platform=ubuntu-24.04", s.url)).json();
    assert_eq!(j["builds"].as_array().unwrap().len(), 1);
    assert_eq!(
        get(&format!("{}/job/web/build/latest?platform=..", s.url), &[]).status,
        400
    );

    // Bad attachment names and duplicate parts.
    for (parts, what) in [
        (
            vec![("binary", Some("x"), &img[..]), ("../etc", None, &b"x"[..])],
            "traversal",
        ),
        (
            vec![
                ("binary", Some("x"), &img[..]),
                ("console", None, &b"a"[..]),
                ("console", None, &b"b"[..]),
            ],
            "duplicate",
        ),
        (vec![("console", None, &b"only"[..])], "no image"),
    ] {
        let r = upload_multipart(&s.url, "web", "?binary_name=web.hvt", &parts, &auth);
        assert_eq!(r.status, 400, "{what}: {}", r.text());
    }
    assert_eq!(
        get_json(&format!("{}/job/web", s.url)).json()["builds"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn solo5_notes_are_in_the_build_json() {
    let images = solo5_images();
    let s = start();
    s.add_user("ci", "pw", true);
    let img = std::fs::read(images.join("needsnet.hvt")).unwrap();
    let up = upload_raw(&s.url, "net", "net.hvt", &img, Some(&basic("ci", "pw")), &[]);
    assert_eq!(up.status, 201, "{}", up.text());
    let b = up.json();
    assert_eq!(
        b["solo5_abi"],
        serde_json::json!({"type": "solo5.abi", "target": "hvt", "version": 1})
    );
    assert_eq!(
        b["solo5_manifest"],
        serde_json::json!({"type": "solo5.manifest", "version": 1, "devices": [{"name": "service", "type": "NET_BASIC"}]})
    );
}

#[test]
fn html_for_browsers_json_errors_for_clients() {
    let s = start();
    let e = get(
        &format!("{}/job/nope", s.url),
        &[("Accept", "text/html,application/xhtml+xml")],
    );
    assert_eq!(e.status, 404);
    assert!(e.text().contains("no job"), "{}", e.text());
    assert!(e.header("content-type").unwrap().starts_with("text/html"));
    let e = get(&format!("{}/job/nope", s.url), &[("Accept", "application/json")]);
    assert_eq!(e.json()["error"], "no job \"nope\"");
}

/// Large artifacts go out with sendfile on plain HTTP/1 connections: many
/// responses, pipelined on one keep-alive connection (a `HEAD` among them,
/// ranges, two files, small and large), each carry exactly their own bytes.
#[test]
fn pipelined_downloads_on_one_connection_each_get_their_own_bytes() {
    use std::io::{BufReader, Write};
    let s = start();
    s.add_user("ci", "pw", true);
    let auth = basic("ci", "pw");
    let (a, b) = (image(1, 700_000), image(2, 300_001));
    let mut paths = Vec::new();
    for (job, img) in [("one", &a), ("two", &b)] {
        let up = upload_raw(&s.url, job, &format!("{job}.hvt"), img, Some(&auth), &[]);
        assert_eq!(up.status, 201, "{}", up.text());
        paths.push(format!(
            "/job/{job}/build/{}/f/bin/{job}.hvt",
            up.json()["uuid"].as_str().unwrap()
        ));
    }
    let (pa, pb) = (&paths[0], &paths[1]);
    let host = s.addr();
    // (method, path, range, the body expected, the status expected)
    type Ask<'a> = (&'a str, &'a String, Option<&'a str>, Vec<u8>, u16);
    let requests: Vec<Ask> = vec![
        ("GET", pa, None, a.clone(), 200),
        ("HEAD", pb, None, vec![], 200),
        ("GET", pb, Some("bytes=70000-250000"), b[70_000..=250_000].to_vec(), 206),
        ("GET", pa, Some("bytes=100-199"), a[100..200].to_vec(), 206),
        ("GET", pb, None, b.clone(), 200),
        ("HEAD", pa, None, vec![], 200),
        ("GET", pa, Some("bytes=600000-"), a[600_000..].to_vec(), 206),
    ];
    let mut conn = std::net::TcpStream::connect(host).unwrap();
    let mut all = String::new();
    for (method, path, range, _, _) in &requests {
        all += &format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\n");
        if let Some(r) = range {
            all += &format!("Range: {r}\r\n");
        }
        all += "\r\n";
    }
    conn.write_all(all.as_bytes()).unwrap();
    let mut r = BufReader::new(conn);
    for (i, (method, _, range, want, status)) in requests.iter().enumerate() {
        let (got_status, headers, body) = read_response(&mut r, *method == "HEAD");
        assert_eq!(got_status, *status, "request {i}: {method} {range:?}");
        assert!(body == *want, "request {i}: {method} {range:?}: wrong bytes");
        if *method == "HEAD" {
            assert!(
                headers.iter().any(|(k, v)| k == "content-length" && v != "0"),
                "{headers:?}"
            );
        }
    }
    // HTTP/1.0 too: the same bytes, then the connection closes.
    let mut conn = std::net::TcpStream::connect(host).unwrap();
    conn.write_all(format!("GET {pa} HTTP/1.0\r\nHost: {host}\r\n\r\n").as_bytes())
        .unwrap();
    let mut r = BufReader::new(conn);
    let (st, _, body) = read_response(&mut r, false);
    assert_eq!(st, 200);
    assert!(body == a, "HTTP/1.0: wrong bytes");
}
