//! Artifact bodies sent with `sendfile(2)` on plain HTTP/1 connections: the
//! page cache goes to the socket with no copy through user space and no
//! blocking-pool hop per chunk (as nginx serves static files).
//!
//! hyper owns the connection and writes each response itself, so the file's
//! bytes stand in its write queue as *marks*: slices of one static buffer,
//! [`MARK`], never read. The connection's socket (`plain.rs`) knows the
//! marks by their address: where hyper writes a mark, it sends the same
//! number of bytes of the file instead, from the response's [`Sending`].
//! hyper writes in order, one response after another, so the marks of a
//! connection's responses meet their files in the order the bodies began
//! ([`FileBody`] queues its file when hyper first asks it for bytes; a
//! `HEAD` answer, never asked, queues nothing).
//!
//! Marks are only ever handed to hyper's HTTP/1 writer on a plain TCP
//! socket, configured to queue body buffers rather than copy them
//! (`writev(true)` in `listen.rs`). A mark the socket cannot match with a
//! file is an error that closes the connection: a client never receives
//! the placeholder bytes.

use std::collections::VecDeque;
use std::fs;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use tokio::io::Interest;
use tokio::net::TcpStream;

/// Bytes of the file each body frame stands for. After the last frame is
/// handed over, the connection counts as idle while hyper still sends it, so
/// frames stay small enough for any client that reads at all.
const FRAME: usize = 64 * 1024;

/// The placeholder bytes. A `static` has one address, which is how the
/// socket tells a mark from real bytes; it is never read or written (its
/// pages are never touched).
static MARK: [u8; FRAME] = [0; FRAME];

pub(crate) fn is_mark(s: &[u8]) -> bool {
    let (p, base) = (s.as_ptr() as usize, MARK.as_ptr() as usize);
    !s.is_empty() && p >= base && p + s.len() <= base + FRAME
}

/// One file being sent: the bytes `[off, off + left)`.
struct Job {
    file: fs::File,
    off: u64,
    left: u64,
}

/// The files of one connection's responses, in the order their marks come.
#[derive(Default)]
pub struct Sending {
    jobs: Mutex<Jobs>,
}

#[derive(Default)]
struct Jobs {
    queue: VecDeque<Job>,
    /// A body was dropped before handing over all its marks: the marks that
    /// follow no longer line up with the files, so every later one fails.
    broken: bool,
}

impl Sending {
    fn jobs(&self) -> std::sync::MutexGuard<'_, Jobs> {
        self.jobs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The body of a response that sends `len` bytes of `file` from `start`.
    ///
    /// Each `sendfile` runs on the runtime's thread, as nginx runs it on its
    /// worker: from the page cache (an artifact just uploaded or already
    /// fetched is there; the kernel reads ahead of a sequential send) it
    /// never waits; a cold artifact waits for the disk a read at a time.
    pub fn body(self: &Arc<Self>, file: fs::File, start: u64, len: u64) -> FileBody {
        FileBody {
            sending: self.clone(),
            job: Some(Job {
                file,
                off: start,
                left: len,
            }),
            left: len,
        }
    }
}

/// A response body of marks, `len` bytes in all (see the module comment).
pub struct FileBody {
    sending: Arc<Sending>,
    /// Queued on the first poll.
    job: Option<Job>,
    /// Mark bytes not yet handed over.
    left: u64,
}

impl Drop for FileBody {
    fn drop(&mut self) {
        if self.job.is_none() && self.left > 0 {
            self.sending.jobs().broken = true;
        }
    }
}

impl http_body::Body for FileBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<io::Result<Frame<Bytes>>>> {
        if let Some(job) = self.job.take() {
            self.sending.jobs().queue.push_back(job);
        }
        if self.left == 0 {
            return Poll::Ready(None);
        }
        let n = self.left.min(FRAME as u64) as usize;
        self.left -= n as u64;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(&MARK[..n])))))
    }

    fn is_end_stream(&self) -> bool {
        self.left == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.left)
    }
}

