//! SHA-256 digests as every tool uses them: the [`Sha256`] value type, hashing
//! while streaming ([`HashingWriter`], [`hash_reader`], [`hash_file`]), the RFC
//! 9530 `Content-Digest` header, and [`AtomicFile`], the one way this project
//! writes a file that must never be seen half-written.
//!
//! The server stores artifacts through it, `fetch-latest` installs images
//! through it, `compare-hash` and `deploy-hvt` hash through it.

mod atomic;
mod content_digest;
mod hashing;
mod sha256;

pub use atomic::{AtomicFile, Staged, fsync_dir, remove_stale, write_atomically};
pub use content_digest::{ContentDigestError, content_digest_header, parse_content_digest};
pub use hashing::{
    BUF_SIZE, HashingReader, HashingWriter, ReadDigest, file_or_digest, hash_file, hash_reader, hashing_reader,
};
pub use sha256::{ParseSha256Error, Sha256};
