//! Parked long-polls: a watcher's `GET …/build/latest?wait=S&current=X`
//! waits for minutes, usually for nothing. Waiting inside hyper costs its
//! two 8 KiB connection buffers and our request state; parked, a waiter
//! costs its socket, its request head and one small task (issue 15: 10,000
//! waiters in 64 MiB).
//!
//! The plain socket (`plain.rs`) looks at each request head hyper is about
//! to read on an idle connection. A body-less `GET` of `latest` with `wait`
//! and `current` is not given to hyper: hyper reads the end of the stream
//! instead, finishes the connection (flushing what it had written) and lets
//! go of the socket. The connection then waits here, without hyper, until
//! the job changes in a way that matters to it, its wait ends, the client
//! sends or closes, or the server shuts down; then a new hyper connection
//! on the same socket is given the same request head, and the ordinary
//! handler answers it (a 307 to the new build, or 304 when the wait ended),
//! told by [`ParkedUntil`] how much of the wait is left. Every answer is
//! thus the handler's own, and a request parked by mistake is only answered
//! a little later by the same code.
//!
//! The same look answers the plainest lookup from memory: a body-less
//! `GET /job/{job}/build/latest[?platform=P]` whose answer the caches hold
//! (the handler's 307 to the build) is written back by the socket itself,
//! without a trip through hyper and the router, which costs a lookup more
//! than the kernel's share of it (issue 15: `latest` at 0.8x nginx). It is
//! logged and counted as every request is, plus
//! `ukrepo_latest_from_memory_total`. Anything else, or a cache miss, goes
//! to hyper, which fills the cache for the next one.

use std::io::Write;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use axum::extract::Query;
use axum::http::{Method, StatusCode, Uri};
use bytes::Bytes;
use tokio::net::TcpStream;
use tokio::time::Instant;
use uk_names::{JobName, PlatformName};

use crate::http::deployments::MAX_WAIT;
use crate::http::redirects::{
    Current, LatestQuery, build_location, cached_latest, jittered, latest_in_memory, plain_rest,
};
use crate::http::{PlatformQuery, parse_job};
use crate::metrics::inc;
use crate::state::AppState;

/// When a replayed long-poll's wait ends (a request extension).
#[derive(Clone, Copy)]
pub struct ParkedUntil(pub Instant);

/// What a parked long-poll waits for.
pub struct Ticket {
    job: JobName,
    platform: Option<PlatformName>,
    current: Current,
    pub until: Instant,
}

/// What a request head read on an idle connection is, for parking.
pub enum Look {
    /// A long-poll to park.
    Park(Ticket),
    /// A lookup answered from memory: these bytes are its whole answer.
    Answer(Bytes),
    /// One complete body-less request head and nothing more: hyper will
    /// have consumed all of it before it reads again.
    Whole,
    /// Anything else (a part of a head, a body, more than one request).
    Other,
}

#[derive(Clone)]
pub struct Parker {
    st: AppState,
}

impl Parker {
    pub fn new(st: AppState) -> Parker {
        Parker { st }
    }

    /// What `bytes` (one read from an idle connection of `peer`) hold; a
    /// lookup is only answered from memory when `may_answer`.
    pub fn look(&self, bytes: &[u8], peer: SocketAddr, may_answer: bool) -> Look {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(bytes) {
            Ok(httparse::Status::Complete(n)) if n == bytes.len() => {}
            _ => return Look::Other,
        }
        let bodyless = req.headers.iter().all(|h| {
            !(h.name.eq_ignore_ascii_case("transfer-encoding")
                || (h.name.eq_ignore_ascii_case("content-length") && h.value != b"0"))
        });
        if !bodyless {
            return Look::Other;
        }
        let parkable = req.method == Some("GET")
            && req.version == Some(1)
            && !req
                .headers
                .iter()
                .any(|h| ["expect", "upgrade"].iter().any(|n| h.name.eq_ignore_ascii_case(n)));
        let Some(target) = req.path.filter(|_| parkable) else {
            return Look::Whole;
        };
        if let Some(t) = self.ticket(target) {
            return Look::Park(t);
        }
        // `Connection: close` (or anything else said about the connection)
        // is hyper's to handle.
        let closing = req.headers.iter().any(|h| h.name.eq_ignore_ascii_case("connection"));
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        match (may_answer && !closing)
            .then(|| self.answer(target, path, query))
            .flatten()
        {
            // Logged and counted when taken: the socket sends it next.
            Some(answer) => {
                inc(&self.st.metrics.requests);
                inc(&self.st.metrics.latest_from_memory);
                crate::access_log::line(&Method::GET, path, StatusCode::TEMPORARY_REDIRECT, 0, 0, peer);
                Look::Answer(answer)
            }
            None => Look::Whole,
        }
    }

