//! The real server started in-process on 127.0.0.1:0 (on its
//! own runtime thread, so tests stay plain blocking code), over the
//! database and store of the backend under test (`backend.rs`), users
//! added through the same code as `unikernel-repo user add`, and an HTTP
//! agent that neither follows redirects nor turns statuses into errors.

use std::path::{Path, PathBuf};
use std::time::Duration;

use unikernel_repo::auth::password;
use unikernel_repo::db::{Sql, jobs, users};
use unikernel_repo::state::{AppState, ServeConfig};
use unikernel_repo::store::ArtifactStore;

use crate::backend::Instance;

pub struct Server {
    pub url: String,
    pub data: tempfile::TempDir,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// The test defaults, on the backend under test.
pub fn config(data: &Path) -> ServeConfig {
    let instance = Instance::of(data);
    ServeConfig {
        max_upload: 64 << 20,
        max_failed_logins: 5,
        database: instance.database,
        store: instance.store,
        ..ServeConfig::new(data.to_owned())
    }
}

pub fn start() -> Server {
    start_with(|_| {})
}

pub fn start_with(tweak: impl FnOnce(&mut ServeConfig)) -> Server {
    start_in(tempfile::tempdir().unwrap(), "127.0.0.1:0", tweak)
}

/// Starts a server on an existing data dir and address (to restart one).
pub fn start_in(data: tempfile::TempDir, addr: &str, tweak: impl FnOnce(&mut ServeConfig)) -> Server {
    start_full(data, addr, None, tweak)
}

/// An HTTPS server with this certificate chain and key (PEM files).
pub fn start_tls(cert: &Path, key: &Path) -> Server {
    start_full(
        tempfile::tempdir().unwrap(),
        "127.0.0.1:0",
        Some((cert.to_owned(), key.to_owned())),
        |_| {},
    )
}

fn start_full(
    data: tempfile::TempDir,
    addr: &str,
    tls: Option<(std::path::PathBuf, std::path::PathBuf)>,
    tweak: impl FnOnce(&mut ServeConfig),
) -> Server {
    let scheme = if tls.is_some() { "https" } else { "http" };
    let mut cfg = config(data.path());
    tweak(&mut cfg);
    let addr = addr.to_owned();
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let state = AppState::open(&cfg).await.unwrap();
            let listener = tokio::net::TcpListener::bind(&addr).await.unwrap();
            addr_tx.send(listener.local_addr().unwrap()).unwrap();
            let stop = async {
                let _ = stop_rx.await;
            };
            match tls {
                Some((c, k)) => {
                    let acceptor = unikernel_repo::listen::tls_acceptor(&c, &k).unwrap();
                    unikernel_repo::app::serve_tls(listener, state, acceptor, stop)
                        .await
                        .unwrap()
                }
                None => unikernel_repo::app::serve(listener, state, stop).await.unwrap(),
            }
        });
    });
    let addr = addr_rx
        .recv_timeout(Duration::from_secs(30))
        .expect("server did not start");
    Server {
        url: format!("{scheme}://{addr}"),
        data,
        shutdown: Some(stop_tx),
        thread: Some(thread),
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Server {
    /// Stops the server (gracefully) and hands back its data dir.
    pub fn stop(mut self) -> tempfile::TempDir {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        std::mem::replace(&mut self.data, tempfile::tempdir().unwrap())
    }

    pub fn addr(&self) -> &str {
        self.url.trim_start_matches("http://").trim_start_matches("https://")
    }

    /// A user; an unrestricted one may also create jobs (most tests upload
    /// to new jobs), a restricted one only uploads where granted.
    pub fn add_user(&self, name: &str, pw: &str, unrestricted: bool) {
        self.add_user_with(
            name,
            pw,
            users::Rights {
                unrestricted,
                create_jobs: unrestricted,
            },
        );
    }

    pub fn add_user_with(&self, name: &str, pw: &str, rights: users::Rights) {
        users::add(self.db().as_mut(), name, &password::hash(pw).unwrap(), rights).unwrap();
    }

    /// Creates `job` (as `unikernel-repo job add`) unless it exists.
    pub fn add_job(&self, job: &str) {
        let _ = jobs::add(self.db().as_mut(), &job.parse().unwrap());
    }

    /// Grants `job` (created if new) to user `name`.
    pub fn grant(&self, name: &str, job: &str) {
        self.add_job(job);
        users::grant(self.db().as_mut(), name, &job.parse().unwrap(), false).unwrap();
    }

    /// A connection to the server's database (as an admin command has).
    pub fn db(&self) -> Box<dyn Sql> {
        Instance::of(self.data.path()).database.open().unwrap()
    }

    /// The server's artifact store (as an admin command opens it).
    pub fn store(&self) -> std::sync::Arc<dyn ArtifactStore> {
        Instance::of(self.data.path())
            .store
            .open(&self.data.path().join("staging"))
            .unwrap()
    }

    /// Blobs in the server's store.
    pub fn blob_count(&self) -> usize {
        self.store().list().unwrap().len()
    }

    pub fn artifacts_dir(&self) -> PathBuf {
        self.data.path().join("artifacts")
    }

    pub fn staging_count(&self) -> usize {
        std::fs::read_dir(self.data.path().join("staging")).unwrap().count()
    }
}

/// Number of files under the artifact store.
pub fn count_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                count_files(&e.path())
            } else {
                1
            }
        })
        .sum()
}

pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into()
}

pub fn basic(user: &str, pw: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pw}"))
    )
}

pub struct Resp {
    pub status: u16,
    pub headers: ureq::http::HeaderMap,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

fn collect(r: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Resp {
    let mut r = r.expect("request failed");
    let body = r.body_mut().with_config().limit(1 << 30).read_to_vec().unwrap();
    Resp {
        status: r.status().as_u16(),
        headers: r.headers().clone(),
        body,
    }
}

pub fn get(url: &str, headers: &[(&str, &str)]) -> Resp {
    let mut req = agent().get(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    collect(req.call())
}

pub fn get_json(url: &str) -> Resp {
    get(url, &[("Accept", "application/json")])
}

/// Raw upload of `bytes` as `binary_name` with optional auth and extra headers.
pub fn upload_raw(
    base: &str,
    job: &str,
    binary_name: &str,
    bytes: &[u8],
    auth: Option<&str>,
    headers: &[(&str, &str)],
) -> Resp {
    let url = format!("{base}/job/{job}/platform/debian-12/upload?binary_name={binary_name}");
    let mut req = agent().post(&url).header("Content-Type", "application/octet-stream");
    if let Some(a) = auth {
        req = req.header("Authorization", a);
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    collect(req.send(bytes))
}

/// A multipart body with the given (name, filename, bytes) parts.
pub fn multipart(parts: &[(&str, Option<&str>, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "----ukrepo-test-boundary-7d3f";
    let mut body = Vec::new();
    for (name, filename, bytes) in parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        match filename {
            Some(f) => body.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\n").as_bytes(),
            ),
            None => body.extend_from_slice(format!("Content-Disposition: form-data; name=\"{name}\"\r\n").as_bytes()),
        }
        body.extend_from_slice(b"Content-Type: application/octet-stream\r\n\r\n");
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

pub fn upload_multipart(base: &str, job: &str, query: &str, parts: &[(&str, Option<&str>, &[u8])], auth: &str) -> Resp {
    let (ct, body) = multipart(parts);
    let url = format!("{base}/job/{job}/platform/debian-12/upload{query}");
    collect(
        agent()
            .post(&url)
            .header("Content-Type", &ct)
            .header("Authorization", auth)
            .send(&body[..]),
    )
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    uk_digest::hash_reader(bytes).unwrap().0.to_string()
}

/// One HTTP/1.1 response read from a raw connection (for tests that write
/// requests themselves: pipelining, kept-alive connections): its status,
/// its headers (names lower-cased) and the body its `Content-Length` says
/// (none after a `HEAD`).
pub fn read_response(r: &mut impl std::io::BufRead, head: bool) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    let status = line.split(' ').nth(1).and_then(|s| s.parse().ok());
    let status = status.unwrap_or_else(|| panic!("status line {line:?}"));
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        r.read_line(&mut h).unwrap();
        let Some((k, v)) = h.trim_end().split_once(':') else {
            break;
        };
        headers.push((k.to_ascii_lowercase(), v.trim().to_owned()));
    }
    let len: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .map_or(0, |(_, v)| v.parse().unwrap());
    let mut body = vec![0; if head { 0 } else { len }];
    r.read_exact(&mut body).unwrap();
    (status, headers, body)
}
