//! Detached minisign signatures of images (CONTRACT.md §6), interoperable
//! with the `minisign` program both ways. The trusted comment keeps
//! minisign's tab-separated `key:value` form: `timestamp:<unix seconds>` and
//! `file:<name>` (minisign's own defaults) plus `job:<job>` and
//! `sha256:<hex>`. A host checks the signature, requires `timestamp`, and
//! checks `job` and `sha256` when present; the timestamp is what downgrade
//! protection compares.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use base64::Engine;
use uk_digest::Sha256;
use uk_names::JobName;

#[derive(Debug, thiserror::Error)]
pub enum SigError {
    #[error("reading {what} {path:?}: {source}")]
    Io {
        what: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error("the secret key {0:?} is encrypted: set its password in UKREPO_SIGN_KEY_PASSWORD")]
    NeedsPassword(String),
    #[error("{0}")]
    Minisign(String),
    #[error("the signature does not verify with the public key: {0}")]
    BadSignature(String),
    #[error("the signature's trusted comment has no timestamp")]
    NoTimestamp,
    #[error("the signature is for job {signed:?}, not {expected:?}")]
    WrongJob { signed: String, expected: String },
    #[error("the signature is for sha256 {signed}, but the image has sha256 {actual}")]
    WrongDigest { signed: String, actual: Sha256 },
}

/// What the trusted comment of a valid signature says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    pub timestamp: u64,
    pub file: Option<String>,
    pub job: Option<String>,
    pub sha256: Option<String>,
}

fn read_err(what: &'static str, p: &Path) -> impl FnOnce(std::io::Error) -> SigError {
    let path = p.display().to_string();
    move |source| SigError::Io { what, path, source }
}

fn ms(e: minisign::PError) -> SigError {
    SigError::Minisign(e.to_string())
}

/// The trusted comment we write.
pub fn trusted_comment(timestamp: u64, file: &str, job: &JobName, sha256: &Sha256) -> String {
    format!("timestamp:{timestamp}\tfile:{file}\tjob:{job}\tsha256:{sha256}")
}

/// Parses `key:value` fields separated by tabs; unknown fields (like
/// minisign's `hashed`) are ignored.
pub fn parse_trusted_comment(c: &str) -> Result<Signed, SigError> {
    let mut out = Signed {
        timestamp: 0,
        file: None,
        job: None,
        sha256: None,
    };
    let mut ts = None;
    for field in c.split('\t') {
        let Some((k, v)) = field.split_once(':') else { continue };
        match k {
            "timestamp" => ts = v.trim().parse().ok(),
            "file" => out.file = Some(v.to_owned()),
            "job" => out.job = Some(v.to_owned()),
            "sha256" => out.sha256 = Some(v.to_owned()),
            _ => {}
        }
    }
    out.timestamp = ts.ok_or(SigError::NoTimestamp)?;
    Ok(out)
}

/// Signs `image` with the minisign secret key at `key_path` (unencrypted, or
/// encrypted with `password`); returns the `.minisig` text.
pub fn sign_file(key_path: &Path, password: Option<&str>, image: &Path, trusted: &str) -> Result<String, SigError> {
    let text = std::fs::read_to_string(key_path).map_err(read_err("the secret key", key_path))?;
    let encrypted = text
        .lines()
        .nth(1)
        .and_then(|l| base64::engine::general_purpose::STANDARD.decode(l.trim()).ok())
        .is_some_and(|b| b.get(2..4) == Some(b"Sc"));
    let sk_box = minisign::SecretKeyBox::from_string(&with_checksum(&text)).map_err(ms)?;
    let sk = match (encrypted, password) {
        (true, None) => return Err(SigError::NeedsPassword(key_path.display().to_string())),
        (true, Some(p)) => sk_box.into_secret_key(Some(p.to_owned())),
        (false, _) => sk_box.into_unencrypted_secret_key(),
    }
    .map_err(ms)?;
    let f = File::open(image).map_err(read_err("the image", image))?;
    let sig = minisign::sign(None, &sk, BufReader::new(f), Some(trusted), None).map_err(ms)?;
    Ok(sig.into_string())
}

/// The `minisign` program (0.11) writes unencrypted secret keys with an
/// all-zero checksum, which the minisign crate rejects as corrupted; fill in
/// the checksum it expects (BLAKE2b-256 of algorithm, key id and key).
fn with_checksum(text: &str) -> String {
    const KEYNUM_AT: usize = 2 + 2 + 2 + 32 + 8 + 8;
    let mut lines: Vec<&str> = text.lines().collect();
    let Some(mut b) = lines
        .get(1)
        .and_then(|l| base64::engine::general_purpose::STANDARD.decode(l.trim()).ok())
    else {
        return text.to_owned();
    };
    if b.len() != KEYNUM_AT + 8 + 64 + 32 || b[2..4] != [0, 0] || b[KEYNUM_AT + 72..].iter().any(|&x| x != 0) {
        return text.to_owned();
    }
    use blake2::Digest;
    let mut h = blake2::Blake2b::<blake2::digest::consts::U32>::new();
    h.update(&b[0..2]);
    h.update(&b[KEYNUM_AT..KEYNUM_AT + 72]);
    let sum = h.finalize();
    b[KEYNUM_AT + 72..].copy_from_slice(&sum);
    let fixed = base64::engine::general_purpose::STANDARD.encode(&b);
    lines[1] = &fixed;
    lines.join("\n") + "\n"
}

