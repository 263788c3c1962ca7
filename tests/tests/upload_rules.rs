//! Who may upload and what gets refused: the auth matrix, Content-Digest,
//! the size limit, bad names, CI retries, deduplication, concurrency.

use ukrepo_tests::server::*;

#[test]
fn auth_matrix() {
    let s = start();
    s.add_user("admin", "root-pw", true);
    s.add_user("alice", "alice-pw", false);
    s.grant("alice", "granted");
    let img = b"image bytes".to_vec();

    let r = upload_raw(&s.url, "granted", "x", &img, None, &[]);
    assert_eq!(r.status, 401);
    assert!(r.header("www-authenticate").unwrap().contains("Basic"));
    assert_eq!(
        upload_raw(&s.url, "granted", "x", &img, Some(&basic("alice", "wrong")), &[]).status,
        401
    );
    assert_eq!(
        upload_raw(&s.url, "granted", "x", &img, Some(&basic("nobody", "x")), &[]).status,
        401
    );
    // A job that does not exist: 404, naming the command that creates it.
    let r = upload_raw(&s.url, "other", "x", &img, Some(&basic("alice", "alice-pw")), &[]);
    assert_eq!(r.status, 404, "{}", r.text());
    assert!(
        r.json()["error"].as_str().unwrap().contains("job add other"),
        "{}",
        r.text()
    );
    s.add_job("other");
    let r = upload_raw(&s.url, "other", "x", &img, Some(&basic("alice", "alice-pw")), &[]);
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(r.json()["error"].as_str().unwrap().contains("\"other\""));
    assert_eq!(
        upload_raw(&s.url, "granted", "x", &img, Some(&basic("alice", "alice-pw")), &[]).status,
        201
    );
    assert_eq!(
        upload_raw(&s.url, "brand-new", "x", &img, Some(&basic("admin", "root-pw")), &[]).status,
        201
    );
    assert_eq!(get_json(&format!("{}/job/brand-new", s.url)).status, 200);
    assert_eq!(
        upload_raw(&s.url, "never", "x", &img, Some(&basic("alice", "alice-pw")), &[]).status,
        404
    );
    assert_eq!(
        get_json(&format!("{}/job/never", s.url)).status,
        404,
        "a refused upload creates nothing"
    );

    // Disabled users are refused.
    unikernel_repo::db::users::set_disabled(s.db().as_mut(), "alice", true).unwrap();
    assert_eq!(
        upload_raw(&s.url, "granted", "y", &img, Some(&basic("alice", "alice-pw")), &[]).status,
        401
    );
}

#[test]
fn repeated_failed_logins_get_429() {
    let s = start();
    s.add_user("ci", "pw", true);
    for _ in 0..5 {
        assert_eq!(
            upload_raw(&s.url, "j", "x", b"x", Some(&basic("ci", "bad")), &[]).status,
            401
        );
    }
    let r = upload_raw(&s.url, "j", "x", b"x", Some(&basic("ci", "bad")), &[]);
    assert_eq!(r.status, 429, "{}", r.text());
    // Even the right password waits out the lockout.
    assert_eq!(
        upload_raw(&s.url, "j", "x", b"x", Some(&basic("ci", "pw")), &[]).status,
        429
    );
}

#[test]
fn content_digest_mismatch_is_422_and_stores_nothing() {
    let s = start();
    s.add_user("ci", "pw", true);
    let auth = basic("ci", "pw");
    let img = b"the real image".to_vec();
    let wrong = uk_digest::content_digest_header(&uk_digest::hash_reader(&b"something else"[..]).unwrap().0);
    let r = upload_raw(&s.url, "web", "x", &img, Some(&auth), &[("Content-Digest", &wrong)]);
    assert_eq!(r.status, 422, "{}", r.text());
    assert!(r.json()["error"].as_str().unwrap().contains(&sha256_hex(&img)));
    assert_eq!(get_json(&format!("{}/job/web", s.url)).status, 404);
    assert_eq!(s.blob_count(), 0);
    assert_eq!(s.staging_count(), 0);

    let right = uk_digest::content_digest_header(&uk_digest::hash_reader(&img[..]).unwrap().0);
    assert_eq!(
        upload_raw(&s.url, "web", "x", &img, Some(&auth), &[("Content-Digest", &right)]).status,
        201
    );
    let r = upload_raw(
        &s.url,
        "web",
        "x",
        &img,
        Some(&auth),
        &[("Content-Digest", "sha-256=:bm90IGJhc2U2NA:")],
    );
    assert_eq!(r.status, 400);
}

