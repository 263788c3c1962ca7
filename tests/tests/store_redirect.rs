//! `serve --store-redirect` (CONTRACT.md §9): an artifact download answers
//! 307 to a presigned URL of the S3 object; following it gives the bytes
//! (whole or a range), which verify against the build's digest; the URL
//! stops working once its lifetime is over. The image is larger than one
//! part, so it is also the test of multipart uploads to the bucket. Conditional requests are still
//! answered by the repository (304), without a redirect.

use std::time::Duration;

use ukrepo_tests::backend::{Instance, admin, spawn};
use ukrepo_tests::bins::wait_for;
use ukrepo_tests::server::*;
use ukrepo_tests::services::{S3, skip_scale};

#[test]
fn downloads_follow_a_presigned_url_that_expires() {
    if skip_scale("store_redirect") {
        return;
    }
    let s3 = S3::start();
    let data = tempfile::tempdir().unwrap();
    let repo = Instance::sqlite_on(&s3, data.path());
    admin(
        &repo,
        data.path(),
        &["user", "add", "ci", "--unrestricted", "--create-jobs"],
        "pw\n",
    );
    let server = spawn(&repo, data.path(), &["--store-redirect", "--store-redirect-ttl", "2s"]);
    // Larger than a part: it reaches the bucket as a multipart upload.
    let img: Vec<u8> = (0..20_000_000u32).map(|i| (i % 251) as u8).collect();
    let up = upload_raw(&server.url, "web", "web.hvt", &img, Some(&basic("ci", "pw")), &[]);
    assert_eq!(up.status, 201, "{}", up.text());
    let build = up.json();
    let uuid = build["uuid"].as_str().unwrap();
    let sha = build["main_binary_file"]["sha256"].as_str().unwrap().to_owned();

    let file = format!("{}/job/web/build/{uuid}/f/bin/web.hvt", server.url);
    let r = get(&file, &[]);
    assert_eq!(r.status, 307, "{}", r.text());
    let presigned = r.header("location").unwrap().to_owned();
    assert!(
        presigned.starts_with(&s3.endpoint) && presigned.contains("X-Amz-Signature="),
        "{presigned}"
    );
    assert_eq!(r.header("etag"), Some(format!("\"{sha}\"").as_str()));
    let bytes = get(&presigned, &[]);
    assert_eq!(bytes.status, 200, "{}", bytes.text());
    assert_eq!(sha256_hex(&bytes.body), sha, "the store's bytes verify");
    let part = get(&presigned, &[("Range", "bytes=1000-1999")]);
    assert_eq!((part.status, &part.body[..]), (206, &img[1000..2000]));

    // The repository still answers a client that has the bytes.
    let etag = format!("\"{sha}\"");
    assert_eq!(get(&file, &[("If-None-Match", etag.as_str())]).status, 304);

    wait_for("the presigned URL to expire", Duration::from_secs(30), || {
        get(&presigned, &[]).status == 403
    });
    // A new redirect works again.
    let fresh = get(&file, &[]).header("location").unwrap().to_owned();
    assert_eq!(sha256_hex(&get(&fresh, &[]).body), sha);
}
