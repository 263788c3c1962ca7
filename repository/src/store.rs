//! Artifact bytes, content-addressed, behind a small interface: the local
//! store here (the embedded default) and an S3-compatible one (`s3.rs`),
//! chosen by `--store-url` ([`StoreUrl`]).
//!
//! The local store keeps `artifacts/<aa>/<sha256>` under the data dir and
//! stages uploads in `staging/` on the same file system: a staged file is
//! written while hashed, fsynced, verified by the caller, then renamed into
//! place and its directory fsynced. Files in the store are never modified.

use std::fs;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use uk_digest::{AtomicFile, Sha256, Staged, fsync_dir};

/// Bytes of one artifact (or of a range of it) and their count.
pub struct ArtifactBody {
    pub len: u64,
    source: Source,
}

enum Source {
    Stream(BoxStream<'static, io::Result<Bytes>>),
    /// A local file: `len` bytes from `start` (and the file is positioned there).
    File {
        file: fs::File,
        start: u64,
    },
}

impl ArtifactBody {
    pub fn from_stream(stream: BoxStream<'static, io::Result<Bytes>>, len: u64) -> ArtifactBody {
        ArtifactBody {
            len,
            source: Source::Stream(stream),
        }
    }

    /// The bytes as a stream of chunks (a local file is read by a task, see
    /// [`stream_file`], started here).
    pub fn into_stream(self) -> BoxStream<'static, io::Result<Bytes>> {
        match self.source {
            Source::Stream(s) => s,
            Source::File { file, .. } => stream_file(file, self.len),
        }
    }

    /// The open local file and the offset the bytes start at, for a
    /// zero-copy send (`sendfile.rs`); other bodies are given back.
    pub fn into_file(self) -> Result<(fs::File, u64, u64), ArtifactBody> {
        match self.source {
            Source::File { file, start } => Ok((file, start, self.len)),
            source => Err(ArtifactBody { len: self.len, source }),
        }
    }
}

/// Artifacts up to this size are read in one go; larger ones stream.
const SMALL: u64 = 64 * 1024;
/// Chunks of a streamed artifact: under glibc's mmap threshold, so freed
/// chunks go back to the system and many parallel downloads stay cheap.
const CHUNK: usize = 64 * 1024;

/// Chunks read ahead of the one being sent: reading the next chunks
/// overlaps sending this one, and a download holds at most this many.
const READ_AHEAD: usize = 2;

/// `[start, start+len)` of `file` (positioned at `start`) as a stream of
/// chunks. A reader task reads each chunk as one short task on the blocking
/// pool (never a thread held for the whole transfer) straight into the
/// buffer that is sent (no zeroing, no second copy), up to [`READ_AHEAD`]
/// chunks ahead; it stops when the download is dropped.
fn stream_file(file: fs::File, len: u64) -> BoxStream<'static, io::Result<Bytes>> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<io::Result<Bytes>>(READ_AHEAD);
    tokio::spawn(async move {
        let mut file = Some(file);
        let mut left = len;
        while left > 0 {
            let n = CHUNK.min(left as usize);
            let Ok(permit) = tx.reserve().await else {
                return; // the download was dropped
            };
            let f = file.take().expect("the file is back after each read");
            let read = tokio::task::spawn_blocking(move || {
                let mut buf = Vec::with_capacity(n);
                let got = (&f).take(n as u64).read_to_end(&mut buf);
                (f, got.map(|_| buf))
            })
            .await;
            let chunk = match read {
                Ok((f, Ok(buf))) if buf.len() == n => {
                    file = Some(f);
                    Ok(Bytes::from(buf))
                }
                Ok((_, Ok(_))) => Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "stored artifact is shorter than recorded",
                )),
                Ok((_, Err(e))) => Err(e),
                Err(e) => Err(io::Error::other(e)),
            };
            let failed = chunk.is_err();
            permit.send(chunk);
            if failed {
                return;
            }
            left -= n as u64;
        }
    });
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)).boxed()
}

