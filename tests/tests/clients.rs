//! `upload`, `fetch-latest` and `compare-hash` as binaries against the real
//! server: bytes round-trip, exit codes chain, credentials stay secret, and a
//! connection dropped mid-upload is retried into exactly one build.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;

use ukrepo_tests::bins::cmd;
use ukrepo_tests::server::*;

fn stdout(a: &assert_cmd::assert::Assert) -> String {
    String::from_utf8(a.get_output().stdout.clone()).unwrap()
}

fn setup() -> (Server, tempfile::TempDir) {
    let s = start();
    s.add_user("ci", "s3cret-pw", true);
    (s, tempfile::tempdir().unwrap())
}

fn upload(s: &Server, args: &[&str], image: &Path) -> assert_cmd::assert::Assert {
    cmd("upload")
        .env("UKREPO_URL", &s.url)
        .env("UKREPO_USER", "ci")
        .env("UKREPO_PASSWORD", "s3cret-pw")
        .args(["--platform", "debian-12"])
        .args(args)
        .arg(image)
        .assert()
}

fn fetch(s: &Server, args: &[&str]) -> assert_cmd::assert::Assert {
    cmd("fetch-latest").env("UKREPO_URL", &s.url).args(args).assert()
}

#[test]
fn upload_then_fetch_round_trip_and_if_differs_from() {
    let (s, d) = setup();
    let v1 = d.path().join("web.hvt");
    std::fs::write(&v1, (0..100_000u32).map(|i| i as u8).collect::<Vec<u8>>()).unwrap();
    let a = upload(&s, &["--job", "web"], &v1).code(0);
    let url = stdout(&a);
    assert!(
        url.starts_with(&format!("{}/job/web/build/", s.url)) && url.ends_with('\n'),
        "{url:?}"
    );
    assert_eq!(
        get_json(url.trim()).json()["main_binary_file"]["filepath"],
        "bin/web.hvt"
    );

    // --print-sha256 equals sha256sum
    let sum = std::process::Command::new("sha256sum").arg(&v1).output().unwrap();
    let sum = String::from_utf8(sum.stdout)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    fetch(&s, &["--job", "web", "--print-sha256"])
        .code(0)
        .stdout(format!("{sum}\n"));

    // fetch → identical bytes; again with --if-differs-from → 1, nothing written
    let out = d.path().join("host").join("web.hvt");
    std::fs::create_dir(out.parent().unwrap()).unwrap();
    let o = out.to_str().unwrap();
    fetch(&s, &["--job", "web", "--output", o, "--if-differs-from", o])
        .code(0)
        .stdout(format!("{sum}  {o}\n"));
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&v1).unwrap());
    fetch(&s, &["--job", "web", "--output", o, "--if-differs-from", o])
        .code(1)
        .stdout("");
    fetch(&s, &["--job", "web", "--output", o, "--if-differs-from", &sum]).code(1);

    // a new build → downloaded
    let v2 = d.path().join("v2.hvt");
    std::fs::write(&v2, b"version two").unwrap();
    upload(&s, &["--job", "web", "--name", "web.hvt"], &v2).code(0);
    fetch(&s, &["--job", "web", "--output", o, "--if-differs-from", o]).code(0);
    assert_eq!(std::fs::read(&out).unwrap(), b"version two");
    cmd("compare-hash").arg(&out).arg(&v2).assert().code(0);
    cmd("compare-hash").arg(&out).arg(&v1).assert().code(1);
    let mut names: Vec<String> = std::fs::read_dir(out.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["web.hvt", "web.hvt.build.json"],
        "the image and which build it is; no temporary files"
    );
    // Which build it is: the latest, of the job asked for.
    let build: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.with_extension("hvt.build.json")).unwrap()).unwrap();
    let latest = fetch(&s, &["--job", "web", "--print-build"])
        .code(0)
        .get_output()
        .stdout
        .clone();
    let latest = String::from_utf8(latest).unwrap();
    let (sha, uuid) = latest.trim().split_once(' ').unwrap();
    assert_eq!(
        (build["job"].as_str(), build["uuid"].as_str(), build["sha256"].as_str()),
        (Some("web"), Some(uuid), Some(sha))
    );
    assert_eq!(sha, uk_digest::hash_file(&v2).unwrap().0.to_string());
    // --if-differs-from a build uuid: the same build is nothing new.
    fetch(&s, &["--job", "web", "--print-build", "--if-differs-from", uuid])
        .code(1)
        .stdout("");
}

