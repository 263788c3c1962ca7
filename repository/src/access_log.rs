//! The access log: one INFO line per request, written when its response has
//! been sent (or abandoned): method, path, status, bytes sent, duration and
//! peer. Paths are logged as received (the URI parser admits no control
//! characters).

use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{Method, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};

use crate::listen::Inflight;

/// A request whose log line is pending.
pub struct Logged {
    method: Method,
    /// The URI (cloning it shares its bytes; the path is printed at the end).
    uri: axum::http::Uri,
    peer: SocketAddr,
    start: Instant,
}

impl Logged {
    pub fn start(req: &Request, peer: SocketAddr) -> Logged {
        Logged {
            method: req.method().clone(),
            uri: req.uri().clone(),
            peer,
            start: Instant::now(),
        }
    }

    /// Wraps the response body so the line is written when it ends; the
    /// connection's in-flight count drops then too.
    pub fn finish(self, resp: Response, inflight: Inflight) -> Response {
        let status = resp.status();
        resp.map(|inner| {
            Body::new(Counted {
                inner,
                sent: 0,
                line: Some((self, status)),
                _inflight: inflight,
            })
        })
    }
}

/// Writes one request's line.
pub fn line(method: &Method, path: &str, status: StatusCode, bytes: u64, ms: u64, peer: SocketAddr) {
    tracing::info!(
        target: "access",
        method = %method,
        path = %path,
        status = status.as_u16(),
        bytes,
        ms,
        peer = %peer,
        "request"
    );
}

struct Counted {
    inner: Body,
    sent: u64,
    line: Option<(Logged, StatusCode)>,
    _inflight: Inflight,
}

impl Drop for Counted {
    fn drop(&mut self) {
        if let Some((l, status)) = self.line.take() {
            line(
                &l.method,
                l.uri.path(),
                status,
                self.sent,
                l.start.elapsed().as_millis() as u64,
                l.peer,
            );
        }
    }
}

impl HttpBody for Counted {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let r = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(f))) = &r
            && let Some(d) = f.data_ref()
        {
            self.sent += d.len() as u64;
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
