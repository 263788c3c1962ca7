//! Constant memory: uploading and fetching a 1 GiB (sparse) image keeps each
//! client's peak RSS under 32 MiB, measured by GNU time.

use std::ffi::OsStr;

use ukrepo_tests::bins::run_measuring_rss;
use ukrepo_tests::server::*;

#[test]
fn one_gib_upload_and_fetch_stay_under_32_mib() {
    let s = start_with(|c| c.max_upload = 2 << 30);
    s.add_user("ci", "pw", true);
    let d = tempfile::tempdir().unwrap();
    let img = d.path().join("big.hvt");
    std::fs::File::create(&img).unwrap().set_len(1 << 30).unwrap();
    let env = [
        ("UKREPO_URL", s.url.as_str()),
        ("UKREPO_USER", "ci"),
        ("UKREPO_PASSWORD", "pw"),
    ];

    let args = [
        OsStr::new("--job"),
        OsStr::new("big"),
        OsStr::new("--platform"),
        OsStr::new("p"),
        img.as_os_str(),
    ];
    let (code, upload_kib, err) = run_measuring_rss("upload", &args, &env);
    assert_eq!(code, 0, "{err}");
    assert!(upload_kib < 32 * 1024, "upload peaked at {upload_kib} KiB for 1 GiB");

    let out = d.path().join("fetched.hvt");
    let args = [
        OsStr::new("--job"),
        OsStr::new("big"),
        OsStr::new("--output"),
        out.as_os_str(),
    ];
    let (code, fetch_kib, err) = run_measuring_rss("fetch-latest", &args, &env);
    assert_eq!(code, 0, "{err}");
    assert!(
        fetch_kib < 32 * 1024,
        "fetch-latest peaked at {fetch_kib} KiB for 1 GiB"
    );
    assert_eq!(std::fs::metadata(&out).unwrap().len(), 1 << 30);
    eprintln!("peak RSS for 1 GiB: upload {upload_kib} KiB, fetch-latest {fetch_kib} KiB");
}
