//! Long-polling `latest`: a waiter is woken by the commit of an upload (not
//! by a polling loop), answers 304 when its wait ends, and thousands of idle
//! waiters cost little memory.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use ukrepo_tests::bins::{add_user_cli, spawn_server_with, wait_for};
use ukrepo_tests::server::*;

fn gauge(url: &str, name: &str) -> usize {
    let m = get(&format!("{url}/metrics"), &[]).text();
    m.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(usize::MAX)
}

fn waiters(url: &str) -> usize {
    gauge(url, "ukrepo_waiters")
}

/// Long-polls waiting outside hyper (`repository/src/parking.rs`).
fn parked(url: &str) -> usize {
    gauge(url, "ukrepo_parked_long_polls")
}

/// Status and headers of a body-less answer.
fn response(r: &mut impl std::io::BufRead) -> (u16, Vec<(String, String)>) {
    let (status, headers, _) = read_response(r, false);
    (status, headers)
}

/// A server with user `ci` and one build of job `web` (image `v1`), the
/// `Authorization` header, and the build's image sha256 and id.
fn one_build() -> (Server, String, String, String) {
    let s = start();
    s.add_user("ci", "pw", true);
    let auth = basic("ci", "pw");
    let v1 = upload_raw(&s.url, "web", "x.hvt", b"v1", Some(&auth), &[]).json();
    let sha1 = v1["main_binary_file"]["sha256"].as_str().unwrap().to_owned();
    let uuid1 = v1["uuid"].as_str().unwrap().to_owned();
    (s, auth, sha1, uuid1)
}

/// A raw connection: its writing half and a reader.
fn connect(host: &str) -> (std::net::TcpStream, std::io::BufReader<std::net::TcpStream>) {
    let conn = std::net::TcpStream::connect(host).unwrap();
    (conn.try_clone().unwrap(), std::io::BufReader::new(conn))
}

fn location(headers: &[(String, String)]) -> &str {
    headers
        .iter()
        .find(|(k, _)| k == "location")
        .map(|(_, v)| v.as_str())
        .unwrap_or("")
}

#[test]
fn a_waiter_is_woken_by_the_commit_and_gets_304_when_its_wait_ends() {
    let s = start();
    s.add_user("ci", "pw", true);
    let auth = basic("ci", "pw");
    let v1 = upload_raw(&s.url, "web", "x.hvt", b"v1", Some(&auth), &[]).json();
    let sha1 = v1["main_binary_file"]["sha256"].as_str().unwrap().to_owned();

    // Nothing new: 304 after the wait, not before.
    let t = Instant::now();
    let r = get(&format!("{}/job/web/build/latest?wait=1&current={sha1}", s.url), &[]);
    assert_eq!(r.status, 304);
    assert!(
        t.elapsed() >= Duration::from_secs(1),
        "answered after {:?}",
        t.elapsed()
    );
    assert_eq!(waiters(&s.url), 0);

    let url = format!("{}/job/web/build/latest?wait=30&current={sha1}", s.url);
    let waiter = std::thread::spawn(move || {
        let r = get(&url, &[]);
        (Instant::now(), r.status, r.header("location").map(str::to_owned))
    });
    wait_for("the waiter to be parked", Duration::from_secs(10), || {
        waiters(&s.url) == 1
    });
    let v2 = upload_raw(&s.url, "web", "x.hvt", b"v2", Some(&auth), &[]);
    let committed = Instant::now();
    assert_eq!(v2.status, 201);
    let (answered, status, location) = waiter.join().unwrap();
    // Woken by the commit, not by its wait running out (that is a 304): it
    // names the build the upload made, which did not exist when it asked.
    assert_eq!(status, 307);
    assert_eq!(location.unwrap(), v2.header("location").unwrap());
    // (How fast it wakes is measured by scripts/bench.sh, not asserted here.)
    eprintln!(
        "the waiter answered {:?} after the upload returned",
        answered.saturating_duration_since(committed)
    );

    // A current that is not the latest answers at once (a 307, where a
    // wait that ran out would be a 304); bad parameters are 400.
    assert_eq!(
        get(&format!("{}/job/web/build/latest?wait=30&current={sha1}", s.url), &[]).status,
        307
    );
    assert_eq!(get(&format!("{}/job/web/build/latest?wait=30", s.url), &[]).status, 400);
    assert_eq!(
        get(&format!("{}/job/web/build/latest?wait=30&current=xyz", s.url), &[]).status,
        400
    );
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .unwrap()
        .trim()
        .trim_end_matches(" kB")
        .trim()
        .parse()
        .unwrap()
}

fn raise_fd_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        lim.rlim_cur = lim.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
    }
}