#[test]
fn attachments_are_served_under_the_build() {
    let (s, d) = setup();
    let img = d.path().join("web.hvt");
    std::fs::write(&img, b"image").unwrap();
    let console = d.path().join("console.log");
    std::fs::write(&console, b"build log\n").unwrap();
    let sw = d.path().join("switch");
    std::fs::write(&sw, b"opam switch export").unwrap();
    let a = upload(
        &s,
        &[
            "--job",
            "web",
            "--json",
            "--attach",
            &format!("console={}", console.display()),
            "--attach",
            &format!("opam-switch={}", sw.display()),
        ],
        &img,
    )
    .code(0);
    let build: serde_json::Value = serde_json::from_str(&stdout(&a)).unwrap();
    let uuid = build["uuid"].as_str().unwrap();
    assert_eq!(
        get(&format!("{}/job/web/build/{uuid}/console", s.url), &[]).text(),
        "build log\n"
    );
    assert_eq!(
        get(&format!("{}/job/web/build/{uuid}/f/opam-switch", s.url), &[]).text(),
        "opam switch export"
    );
    assert_eq!(
        get(&format!("{}/job/web/build/{uuid}/f/bin/web.hvt", s.url), &[]).text(),
        "image"
    );

    upload(&s, &["--job", "web", "--attach", "../x=/etc/hostname"], &img)
        .code(2)
        .stderr(predicates::str::contains("invalid artifact path"));
    upload(&s, &["--job", "web", "--attach", "console"], &img)
        .code(2)
        .stderr(predicates::str::contains("PATH=FILE"));
}

#[test]
fn bad_credentials_fail_without_leaking_the_secret() {
    let (s, d) = setup();
    let img = d.path().join("web.hvt");
    std::fs::write(&img, b"image").unwrap();
    let a = cmd("upload")
        .env("UKREPO_URL", &s.url)
        .env("UKREPO_USER", "ci")
        .env("UKREPO_PASSWORD", "wrong-Hunter2")
        .args(["--job", "web", "--platform", "p"])
        .arg(&img)
        .assert()
        .code(2)
        .stderr(predicates::str::contains("the server answered 401"));
    let err = String::from_utf8_lossy(&a.get_output().stderr).into_owned();
    assert!(
        !err.contains("wrong-Hunter2") && !err.contains("d3JvbmctSHVudGVyMg"),
        "{err}"
    );

    let pwfile = d.path().join("pw");
    std::fs::write(&pwfile, "s3cret-pw\n").unwrap();
    cmd("upload")
        .env("UKREPO_URL", &s.url)
        .args([
            "--user",
            "ci",
            "--password-file",
            pwfile.to_str().unwrap(),
            "--job",
            "web",
            "--platform",
            "p",
        ])
        .arg(&img)
        .assert()
        .code(0);
    cmd("upload")
        .env("UKREPO_URL", &s.url)
        .args(["--job", "web", "--platform", "p"])
        .arg(&img)
        .assert()
        .code(2);
}

/// A TCP proxy that cuts the first connection after `cut` bytes from the
/// client, and forwards every later connection faithfully.
fn flaky_proxy(target: String, cut: usize) -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for (i, c) in l.incoming().enumerate() {
            let Ok(mut client) = c else { continue };
            let mut server = TcpStream::connect(target.trim_start_matches("http://")).unwrap();
            if i == 0 {
                let mut buf = vec![0u8; cut];
                let _ = client.read_exact(&mut buf);
                let _ = server.write_all(&buf);
                let _ = server.shutdown(Shutdown::Both);
                let _ = client.shutdown(Shutdown::Both);
                continue;
            }
            let (mut c2, mut s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut c2, &mut s2);
                let _ = s2.shutdown(Shutdown::Write);
            });
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut server, &mut client);
                let _ = client.shutdown(Shutdown::Write);
            });
        }
    });
    format!("http://{addr}")
}

#[test]
fn dropped_connection_mid_upload_is_retried_into_one_build() {
    let (s, d) = setup();
    let img = d.path().join("web.hvt");
    std::fs::write(&img, vec![5u8; 3_000_000]).unwrap();
    let proxy = flaky_proxy(s.url.clone(), 1_000_000);
    cmd("upload")
        .env("UKREPO_URL", &proxy)
        .env("UKREPO_USER", "ci")
        .env("UKREPO_PASSWORD", "s3cret-pw")
        .args(["--job", "web", "--platform", "p", "--retries", "3", "-v"])
        .arg(&img)
        .assert()
        .code(0)
        .stderr(predicates::str::contains("retrying"));
    let builds = get_json(&format!("{}/job/web", s.url)).json();
    assert_eq!(builds["builds"].as_array().unwrap().len(), 1, "{builds}");
    assert_eq!(s.staging_count(), 0);
}

#[test]
fn a_closed_stdout_is_not_an_error() {
    let (s, d) = setup();
    let img = d.path().join("web.hvt");
    std::fs::write(&img, b"image").unwrap();
    upload(&s, &["--job", "web"], &img).code(0);
    // stdout is a pipe whose reading end is already closed, as in `… | head -c0`.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let status = std::process::Command::new(ukrepo_tests::bins::bin("fetch-latest"))
        .env("UKREPO_URL", &s.url)
        .args(["--job", "web", "--print-sha256"])
        .stdout(writer)
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(0));
}