    /// The handler's answer to `GET /job/{job}/build/latest[?platform=P]`
    /// (no wait; `target` split at its `?` into `path` and `query`), if the
    /// caches hold it: its 307, with the headers every
    /// answer gets (`app.rs`) and those hyper adds.
    fn answer(&self, target: &str, path: &str, query: &str) -> Option<Bytes> {
        if self.st.shutdown.is_cancelled() {
            return None;
        }
        let job = path.strip_prefix("/job/")?.strip_suffix("/build/latest")?;
        if job.contains('%') {
            return None;
        }
        let job = parse_job(job).ok()?;
        let platform = if query.is_empty() {
            None
        } else {
            let Query(q) = Query::<LatestQuery>::try_from_uri(&target.parse::<Uri>().ok()?).ok()?;
            if q.wait.is_some() || q.current.is_some() {
                return None;
            }
            PlatformQuery { platform: q.platform }.parse().ok()?
        };
        let (uuid, _) = latest_in_memory(&self.st, &job, &platform)??;
        let mut out = Vec::with_capacity(256);
        write!(
            out,
            "HTTP/1.1 307 Temporary Redirect\r\nlocation: {}\r\nx-content-type-options: nosniff\r\n\
             content-length: 0\r\ndate: {}\r\n\r\n",
            build_location(&job, &uuid),
            httpdate::HttpDate::from(SystemTime::now()),
        )
        .ok()?;
        Some(out.into())
    }

    /// A ticket for `GET /job/{job}/build/latest[/{rest}]?wait=S&current=X`
    /// as the handler would take it (anything it would refuse, or decode
    /// first, is left to it).
    fn ticket(&self, target: &str) -> Option<Ticket> {
        if self.st.shutdown.is_cancelled() || !target.contains("wait=") {
            return None;
        }
        let uri: Uri = target.parse().ok()?;
        let path = uri.path();
        if path.contains('%') {
            return None;
        }
        let (job, rest) = path.strip_prefix("/job/")?.split_once("/build/latest")?;
        match rest.strip_prefix('/') {
            None if rest.is_empty() => {}
            Some(rest) if plain_rest(rest) => {}
            _ => return None,
        }
        let Query(q) = Query::<LatestQuery>::try_from_uri(&uri).ok()?;
        let wait = Duration::from_secs(q.wait.filter(|w| *w > 0)?).min(MAX_WAIT);
        let current = Current::parse(q.current.as_deref()?).ok()?;
        let platform = PlatformQuery { platform: q.platform }.parse().ok()?;
        Some(Ticket {
            job: parse_job(job).ok()?,
            platform,
            current,
            until: Instant::now() + jittered(wait),
        })
    }

    /// Is the job's latest build still the one the client has?
    async fn unchanged(&self, t: &Ticket) -> bool {
        match cached_latest(&self.st, &t.job, &t.platform).await {
            Ok(Some((uuid, sha))) => t.current.is(&uuid, sha.as_ref()),
            _ => false,
        }
    }

    /// Waits until the parked request must be answered: the latest build
    /// is no longer the client's (or cannot be told), its wait ended, the
    /// client sent or closed, or the server is shutting down.
    pub async fn wait(&self, t: &Ticket, socket: &TcpStream) {
        let notify = self.st.notify.clone();
        // Subscribed before the first look: a commit in between wakes it.
        let mut sub = notify.subscribe(&t.job);
        let mut probe = [0u8; 1];
        loop {
            // Boxed: the look (maybe a database read) is short, the wait long.
            let unchanged = tokio::select! {
                u = Box::pin(self.unchanged(t)) => u,
                () = tokio::time::sleep_until(t.until) => false,
                () = self.st.shutdown.cancelled() => false,
            };
            if !unchanged {
                return;
            }
            tokio::select! {
                () = sub.changed() => {}
                () = tokio::time::sleep_until(t.until) => return,
                () = self.st.shutdown.cancelled() => return,
                // Bytes or the end of the stream (not a stale readiness).
                _ = socket.peek(&mut probe) => return,
            }
        }
    }
}