#[test]
fn two_thousand_idle_waiters_cost_under_50_mib_and_one_upload_wakes_them_all() {
    const N: usize = 2000;
    raise_fd_limit();
    let data = tempfile::tempdir().unwrap();
    add_user_cli(data.path(), "ci", "pw");
    // All waiters come from 127.0.0.1: allow them (the default is 1024 per address).
    let (mut server, url) = spawn_server_with(data.path(), &["--max-connections-per-address", "4096"]);
    let addr = url.trim_start_matches("http://").to_owned();
    let auth = basic("ci", "pw");
    let v1 = upload_raw(&url, "many", "x.hvt", b"v1", Some(&auth), &[]).json();
    let sha1 = v1["main_binary_file"]["sha256"].as_str().unwrap().to_owned();
    // Warm the server up, then measure.
    for _ in 0..50 {
        get(&format!("{url}/job/many/build/latest"), &[]);
    }
    let before = rss_kib(server.id());

    let request = format!("GET /job/many/build/latest?wait=120&current={sha1} HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    let mut conns = Vec::with_capacity(N);
    for _ in 0..N {
        let mut c = std::net::TcpStream::connect(&addr).unwrap();
        c.write_all(request.as_bytes()).unwrap();
        conns.push(c);
    }
    wait_for("2000 parked waiters", Duration::from_secs(60), || waiters(&url) == N);
    // Each waits outside hyper, with only its socket and request head.
    assert_eq!(parked(&url), N);
    let during = rss_kib(server.id());
    let grown = during.saturating_sub(before);

    let v2 = upload_raw(&url, "many", "x.hvt", b"v2", Some(&auth), &[]);
    assert_eq!(v2.status, 201);
    let deadline = Instant::now() + Duration::from_secs(30);
    for c in &mut conns {
        c.set_read_timeout(Some(
            deadline
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(1)),
        ))
        .unwrap();
        let mut head = [0u8; 12];
        c.read_exact(&mut head).expect("every waiter is answered");
        assert_eq!(&head, b"HTTP/1.1 307", "{}", String::from_utf8_lossy(&head));
    }
    let _ = server.kill();
    let _ = server.wait();
    eprintln!("server RSS: {before} KiB idle, {during} KiB with {N} waiters (+{grown} KiB)");
    assert!(grown < 50 * 1024, "{N} waiters grew the server by {grown} KiB");
}

#[test]
fn a_new_build_of_the_same_image_wakes_a_waiter_on_the_build_id() {
    let s = start();
    s.add_user("ci", "pw", true);
    let auth = basic("ci", "pw");
    let v1 = upload_raw(&s.url, "web", "x.hvt", b"v1", Some(&auth), &[]).json();
    let uuid1 = v1["uuid"].as_str().unwrap().to_owned();
    let r = get(&format!("{}/job/web/build/latest?wait=1&current={uuid1}", s.url), &[]);
    assert_eq!(r.status, 304, "held while {uuid1} is the latest");
    let url = format!("{}/job/web/build/latest?wait=30&current={uuid1}", s.url);
    let waiter = std::thread::spawn(move || get(&url, &[]));
    wait_for("the waiter to be parked", Duration::from_secs(10), || {
        waiters(&s.url) == 1
    });
    // The same image again, as another build (another platform: not a retry).
    let url = format!("{}/job/web/platform/other/upload?binary_name=x.hvt", s.url);
    let v2 = agent()
        .post(&url)
        .header("Authorization", &auth)
        .send(&b"v1"[..])
        .unwrap();
    assert_eq!(v2.status(), 201);
    let r = waiter.join().unwrap();
    assert_eq!(r.status, 307);
    assert_ne!(r.header("location").unwrap(), format!("/job/web/build/{uuid1}"));
    assert_eq!(
        get(&format!("{}/job/web/build/latest?wait=1&current=nonsense", s.url), &[]).status,
        400
    );
}

