//! RFC 9530 `Content-Digest` for SHA-256: `sha-256=:<base64 of 32 bytes>:`.
//! The header may list several algorithms; we read only `sha-256`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::Sha256;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("malformed Content-Digest header {header:?}: {why}")]
pub struct ContentDigestError {
    pub header: String,
    pub why: &'static str,
}

/// The header value for a digest.
pub fn content_digest_header(d: &Sha256) -> String {
    format!("sha-256=:{}:", STANDARD.encode(d.as_bytes()))
}

/// The sha-256 member of a `Content-Digest` header; `Ok(None)` when the header
/// names only other algorithms.
pub fn parse_content_digest(header: &str) -> Result<Option<Sha256>, ContentDigestError> {
    let err = |why| ContentDigestError {
        header: header.chars().take(200).collect(),
        why,
    };
    for member in header.split(',') {
        let Some((key, value)) = member.trim().split_once('=') else {
            return Err(err("expected algorithm=:base64:"));
        };
        if !key.trim().eq_ignore_ascii_case("sha-256") {
            continue;
        }
        let value = value.trim();
        let b64 = value
            .strip_prefix(':')
            .and_then(|v| v.strip_suffix(':'))
            .ok_or_else(|| err("the sha-256 value must be a byte sequence :base64:"))?;
        let bytes = STANDARD
            .decode(b64)
            .map_err(|_| err("the sha-256 value is not base64"))?;
        let arr: [u8; 32] = bytes.try_into().map_err(|_| err("the sha-256 value is not 32 bytes"))?;
        return Ok(Some(Sha256::from_bytes(arr)));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_other_algorithms() {
        let d: Sha256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
            .parse()
            .unwrap();
        let h = content_digest_header(&d);
        assert_eq!(h, "sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:");
        assert_eq!(parse_content_digest(&h), Ok(Some(d)));
        assert_eq!(parse_content_digest(&format!("sha-512=:AAAA:, {h}")), Ok(Some(d)));
        assert_eq!(parse_content_digest("sha-512=:AAAA:"), Ok(None));
    }

    #[test]
    fn malformed_values_are_errors() {
        for bad in ["sha-256=abc", "sha-256=:!!!:", "sha-256=:AAAA:", "nonsense"] {
            assert!(parse_content_digest(bad).is_err(), "{bad}");
        }
    }
}
