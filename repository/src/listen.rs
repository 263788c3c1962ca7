//! The accept loop: plain TCP or TLS (rustls), HTTP/1.1 and HTTP/2, with the
//! limits that keep a rude client from holding what others need:
//! - connections are capped in total and per peer (an IPv4 address or an
//!   IPv6 /64); beyond a cap a connection is closed at once;
//! - a connection must send a complete request head within the header
//!   timeout: from its first byte or before it (plain, h2c, after a TLS
//!   handshake), and again between requests (keep-alive);
//! - a response the client stops reading is dropped after the send timeout;
//! - HTTP/2 peers are pinged and dropped when they stop answering;
//! - request heads are bounded (431 beyond).
//!
//! A watchdog per connection enforces the timeouts; it sleeps until the
//! next deadline, so idle connections cost no CPU. Shutdown stops
//! accepting, lets running requests finish for a few seconds, then closes.
//!
//! A plain connection's socket is `plain.rs`'s: it sends artifact bodies
//! with sendfile, and hands a waiting long-poll out of hyper to wait
//! parked (`parking.rs`); the connection then goes on with a new hyper
//! connection on the same socket.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::Version;
use bytes::Bytes;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::{GracefulConnection, GracefulShutdown, Watcher};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::access_log::Logged;
use crate::metrics::{Metrics, inc};
use crate::net::ConnTable;
use crate::parking::{ParkedUntil, Parker};
use crate::plain::{HandoffSlot, Heads, PlainSocket};
use crate::sendfile::Sending;

/// Largest request head hyper buffers (headers beyond it get 431).
const MAX_HEADER_BUF: usize = 64 * 1024;
/// How long running requests may take to finish at shutdown.
const DRAIN: Duration = Duration::from_secs(3);
/// HTTP/2: ping an idle peer this often, drop it if a ping goes unanswered this long.
const H2_PING: Duration = Duration::from_secs(20);
const H2_MAX_STREAMS: u32 = 128;

/// The limits of every connection, and what it needs from the server.
#[derive(Clone)]
pub struct ConnLimits {
    pub header_timeout: Duration,
    pub send_timeout: Duration,
    pub conns: Arc<ConnTable>,
    pub metrics: Arc<Metrics>,
    /// Cancelled at shutdown: connections finish their request and close.
    pub shutdown: CancellationToken,
    /// Parks long-polls of plain connections outside hyper (`parking.rs`).
    pub parking: Option<Parker>,
}

/// Loads a certificate chain and its private key (PEM) for `serve --tls-cert/--tls-key`.
pub fn tls_acceptor(cert: &Path, key: &Path) -> anyhow::Result<TlsAcceptor> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("reading the certificate {:?}", cert.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("parsing the certificate {:?}", cert.display()))?;
    let key =
        PrivateKeyDer::from_pem_file(key).with_context(|| format!("reading the private key {:?}", key.display()))?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("the certificate and key do not fit together")?;
    let mut config = config;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

fn builder() -> Builder<TokioExecutor> {
    let mut b = Builder::new(TokioExecutor::new());
    // The header timeout is the watchdog's (below): it also covers a
    // connection that never sends a byte, which hyper's own does not, and
    // costs no timer per request.
    // Body buffers are queued and written as they are (never copied into
    // hyper's own buffer): `sendfile.rs` relies on it.
    b.http1().max_buf_size(MAX_HEADER_BUF).writev(true);
    b.http2()
        .timer(TokioTimer::new())
        .max_header_list_size(MAX_HEADER_BUF as u32)
        .max_concurrent_streams(H2_MAX_STREAMS)
        .keep_alive_interval(Some(H2_PING))
        .keep_alive_timeout(H2_PING);
    b
}

/// Milliseconds since the first call: a clock atomics can hold.
fn now_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64
}

fn instant_at(ms: u64) -> tokio::time::Instant {
    let now = now_ms();
    tokio::time::Instant::now() + Duration::from_millis(ms.saturating_sub(now))
}

/// What a connection is doing, as its watchdog sees it.
pub struct Activity {
    /// Requests whose response has not been fully sent.
    inflight: AtomicUsize,
    /// When the connection opened or its last response ended.
    idle_since: AtomicU64,
    /// 1 + when a write began to wait for the client; 0 when none waits.
    blocked_since: AtomicU64,
}

impl Activity {
    /// A connection just opened: idle, nothing in flight.
    pub(crate) fn new() -> Activity {
        Activity {
            inflight: AtomicUsize::new(0),
            idle_since: AtomicU64::new(now_ms()),
            blocked_since: AtomicU64::new(0),
        }
    }

    /// Is a request being answered?
    pub fn busy(&self) -> bool {
        self.inflight.load(Ordering::Relaxed) > 0
    }

    /// The connection is idle from now: a response ended (also one
    /// answered outside hyper, `plain.rs`) or a parked wait did.
    pub fn idle_from_now(&self) {
        self.idle_since.store(now_ms(), Ordering::Relaxed);
    }
}