/// A client that reads the image only once sends its digest after it, as a
/// `content-digest` part (the multipart form of a trailer).
#[test]
fn a_content_digest_part_after_the_image_is_checked_like_the_header() {
    let s = start();
    s.add_user("ci", "pw", true);
    let auth = basic("ci", "pw");
    let img = b"the real image".to_vec();
    let right = uk_digest::content_digest_header(&uk_digest::hash_reader(&img[..]).unwrap().0);
    let wrong = uk_digest::content_digest_header(&uk_digest::hash_reader(&b"other"[..]).unwrap().0);
    let r = upload_multipart(
        &s.url,
        "web",
        "?binary_name=x.hvt",
        &[
            ("binary", Some("x.hvt"), &img),
            ("content-digest", None, wrong.as_bytes()),
        ],
        &auth,
    );
    assert_eq!(r.status, 422, "{}", r.text());
    assert_eq!(get_json(&format!("{}/job/web", s.url)).status, 404);
    assert_eq!(s.blob_count(), 0);
    assert_eq!(s.staging_count(), 0);
    let r = upload_raw(&s.url, "web", "x", &img, Some(&auth), &[("Content-Digest", &right)]);
    assert_eq!(r.status, 201);
    // Header and part must agree.
    let (ct, body) = multipart(&[
        ("binary", Some("y.hvt"), b"v2"),
        ("content-digest", None, wrong.as_bytes()),
    ]);
    let r = agent()
        .post(format!("{}/job/web/platform/p/upload?binary_name=y.hvt", s.url))
        .header("Authorization", &auth)
        .header("Content-Type", &ct)
        .header("Content-Digest", &right)
        .send(&body[..])
        .unwrap();
    assert_eq!(r.status(), 400);
    let right2 = uk_digest::content_digest_header(&uk_digest::hash_reader(&b"v2"[..]).unwrap().0);
    let r = upload_multipart(
        &s.url,
        "web",
        "?binary_name=y.hvt",
        &[
            ("binary", Some("y.hvt"), b"v2"),
            ("content-digest", None, right2.as_bytes()),
        ],
        &auth,
    );
    assert_eq!(r.status, 201, "{}", r.text());
    assert!(
        r.json()["artifacts"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["filepath"] != "content-digest"),
        "the digest part is not stored as an artifact: {}",
        r.text()
    );
}

#[test]
fn size_limit_is_413_and_stores_nothing() {
    let s = start_with(|c| c.max_upload = 1000);
    s.add_user("ci", "pw", true);
    let auth = basic("ci", "pw");
    let r = upload_raw(&s.url, "web", "x", &vec![7u8; 1001], Some(&auth), &[]);
    assert_eq!(r.status, 413, "{}", r.text());
    let (ct, body) = multipart(&[
        ("binary", Some("x"), &[1u8; 600][..]),
        ("console", None, &[2u8; 600][..]),
    ]);
    let url = format!("{}/job/web/platform/p/upload?binary_name=x", s.url);
    let resp = agent()
        .post(&url)
        .header("Content-Type", &ct)
        .header("Authorization", &auth)
        .send(&body[..]);
    assert_eq!(resp.unwrap().status(), 413, "the limit counts all files");
    assert_eq!(get_json(&format!("{}/job/web", s.url)).status, 404);
    assert_eq!(s.staging_count(), 0);
    assert_eq!(
        upload_raw(&s.url, "web", "x", &vec![7u8; 1000], Some(&auth), &[]).status,
        201
    );
}

