//! Artifacts in any S3-compatible service (AWS, Garage, MinIO, Ceph, …)
//! behind [`ArtifactStore`], with `object_store`'s AWS client. Objects are
//! `[PREFIX/]artifacts/<aa>/<sha256>`, never modified once written.
//!
//! Uploads stage on local disk exactly as for the local store (hashed while
//! written, fsynced, checked by the caller against the client's digest);
//! only then does [`S3Store::put`] send the file to the bucket, in parts
//! for large files, and check the size the bucket reports. Calls come from
//! blocking threads and run on the I/O runtime (`bridge.rs`); downloads
//! stream from the bucket to the client without touching the disk.
//!
//! Configuration is the standard environment: `AWS_ENDPOINT_URL`,
//! `AWS_REGION`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`.

use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::Context;
use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use futures_util::{StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjectPath;
use object_store::signer::Signer;
use object_store::{
    BackoffConfig, ClientOptions, GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig,
    WriteMultipart,
};
use uk_digest::{AtomicFile, Sha256, Staged};

use crate::bridge;
use crate::store::{ArtifactBody, ArtifactStore, Unavailable, clean_dir};

/// Files up to this size go in one request; larger ones in parts of this
/// size (S3's smallest part is 5 MiB).
const PART: usize = 8 << 20;
/// Parts in flight at once per upload (bounds memory: PART each).
const PARTS_IN_FLIGHT: usize = 2;

pub struct S3Store {
    client: AmazonS3,
    /// `[PREFIX/]artifacts`
    root: String,
    staging: PathBuf,
    display: String,
}

/// An `object_store` failure as an I/O error: a missing object is
/// `NotFound`; anything else means the service is unreachable or refused
/// (503 to clients, see `error.rs`).
fn io_err(e: object_store::Error) -> io::Error {
    match e {
        object_store::Error::NotFound { .. } => io::Error::new(io::ErrorKind::NotFound, e),
        other => io::Error::other(Unavailable(Box::new(other))),
    }
}

fn not_found(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound
}

impl S3Store {
    /// A client for `bucket` from the `AWS_*` environment. Nothing is sent
    /// yet ([`ArtifactStore::check`] asks the service).
    pub fn open(bucket: &str, prefix: &str, staging: &Path) -> anyhow::Result<S3Store> {
        // reqwest's TLS uses the process's rustls provider: ring, as the
        // server's own TLS (an error only says one is installed already).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap_or_default();
        let client = AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            // Failures answer 503 within seconds instead of after minutes
            // of retries; a download may take as long as its client reads.
            .with_retry(RetryConfig {
                backoff: BackoffConfig::default(),
                max_retries: 2,
                retry_timeout: Duration::from_secs(10),
            })
            .with_client_options(
                ClientOptions::new()
                    .with_allow_http(endpoint.starts_with("http://"))
                    .with_connect_timeout(Duration::from_secs(5))
                    .with_timeout_disabled()
                    .with_read_timeout(Duration::from_secs(30)),
            )
            .build()
            .with_context(|| format!("configuring the S3 store s3://{bucket}/{prefix} (AWS_* variables)"))?;
        let root = if prefix.is_empty() {
            "artifacts".to_owned()
        } else {
            format!("{prefix}/artifacts")
        };
        Ok(S3Store {
            client,
            display: format!("s3://{bucket}/{root}"),
            root,
            staging: staging.to_owned(),
        })
    }

    fn key(&self, sha: &Sha256) -> ObjectPath {
        let hex = sha.to_hex();
        ObjectPath::from(format!("{}/{}/{hex}", self.root, &hex[..2]))
    }

    /// Sends a staged file: one request, or parts for a large one.
    async fn upload(client: AmazonS3, key: ObjectPath, path: PathBuf, size: u64) -> io::Result<()> {
        if size <= PART as u64 {
            let bytes = tokio::fs::read(&path).await?;
            client.put(&key, PutPayload::from(bytes)).await.map_err(io_err)?;
            return Ok(());
        }
        let upload = client.put_multipart(&key).await.map_err(io_err)?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART);
        let mut file = tokio::fs::File::open(&path).await?;
        let sent: io::Result<()> = async {
            use tokio::io::AsyncReadExt;
            loop {
                writer.wait_for_capacity(PARTS_IN_FLIGHT).await.map_err(io_err)?;
                let mut buf = bytes::BytesMut::with_capacity(1 << 20);
                if file.read_buf(&mut buf).await? == 0 {
                    return Ok(());
                }
                writer.put(buf.freeze());
            }
        }
        .await;
        match sent {
            Ok(()) => writer.finish().await.map(|_| ()).map_err(io_err),
            Err(e) => {
                let _ = writer.abort().await;
                Err(e)
            }
        }
    }

    async fn get_from(
        client: AmazonS3,
        key: ObjectPath,
        range: Option<(u64, u64)>,
    ) -> io::Result<Option<ArtifactBody>> {
        let options = GetOptions {
            range: range.map(|(start, len)| GetRange::Bounded(start..start + len)),
            ..GetOptions::default()
        };
        match client.get_opts(&key, options).await {
            Ok(r) => {
                let len = r.range.end - r.range.start;
                let stream: BoxStream<'static, io::Result<Bytes>> = r.into_stream().map_err(io_err).boxed();
                Ok(Some(ArtifactBody::from_stream(stream, len)))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(io_err(e)),
        }
    }

    fn head(&self, sha: &Sha256) -> io::Result<Option<object_store::ObjectMeta>> {
        match bridge::block_on(self.client.head(&self.key(sha))).map_err(io_err) {
            Ok(m) => Ok(Some(m)),
            Err(e) if not_found(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

impl ArtifactStore for S3Store {
    fn begin(&self) -> io::Result<AtomicFile> {
        std::fs::create_dir_all(&self.staging)?;
        AtomicFile::new_in(&self.staging, "upload")
    }

    /// Sends the verified file even when the object exists: the write
    /// refreshes its time, so the start-up sweep of another replica (which
    /// spares recent objects) never takes it from under this commit.
    fn put(&self, staged: Staged) -> io::Result<bool> {
        let existed = self.head(&staged.sha256)?.is_some();
        let key = self.key(&staged.sha256);
        bridge::block_on(Self::upload(
            self.client.clone(),
            key,
            staged.path().to_owned(),
            staged.size,
        ))?;
        let stored = self.head(&staged.sha256)?.map(|m| m.size);
        if stored != Some(staged.size) {
            return Err(io::Error::other(format!(
                "the bucket holds {stored:?} bytes for {} after storing {} bytes",
                staged.sha256, staged.size
            )));
        }
        Ok(!existed)
    }

    fn get(&self, sha: &Sha256, range: Option<(u64, u64)>) -> io::Result<Option<ArtifactBody>> {
        bridge::block_on(Self::get_from(self.client.clone(), self.key(sha), range))
    }

    fn get_async(
        &self,
        sha: Sha256,
        range: Option<(u64, u64)>,
    ) -> BoxFuture<'static, io::Result<Option<ArtifactBody>>> {
        let (client, key) = (self.client.clone(), self.key(&sha));
        Box::pin(bridge::run(Self::get_from(client, key, range)))
    }

    fn presign(&self, sha: Sha256, ttl: Duration) -> BoxFuture<'static, io::Result<Option<String>>> {
        let (client, key) = (self.client.clone(), self.key(&sha));
        Box::pin(bridge::run(async move {
            let url = client
                .signed_url(axum::http::Method::GET, &key, ttl)
                .await
                .map_err(io_err)?;
            Ok(Some(url.to_string()))
        }))
    }

    fn exists(&self, sha: &Sha256) -> io::Result<bool> {
        Ok(self.head(sha)?.is_some())
    }

    fn delete(&self, sha: &Sha256) -> io::Result<()> {
        match bridge::block_on(self.client.delete(&self.key(sha))).map_err(io_err) {
            Err(e) if !not_found(&e) => Err(e),
            _ => Ok(()),
        }
    }

    fn list(&self) -> io::Result<Vec<(Sha256, SystemTime)>> {
        let root = ObjectPath::from(self.root.as_str());
        let metas: Vec<object_store::ObjectMeta> =
            bridge::block_on(self.client.list(Some(&root)).try_collect()).map_err(io_err)?;
        Ok(metas
            .into_iter()
            .filter_map(|m| {
                let sha = m.location.filename()?.parse::<Sha256>().ok()?;
                Some((sha, SystemTime::from(m.last_modified)))
            })
            .collect())
    }

    fn size_of(&self, sha: &Sha256) -> io::Result<Option<u64>> {
        Ok(self.head(sha)?.map(|m| m.size))
    }

    fn clean_staging(&self) -> io::Result<usize> {
        clean_dir(&self.staging)
    }

    /// Asks for an object that never exists: any answer but an error
    /// means the bucket is there and the credentials work.
    fn check(&self) -> io::Result<()> {
        let probe = ObjectPath::from(format!("{}/health-check", self.root));
        match bridge::block_on(self.client.head(&probe)).map_err(io_err) {
            Err(e) if !not_found(&e) => Err(e),
            _ => Ok(()),
        }
    }

    fn read(&self, sha: &Sha256) -> io::Result<Option<Box<dyn Read + Send>>> {
        Ok(self.get(sha, None)?.map(|b| {
            Box::new(StreamReader {
                stream: b.into_stream(),
                chunk: Bytes::new(),
            }) as Box<dyn Read + Send>
        }))
    }

    fn shared(&self) -> bool {
        true
    }

    fn describe(&self) -> String {
        self.display.clone()
    }
}

/// A download stream read from a blocking thread.
struct StreamReader {
    stream: BoxStream<'static, io::Result<Bytes>>,
    chunk: Bytes,
}

impl Read for StreamReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.chunk.is_empty() {
            match bridge::block_on(self.stream.next()) {
                Some(chunk) => self.chunk = chunk?,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len());
        buf[..n].copy_from_slice(&self.chunk.split_to(n));
        Ok(n)
    }
}
