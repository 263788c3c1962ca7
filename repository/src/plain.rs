//! The socket of a plain (not TLS) connection, as hyper's HTTP/1 sees it.
//! Besides reading and writing it does two things hyper cannot:
//! - where hyper writes the marks of a file body, it sends the file
//!   (`sendfile.rs`);
//! - it looks at each request head read while the connection is idle, and
//!   takes a long-poll that would only wait out of hyper's hands
//!   (`parking.rs`): hyper reads the end of the stream instead, and when
//!   hyper lets go of the socket, the socket and the head go to the
//!   connection's [`Handoff`];
//! - a `latest` lookup the caches can answer (`parking.rs`) it answers
//!   itself, and reads on: hyper never sees that request.
//!
//! A head can only be taken while hyper holds none of the connection's
//! bytes: every earlier request came alone in its read (one complete
//! body-less head) and nothing was read while a request was in flight.
//! A connection that ever does otherwise (an upload, pipelining, a head in
//! several pieces) is read straight through from then on.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::listen::Activity;
use crate::parking::{Look, Parker, Ticket};
use crate::sendfile::{Sending, is_mark};

/// The largest request head looked at for parking (a watcher's is ~200 bytes).
const HEAD_MAX: usize = 2048;

/// A long-poll taken out of hyper: its socket and its request head.
pub struct Handoff {
    pub socket: TcpStream,
    pub head: Bytes,
    pub ticket: Ticket,
}

/// Where a connection's [`Handoff`] lands when hyper lets go of the socket.
pub type HandoffSlot = Arc<Mutex<Option<Handoff>>>;

/// Watching heads for long-polls to park.
pub struct Heads {
    parker: Parker,
    act: Arc<Activity>,
    peer: SocketAddr,
    slot: HandoffSlot,
    /// hyper holds none of the connection's bytes between requests.
    clean: bool,
    taken: Option<(Bytes, Ticket)>,
}

impl Heads {
    pub fn new(parker: Parker, act: Arc<Activity>, peer: SocketAddr, slot: HandoffSlot) -> Heads {
        Heads {
            parker,
            act,
            peer,
            slot,
            clean: true,
            taken: None,
        }
    }
}

pub struct PlainSocket {
    /// Always there until drop, which may hand it over.
    socket: Option<TcpStream>,
    sending: Arc<Sending>,
    /// Bytes read that hyper has not taken yet (a replayed head, or the
    /// rest of a read larger than hyper's buffer).
    unread: Bytes,
    /// The unsent rest of an answer written from memory; it goes out before
    /// anything else is read or written.
    answer: Bytes,
    /// hyper was given a request and may still hold bytes of its answer: set
    /// when hyper reads, cleared when hyper flushes (it only flushes the
    /// socket once its own buffer is empty) with no request in flight.
    owed: bool,
    heads: Option<Heads>,
}

impl PlainSocket {
    /// `unread` is given to hyper before anything else is read.
    pub fn new(socket: TcpStream, unread: Bytes, heads: Option<Heads>) -> PlainSocket {
        PlainSocket {
            socket: Some(socket),
            sending: Arc::default(),
            unread,
            answer: Bytes::new(),
            owed: false,
            heads,
        }
    }

    /// Sends the rest of an answer written from memory, if any.
    fn poll_answer(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.answer.is_empty() {
            let socket = self.socket.as_mut().expect("the socket stays until drop");
            let n = ready!(Pin::new(socket).poll_write(cx, &self.answer))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            let _ = self.answer.split_to(n);
        }
        Poll::Ready(Ok(()))
    }

    /// What this connection's responses queue their files on.
    pub fn sending(&self) -> Arc<Sending> {
        self.sending.clone()
    }

    fn socket(&mut self) -> &mut TcpStream {
        self.socket.as_mut().expect("the socket stays until drop")
    }
}

impl AsyncRead for PlainSocket {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if !this.unread.is_empty() {
            let n = buf.remaining().min(this.unread.len());
            buf.put_slice(&this.unread.split_to(n));
            this.owed = true;
            return Poll::Ready(Ok(()));
        }
        // Each turn answers one lookup from memory; the socket's read
        // budget (tokio's) ends a long run of them.
        loop {
            ready!(this.poll_answer(cx))?;
            let socket = this.socket.as_mut().expect("the socket stays until drop");
            let Some(heads) = this.heads.as_mut().filter(|h| h.clean) else {
                return Pin::new(socket).poll_read(cx, buf);
            };
            if heads.taken.is_some() {
                // hyper sees the end of the stream; the request is parked.
                return Poll::Ready(Ok(()));
            }
            if heads.act.busy() {
                // hyper looks for the end of the stream while it answers: bytes
                // now are a pipelined request or a body.
                let before = buf.filled().len();
                let r = Pin::new(socket).poll_read(cx, buf);
                if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
                    heads.clean = false;
                }
                return r;
            }
            let mut head = [std::mem::MaybeUninit::<u8>::uninit(); HEAD_MAX];
            let mut rb = ReadBuf::uninit(&mut head);
            ready!(Pin::new(socket).poll_read(cx, &mut rb))?;
            let got = rb.filled();
            // Only once hyper has sent all it owes may bytes of ours go out.
            match heads.parker.look(got, heads.peer, !this.owed) {
                Look::Park(ticket) => {
                    heads.taken = Some((Bytes::copy_from_slice(got), ticket));
                    return Poll::Ready(Ok(()));
                }
                Look::Answer(answer) => {
                    heads.act.idle_from_now();
                    this.answer = answer;
                    continue;
                }
                Look::Whole => {}
                Look::Other => heads.clean = false,
            }
            let n = buf.remaining().min(got.len());
            buf.put_slice(&got[..n]);
            if n < got.len() {
                this.unread = Bytes::copy_from_slice(&got[n..]);
            }
            this.owed = true;
            return Poll::Ready(Ok(()));
        }
    }
}

