//! Artifact bytes, content-addressed, behind a small interface so that an
//! S3-compatible object store can be added beside the local one.
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
use futures_util::stream::BoxStream;
use uk_digest::{AtomicFile, Sha256, Staged, fsync_dir};

/// Bytes of one artifact (or of a range of it) and their count.
pub struct ArtifactBody {
    pub stream: BoxStream<'static, io::Result<Bytes>>,
    pub len: u64,
}

/// Artifacts up to this size are read in one go; larger ones stream.
const SMALL: u64 = 64 * 1024;
/// Chunks of a streamed artifact: under glibc's mmap threshold, so freed
/// chunks go back to the system and many parallel downloads stay cheap.
const CHUNK: usize = 64 * 1024;

/// Streams `len` bytes of `file` from its current position. Each chunk is
/// read by a short task on the blocking pool only when the client has taken
/// the previous one, so a slow reader holds no thread.
fn stream_file(file: fs::File, len: u64) -> BoxStream<'static, io::Result<Bytes>> {
    use tokio::io::AsyncReadExt;
    let file = tokio::fs::File::from_std(file);
    futures_util::stream::try_unfold((file, len), |(mut file, left)| async move {
        if left == 0 {
            return Ok(None);
        }
        let n = CHUNK.min(left as usize);
        let mut buf = bytes::BytesMut::with_capacity(n);
        while buf.len() < n {
            let want = (n - buf.len()) as u64;
            if (&mut file).take(want).read_buf(&mut buf).await? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "stored artifact is shorter than recorded",
                ));
            }
        }
        Ok(Some((buf.freeze(), (file, left - n as u64))))
    })
    .boxed()
}

/// Where artifact bytes live. Methods block (call them off the async
/// runtime, except `get`, which only opens); the bytes of `get` stream.
pub trait ArtifactStore: Send + Sync + 'static {
    /// A new staging file; write the bytes, then [`AtomicFile::finish`].
    fn begin(&self) -> io::Result<AtomicFile>;
    /// Stores a verified staged file under its digest; `true` when it was
    /// not stored yet. An identical stored artifact is kept (the staged copy
    /// is dropped) and counts as new again for the blob collector's grace
    /// period, so a collector never takes it from under a commit.
    fn put(&self, staged: Staged) -> io::Result<bool>;
    /// The bytes `[start, start+len)` of an artifact, or all of it.
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
}

/// The embedded default: files under the data directory.
pub struct LocalStore {
    artifacts: PathBuf,
    staging: PathBuf,
}

impl LocalStore {
    pub fn open(data_dir: &Path) -> io::Result<LocalStore> {
        let store = LocalStore {
            artifacts: data_dir.join("artifacts"),
            staging: data_dir.join("staging"),
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
            return Ok(Some(ArtifactBody { stream, len }));
        }
        Ok(Some(ArtifactBody {
            stream: stream_file(file, len),
            len,
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
        let mut n = 0;
        for entry in fs::read_dir(&self.staging)? {
            fs::remove_file(entry?.path())?;
            n += 1;
        }
        Ok(n)
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
        let chunks: Vec<Bytes> = body.stream.map(|c| c.unwrap()).collect().await;
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
        let mut body = store.get(&sha, Some((2, 3))).unwrap().unwrap();
        let chunk = body.stream.next().await.unwrap().unwrap();
        assert_eq!((&chunk[..], body.len), (&b"234"[..], 3));
        store.delete(&sha).unwrap();
        assert!(!store.exists(&sha).unwrap());
        assert!(store.get(&sha, None).unwrap().is_none());
    }
}
