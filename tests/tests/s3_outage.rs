//! The S3 service goes away and comes back (CONTRACT.md §2, §9): uploads
//! answer 503 and record nothing, what the database alone answers
//! (`latest`, build pages) still answers, and service resumes when the
//! store returns, without restarting the repository.

use ukrepo_tests::backend::{Instance, admin, spawn};
use ukrepo_tests::server::*;
use ukrepo_tests::services::{S3, skip_scale};

#[test]
fn uploads_answer_503_while_the_store_is_down_and_resume_after() {
    if skip_scale("s3_outage") {
        return;
    }
    let mut s3 = S3::start();
    let data = tempfile::tempdir().unwrap();
    let repo = Instance::sqlite_on(&s3, data.path());
    admin(
        &repo,
        data.path(),
        &["user", "add", "ci", "--unrestricted", "--create-jobs"],
        "pw\n",
    );
    let server = spawn(&repo, data.path(), &[]);
    let auth = basic("ci", "pw");
    let img = vec![5u8; 200_000];
    let up = upload_raw(&server.url, "web", "web.hvt", &img, Some(&auth), &[]);
    assert_eq!(up.status, 201, "{}", up.text());
    let uuid = up.json()["uuid"].as_str().unwrap().to_owned();
    let latest = format!("{}/job/web/build/latest", server.url);
    assert_eq!(get(&latest, &[]).status, 307);
    let builds_before = get_json(&format!("{}/job/web", server.url)).json();

    s3.stop();
    let r = upload_raw(&server.url, "web", "web.hvt", &vec![6u8; 300_000], Some(&auth), &[]);
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(r.header("retry-after").is_some());
    assert!(
        r.json()["error"]
            .as_str()
            .unwrap()
            .contains("artifact store is unavailable"),
        "{}",
        r.text()
    );
    assert_eq!(
        get_json(&format!("{}/job/web", server.url)).json(),
        builds_before,
        "nothing was recorded"
    );
    let staging = std::fs::read_dir(data.path().join("staging")).unwrap().count();
    assert_eq!(staging, 0, "the staged file was removed");
    let l = get(&latest, &[]);
    assert_eq!(
        (l.status, l.header("location")),
        (307, Some(format!("/job/web/build/{uuid}").as_str())),
        "latest answers from the database"
    );
    assert_eq!(get_json(&format!("{}/job/web/build/{uuid}", server.url)).status, 200);
    assert_eq!(get(&format!("{}/healthz", server.url), &[]).status, 503);
    let f = get(&format!("{}/job/web/build/{uuid}/f/bin/web.hvt", server.url), &[]);
    assert_eq!(f.status, 503, "bytes need the store: {}", f.text());

    s3.restart();
    assert_eq!(get(&format!("{}/healthz", server.url), &[]).status, 200);
    let f = get(&format!("{}/job/web/build/{uuid}/f/bin/web.hvt", server.url), &[]);
    assert_eq!((f.status, f.body == img), (200, true));
    let img2 = vec![7u8; 300_000];
    let up = upload_raw(&server.url, "web", "web.hvt", &img2, Some(&auth), &[]);
    assert_eq!(up.status, 201, "{}", up.text());
    let uuid2 = up.json()["uuid"].as_str().unwrap().to_owned();
    let f = get(&format!("{}/job/web/build/{uuid2}/f/bin/web.hvt", server.url), &[]);
    assert_eq!(sha256_hex(&f.body), sha256_hex(&img2));
}