/// Where artifact bytes live. Methods block (call them off the async
/// runtime), except `get`, which only opens; the bytes of `get` stream.
pub trait ArtifactStore: Send + Sync + 'static {
    /// A new staging file; write the bytes, then [`AtomicFile::finish`].
    fn begin(&self) -> io::Result<AtomicFile>;
    /// Stores a verified staged file under its digest; `true` when it was
    /// not stored yet. An identical stored artifact is kept (the staged copy
    /// is dropped) and counts as new again for the blob collector's grace
    /// period, so a collector never takes it from under a commit.
    fn put(&self, staged: Staged) -> io::Result<bool>;
    /// The bytes `[start, start+len)` of an artifact, or all of it (their
    /// stream, [`ArtifactBody::into_stream`], is fed by a task of the
    /// runtime); from async code use [`ArtifactStore::get_async`].
    fn get(&self, sha: &Sha256, range: Option<(u64, u64)>) -> io::Result<Option<ArtifactBody>>;
    fn exists(&self, sha: &Sha256) -> io::Result<bool>;
    fn delete(&self, sha: &Sha256) -> io::Result<()>;
    /// Every stored digest with the time it was last stored (for the
    /// collector of unreferenced blobs).
    fn list(&self) -> io::Result<Vec<(Sha256, std::time::SystemTime)>>;
    /// Bytes stored (for reports of what vacuum freed).
    fn size_of(&self, sha: &Sha256) -> io::Result<Option<u64>>;
    /// Removes staging debris left by a crash; returns how many files.
    fn clean_staging(&self) -> io::Result<usize>;
    /// Does the store answer? (`GET /healthz`)
    fn check(&self) -> io::Result<()>;

    /// As [`ArtifactStore::get`], from async code. The default opens on
    /// the calling thread, which for local files is short.
    fn get_async(
        &self,
        sha: Sha256,
        range: Option<(u64, u64)>,
    ) -> BoxFuture<'static, io::Result<Option<ArtifactBody>>> {
        let opened = self.get(&sha, range);
        Box::pin(async move { opened })
    }

    /// A URL that serves the artifact's bytes without credentials for
    /// `ttl` (`serve --store-redirect`); `None` when the store has none.
    fn presign(&self, _sha: Sha256, _ttl: std::time::Duration) -> BoxFuture<'static, io::Result<Option<String>>> {
        Box::pin(async { Ok(None) })
    }

    /// The whole artifact as a blocking reader (`migrate`).
    fn read(&self, sha: &Sha256) -> io::Result<Option<Box<dyn Read + Send>>>;

    /// Other processes (replicas) store into it too: a sweep at start-up
    /// must spare blobs they may be about to commit.
    fn shared(&self) -> bool {
        false
    }

    /// For messages: where the bytes are.
    fn describe(&self) -> String;
}

/// Where artifact bytes live (`--store-url`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreUrl {
    /// `file://DIR`: `DIR` holds the `<aa>/<sha256>` files.
    File(PathBuf),
    /// `s3://BUCKET[/PREFIX]`.
    S3 { bucket: String, prefix: String },
}

impl StoreUrl {
    pub fn parse(s: &str) -> anyhow::Result<StoreUrl> {
        if let Some(dir) = s.strip_prefix("file://") {
            anyhow::ensure!(!dir.is_empty(), "the store URL {s:?} names no directory (file:///path)");
            return Ok(StoreUrl::File(PathBuf::from(dir)));
        }
        if let Some(rest) = s.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            anyhow::ensure!(
                !bucket.is_empty(),
                "the store URL {s:?} names no bucket (s3://BUCKET[/PREFIX])"
            );
            return Ok(StoreUrl::S3 {
                bucket: bucket.to_owned(),
                prefix: prefix.trim_matches('/').to_owned(),
            });
        }
        anyhow::bail!("unsupported store URL {s:?}: use file://DIR or s3://BUCKET[/PREFIX]")
    }

    /// The default: `DATA_DIR/artifacts`.
    pub fn in_data_dir(data_dir: &Path) -> StoreUrl {
        StoreUrl::File(data_dir.join("artifacts"))
    }

    /// Opens the store; uploads stage in `staging` (local, beside the data).
    pub fn open(&self, staging: &Path) -> anyhow::Result<std::sync::Arc<dyn ArtifactStore>> {
        use anyhow::Context;
        Ok(match self {
            StoreUrl::File(dir) => std::sync::Arc::new(
                LocalStore::open_dirs(dir, staging)
                    .with_context(|| format!("opening the store in {:?}", dir.display()))?,
            ),
            StoreUrl::S3 { bucket, prefix } => std::sync::Arc::new(crate::s3::S3Store::open(bucket, prefix, staging)?),
        })
    }
}

