//! `fetch-latest` against a lying server: every failure must exit 2, leave
//! the output untouched and leave no temporary file; transient failures
//! (500s, a cut connection) are retried and resumed with `Range`. The
//! repository is not trusted further than it must be: another job's build
//! is refused, downloads stop at --max-size and after the idle timeout, a
//! killed run's temporary file goes with the next run, and the server's
//! text is printed escaped.

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

/// A repository that names a build of another job (whose signature is good
/// for that job) is not believed: the build must be of the job asked for,
/// and a signature is checked against the job asked for.
#[test]
fn another_jobs_signed_image_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let (pk, sk) = (d.path().join("ci.pub"), d.path().join("ci.key"));
    let out = std::process::Command::new("minisign")
        .args(["-G", "-W", "-p"])
        .arg(&pk)
        .arg("-s")
        .arg(&sk)
        .output()
        .expect("the minisign program (installed by scripts/test.sh)");
    assert!(out.status.success());
    let img = image();
    let file = d.path().join("db.hvt");
    std::fs::write(&file, &img).unwrap();
    let (sha, _) = uk_digest::hash_file(&file).unwrap();
    let tc = uk_signatures::trusted_comment(uk_signatures::now(), "x.hvt", &"db".parse().unwrap(), &sha);
    let sig = uk_signatures::sign_file(&sk, None, &file, &tc).unwrap();
    for json_job in ["db", "web"] {
        let mut json = build_json(json_job, &sha.to_string(), img.len() as u64);
        json["main_binary_file"]["signature"] = "bin/x.hvt.minisig".into();
        let (img, sig) = (img.clone(), sig.clone());
        let s = start(json, move |req| {
            if req.path.ends_with(".minisig") {
                Reply::new(200, sig.clone().into_bytes())
            } else {
                Reply::new(200, img.clone())
            }
        });
        let host = tempfile::tempdir().unwrap();
        std::fs::write(host.path().join("web.hvt"), b"old image").unwrap();
        let why = if json_job == "db" {
            "build 6a1f0c2e-8d3b-4c5e-9f7a-0b1c2d3e4f50 of job \"db\", but job \"web\" was asked for"
        } else {
            "job \"db\""
        };
        cmd("fetch-latest")
            .args(["--url", &s.url, "--job", "web", "--output"])
            .arg(host.path().join("web.hvt"))
            .arg("--verify-key")
            .arg(&pk)
            .assert()
            .code(2)
            .stderr(predicates::str::contains(why));
        assert_untouched(host.path());
    }
}

/// Whatever the build JSON claims, a download never grows past --max-size
/// (default 1 GiB): a bigger image is refused before a byte is fetched, and
/// a body longer than the build says is cut at its size.
#[test]
fn an_endless_body_stops_at_max_size() {
    let endless = |_: &ukrepo_tests::hostile::Req| {
        Reply::streamed(|out| {
            let chunk = vec![7u8; 64 * 1024];
            loop {
                std::io::Write::write_all(out, &chunk)?;
            }
        })
    };
    let d = tempfile::tempdir().unwrap();
    for (claimed, max, why) in [
        (2u64 << 30, None, "more than --max-size 1 GiB"),
        (100 << 20, Some("1M"), "more than --max-size 1 MiB"),
        (1 << 20, Some("1M"), "sent more than the 1048576 bytes"),
    ] {
        let s = start(build_json("web", &"a".repeat(64), claimed), endless);
        std::fs::write(d.path().join("web.hvt"), b"old image").unwrap();
        let mut c = cmd("fetch-latest");
        c.args(["--url", &s.url, "--job", "web", "--retries", "0", "--output"])
            .arg(d.path().join("web.hvt"));
        if let Some(m) = max {
            c.args(["--max-size", m]);
        }
        c.timeout(std::time::Duration::from_secs(60))
            .assert()
            .code(2)
            .stderr(predicates::str::contains(why));
        assert_untouched(d.path());
    }
}

