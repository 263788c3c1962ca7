//! Streams a request body into a staging file of the store without holding
//! it in memory: chunks travel over a bounded channel to a blocking thread
//! that writes and hashes them, so hashing never stalls the async runtime and
//! a slow disk pushes back on the client. The size limit is enforced as bytes
//! arrive. Dropping a [`Stager`] without [`Stager::finish`] discards the file.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use std::io::Write;
use tokio::sync::mpsc;
use uk_digest::Staged;

use crate::error::ApiError;
use crate::store::ArtifactStore;

enum Msg {
    Data(Bytes),
    Done,
}

pub struct Stager {
    tx: mpsc::Sender<Msg>,
    task: tokio::task::JoinHandle<std::io::Result<Option<Staged>>>,
}

impl Stager {
    pub fn new(store: &Arc<dyn ArtifactStore>) -> Result<Stager, ApiError> {
        let mut file = store
            .begin()
            .map_err(|e| ApiError::from_io(e, "creating a staging file"))?;
        let (tx, mut rx) = mpsc::channel::<Msg>(8);
        let task = tokio::task::spawn_blocking(move || {
            while let Some(msg) = rx.blocking_recv() {
                match msg {
                    Msg::Data(b) => file.write_all(&b)?,
                    Msg::Done => return file.finish().map(Some),
                }
            }
            // The sender went away without Done: the upload was abandoned.
            Ok(None)
        });
        Ok(Stager { tx, task })
    }

    async fn write(&mut self, chunk: Bytes) -> Result<(), ApiError> {
        if self.tx.send(Msg::Data(chunk)).await.is_err() {
            // The writer stopped: its error says why.
            let (tx, _) = mpsc::channel(1);
            let tx = std::mem::replace(&mut self.tx, tx);
            drop(tx);
            return match (&mut self.task).await {
                Ok(Err(e)) => Err(ApiError::from_io(e, "writing a staging file")),
                _ => Err(ApiError::Internal(anyhow::anyhow!("staging writer stopped"))),
            };
        }
        Ok(())
    }

    /// fsyncs and returns the staged file with its digest and size.
    pub async fn finish(self) -> Result<Staged, ApiError> {
        let _ = self.tx.send(Msg::Done).await;
        drop(self.tx);
        match self.task.await {
            Ok(Ok(Some(staged))) => Ok(staged),
            Ok(Ok(None)) => Err(ApiError::Internal(anyhow::anyhow!("staging writer ended early"))),
            Ok(Err(e)) => Err(ApiError::from_io(e, "writing a staging file")),
            Err(e) => Err(ApiError::Internal(e.into())),
        }
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
