//! A small misbehaving HTTP/1.1 server for client tests: it answers the
//! latest-build JSON and the artifact bytes, and each scenario decides how it
//! lies (truncates, flips a byte, announces a wrong length, fails with 500s,
//! sends without end, drips, names another job). Every connection is served
//! in order on one thread; it counts requests.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// One request as the scenario sees it.
pub struct Req {
    pub path: String,
    pub range_start: Option<u64>,
    /// 0 for the first request to this path kind, 1 for the second, …
    pub nth: usize,
}

/// Writes a body as it likes (without end, a byte now and then); returns
/// when the client is gone.
pub type Streamer = Box<dyn FnOnce(&mut TcpStream) -> std::io::Result<()> + Send>;

/// What to send back: status, headers, body, and how many body bytes to
/// actually write before closing (None: all), or a streamer that writes the
/// body instead.
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub cut_after: Option<usize>,
    pub stream: Option<Streamer>,
}

impl Reply {
    pub fn new(status: u16, body: Vec<u8>) -> Reply {
        let len = body.len().to_string();
        Reply {
            status,
            headers: vec![("Content-Length".into(), len)],
            body,
            cut_after: None,
            stream: None,
        }
    }

    /// A 200 without a length whose body `write` produces (then the
    /// connection closes).
    pub fn streamed(write: impl FnOnce(&mut TcpStream) -> std::io::Result<()> + Send + 'static) -> Reply {
        Reply {
            status: 200,
            headers: vec![("Connection".into(), "close".into())],
            body: Vec::new(),
            cut_after: None,
            stream: Some(Box::new(write)),
        }
    }

    pub fn json(v: &serde_json::Value) -> Reply {
        let mut r = Reply::new(200, v.to_string().into_bytes());
        r.headers.push(("Content-Type".into(), "application/json".into()));
        r
    }
}

pub struct Hostile {
    pub url: String,
    pub file_requests: Arc<AtomicUsize>,
}

/// Starts the server; `scenario` answers artifact requests (paths with `/f/`),
/// `json` is the build JSON served for every other GET.
pub fn start(json: serde_json::Value, scenario: impl Fn(&Req) -> Reply + Send + 'static) -> Hostile {
    start_routes(move |req| {
        if req.path.contains("/f/") {
            scenario(req)
        } else {
            Reply::json(&json)
        }
    })
}

/// Starts the server with `route` answering every request (`nth` counts
/// the artifact requests, or the others).
pub fn start_routes(route: impl Fn(&Req) -> Reply + Send + 'static) -> Hostile {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let file_requests = Arc::new(AtomicUsize::new(0));
    let counter = file_requests.clone();
    let others = AtomicUsize::new(0);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let _ = serve_conn(stream, &route, &counter, &others);
        }
    });
    Hostile { url, file_requests }
}

fn serve_conn(
    stream: TcpStream,
    route: &impl Fn(&Req) -> Reply,
    counter: &AtomicUsize,
    others: &AtomicUsize,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut out = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let path = line.split_whitespace().nth(1).unwrap_or("/").to_owned();
        let mut range_start = None;
        loop {
            let mut h = String::new();
            reader.read_line(&mut h)?;
            if h == "\r\n" || h.is_empty() {
                break;
            }
            if let Some(v) = h.to_ascii_lowercase().strip_prefix("range: bytes=") {
                range_start = v.trim().trim_end_matches('-').parse().ok();
            }
        }
        let nth = if path.contains("/f/") { counter } else { others }.fetch_add(1, Ordering::SeqCst);
        let reply = route(&Req { path, range_start, nth });
        let reason = match reply.status {
            200 => "OK",
            206 => "Partial Content",
            404 => "Not Found",
            _ => "Error",
        };
        write!(out, "HTTP/1.1 {} {reason}\r\n", reply.status)?;
        for (k, v) in &reply.headers {
            write!(out, "{k}: {v}\r\n")?;
        }
        out.write_all(b"\r\n")?;
        if let Some(stream) = reply.stream {
            out.flush()?;
            return stream(&mut out);
        }
        match reply.cut_after {
            Some(n) => {
                out.write_all(&reply.body[..n.min(reply.body.len())])?;
                out.flush()?;
                return Ok(()); // close mid-body
            }
            None => out.write_all(&reply.body)?,
        }
        out.flush()?;
    }
}

/// A build JSON for `job` whose main binary is `bin/x.hvt` with these bytes' digest.
pub fn build_json(job: &str, sha256: &str, size: u64) -> serde_json::Value {
    serde_json::json!({
        "job": job, "uuid": "6a1f0c2e-8d3b-4c5e-9f7a-0b1c2d3e4f50", "platform": "debian-12",
        "start_time": "2026-01-01T00:00:00Z", "finish_time": "2026-01-01T00:00:01Z",
        "main_binary": true, "solo5_abi": null, "solo5_manifest": null,
        "main_binary_file": {"filepath": "bin/x.hvt", "sha256": sha256, "size": size, "signature": null},
        "artifacts": [{"filepath": "bin/x.hvt", "sha256": sha256, "size": size}]
    })
}
