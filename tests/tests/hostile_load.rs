//! Hostile and heavy load against the real server binary (issue 10): each
//! test attacks the server the way someone without credentials could, and
//! asserts what *other* clients experience (a legitimate upload succeeds,
//! a page answers in time) and that memory, threads, open files and the
//! number of password checks stay bounded. Limits are set small through
//! `serve`'s flags so that the suite runs in well under a minute.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use ukrepo_tests::bins::{add_user_cli, bin, cmd, wait_for};
use ukrepo_tests::process::RepoProcess;
use ukrepo_tests::server::{basic, get, get_json, upload_raw};

fn add_job_cli(data: &Path, job: &str) {
    cmd("unikernel-repo")
        .arg("--data-dir")
        .arg(data)
        .args(["job", "add", job])
        .assert()
        .success();
}

/// A raw HTTP/1.1 request from source address `src`; the status code of
/// the answer, 0 when the connection ended without one.
async fn status_from(src: &str, addr: &str, req: Vec<u8>) -> u16 {
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.bind(format!("{src}:0").parse().unwrap()).unwrap();
    let Ok(mut s) = sock.connect(addr.parse().unwrap()).await else {
        return 0;
    };
    if s.write_all(&req).await.is_err() {
        return 0;
    }
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while !buf.windows(2).any(|w| w == b"\r\n") {
        match tokio::time::timeout(Duration::from_secs(60), s.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&buf)
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// `upload --job web` of `bytes` from the real client (which retries 503).
fn client_upload(url: &str, dir: &Path, name: &str, bytes: &[u8]) -> std::process::Output {
    let img = dir.join(name);
    std::fs::write(&img, bytes).unwrap();
    cmd("upload")
        .env("UKREPO_URL", url)
        .env("UKREPO_USER", "ci")
        .env("UKREPO_PASSWORD", "the-real-password")
        .args(["--job", "web", "--platform", "p"])
        .arg(&img)
        .output()
        .unwrap()
}

#[test]
fn a_burst_of_wrong_logins_is_bounded_and_real_clients_still_upload() {
    const ATTACKERS: [&str; 4] = ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"];
    const MAX_FAILED: u64 = 5;
    let data = tempfile::tempdir().unwrap();
    add_user_cli(data.path(), "ci", "the-real-password");
    add_job_cli(data.path(), "web");
    let server = RepoProcess::spawn(data.path(), &["--max-failed-logins", "5", "--password-checks", "2"]);
    let work = tempfile::tempdir().unwrap();

    let rt = runtime();
    let burst = {
        let addr = server.addr.clone();
        rt.spawn(async move {
            let mut tasks = Vec::new();
            for i in 0..400 {
                let src = ATTACKERS[i % ATTACKERS.len()];
                let req = format!(
                    "POST /job/web/platform/p/upload?binary_name=x HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\n\
                     Content-Length: 1\r\nConnection: close\r\n\r\nx",
                    basic("ci", &format!("guess-{i}"))
                )
                .into_bytes();
                let addr = addr.clone();
                tasks.push(tokio::spawn(async move { status_from(src, &addr, req).await }));
            }
            let mut codes = Vec::new();
            for t in tasks {
                codes.push(t.await.unwrap());
            }
            codes
        })
    };
    // During the burst, from another address: the real client uploads.
    let during = client_upload(&server.url, work.path(), "during.hvt", b"uploaded during the burst");
    let codes = rt.block_on(burst).unwrap();
    let after = client_upload(&server.url, work.path(), "after.hvt", b"uploaded after the burst");

    let stats = server.stats();
    let checks = server.metric("ukrepo_password_checks_total");
    eprintln!(
        "attack answers: {} x401, {} x429, {} x503, {} other; {checks} password checks; peak RSS {} KiB",
        codes.iter().filter(|&&c| c == 401).count(),
        codes.iter().filter(|&&c| c == 429).count(),
        codes.iter().filter(|&&c| c == 503).count(),
        codes.iter().filter(|&&c| ![401, 429, 503].contains(&c)).count(),
        stats.peak_rss_kib
    );
    assert!(
        during.status.success(),
        "the upload during the burst failed:\n{}",
        String::from_utf8_lossy(&during.stderr)
    );
    assert!(
        after.status.success(),
        "the upload after the burst failed:\n{}",
        String::from_utf8_lossy(&after.stderr)
    );
    assert!(
        codes.iter().all(|c| [401, 429, 503].contains(c)),
        "an attacker got something else: {codes:?}"
    );
    assert_eq!(
        codes.iter().filter(|&&c| c == 401).count() as u64,
        MAX_FAILED * ATTACKERS.len() as u64,
        "exactly the allowed guesses were answered 401"
    );
    // The two real uploads cost at most one check each (then the verified
    // credential is remembered).
    assert!(
        checks <= MAX_FAILED * ATTACKERS.len() as u64 + 2,
        "{checks} passwords were checked for 4 addresses with --max-failed-logins 5"
    );
    assert!(stats.peak_rss_kib < 256 * 1024, "peak RSS {} KiB", stats.peak_rss_kib);
    let builds = get_json(&format!("{}/job/web", server.url)).json();
    assert_eq!(builds["builds"].as_array().unwrap().len(), 2, "{builds}");
}

#[test]
fn idle_and_stalled_connections_are_closed_and_others_are_served_throughout() {
    let data = tempfile::tempdir().unwrap();
    add_user_cli(data.path(), "ci", "the-real-password");
    add_job_cli(data.path(), "web");
    let header_timeout = Duration::from_secs(1);
    let send_timeout = Duration::from_secs(2);
    let server = RepoProcess::spawn(data.path(), &["--header-timeout", "1s", "--send-timeout", "2s"]);
    let auth = basic("ci", "the-real-password");
    let big: Vec<u8> = (0..8u32 << 20).map(|i| (i * 7 % 251) as u8).collect();
    let r = upload_raw(&server.url, "web", "big.hvt", &big, Some(&auth), &[]);
    assert_eq!(r.status, 201, "{}", r.text());
    let path = format!("/job/web/build/{}/f/bin/big.hvt", r.json()["uuid"].as_str().unwrap());
    let baseline = server.stats();
    let accepted_before = server.metric("ukrepo_connections_accepted_total");

    // 300 connections that never send a byte, from 127.0.0.2.
    let idle: Vec<TcpStream> = (0..300)
        .map(|_| {
            let s = socket_from("127.0.0.2", 0);
            s.connect(&server.addr.parse::<SocketAddr>().unwrap().into()).unwrap();
            TcpStream::from(s)
        })
        .collect();
    // 300 downloads of 8 MiB whose client never reads, from 127.0.0.3.
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n");
    let stalled: Vec<TcpStream> = (0..300)
        .map(|_| {
            let s = socket_from("127.0.0.3", 4096);
            s.connect(&server.addr.parse::<SocketAddr>().unwrap().into()).unwrap();
            let mut t = TcpStream::from(s);
            t.write_all(request.as_bytes()).unwrap();
            t
        })
        .collect();
    wait_for(
        "600 attacking connections to be accepted",
        Duration::from_secs(10),
        || server.metric("ukrepo_connections_accepted_total") >= accepted_before + 600 - 1,
    );
    let attack = server.stats();

    // Throughout, a well-behaved client is served: each answer within 2 s.
    let polite = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(2)))
        .build()
        .new_agent();
    let end = Instant::now() + header_timeout + send_timeout + Duration::from_secs(3);
    let mut uploaded = false;
    while Instant::now() < end {
        let r = polite
            .get(format!("{}/job/web", server.url))
            .header("Accept", "application/json")
            .call()
            .expect("GET /job/web answered within 2 s during the attack");
        assert_eq!(r.status(), 200);
        if !uploaded {
            let r = polite
                .post(format!(
                    "{}/job/web/platform/p/upload?binary_name=small.hvt",
                    server.url
                ))
                .header("Authorization", &auth)
                .send(&b"a small image"[..])
                .expect("an upload answered within 2 s during the attack");
            assert_eq!(r.status(), 201);
            uploaded = true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }

    // Idle ones are closed within the header timeout + 5 s.
    let deadline = Instant::now() + Duration::from_secs(5);
    for mut c in idle {
        c.set_read_timeout(Some(
            deadline
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(1)),
        ))
        .unwrap();
        let mut b = [0u8; 64];
        match c.read(&mut b) {
            Ok(0) => {}
            Ok(n) => panic!(
                "an idle connection got {n} bytes: {:?}",
                String::from_utf8_lossy(&b[..n])
            ),
            Err(e) => assert!(
                e.kind() != std::io::ErrorKind::WouldBlock && e.kind() != std::io::ErrorKind::TimedOut,
                "an idle connection is still open"
            ),
        }
    }
    drop(stalled);
    wait_for("the attacking connections to be gone", Duration::from_secs(10), || {
        server.metric("ukrepo_connections_open") <= 1
    });
    let closed_idle = server.metric("ukrepo_connections_closed_idle_total");
    let closed_stalled = server.metric("ukrepo_connections_closed_stalled_total");
    let after = server.stats();
    eprintln!(
        "baseline {baseline:?}\nunder attack {attack:?}\nafter {after:?}\nclosed: {closed_idle} idle, {closed_stalled} stalled"
    );
    assert!(
        closed_idle >= 300,
        "{closed_idle} idle connections closed by the server"
    );
    assert!(
        closed_stalled >= 300,
        "{closed_stalled} stalled downloads dropped by the server"
    );
    assert!(
        attack.threads < 80,
        "600 rude connections made {} threads",
        attack.threads
    );
    assert!(
        after.fds <= baseline.fds + 20,
        "open files: {} before, {} after",
        baseline.fds,
        after.fds
    );
    assert!(attack.rss_kib < 256 * 1024, "RSS under attack: {} KiB", attack.rss_kib);
}

