//! Hashing while streaming: a writer adapter that hashes and counts what passes
//! through it, and helpers that hash a reader or a file in constant memory.
//! sha2 picks the SHA-NI implementation at run time where the CPU has it.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;

use sha2::Digest;

use crate::Sha256;

/// Buffer size for streaming: 64 KiB measured fastest for hashing files (it
/// stays in the CPU caches between the copy and the hash; 256 KiB was 30%
/// slower); large enough for throughput, small for memory.
pub const BUF_SIZE: usize = 64 * 1024;

/// The digest of what a [`HashingReader`] has passed on so far, readable
/// after the reader was handed to something else (an HTTP body): an upload
/// hashes the image while sending it, then sends the digest after it.
#[derive(Clone, Default)]
pub struct ReadDigest(std::sync::Arc<std::sync::Mutex<(sha2::Sha256, u64)>>);

impl ReadDigest {
    /// Digest and length of everything read so far.
    pub fn get(&self) -> (Sha256, u64) {
        let g = self.0.lock().unwrap_or_else(|e| e.into_inner());
        (Sha256::from_bytes(g.0.clone().finalize().into()), g.1)
    }
}

/// Wraps a reader; every byte read through it is hashed into a [`ReadDigest`].
pub struct HashingReader<R> {
    inner: R,
    digest: ReadDigest,
}

/// A reader that hashes what is read through it, and the digest it fills.
pub fn hashing_reader<R: Read>(inner: R) -> (HashingReader<R>, ReadDigest) {
    let digest = ReadDigest::default();
    (
        HashingReader {
            inner,
            digest: digest.clone(),
        },
        digest,
    )
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut g = self.digest.0.lock().unwrap_or_else(|e| e.into_inner());
        g.0.update(&buf[..n]);
        g.1 += n as u64;
        Ok(n)
    }
}

/// Wraps a writer; every byte written is hashed and counted.
pub struct HashingWriter<W> {
    inner: W,
    hasher: sha2::Sha256,
    len: u64,
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: sha2::Sha256::new(),
            len: 0,
        }
    }

    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn get_ref(&self) -> &W {
        &self.inner
    }

    /// Digest and length of everything written, and the inner writer.
    pub fn finish(self) -> (Sha256, u64, W) {
        (Sha256::from_bytes(self.hasher.finalize().into()), self.len, self.inner)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Hashes everything a reader yields, in constant memory.
pub fn hash_reader<R: Read>(mut reader: R) -> io::Result<(Sha256, u64)> {
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; BUF_SIZE];
    let mut len = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        len += n as u64;
    }
    Ok((Sha256::from_bytes(hasher.finalize().into()), len))
}

/// Hashes a file, streaming.
pub fn hash_file(path: &Path) -> io::Result<(Sha256, u64)> {
    hash_reader(File::open(path)?)
}

/// An argument that is either a sha256 (64 hex digits) or a file to hash:
/// its digest, or `None` when it is not a digest and no such file exists.
pub fn file_or_digest(arg: &str) -> io::Result<Option<Sha256>> {
    if let Ok(d) = arg.parse::<Sha256>() {
        return Ok(Some(d));
    }
    match hash_file(Path::new(arg)) {
        Ok((d, _)) => Ok(Some(d)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writer_and_reader_agree_with_known_digest() {
        // sha256("abc") from FIPS 180-2.
        let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        let mut w = HashingWriter::new(Vec::new());
        w.write_all(b"a").unwrap();
        w.write_all(b"bc").unwrap();
        let (d, n, inner) = w.finish();
        assert_eq!((d.to_string().as_str(), n, inner.as_slice()), (abc, 3, &b"abc"[..]));
        let (d2, n2) = hash_reader(&b"abc"[..]).unwrap();
        assert_eq!((d2, n2), (d, 3));
    }
}

#[cfg(test)]
mod reader_tests {
    use std::io::Read;

    #[test]
    fn the_digest_follows_what_was_read() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let (mut r, digest) = super::hashing_reader(&data[..]);
        let mut half = vec![0u8; 100_000];
        r.read_exact(&mut half).unwrap();
        assert_eq!(digest.get(), super::hash_reader(&data[..100_000]).unwrap());
        std::io::copy(&mut r, &mut std::io::sink()).unwrap();
        assert_eq!(digest.get(), super::hash_reader(&data[..]).unwrap());
    }
}