impl Sending {
    /// Sends up to `want` bytes of the current file on `stream`: the marks
    /// at the front of what hyper writes.
    pub(crate) fn poll_send(&self, stream: &TcpStream, cx: &mut Context<'_>, want: usize) -> Poll<io::Result<usize>> {
        loop {
            ready!(stream.poll_write_ready(cx))?;
            let mut jobs = self.jobs();
            if jobs.broken {
                return Poll::Ready(Err(io::Error::other(
                    "a response body ended early; the connection is closed",
                )));
            }
            let Some(job) = jobs.queue.front_mut() else {
                return Poll::Ready(Err(io::Error::other("file bytes to send, but no file (a bug)")));
            };
            let count = (want as u64).min(job.left) as usize;
            let sent = stream.try_io(Interest::WRITABLE, || {
                rustix::fs::sendfile(stream, &job.file, Some(&mut job.off), count).map_err(io::Error::from)
            });
            match sent {
                Ok(0) => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "stored artifact is shorter than recorded",
                    )));
                }
                Ok(n) => {
                    job.left -= n as u64;
                    if job.left == 0 {
                        jobs.queue.pop_front();
                    }
                    return Poll::Ready(Ok(n));
                }
                // `try_io` cleared the readiness: wait for it again.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use http_body::Body;
    use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};

    use super::*;
    use crate::plain::PlainSocket;

    async fn frame(body: &mut FileBody) -> Option<Bytes> {
        let f = std::future::poll_fn(|cx| Pin::new(&mut *body).poll_frame(cx)).await;
        f.map(|f| f.unwrap().into_data().unwrap())
    }

    fn file_of(data: &[u8]) -> fs::File {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(data).unwrap();
        f
    }

    async fn pair() -> (PlainSocket, TcpStream) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(l.local_addr().unwrap());
        let (client, accepted) = tokio::join!(client, l.accept());
        (
            PlainSocket::new(accepted.unwrap().0, Bytes::new(), None),
            client.unwrap(),
        )
    }

    /// Real bytes and two bodies' marks, written as hyper would (vectored,
    /// split at odd places), arrive as the real bytes and the files' ranges.
    #[tokio::test]
    async fn marks_are_replaced_by_their_files_bytes_in_order() {
        let a: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let b: Vec<u8> = (0..100_000u32).map(|i| (i % 241) as u8).collect();
        let (mut server, mut client) = pair().await;
        let sending = server.sending();
        let mut first = sending.body(file_of(&a), 1000, 150_000);
        let mut second = sending.body(file_of(&b), 0, 100_000);
        let mut out: Vec<Bytes> = vec![Bytes::from_static(b"head-1|")];
        while let Some(f) = frame(&mut first).await {
            out.push(f);
        }
        out.push(Bytes::from_static(b"|head-2|"));
        while let Some(f) = frame(&mut second).await {
            out.push(f);
        }
        out.push(Bytes::from_static(b"|end"));
        let expected = [&b"head-1|"[..], &a[1000..151_000], b"|head-2|", &b, b"|end"].concat();
        let total = expected.len();
        let reader = tokio::spawn(async move {
            let mut got = vec![0; total];
            client.read_exact(&mut got).await.unwrap();
            got
        });
        // Write in slices of 3 buffers at a time, each advanced by what was taken.
        let mut pending: VecDeque<Bytes> = out.into();
        while !pending.is_empty() {
            let slices: Vec<io::IoSlice<'_>> = pending.iter().take(3).map(|b| io::IoSlice::new(b)).collect();
            let mut n = std::future::poll_fn(|cx| Pin::new(&mut server).poll_write_vectored(cx, &slices))
                .await
                .unwrap();
            while n > 0 {
                let front = pending.front_mut().unwrap();
                let take = n.min(front.len());
                let _ = front.split_to(take);
                n -= take;
                if front.is_empty() {
                    pending.pop_front();
                }
            }
        }
        server.flush().await.unwrap();
        assert_eq!(reader.await.unwrap(), expected);
    }

    #[tokio::test]
    async fn a_mark_without_a_file_or_after_a_body_ended_early_is_an_error() {
        let (mut server, _client) = pair().await;
        let err = server.write(&MARK[..10]).await.unwrap_err();
        assert!(err.to_string().contains("no file"), "{err}");
        let sending = server.sending();
        let mut body = sending.body(file_of(&[7; 200_000]), 0, 200_000);
        assert!(!body.is_end_stream());
        frame(&mut body).await.unwrap();
        drop(body);
        let err = server.write(&MARK[..10]).await.unwrap_err();
        assert!(err.to_string().contains("ended early"), "{err}");
        // Real bytes are not marks, even when they are zeros.
        assert_eq!(server.write(&[0; 10]).await.unwrap(), 10);
    }
}