/// A TCP socket bound to `src`, with a small receive buffer when `rcvbuf` > 0.
fn socket_from(src: &str, rcvbuf: usize) -> socket2::Socket {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    if rcvbuf > 0 {
        s.set_recv_buffer_size(rcvbuf).unwrap();
    }
    s.bind(&format!("{src}:0").parse::<SocketAddr>().unwrap().into())
        .unwrap();
    s
}

fn rss(server: &RepoProcess) -> u64 {
    server.stats().rss_kib
}

#[test]
fn made_up_job_names_leave_nothing_behind() {
    let data = tempfile::tempdir().unwrap();
    add_user_cli(data.path(), "ci", "pw");
    let server = RepoProcess::spawn(data.path(), &[]);
    let v1 = upload_raw(&server.url, "real", "x.hvt", b"v1", Some(&basic("ci", "pw")), &[]).json();
    let sha = v1["main_binary_file"]["sha256"].as_str().unwrap().to_owned();
    // Warm up (allocator arenas, connection buffers), then measure. Each
    // client pipelines its requests (as HTTP/1.1 allows) so the test spends
    // its time in the server, not in the client.
    let hammer = |from: usize, n: usize| {
        let addr = server.addr.clone();
        std::thread::spawn(move || {
            let mut c = TcpStream::connect(&addr).unwrap();
            let mut reader = std::io::BufReader::new(c.try_clone().unwrap());
            for batch in (from..from + n).collect::<Vec<_>>().chunks(500) {
                let mut req = String::new();
                for i in batch {
                    req.push_str(&format!(
                        "GET /job/made-up-{i}/build/latest HTTP/1.1\r\nHost: x\r\n\r\n"
                    ));
                }
                c.write_all(req.as_bytes()).unwrap();
                for _ in batch {
                    let mut line = String::new();
                    std::io::BufRead::read_line(&mut reader, &mut line).unwrap();
                    assert!(line.starts_with("HTTP/1.1 404"), "{line:?}");
                    let mut len = 0usize;
                    loop {
                        let mut h = String::new();
                        std::io::BufRead::read_line(&mut reader, &mut h).unwrap();
                        if h == "\r\n" {
                            break;
                        }
                        if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                            len = v.trim().parse().unwrap();
                        }
                    }
                    let mut body = vec![0u8; len];
                    reader.read_exact(&mut body).unwrap();
                }
            }
        })
    };
    for t in (0..2).map(|k| hammer(k * 2000, 2000)) {
        t.join().unwrap();
    }
    let before = rss(&server);
    for t in (0..2).map(|k| hammer(10_000 + k * 50_000, 50_000)) {
        t.join().unwrap();
    }
    let during = rss(&server);
    // Waiting on made-up jobs holds an entry only while someone waits.
    let waiters: Vec<_> = (0..50)
        .map(|i| {
            let url = format!("{}/job/ghost-{i}/build/latest?wait=1&current={sha}", server.url);
            std::thread::spawn(move || get(&url, &[]).status)
        })
        .collect();
    for w in waiters {
        assert_eq!(w.join().unwrap(), 304);
    }
    let entries = server.metric("ukrepo_notifier_entries");
    eprintln!("RSS {before} KiB before 100k made-up names, {during} KiB after; notifier entries {entries}");
    assert!(
        during.saturating_sub(before) < 16 * 1024,
        "100k made-up job names grew the server from {before} to {during} KiB"
    );
    assert!(
        entries <= 1,
        "the notifier holds {entries} entries (only `real` may stay)"
    );
}