/// Verifies `image` against the `.minisig` text `sig` with the public key
/// file at `pk_path`, then the trusted comment against `job` and `sha256`.
pub fn verify_file(
    pk_path: &Path,
    sig: &str,
    image: &Path,
    job: Option<&JobName>,
    sha256: &Sha256,
) -> Result<Signed, SigError> {
    let pk_text = std::fs::read_to_string(pk_path).map_err(read_err("the public key", pk_path))?;
    let pk = minisign::PublicKeyBox::from_string(&pk_text)
        .and_then(|b| b.into_public_key())
        .or_else(|_| minisign::PublicKey::from_base64(pk_text.trim()))
        .map_err(ms)?;
    let sig_box = minisign::SignatureBox::from_string(sig).map_err(ms)?;
    let f = File::open(image).map_err(read_err("the image", image))?;
    minisign::verify(&pk, &sig_box, BufReader::new(f), true, false, false)
        .map_err(|e| SigError::BadSignature(e.to_string()))?;
    let signed = parse_trusted_comment(&sig_box.trusted_comment().map_err(ms)?)?;
    if let (Some(s), Some(j)) = (&signed.job, job)
        && s != j.as_str()
    {
        return Err(SigError::WrongJob {
            signed: s.clone(),
            expected: j.to_string(),
        });
    }
    if let Some(s) = &signed.sha256
        && !s.eq_ignore_ascii_case(&sha256.to_hex())
    {
        return Err(SigError::WrongDigest {
            signed: s.clone(),
            actual: *sha256,
        });
    }
    Ok(signed)
}

/// The trusted comment of a signature this host verified before (no new
/// verification: for comparing timestamps).
pub fn trusted_of(sig: &str) -> Result<Signed, SigError> {
    let sig_box = minisign::SignatureBox::from_string(sig).map_err(ms)?;
    parse_trusted_comment(&sig_box.trusted_comment().map_err(ms)?)
}

/// Unix seconds now.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keypair(dir: &Path, password: Option<&str>) -> (std::path::PathBuf, std::path::PathBuf) {
        let kp = match password {
            Some(p) => minisign::KeyPair::generate_encrypted_keypair(Some(p.into())).unwrap(),
            None => minisign::KeyPair::generate_unencrypted_keypair().unwrap(),
        };
        let (sk, pk) = (dir.join("k.key"), dir.join("k.pub"));
        std::fs::write(&sk, kp.sk.to_box(None).unwrap().into_string()).unwrap();
        std::fs::write(&pk, kp.pk.to_box().unwrap().into_string()).unwrap();
        (sk, pk)
    }

    #[test]
    fn encrypted_keys_need_their_password() {
        let d = tempfile::tempdir().unwrap();
        let (sk, pk) = keypair(d.path(), Some("pw"));
        let img = d.path().join("web.hvt");
        std::fs::write(&img, b"image").unwrap();
        let (sha, _) = uk_digest::hash_file(&img).unwrap();
        let tc = trusted_comment(1, "web.hvt", &"web".parse().unwrap(), &sha);
        assert!(matches!(
            sign_file(&sk, None, &img, &tc),
            Err(SigError::NeedsPassword(_))
        ));
        assert!(matches!(
            sign_file(&sk, Some("wrong"), &img, &tc),
            Err(SigError::Minisign(_))
        ));
        let sig = sign_file(&sk, Some("pw"), &img, &tc).unwrap();
        assert_eq!(verify_file(&pk, &sig, &img, None, &sha).unwrap().timestamp, 1);
    }

    #[test]
    fn sign_verify_and_trusted_comment_checks() {
        let d = tempfile::tempdir().unwrap();
        let (sk, pk) = keypair(d.path(), None);
        let img = d.path().join("web.hvt");
        std::fs::write(&img, b"image").unwrap();
        let (sha, _) = uk_digest::hash_file(&img).unwrap();
        let job: JobName = "web".parse().unwrap();
        let tc = trusted_comment(1234, "web.hvt", &job, &sha);
        let sig = sign_file(&sk, None, &img, &tc).unwrap();
        let s = verify_file(&pk, &sig, &img, Some(&job), &sha).unwrap();
        assert_eq!(s.timestamp, 1234);
        let other: JobName = "db".parse().unwrap();
        assert!(matches!(
            verify_file(&pk, &sig, &img, Some(&other), &sha),
            Err(SigError::WrongJob { .. })
        ));
        std::fs::write(&img, b"imagf").unwrap();
        let (sha2, _) = uk_digest::hash_file(&img).unwrap();
        assert!(matches!(
            verify_file(&pk, &sig, &img, Some(&job), &sha2),
            Err(SigError::BadSignature(_))
        ));
        let d2 = tempfile::tempdir().unwrap();
        let (_, pk2) = keypair(d2.path(), None);
        std::fs::write(&img, b"image").unwrap();
        assert!(matches!(
            verify_file(&pk2, &sig, &img, Some(&job), &sha),
            Err(SigError::BadSignature(_))
        ));
    }

    #[test]
    fn comments_without_timestamp_are_refused_and_minisign_defaults_parse() {
        assert!(matches!(parse_trusted_comment("file:x"), Err(SigError::NoTimestamp)));
        let s = parse_trusted_comment("timestamp:1700000000\tfile:web.hvt\thashed").unwrap();
        assert_eq!(
            (s.timestamp, s.file.as_deref(), s.job),
            (1700000000, Some("web.hvt"), None)
        );
    }
}