/// Counts a parked long-poll (`ukrepo_parked_long_polls`) while it lives.
struct Parked<'a>(&'a Metrics);

impl Parked<'_> {
    fn count(m: &Metrics) -> Parked<'_> {
        m.parked.fetch_add(1, Ordering::Relaxed);
        Parked(m)
    }
}

impl Drop for Parked<'_> {
    fn drop(&mut self) {
        self.0.parked.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Counts a request while its response is being produced and sent.
pub struct Inflight(Arc<Activity>);

impl Drop for Inflight {
    fn drop(&mut self) {
        self.0.idle_from_now();
        self.0.inflight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The socket, noting when writes wait for a client that does not read.
struct Watched<S> {
    inner: S,
    act: Arc<Activity>,
}

impl<S> Watched<S> {
    fn note<T>(&self, r: &Poll<T>) {
        match r {
            Poll::Pending => {
                let _ = self
                    .act
                    .blocked_since
                    .compare_exchange(0, now_ms() + 1, Ordering::Relaxed, Ordering::Relaxed);
            }
            Poll::Ready(_) => self.act.blocked_since.store(0, Ordering::Relaxed),
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.note(&r);
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.note(&r);
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_flush(cx);
        self.note(&r);
        r
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Why a watchdog closed a connection.
enum Closed {
    /// No complete request head within the header timeout.
    Idle,
    /// The client stopped reading a response.
    Stalled,
}

/// Resolves when the connection must be closed; sleeps until the next deadline.
async fn watchdog(act: &Activity, header: Duration, send: Duration) -> Closed {
    let (header, send) = (header.as_millis() as u64, send.as_millis() as u64);
    loop {
        let now = now_ms();
        let blocked = act.blocked_since.load(Ordering::Relaxed);
        if blocked != 0 && now + 1 >= blocked + send {
            return Closed::Stalled;
        }
        let idle_since = act.idle_since.load(Ordering::Relaxed);
        let busy = act.inflight.load(Ordering::Relaxed) > 0;
        if !busy && now >= idle_since + header {
            return Closed::Idle;
        }
        let mut next = if busy {
            now + header.min(send)
        } else {
            idle_since + header
        };
        if blocked != 0 {
            next = next.min(blocked - 1 + send);
        }
        tokio::time::sleep_until(instant_at(next.max(now + 1))).await;
    }
}

/// Serves `app` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    tls: Option<TlsAcceptor>,
    limits: ConnLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let builder = Arc::new(builder());
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors and the like: keep serving the rest.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let Some(slot) = limits.conns.open(peer.ip()) else {
            inc(&limits.metrics.connections_refused);
            if tls.is_none() {
                // Best effort, never waits: a client learns why.
                let _ = stream.try_write(
                    b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 5\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
            }
            continue;
        };
        inc(&limits.metrics.connections_accepted);
        let _ = stream.set_nodelay(true);
        let act = Arc::new(Activity::new());
        let (app, builder, watcher, tls, limits) = (
            app.clone(),
            builder.clone(),
            graceful.watcher(),
            tls.clone(),
            limits.clone(),
        );
        tokio::spawn(async move {
            let _slot = slot;
            Conn {
                peer,
                app,
                builder,
                _watcher: watcher,
                act,
                limits,
            }
            .run(stream, tls)
            .await;
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN, graceful.shutdown()).await.is_err() {
        tracing::warn!("some connections were still busy after {DRAIN:?}; closing them");
    }
    Ok(())
}

/// One connection and what serving it needs.
struct Conn {
    peer: SocketAddr,
    app: Router,
    builder: Arc<Builder<TokioExecutor>>,
    /// Held while the connection lives: the drain at shutdown waits for it.
    _watcher: Watcher,
    act: Arc<Activity>,
    limits: ConnLimits,
}

/// Serves a hyper connection until it ends; at shutdown, lets its running
/// request finish and then closes it.
/// A replayed long-poll's connection (`replayed`) is only closed once its
/// request is read: it is answered (503) before the connection closes.
async fn drive<C: GracefulConnection>(
    conn: C,
    shutdown: &CancellationToken,
    replayed: Option<&tokio::sync::Notify>,
) -> Result<(), C::Error> {
    let mut conn = std::pin::pin!(conn);
    let closing = async {
        shutdown.cancelled().await;
        if let Some(read) = replayed {
            read.notified().await;
        }
    };
    tokio::select! {
        r = conn.as_mut() => r,
        () = closing => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    }
}

impl Conn {
    /// The service of one hyper connection: `sending` for the file bodies
    /// of a plain HTTP/1 connection, `parked` for its first request when
    /// that is a parked long-poll given back.
    fn service(
        &self,
        sending: Option<Arc<Sending>>,
        parked: Option<(ParkedUntil, Arc<tokio::sync::Notify>)>,
    ) -> TowerToHyperService<
        impl tower::Service<
            axum::extract::Request<hyper::body::Incoming>,
            Response = axum::response::Response,
            Error = std::convert::Infallible,
            Future = impl Future<Output = Result<axum::response::Response, std::convert::Infallible>> + Send,
        > + Clone
        + Send
        + 'static,
    > {
        let (peer, app, act, metrics) = (
            self.peer,
            self.app.clone(),
            self.act.clone(),
            self.limits.metrics.clone(),
        );
        let parked = parked.map(|p| Arc::new(std::sync::Mutex::new(Some(p))));
        let svc = tower::service_fn(move |req: axum::extract::Request<hyper::body::Incoming>| {
            act.inflight.fetch_add(1, Ordering::Relaxed);
            inc(&metrics.requests);
            let guard = Inflight(act.clone());
            let mut req = req.map(axum::body::Body::new);
            crate::http::tolerate_trailing_slash(&mut req);
            req.extensions_mut().insert(ConnectInfo::<SocketAddr>(peer));
            if let Some(s) = &sending
                && matches!(req.version(), Version::HTTP_10 | Version::HTTP_11)
            {
                req.extensions_mut().insert(s.clone());
            }
            if let Some(p) = &parked
                && let Some((until, read)) = p.lock().unwrap_or_else(|e| e.into_inner()).take()
            {
                req.extensions_mut().insert(until);
                read.notify_one();
            }
            let logged = Logged::start(&req, peer);
            let app = app.clone();
            async move {
                let resp = app.oneshot(req).await.unwrap_or_else(|e| match e {});
                Ok::<_, std::convert::Infallible>(logged.finish(resp, guard))
            }
        });
        TowerToHyperService::new(svc)
    }

    /// Runs `serving` under the watchdog; false when the watchdog closed it.
    async fn watched<E: std::fmt::Display>(&self, serving: impl Future<Output = Result<(), E>>) -> bool {
        let (peer, metrics) = (self.peer, &self.limits.metrics);
        tokio::select! {
            r = serving => {
                if let Err(e) = r {
                    tracing::debug!(%peer, "connection ended: {e}");
                }
                true
            }
            why = watchdog(&self.act, self.limits.header_timeout, self.limits.send_timeout) => {
                match why {
                    Closed::Idle => {
                        inc(&metrics.connections_closed_idle);
                        tracing::debug!(%peer, "closed: no complete request within the header timeout");
                    }
                    Closed::Stalled => {
                        inc(&metrics.connections_closed_stalled);
                        tracing::info!(%peer, "closed: the client stopped reading the response");
                    }
                }
                false
            }
        }
    }

    /// The TLS handshake if any, then HTTP until the connection ends.
    async fn run(self, stream: TcpStream, tls: Option<TlsAcceptor>) {
        let shutdown = self.limits.shutdown.clone();
        if let Some(acceptor) = tls {
            let io = Watched {
                inner: stream,
                act: self.act.clone(),
            };
            let peer = self.peer;
            let svc = self.service(None, None);
            // Boxed, as every hyper phase: the task itself stays small.
            Box::pin(self.watched(async {
                let tls = match acceptor.accept(io).await {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::debug!(%peer, "TLS handshake failed: {e}");
                        return Ok(());
                    }
                };
                let conn = self.builder.serve_connection_with_upgrades(TokioIo::new(tls), svc);
                drive(conn.into_owned(), &shutdown, None).await
            }))
            .await;
            return;
        }
        // Plain: HTTP/1 file bodies go out with sendfile, and long-polls
        // park outside hyper between its connections on this socket.
        let (mut socket, mut unread, mut parked) = (stream, Bytes::new(), None);
        loop {
            let slot: HandoffSlot = Arc::default();
            let heads = self
                .limits
                .parking
                .clone()
                .map(|p| Heads::new(p, self.act.clone(), self.peer, slot.clone()));
            let plain = PlainSocket::new(socket, unread, heads);
            let replay_read = parked.map(|_| Arc::new(tokio::sync::Notify::new()));
            let svc = self.service(Some(plain.sending()), parked.take().zip(replay_read.clone()));
            let io = Watched {
                inner: plain,
                act: self.act.clone(),
            };
            let conn = self.builder.serve_connection_with_upgrades(TokioIo::new(io), svc);
            let serving = Box::pin(self.watched(drive(conn.into_owned(), &shutdown, replay_read.as_deref())));
            if !serving.await {
                return;
            }
            let (Some(handoff), Some(parker)) = (
                slot.lock().unwrap_or_else(|e| e.into_inner()).take(),
                &self.limits.parking,
            ) else {
                return;
            };
            {
                let _counted = Parked::count(&self.limits.metrics);
                parker.wait(&handoff.ticket, &handoff.socket).await;
            }
            self.act.idle_from_now();
            (socket, unread, parked) = (handoff.socket, handoff.head, Some(ParkedUntil(handoff.ticket.until)));
        }
    }
}