/// A server that sends a little and then one byte every 2 s: with an idle
/// timeout of 1 s the download gives up (and is retried, here never).
#[test]
fn a_dripping_server_times_out() {
    let img = image();
    let s = start(build_json("web", &sha256_hex(&img), img.len() as u64), move |_| {
        let img = img.clone();
        Reply::streamed(move |out| {
            std::io::Write::write_all(out, &img[..1000])?;
            for b in &img[1000..] {
                std::thread::sleep(std::time::Duration::from_secs(2));
                std::io::Write::write_all(out, &[*b])?;
            }
            Ok(())
        })
    });
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("web.hvt"), b"old image").unwrap();
    cmd("fetch-latest")
        .args([
            "--url",
            &s.url,
            "--job",
            "web",
            "--retries",
            "0",
            "--idle-timeout",
            "1s",
            "--output",
        ])
        .arg(d.path().join("web.hvt"))
        .timeout(std::time::Duration::from_secs(30))
        .assert()
        .code(2)
        .stderr(predicates::str::contains("no byte arrived for 1s"));
    assert_untouched(d.path());
}

/// `kill -TERM` in the middle of a download leaves its temporary file (the
/// process just ends); the next run removes it, whatever else it does.
#[test]
fn a_killed_download_leaves_nothing_after_the_next_run() {
    let img = image();
    let full = img.clone();
    let s = start(build_json("web", &sha256_hex(&img), img.len() as u64), move |req| {
        if req.nth > 0 {
            return Reply::new(200, img.clone());
        }
        // The first download stalls after 100 kB, a byte now and then.
        let img = img.clone();
        Reply::streamed(move |out| {
            std::io::Write::write_all(out, &img[..100_000])?;
            loop {
                std::thread::sleep(std::time::Duration::from_millis(100));
                std::io::Write::write_all(out, &img[100_000..100_001])?;
            }
        })
    });
    let d = tempfile::tempdir().unwrap();
    let mut killed = std::process::Command::new(ukrepo_tests::bins::bin("fetch-latest"))
        .args(["--url", &s.url, "--job", "web", "--output"])
        .arg(d.path().join("web.hvt"))
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let temp = || -> Vec<std::path::PathBuf> {
        std::fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.file_name().unwrap().to_string_lossy().ends_with(".tmp"))
            .collect()
    };
    ukrepo_tests::bins::wait_for(
        "a partly written temporary file",
        std::time::Duration::from_secs(20),
        || {
            temp()
                .iter()
                .any(|p| std::fs::metadata(p).is_ok_and(|m| m.len() >= 100_000))
        },
    );
    // SAFETY: kill(2) on our own child.
    unsafe {
        libc::kill(killed.id() as i32, libc::SIGTERM);
    }
    killed.wait().unwrap();
    assert_eq!(temp().len(), 1, "the killed run left its temporary file");
    cmd("fetch-latest")
        .args(["--url", &s.url, "--job", "web", "--output"])
        .arg(d.path().join("web.hvt"))
        .assert()
        .code(0);
    assert_eq!(std::fs::read(d.path().join("web.hvt")).unwrap(), full);
    assert!(temp().is_empty(), "{:?}", temp());
}

/// The server's error text reaches the terminal with its control characters
/// escaped: no colour, no cursor moves, no forged line; also in the retry
/// messages of `-v`.
#[test]
fn escape_bytes_in_the_servers_error_text_are_printed_escaped() {
    let evil = "\u{1b}[31mowned\u{1b}[0m\r\nfetch-latest: all good";
    for (status, flags, lines) in [(404, &[][..], 1), (503, &["-v", "--retries", "1"][..], 2)] {
        let s = ukrepo_tests::hostile::start_routes(move |_| {
            let mut r = Reply::new(status, serde_json::json!({ "error": evil }).to_string().into_bytes());
            r.headers.push(("Content-Type".into(), "application/json".into()));
            r
        });
        let out = cmd("fetch-latest")
            .args(["--url", &s.url, "--job", "web", "--print-sha256"])
            .args(flags)
            .assert()
            .code(2)
            .get_output()
            .clone();
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(
            stderr.contains("\\u{1b}[31mowned\\u{1b}[0m\\r\\nfetch-latest: all good"),
            "{stderr}"
        );
        assert!(!stderr.contains('\u{1b}') && !stderr.contains('\r'), "{stderr:?}");
        assert_eq!(stderr.lines().count(), lines, "{stderr:?}");
    }
}