#[test]
fn bad_names_are_400() {
    let s = start();
    s.add_user("ci", "pw", true);
    let auth = basic("ci", "pw");
    let (long, long_file) = ("a".repeat(129), "a".repeat(256));
    for name in [
        "..",
        "a%2Fb",
        "%2F",
        "a%00b",
        long_file.as_str(),
        "",
        ".hidden",
        "a%20b",
    ] {
        let r = upload_raw(&s.url, "web", name, b"x", Some(&auth), &[]);
        assert_eq!(r.status, 400, "binary_name {name:?}: {}", r.text());
        assert!(
            r.json()["error"].as_str().unwrap().starts_with("invalid binary name"),
            "{}",
            r.text()
        );
    }
    for job in ["%2E%2E", "a%2Fb", "a%00b", long.as_str(), "%20"] {
        let r = upload_raw(&s.url, job, "x", b"x", Some(&auth), &[]);
        assert_eq!(r.status, 400, "job {job:?}: {}", r.text());
        let r = get(&format!("{}/job/{job}/build/latest", s.url), &[]);
        assert_eq!(r.status, 400, "job {job:?}");
    }
    assert_eq!(get(&format!("{}/job/web/build/not-a-uuid", s.url), &[]).status, 400);
    assert_eq!(get_json(&format!("{}/", s.url)).json()["jobs"], serde_json::json!([]));
    // Debian package names, and names up to the limits, are fine.
    let deb = "libfoo1_1.2+dfsg-1~bpo12+1_amd64.deb";
    // In a query string `+` means a space: clients send %2B.
    let r = upload_raw(
        &s.url,
        "pkg+extra~1",
        &deb.replace('+', "%2B"),
        b"deb",
        Some(&auth),
        &[],
    );
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["main_binary_file"]["filepath"], format!("bin/{deb}"));
    assert_eq!(
        upload_raw(&s.url, &"j".repeat(128), &"f".repeat(255), b"x", Some(&auth), &[]).status,
        201
    );
}

#[test]
fn identical_retry_returns_the_same_build_and_artifacts_are_shared() {
    let s = start();
    s.add_user("ci", "pw", true);
    let auth = basic("ci", "pw");
    let img = b"same bytes for everyone".to_vec();
    let a = upload_raw(&s.url, "one", "x.hvt", &img, Some(&auth), &[]);
    assert_eq!(a.status, 201);
    let again = upload_raw(&s.url, "one", "x.hvt", &img, Some(&auth), &[]);
    assert_eq!(again.status, 200, "{}", again.text());
    assert_eq!(again.json()["uuid"], a.json()["uuid"]);
    assert_eq!(again.header("location"), a.header("location"));
    assert_eq!(
        get_json(&format!("{}/job/one", s.url)).json()["builds"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    let b = upload_raw(&s.url, "two", "x.hvt", &img, Some(&auth), &[]);
    assert_eq!(b.status, 201);
    assert_ne!(b.json()["uuid"], a.json()["uuid"]);
    assert_eq!(s.blob_count(), 1, "one artifact stored once for two jobs");
    // Once something else is latest, the old image is a new build again.
    assert_eq!(upload_raw(&s.url, "one", "x.hvt", b"v2", Some(&auth), &[]).status, 201);
    assert_eq!(upload_raw(&s.url, "one", "x.hvt", &img, Some(&auth), &[]).status, 201);
}

#[test]
fn concurrent_uploads_are_all_recorded() {
    let s = start();
    s.add_user("ci", "pw", true);
    let auth = basic("ci", "pw");
    let handles: Vec<_> = (0..20u8)
        .map(|i| {
            let (url, auth) = (s.url.clone(), auth.clone());
            std::thread::spawn(move || {
                let img: Vec<u8> = (0..50_000u32).map(|j| (j as u8) ^ i).collect();
                let r = upload_raw(&url, "busy", "x.hvt", &img, Some(&auth), &[]);
                assert_eq!(r.status, 201, "{}", r.text());
                (r.json()["uuid"].as_str().unwrap().to_owned(), img)
            })
        })
        .collect();
    let results: Vec<(String, Vec<u8>)> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let job = get_json(&format!("{}/job/busy", s.url)).json();
    let builds = job["builds"].as_array().unwrap();
    assert_eq!(builds.len(), 20);
    for (uuid, img) in &results {
        let f = get(&format!("{}/job/busy/build/{uuid}/f/bin/x.hvt", s.url), &[]);
        assert_eq!(&f.body, img, "build {uuid}");
    }
    let latest = get(&format!("{}/job/busy/build/latest", s.url), &[]);
    assert_eq!(
        latest.header("location").unwrap(),
        format!("/job/busy/build/{}", builds[0]["uuid"].as_str().unwrap())
    );
}