impl std::fmt::Display for StoreUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreUrl::File(d) => write!(f, "file://{}", d.display()),
            StoreUrl::S3 { bucket, prefix } if prefix.is_empty() => write!(f, "s3://{bucket}"),
            StoreUrl::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
        }
    }
}

/// The embedded default: files under the data directory.
pub struct LocalStore {
    artifacts: PathBuf,
    staging: PathBuf,
}

impl LocalStore {
    pub fn open(data_dir: &Path) -> io::Result<LocalStore> {
        Self::open_dirs(&data_dir.join("artifacts"), &data_dir.join("staging"))
    }

    /// Artifacts in `artifacts`, uploads staged in `staging` (which must be
    /// on the same file system: a stored file is renamed into place).
    pub fn open_dirs(artifacts: &Path, staging: &Path) -> io::Result<LocalStore> {
        let store = LocalStore {
            artifacts: artifacts.to_owned(),
            staging: staging.to_owned(),
        };
        fs::create_dir_all(&store.artifacts)?;
        fs::create_dir_all(&store.staging)?;
        Ok(store)
    }

    pub fn path_of(&self, sha: &Sha256) -> PathBuf {
        let hex = sha.to_hex();
        self.artifacts.join(&hex[..2]).join(hex)
    }
}

impl ArtifactStore for LocalStore {
    fn begin(&self) -> io::Result<AtomicFile> {
        AtomicFile::new_in(&self.staging, "upload")
    }

    fn put(&self, staged: Staged) -> io::Result<bool> {
        let dest = self.path_of(&staged.sha256);
        if dest.exists() {
            // Refresh its age (see the trait); the contents never change.
            fs::File::options()
                .write(true)
                .open(&dest)
                .and_then(|f| f.set_modified(std::time::SystemTime::now()))
                .or_else(|e| {
                    // Read-only artifacts: touching the time needs write access.
                    if e.kind() == io::ErrorKind::PermissionDenied {
                        Ok(())
                    } else {
                        Err(e)
                    }
                })?;
            return Ok(false);
        }
        let dir = dest.parent().expect("artifact paths have a parent");
        if !dir.exists() {
            fs::create_dir_all(dir)?;
            fsync_dir(&self.artifacts)?;
        }
        staged.persist(&dest)?;
        Ok(true)
    }

