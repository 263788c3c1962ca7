//! A streaming `multipart/form-data` body: the image as part `binary`, each
//! attachment as a part named by its artifact path, the job's synopsis as
//! part `synopsis`, and the image's digest, computed while the image was
//! sent, as part `content-digest` (so the image is read only once). Files
//! are read as the body is sent, never held in memory; the length is known
//! up front.

use std::fs::File;
use std::io::{self, Cursor, Read};
use std::path::PathBuf;

use uk_digest::{ReadDigest, Sha256, content_digest_header};
use uk_names::{ArtifactPath, BinaryName};

type Body = Box<dyn Read + Send>;

fn part_header(boundary: &str, name: &str, filename: &str) -> Vec<u8> {
    format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{filename}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
    )
    .into_bytes()
}

/// What goes into the body.
pub struct Parts<'a, R> {
    pub name: &'a BinaryName,
    pub image: R,
    pub image_len: u64,
    pub attachments: &'a [(ArtifactPath, PathBuf)],
    pub synopsis: Option<&'a str>,
    /// Send the image's digest after it, as a `content-digest` part, taken
    /// from this (filled while the image is read).
    pub digest: Option<ReadDigest>,
}

/// A random boundary: it must not occur in the files, and the image is not
/// hashed before it is sent.
fn boundary() -> String {
    use std::hash::{BuildHasher, Hasher};
    let r = || std::collections::hash_map::RandomState::new().build_hasher().finish();
    format!("ukrepo-{:016x}{:016x}", r(), r())
}

/// The `content-digest` part, rendered when it is reached (the image has
/// been read by then); its length is fixed, so the body's is known.
struct DigestPart {
    head: String,
    digest: ReadDigest,
    rendered: Option<Cursor<Vec<u8>>>,
}

impl DigestPart {
    fn render(head: &str, sha: &Sha256) -> Vec<u8> {
        format!("{head}{}", content_digest_header(sha)).into_bytes()
    }
}

impl Read for DigestPart {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let (head, digest) = (&self.head, &self.digest);
        self.rendered
            .get_or_insert_with(|| Cursor::new(Self::render(head, &digest.get().0)))
            .read(buf)
    }
}

/// `(content type, length, body)`.
pub fn body<R: Read + Send + 'static>(parts: Parts<'_, R>) -> io::Result<(String, u64, Body)> {
    // Names are validated ([A-Za-z0-9._+~@,-/]), so they need no quoting.
    let boundary = boundary();
    let mut pieces: Vec<Body> = Vec::new();
    let mut len = 0u64;
    let mut push_bytes = |pieces: &mut Vec<Body>, b: Vec<u8>| {
        len += b.len() as u64;
        pieces.push(Box::new(Cursor::new(b)));
    };
    push_bytes(&mut pieces, part_header(&boundary, "binary", parts.name.as_str()));
    pieces.push(Box::new(parts.image));
    // Bytes of the pieces sent as they are read (files, the digest part).
    let mut files_len = parts.image_len;
    for (path, file) in parts.attachments {
        let f = File::open(file)?;
        files_len += f.metadata()?.len();
        let mut head = b"\r\n".to_vec();
        head.extend(part_header(&boundary, path.as_str(), path.file_name()));
        push_bytes(&mut pieces, head);
        pieces.push(Box::new(f));
    }
    if let Some(text) = parts.synopsis {
        // One line without control characters (checked by the caller), so
        // it cannot hold the boundary's CRLF-dash-dash sequence.
        push_bytes(
            &mut pieces,
            format!("\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"synopsis\"\r\n\r\n{text}").into_bytes(),
        );
    }
    if let Some(digest) = parts.digest {
        let head = format!("\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"content-digest\"\r\n\r\n");
        let zero: Sha256 = "0".repeat(64).parse().expect("a digest");
        files_len += DigestPart::render(&head, &zero).len() as u64;
        pieces.push(Box::new(DigestPart {
            head,
            digest,
            rendered: None,
        }));
    }
    push_bytes(&mut pieces, format!("\r\n--{boundary}--\r\n").into_bytes());
    let reader = pieces
        .into_iter()
        .fold(Box::new(io::empty()) as Body, |acc, r| Box::new(acc.chain(r)));
    Ok((
        format!("multipart/form-data; boundary={boundary}"),
        len + files_len,
        reader,
    ))
}