impl AsyncWrite for PlainSocket {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        ready!(self.poll_answer(cx))?;
        if is_mark(buf) {
            let this = &mut *self;
            return this
                .sending
                .poll_send(this.socket.as_ref().expect("socket"), cx, buf.len());
        }
        Pin::new(self.socket()).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        ready!(self.poll_answer(cx))?;
        let first = bufs.iter().position(|b| !b.is_empty()).unwrap_or(bufs.len());
        let bufs = &bufs[first..];
        match bufs.first() {
            None => Poll::Ready(Ok(0)),
            Some(b) if is_mark(b) => {
                let want = bufs.iter().take_while(|b| is_mark(b)).map(|b| b.len()).sum();
                let this = &mut *self;
                this.sending.poll_send(this.socket.as_ref().expect("socket"), cx, want)
            }
            Some(_) => {
                // The real bytes before the next mark.
                let real = bufs.iter().position(|b| is_mark(b)).unwrap_or(bufs.len());
                Pin::new(self.socket()).poll_write_vectored(cx, &bufs[..real])
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_answer(cx))?;
        ready!(Pin::new(self.socket()).poll_flush(cx))?;
        if self.heads.as_ref().is_some_and(|h| !h.act.busy()) {
            self.owed = false;
        }
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_answer(cx))?;
        if self.heads.as_ref().is_some_and(|h| h.taken.is_some()) {
            // hyper is done with a connection whose request is parked: the
            // socket stays open for the answer.
            return Poll::Ready(Ok(()));
        }
        Pin::new(self.socket()).poll_shutdown(cx)
    }
}

impl Drop for PlainSocket {
    fn drop(&mut self) {
        if let Some(heads) = self.heads.as_mut()
            && let Some((head, ticket)) = heads.taken.take()
            && let Some(socket) = self.socket.take()
        {
            *heads.slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(Handoff { socket, head, ticket });
        }
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use uk_names::{BuildId, JobName};

    use super::*;
    use crate::state::{AppState, ServeConfig};

    /// A lookup that arrives while hyper may still hold bytes of its
    /// previous answer goes to hyper; once hyper has flushed, the next one
    /// is answered from memory, after hyper's bytes.
    #[tokio::test]
    async fn a_lookup_is_answered_from_memory_only_once_hyper_has_flushed() {
        let dir = tempfile::tempdir().unwrap();
        let st = AppState::open(&ServeConfig::new(dir.path().to_owned())).await.unwrap();
        let (job, uuid) = (JobName::from_str("web").unwrap(), BuildId::new_random());
        st.caches.put_jobs([job.clone()]);
        st.caches
            .put_latest(&job, &None, st.notify.generation(&job), Some((uuid, None)));

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (server, peer) = listener.accept().await.unwrap();
        let act = Arc::new(Activity::new());
        let heads = Heads::new(Parker::new(st.clone()), act, peer, HandoffSlot::default());
        let mut plain = PlainSocket::new(server, Bytes::new(), Some(heads));
        let lookup = b"GET /job/web/build/latest HTTP/1.1\r\nHost: x\r\n\r\n";
        let mut buf = [0u8; 512];

        // A request for hyper; hyper owes its answer and has not flushed.
        client
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let n = plain.read(&mut buf).await.unwrap();
        assert!(buf[..n].starts_with(b"GET /healthz"));
        plain
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
            .await
            .unwrap();
        client.write_all(lookup).await.unwrap();
        // (Answered from memory, the read would go on waiting.)
        let n = tokio::time::timeout(std::time::Duration::from_secs(10), plain.read(&mut buf))
            .await
            .expect("a lookup was answered from memory while hyper owed bytes")
            .unwrap();
        assert_eq!(&buf[..n], lookup);
        assert_eq!(
            st.metrics.latest_from_memory.load(std::sync::atomic::Ordering::Relaxed),
            0
        );

        // hyper answers it and flushes: the next lookup is answered from
        // memory (the read goes on waiting for hyper's next request).
        plain.write_all(b"HTTP/1.1 204 No Content\r\n\r\n").await.unwrap();
        plain.flush().await.unwrap();
        client.write_all(lookup).await.unwrap();
        let reading = tokio::spawn(async move {
            let mut buf = [0u8; 512];
            let n = plain.read(&mut buf).await.unwrap();
            buf[..n].to_vec()
        });
        let want = format!("HTTP/1.1 307 Temporary Redirect\r\nlocation: /job/web/build/{uuid}\r\n");
        let head = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nokHTTP/1.1 204 No Content\r\n\r\n";
        let mut got = vec![0; head.len() + want.len()];
        client.read_exact(&mut got).await.unwrap();
        assert_eq!(&got[..head.len()], head);
        assert_eq!(String::from_utf8_lossy(&got[head.len()..]), want);
        assert_eq!(
            st.metrics.latest_from_memory.load(std::sync::atomic::Ordering::Relaxed),
            1
        );

        // The connection's next request still reaches hyper.
        client
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        assert!(reading.await.unwrap().starts_with(b"GET /healthz"));
    }
}
