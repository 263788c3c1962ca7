//! Streams a request body into a staging file of the store without holding
//! it in memory and without pinning a thread: chunks are gathered into
//! batches, and each batch is written and hashed by a short task on the
//! blocking pool while the next batch is received, so receiving overlaps
//! writing and hashing, and a slow disk pushes back on the client (at most
//! one batch in flight and one gathering). A client that pauses holds no
//! thread. The size limit is enforced as bytes arrive. Dropping a
//! [`Stager`] without [`Stager::finish`] discards the file.

use std::io::Write;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use tokio::task::JoinHandle;
use uk_digest::{AtomicFile, Staged};

use crate::error::ApiError;
use crate::store::ArtifactStore;

/// Bytes gathered before they are handed to the disk.
const BATCH: usize = 512 * 1024;

pub struct Stager {
    /// The file, when no write is in flight.
    file: Option<AtomicFile>,
    /// The write in flight; it hands the file back.
    writing: Option<JoinHandle<std::io::Result<AtomicFile>>>,
    gathered: Vec<Bytes>,
    gathered_len: usize,
}

fn write_all(file: &mut AtomicFile, batch: &[Bytes]) -> std::io::Result<()> {
    batch.iter().try_for_each(|b| file.write_all(b))
}

impl Stager {
    pub fn new(store: &Arc<dyn ArtifactStore>) -> Result<Stager, ApiError> {
        let file = store
            .begin()
            .map_err(|e| ApiError::from_io(e, "creating a staging file"))?;
        Ok(Stager {
            file: Some(file),
            writing: None,
            gathered: Vec::new(),
            gathered_len: 0,
        })
    }

    /// The file, once the write in flight (if any) is done.
    async fn file(&mut self) -> Result<AtomicFile, ApiError> {
        if let Some(w) = self.writing.take() {
            let file = w
                .await
                .map_err(|e| ApiError::Internal(e.into()))?
                .map_err(|e| ApiError::from_io(e, "writing a staging file"))?;
            self.file = Some(file);
        }
        self.file
            .take()
            .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("the staging file was lost after an error")))
    }

    async fn write(&mut self, chunk: Bytes) -> Result<(), ApiError> {
        self.gathered_len += chunk.len();
        self.gathered.push(chunk);
        if self.gathered_len >= BATCH {
            let mut file = self.file().await?;
            let batch = std::mem::take(&mut self.gathered);
            self.gathered_len = 0;
            self.writing = Some(tokio::task::spawn_blocking(move || {
                write_all(&mut file, &batch)?;
                Ok(file)
            }));
        }
        Ok(())
    }

    /// Writes what is left, fsyncs, and returns the staged file with its
    /// digest and size.
    pub async fn finish(mut self) -> Result<Staged, ApiError> {
        let mut file = self.file().await?;
        let batch = std::mem::take(&mut self.gathered);
        tokio::task::spawn_blocking(move || {
            write_all(&mut file, &batch)?;
            file.finish()
        })
        .await
        .map_err(|e| ApiError::Internal(e.into()))?
        .map_err(|e| ApiError::from_io(e, "writing a staging file"))
    }
}

/// Stages a whole stream, counting against `budget` (the bytes still allowed
/// for this request; `limit` is the configured total, for the message).
pub async fn stage_stream<S, E>(
    store: &Arc<dyn ArtifactStore>,
    mut stream: S,
    budget: &mut u64,
    limit: u64,
    idle: std::time::Duration,
) -> Result<Staged, ApiError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let mut stager = Stager::new(store)?;
    // A client that stops sending loses its slot after `idle`.
    while let Some(chunk) = tokio::time::timeout(idle, stream.next())
        .await
        .map_err(|_| ApiError::RequestTimeout(idle))?
    {
        let chunk = chunk.map_err(|e| ApiError::BadRequest(format!("reading the request body failed: {e}")))?;
        let n = chunk.len() as u64;
        if n > *budget {
            return Err(ApiError::TooLarge { limit });
        }
        *budget -= n;
        stager.write(chunk).await?;
    }
    stager.finish().await
}

/// A request body whose unread rest can still be drained after the code
/// reading it gave up with an error (too large, disk full, bad multipart):
/// answering while the client is still sending makes the kernel reset the
/// connection, and the client sees "connection reset" instead of our
/// answer. Draining a bounded amount first (as nginx's lingering close
/// does) lets a client that is nearly done read the real error.
pub struct Lingering {
    inner: Arc<std::sync::Mutex<axum::body::BodyDataStream>>,
}

pub struct Drain {
    inner: Arc<std::sync::Mutex<axum::body::BodyDataStream>>,
}

pub fn lingering(body: axum::body::Body) -> (Lingering, Drain) {
    let inner = Arc::new(std::sync::Mutex::new(body.into_data_stream()));
    (Lingering { inner: inner.clone() }, Drain { inner })
}

impl Stream for Lingering {
    type Item = Result<Bytes, axum::Error>;

    fn poll_next(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).poll_next_unpin(cx)
    }
}

impl Drain {
    /// Reads and drops what the client still sends, up to `max_bytes` or
    /// `max_time`, whichever comes first.
    pub async fn run(self, max_bytes: u64, max_time: std::time::Duration) {
        let inner = self.inner;
        let next =
            || futures_util::future::poll_fn(|cx| inner.lock().unwrap_or_else(|e| e.into_inner()).poll_next_unpin(cx));
        let mut left = max_bytes;
        let _ = tokio::time::timeout(max_time, async {
            while let Some(Ok(chunk)) = next().await {
                left = left.saturating_sub(chunk.len() as u64);
                if left == 0 {
                    break;
                }
            }
        })
        .await;
    }
}