#[test]
fn a_full_database_at_the_commit_is_507_and_leaves_no_blob() {
    let mnt = ukrepo_tests::bins::Tmpfs::mount("8m");
    let data = mnt.path().join("data");
    add_user_cli(&data, "ci", "pw");
    let server = RepoProcess::spawn(&data, &[]);
    let auth = basic("ci", "pw");
    assert_eq!(
        upload_raw(&server.url, "web", "x", b"first", Some(&auth), &[]).status,
        201
    );
    let artifacts = || ukrepo_tests::server::count_files(&data.join("artifacts"));
    let before = artifacts();

    // Leave exactly room for the blob: its staging copy fits, then the
    // commit's write-ahead log pages do not.
    let blob: Vec<u8> = (0..64 * 4096u32).map(|i| (i % 253) as u8).collect();
    let free = {
        let s = rustix::fs::statvfs(mnt.path()).unwrap();
        s.f_bavail * s.f_frsize
    };
    let filler = mnt.path().join("filler");
    std::fs::write(&filler, vec![0u8; (free - blob.len() as u64) as usize]).unwrap();
    let r = upload_raw(&server.url, "web", "x", &blob, Some(&auth), &[]);
    assert_eq!(r.status, 507, "{}", r.text());
    assert_eq!(artifacts(), before, "the refused build's blob is gone");
    assert_eq!(
        std::fs::read_dir(data.join("staging")).unwrap().count(),
        0,
        "no staging debris"
    );
    std::fs::remove_file(&filler).unwrap();
    let again = upload_raw(&server.url, "web", "x", &blob, Some(&auth), &[]);
    assert_eq!(
        again.status,
        201,
        "the server recovers once there is room: {}",
        again.text()
    );
    assert_eq!(artifacts(), before + 1);
}