    fn get(&self, sha: &Sha256, range: Option<(u64, u64)>) -> io::Result<Option<ArtifactBody>> {
        let mut file = match fs::File::open(self.path_of(sha)) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let total = file.metadata()?.len();
        let (start, len) = range.unwrap_or((0, total));
        if start.saturating_add(len) > total {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "stored artifact is shorter than recorded",
            ));
        }
        file.seek(SeekFrom::Start(start))?;
        if len <= SMALL {
            let mut buf = vec![0u8; len as usize];
            file.read_exact(&mut buf)?;
            let bytes = Bytes::from(buf);
            let stream = futures_util::stream::once(async move { Ok(bytes) }).boxed();
            return Ok(Some(ArtifactBody::from_stream(stream, len)));
        }
        Ok(Some(ArtifactBody {
            len,
            source: Source::File { file, start },
        }))
    }

    fn exists(&self, sha: &Sha256) -> io::Result<bool> {
        self.path_of(sha).try_exists()
    }

    fn delete(&self, sha: &Sha256) -> io::Result<()> {
        match fs::remove_file(self.path_of(sha)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    fn list(&self) -> io::Result<Vec<(Sha256, std::time::SystemTime)>> {
        let mut out = Vec::new();
        for dir in fs::read_dir(&self.artifacts)? {
            let dir = dir?;
            if !dir.file_type()?.is_dir() {
                continue;
            }
            for f in fs::read_dir(dir.path())? {
                let f = f?;
                let Some(sha) = f.file_name().to_str().and_then(|n| n.parse::<Sha256>().ok()) else {
                    continue;
                };
                out.push((sha, f.metadata()?.modified()?));
            }
        }
        Ok(out)
    }

    fn size_of(&self, sha: &Sha256) -> io::Result<Option<u64>> {
        match fs::metadata(self.path_of(sha)) {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn check(&self) -> io::Result<()> {
        fs::metadata(&self.artifacts).map(|_| ())
    }

    fn clean_staging(&self) -> io::Result<usize> {
        clean_dir(&self.staging)
    }

    fn read(&self, sha: &Sha256) -> io::Result<Option<Box<dyn Read + Send>>> {
        match fs::File::open(self.path_of(sha)) {
            Ok(f) => Ok(Some(Box::new(f))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn describe(&self) -> String {
        format!("file://{}", self.artifacts.display())
    }
}

/// Removes every file in `dir` (staging debris); a missing `dir` has none.
pub fn clean_dir(dir: &Path) -> io::Result<usize> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut n = 0;
    for entry in entries {
        fs::remove_file(entry?.path())?;
        n += 1;
    }
    Ok(n)
}

/// The store could not be reached or refused to work (an S3 service down,
/// wrong credentials): the request may succeed later (503).
#[derive(Debug, thiserror::Error)]
#[error("the artifact store is unavailable: {0}")]
pub struct Unavailable(#[source] pub Box<dyn std::error::Error + Send + Sync>);

impl Unavailable {
    /// Is this I/O error one of ours?
    pub fn is(e: &io::Error) -> bool {
        e.get_ref().is_some_and(|inner| inner.is::<Unavailable>())
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[tokio::test]
    async fn large_artifacts_stream_in_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(dir.path()).unwrap();
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let mut f = store.begin().unwrap();
        f.write_all(&data).unwrap();
        let staged = f.finish().unwrap();
        let sha = staged.sha256;
        store.put(staged).unwrap();
        let body = store.get(&sha, Some((1000, 250_000))).unwrap().unwrap();
        let chunks: Vec<Bytes> = body.into_stream().map(|c| c.unwrap()).collect().await;
        assert!(chunks.len() > 1);
        assert_eq!(chunks.concat(), &data[1000..251_000]);
    }

    #[tokio::test]
    async fn put_get_range_exists_delete_and_dedupe() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(dir.path()).unwrap();
        let mut f = store.begin().unwrap();
        f.write_all(b"0123456789").unwrap();
        let staged = f.finish().unwrap();
        let sha = staged.sha256;
        store.put(staged).unwrap();
        assert!(store.exists(&sha).unwrap());
        // Same bytes again: stored once, staging left empty.
        let mut g = store.begin().unwrap();
        g.write_all(b"0123456789").unwrap();
        store.put(g.finish().unwrap()).unwrap();
        assert_eq!(fs::read_dir(dir.path().join("staging")).unwrap().count(), 0);
        let body = store.get(&sha, Some((2, 3))).unwrap().unwrap();
        assert_eq!(body.len, 3);
        let chunk = body.into_stream().next().await.unwrap().unwrap();
        assert_eq!(&chunk[..], &b"234"[..]);
        store.delete(&sha).unwrap();
        assert!(!store.exists(&sha).unwrap());
        assert!(store.get(&sha, None).unwrap().is_none());
    }
}