/// A watcher's long-poll on a connection it has used before is parked
/// outside hyper, answered by the commit with the same 307 the handler
/// gives, and the connection goes on serving; a parked wait that runs out
/// is a 304, not earlier than its wait.
#[test]
fn a_long_poll_on_a_kept_alive_connection_is_parked_and_the_connection_goes_on() {
    let (s, auth, sha1, uuid1) = one_build();
    let host = s.addr().to_owned();
    let (mut w, mut r) = connect(&host);
    let mut send = |target: &str| {
        w.write_all(format!("GET {target} HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes())
            .unwrap()
    };

    send("/job/web/build/latest");
    let (st, h) = response(&mut r);
    assert_eq!((st, location(&h)), (307, format!("/job/web/build/{uuid1}").as_str()));
    send(&format!("/job/web/build/latest/f/bin/x.hvt?wait=60&current={sha1}"));
    wait_for("the long-poll to be parked", Duration::from_secs(10), || {
        parked(&s.url) == 1 && waiters(&s.url) == 1
    });
    let v2 = upload_raw(&s.url, "web", "x.hvt", b"v2", Some(&auth), &[]);
    assert_eq!(v2.status, 201);
    let (st, h) = response(&mut r);
    let uuid2 = v2.json()["uuid"].as_str().unwrap().to_owned();
    assert_eq!(
        (st, location(&h)),
        (307, format!("/job/web/build/{uuid2}/f/bin/x.hvt").as_str())
    );
    // The headers every answer carries are there (it is the handler's answer).
    assert!(
        h.iter().any(|(k, v)| k == "x-content-type-options" && v == "nosniff"),
        "{h:?}"
    );
    assert_eq!((parked(&s.url), waiters(&s.url)), (0, 0));

    // The same connection goes on: an ordinary request, then a parked wait
    // that runs out (304, after its wait).
    send("/job/web/build/latest");
    assert_eq!(response(&mut r).0, 307);
    let sha2 = sha256_hex(b"v2");
    let t = Instant::now();
    send(&format!("/job/web/build/latest?wait=1&current={sha2}"));
    let (st, _) = response(&mut r);
    assert_eq!(st, 304);
    assert!(
        t.elapsed() >= Duration::from_secs(1),
        "answered after {:?}",
        t.elapsed()
    );
    send("/job/web/build/latest");
    assert_eq!(response(&mut r).0, 307);
}

/// A parked long-poll whose client goes away is freed; a long-poll on a
/// connection that uploaded (hyper may hold its bytes) is not parked but
/// still answered by the commit.
#[test]
fn a_parked_client_that_leaves_is_freed_and_an_upload_connection_is_not_parked() {
    let (s, auth, sha1, _) = one_build();
    let host = s.addr().to_owned();
    let poll = format!("GET /job/web/build/latest?wait=60&current={sha1} HTTP/1.1\r\nHost: {host}\r\n\r\n");

    let mut leaving = std::net::TcpStream::connect(&host).unwrap();
    leaving.write_all(poll.as_bytes()).unwrap();
    wait_for("the long-poll to be parked", Duration::from_secs(10), || {
        parked(&s.url) == 1
    });
    drop(leaving);
    wait_for("the parked long-poll to be freed", Duration::from_secs(10), || {
        parked(&s.url) == 0 && waiters(&s.url) == 0
    });

    // An upload, then a long-poll, on one connection.
    let (mut w, mut r) = connect(&host);
    w.write_all(
        format!(
            "POST /job/web/platform/debian-12/upload?binary_name=x.hvt HTTP/1.1\r\nHost: {host}\r\nAuthorization: {auth}\r\nContent-Length: 2\r\n\r\nv1"
        )
        .as_bytes(),
    )
    .unwrap();
    let (st, _) = response(&mut r);
    assert!(st == 200 || st == 201, "upload answered {st}");
    w.write_all(poll.as_bytes()).unwrap();
    wait_for("the long-poll to wait (in hyper)", Duration::from_secs(10), || {
        waiters(&s.url) == 1
    });
    assert_eq!(parked(&s.url), 0, "a connection that carried a body is never parked");
    let v2 = upload_raw(&s.url, "web", "x.hvt", b"v2", Some(&auth), &[]);
    assert_eq!(v2.status, 201);
    let (st, h) = response(&mut r);
    let uuid2 = v2.json()["uuid"].as_str().unwrap().to_owned();
    assert_eq!((st, location(&h)), (307, format!("/job/web/build/{uuid2}").as_str()));
}

/// A plain `latest` lookup whose answer the caches hold is answered from
/// memory, outside hyper (`repository/src/parking.rs`): the same 307 and
/// headers as the handler's, counted, and never stale after a new build.
#[test]
fn a_lookup_answered_from_memory_is_the_handlers_answer_and_follows_a_new_build() {
    let (s, auth, _, uuid1) = one_build();
    let host = s.addr().to_owned();
    let get = |target: &str, extra: &str| format!("GET {target} HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n");
    let (mut w, mut r) = connect(&host);
    let mut send = |head: String| w.write_all(head.as_bytes()).unwrap();
    let from_memory = || gauge(&s.url, "ukrepo_latest_from_memory_total");
    let without_date = |mut h: Vec<(String, String)>| {
        h.retain(|(k, _)| k != "date");
        h.sort();
        h
    };
    let latest = "/job/web/build/latest";
    let at1 = format!("/job/web/build/{uuid1}");

    // The first lookup after a commit fills the cache (through hyper); the
    // next one, right after it, comes from memory. The caches keep an
    // answer for 2 s, so the counters are read only afterwards.
    send(get(latest, ""));
    let (st, by_handler) = response(&mut r);
    send(get(latest, ""));
    let (st2, by_memory) = response(&mut r);
    assert_eq!((st, location(&by_handler)), (307, at1.as_str()));
    assert_eq!(st2, 307);
    assert!(by_memory.iter().any(|(k, _)| k == "date"), "{by_memory:?}");
    assert_eq!(without_date(by_memory), without_date(by_handler.clone()));
    assert_eq!(from_memory(), 1);

    // It is counted as a request: one lookup between two metrics requests.
    let requests = gauge(&s.url, "ukrepo_requests_total");
    send(get(latest, ""));
    assert_eq!(location(&response(&mut r).1), at1);
    assert_eq!(gauge(&s.url, "ukrepo_requests_total"), requests + 2);

    // A fresh connection's first request, and one with a platform.
    let (mut w2, mut r2) = connect(&host);
    w2.write_all(get(latest, "").as_bytes()).unwrap();
    let (st, h) = response(&mut r2);
    assert_eq!((st, without_date(h)), (307, without_date(by_handler.clone())));
    send(get(&format!("{latest}?platform=debian-12"), ""));
    assert_eq!(location(&response(&mut r).1), at1);
    send(get(&format!("{latest}?platform=debian-12"), ""));
    assert_eq!(location(&response(&mut r).1), at1);
    assert_eq!(
        from_memory(),
        4,
        "the fresh connection's and the second with a platform"
    );

    // What the handler would treat otherwise (a Connection header, HEAD)
    // goes to hyper, and gets the same answer.
    send(get(latest, "Connection: keep-alive\r\n"));
    let (st, h) = response(&mut r);
    assert_eq!((st, without_date(h)), (307, without_date(by_handler.clone())));
    send(get(latest, "").replacen("GET", "HEAD", 1));
    let (st, h) = response(&mut r);
    assert_eq!((st, without_date(h)), (307, without_date(by_handler)));
    assert_eq!(from_memory(), 4);

    // A new build: the next lookup on the same connection goes to the
    // handler (the cached answer is of the job's last generation), the one
    // after it to memory again, both to the new build.
    let v2 = upload_raw(&s.url, "web", "x.hvt", b"v2", Some(&auth), &[]);
    assert_eq!(v2.status, 201);
    let at2 = format!("/job/web/build/{}", v2.json()["uuid"].as_str().unwrap());
    send(get(latest, ""));
    let (st, h) = response(&mut r);
    send(get(latest, ""));
    let (st2, h2) = response(&mut r);
    assert_eq!(
        (st, location(&h), st2, location(&h2)),
        (307, at2.as_str(), 307, at2.as_str())
    );
    assert_eq!(from_memory(), 5);

    // Two lookups in one write are pipelining, hyper's; both are answered.
    send(get(latest, "").repeat(2));
    for _ in 0..2 {
        assert_eq!(location(&response(&mut r).1), at2);
    }
}

/// A lookup sent while the connection's previous answer (a download) is
/// still going out is answered after it, never in the middle of its bytes.
#[test]
fn a_lookup_during_a_download_on_the_same_connection_is_answered_after_it() {
    let (s, auth, _, uuid1) = one_build();
    let host = s.addr().to_owned();
    let image: Vec<u8> = (0..1 << 20).map(|i| (i % 251) as u8).collect();
    let big = upload_raw(&s.url, "big", "big.hvt", &image, Some(&auth), &[]).json();
    let download = format!("/job/big/build/{}/f/bin/big.hvt", big["uuid"].as_str().unwrap());
    let get = |target: &str| format!("GET {target} HTTP/1.1\r\nHost: {host}\r\n\r\n");
    let (mut w, mut r) = connect(&host);

    // The lookup's answer is cached; the next one comes right after the
    // download's head, while its body is going out. However the server
    // takes it (hyper while the body is sent, memory once hyper has
    // flushed), its answer follows the download's last byte. (The case of
    // hyper still holding bytes is pinned by `repository/src/plain.rs`'s
    // unit test: on loopback it is a matter of timing here.)
    w.write_all(get("/job/web/build/latest").as_bytes()).unwrap();
    assert_eq!(response(&mut r).0, 307);
    w.write_all(get(&download).as_bytes()).unwrap();
    let (st, h, _) = read_response(&mut r, true);
    assert_eq!(st, 200);
    w.write_all(get("/job/web/build/latest").as_bytes()).unwrap();
    let len: usize = h
        .iter()
        .find(|(k, _)| k == "content-length")
        .unwrap()
        .1
        .parse()
        .unwrap();
    let mut body = vec![0; len];
    r.read_exact(&mut body).unwrap();
    assert!(body == image, "the download's bytes were not the image's");
    let (st, h) = response(&mut r);
    assert_eq!((st, location(&h)), (307, format!("/job/web/build/{uuid1}").as_str()));
}