#[test]
fn a_second_serve_on_the_same_data_dir_exits_2_and_the_first_keeps_its_upload() {
    let data = tempfile::tempdir().unwrap();
    add_user_cli(data.path(), "ci", "pw");
    let first = RepoProcess::spawn(data.path(), &[]);
    // An upload in flight: headers and half the body sent.
    let body = vec![7u8; 100_000];
    let mut up = TcpStream::connect(&first.addr).unwrap();
    write!(
        up,
        "POST /job/web/platform/p/upload?binary_name=x.hvt HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        basic("ci", "pw"),
        body.len()
    )
    .unwrap();
    up.write_all(&body[..50_000]).unwrap();
    wait_for("the upload to be staged", Duration::from_secs(10), || {
        std::fs::read_dir(data.path().join("staging")).unwrap().count() == 1
    });

    let second = std::process::Command::new(bin("unikernel-repo"))
        .arg("--data-dir")
        .arg(data.path())
        .args(["serve", "--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(2), "{err}");
    assert!(
        err.contains("in use") && err.contains(&first.pid().to_string()),
        "the message names the holder: {err}"
    );

    up.write_all(&body[50_000..]).unwrap();
    let mut answer = String::new();
    up.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
}

#[test]
fn sigterm_answers_every_waiting_long_poll_and_exits_within_5_s() {
    let data = tempfile::tempdir().unwrap();
    add_user_cli(data.path(), "ci", "pw");
    let mut server = RepoProcess::spawn(data.path(), &[]);
    let v1 = upload_raw(&server.url, "web", "x.hvt", b"v1", Some(&basic("ci", "pw")), &[]).json();
    let sha = v1["main_binary_file"]["sha256"].as_str().unwrap().to_owned();
    let req = format!("GET /job/web/build/latest?wait=300&current={sha} HTTP/1.1\r\nHost: x\r\n\r\n");
    let mut waiters: Vec<TcpStream> = (0..100)
        .map(|_| {
            let mut c = TcpStream::connect(&server.addr).unwrap();
            c.write_all(req.as_bytes()).unwrap();
            c
        })
        .collect();
    wait_for("100 waiters", Duration::from_secs(10), || {
        server.metric("ukrepo_waiters") == 100
    });
    let t = Instant::now();
    server.terminate();
    let answered = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    for c in &mut waiters {
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut head = [0u8; 12];
        c.read_exact(&mut head).expect("a waiter was answered");
        assert_eq!(&head, b"HTTP/1.1 503", "{}", String::from_utf8_lossy(&head));
        answered.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    let status = server.wait_exit(Duration::from_secs(5));
    eprintln!(
        "100 waiters answered and the server gone {:?} after SIGTERM ({status})",
        t.elapsed()
    );
    assert!(status.success(), "{status}");
    let log = String::from_utf8_lossy(&server.log()).into_owned();
    assert!(log.contains("shutting down"), "{log}");
}

#[test]
fn logs_to_a_pipe_have_no_colours_and_one_line_per_request() {
    let data = tempfile::tempdir().unwrap();
    add_user_cli(data.path(), "ci", "pw");
    let mut server = RepoProcess::spawn(data.path(), &[]);
    assert_eq!(get(&format!("{}/job/nothing-here", server.url), &[]).status, 404);
    assert_eq!(get(&format!("{}/healthz", server.url), &[]).text(), "ok\n");
    server.terminate();
    server.wait_exit(Duration::from_secs(5));
    let log = server.log();
    assert!(
        !log.contains(&0x1b),
        "escape bytes in the log:\n{}",
        String::from_utf8_lossy(&log)
    );
    let text = String::from_utf8_lossy(&log);
    let line = text
        .lines()
        .find(|l| l.contains("/job/nothing-here"))
        .unwrap_or_else(|| panic!("no request line:\n{text}"));
    for part in ["method=GET", "status=404", "bytes=", "ms=", "peer=127.0.0.1"] {
        assert!(line.contains(part), "{part:?} missing from {line:?}");
    }

    // The same as JSON lines.
    let data = tempfile::tempdir().unwrap();
    add_user_cli(data.path(), "ci", "pw");
    let mut server = RepoProcess::spawn(data.path(), &["--log-format", "json"]);
    assert_eq!(get(&format!("{}/healthz", server.url), &[]).status, 200);
    server.terminate();
    server.wait_exit(Duration::from_secs(5));
    let log = String::from_utf8(server.log()).unwrap();
    let request: serde_json::Value = log
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .find(|v| v["path"] == "/healthz")
        .unwrap_or_else(|| panic!("no request line:\n{log}"));
    assert_eq!(
        (request["method"].as_str(), request["status"].as_u64()),
        (Some("GET"), Some(200))
    );
}
