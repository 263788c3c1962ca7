//! A streaming `multipart/form-data` body: the image as part `binary`, each
//! attachment as a part named by its artifact path, the job's synopsis as
//! part `synopsis`. Files are read as the
//! body is sent, never held in memory; the length is known up front.

use std::fs::File;
use std::io::{self, Cursor, Read};
use std::path::PathBuf;

use uk_digest::Sha256;
use uk_names::{ArtifactPath, BinaryName};

type Body = Box<dyn Read + Send>;

fn part_header(boundary: &str, name: &str, filename: &str) -> Vec<u8> {
    format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{filename}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
    )
    .into_bytes()
}

/// `(content type, length, body)`.
pub fn body(
    sha: &Sha256,
    name: &BinaryName,
    image: File,
    image_len: u64,
    attachments: &[(ArtifactPath, PathBuf)],
    synopsis: Option<&str>,
) -> io::Result<(String, u64, Body)> {
    // Names are validated ([A-Za-z0-9._-/]), so they need no quoting; the
    // boundary carries the image digest, so it cannot occur by accident.
    let boundary = format!("ukrepo-{}", &sha.to_hex()[..40]);
    let mut pieces: Vec<Body> = Vec::new();
    let mut len = 0u64;
    let mut push_bytes = |pieces: &mut Vec<Body>, b: Vec<u8>| {
        len += b.len() as u64;
        pieces.push(Box::new(Cursor::new(b)));
    };
    push_bytes(&mut pieces, part_header(&boundary, "binary", name.as_str()));
    pieces.push(Box::new(image));
    let mut files_len = image_len;
    for (path, file) in attachments {
        let f = File::open(file)?;
        files_len += f.metadata()?.len();
        let mut head = b"\r\n".to_vec();
        head.extend(part_header(&boundary, path.as_str(), path.file_name()));
        push_bytes(&mut pieces, head);
        pieces.push(Box::new(f));
    }
    if let Some(text) = synopsis {
        // One line without control characters (checked by the caller), so
        // it cannot hold the boundary's CRLF-dash-dash sequence.
        push_bytes(
            &mut pieces,
            format!("\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"synopsis\"\r\n\r\n{text}").into_bytes(),
        );
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
