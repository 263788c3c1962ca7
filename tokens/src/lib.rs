//! Upload and report tokens (CONTRACT.md §3): short-lived, scoped to one job
//! and one action, signed with Ed25519 by whoever holds the minting key (the
//! CI coordinator) and verified by the repository with the public key alone,
//! so no database row or server state is involved.
//!
//! The format, version 1, is meant to be produced by other languages too:
//!
//! ```text
//! ukrepo.v1.<payload>.<signature>
//! payload   = base64url, no padding, of the JSON object
//!             {"job":"web","scope":"upload","iat":1767225600,"exp":1767226500}
//!             (iat/exp: Unix seconds; scope: "upload" or "report")
//! signature = base64url, no padding, of the Ed25519 signature of the ASCII
//!             bytes "ukrepo.v1." followed by <payload>
//! ```
//!
//! Key files say what they are in a first comment line
//! (`# ukrepo token secret key` or `# ukrepo token public key`), then hold
//! one line: the standard base64 of the 32-byte Ed25519 seed (secret key) or
//! of the 32-byte public key. A file of the wrong kind is refused; a file
//! without the comment line is read as the kind asked for.

use std::fmt;
use std::str::FromStr;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use uk_names::JobName;

const PREFIX: &str = "ukrepo.v1.";
/// Clocks of the minting host and the repository may differ this much.
pub const CLOCK_SKEW_SECS: u64 = 60;
/// Tokens longer than this are refused outright (also a parsing bound).
const MAX_TOKEN_LEN: usize = 2048;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    Upload,
    Report,
}

impl FromStr for Scope {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "upload" => Ok(Scope::Upload),
            "report" => Ok(Scope::Report),
            _ => Err(format!("unknown scope {s:?}: use upload or report")),
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Scope::Upload => "upload",
            Scope::Report => "report",
        })
    }
}

/// What a token grants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Claims {
    pub job: JobName,
    pub scope: Scope,
    pub iat: u64,
    pub exp: u64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    #[error("the token's signature is not valid for any accepted key")]
    BadSignature,
    #[error("the token expired at {exp} (now {now})")]
    Expired { exp: u64, now: u64 },
    #[error("the token was issued in the future ({iat}, now {now})")]
    NotYetValid { iat: u64, now: u64 },
    #[error("the token was issued ({iat}) after it expires ({exp})")]
    IssuedAfterExpiry { iat: u64, exp: u64 },
    #[error("the token is valid for {lifetime} s, longer than the {max} s this repository accepts")]
    LifetimeTooLong { lifetime: u64, max: u64 },
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("the key is not base64 of 32 bytes")]
    Format,
    #[error("the public key is not a valid Ed25519 point")]
    Point,
    #[error("this is a token {found} key, but a {wanted} key is needed here{hint}")]
    WrongKind {
        found: &'static str,
        wanted: &'static str,
        hint: &'static str,
    },
}

const SECRET_HEADER: &str = "# ukrepo token secret key";
const PUBLIC_HEADER: &str = "# ukrepo token public key";

fn decode_key(text: &str, wanted: &'static str) -> Result<[u8; 32], KeyError> {
    let found = text.lines().map(str::trim).find_map(|l| {
        if l.starts_with(SECRET_HEADER) {
            Some("secret")
        } else if l.starts_with(PUBLIC_HEADER) {
            Some("public")
        } else {
            None
        }
    });
    if let Some(found) = found
        && found != wanted
    {
        let hint = if found == "secret" {
            " (the secret key mints tokens and stays with the CI coordinator; give the repository the public key)"
        } else {
            " (a public key only verifies tokens; minting needs the secret key)"
        };
        return Err(KeyError::WrongKind { found, wanted, hint });
    }
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .ok_or(KeyError::Format)?;
    STANDARD
        .decode(line)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or(KeyError::Format)
}

/// The minting key.
pub struct SecretKey(SigningKey);

/// A key the repository accepts tokens of.
#[derive(Clone, Debug)]
pub struct PublicKey(VerifyingKey);

impl SecretKey {
    pub fn generate() -> SecretKey {
        let mut seed = [0u8; 32];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut seed);
        SecretKey(SigningKey::from_bytes(&seed))
    }

    pub fn from_text(text: &str) -> Result<SecretKey, KeyError> {
        Ok(SecretKey(SigningKey::from_bytes(&decode_key(text, "secret")?)))
    }

    pub fn to_text(&self) -> String {
        format!(
            "{SECRET_HEADER} (Ed25519 seed): mints tokens; keep it on the CI coordinator\n{}\n",
            STANDARD.encode(self.0.to_bytes())
        )
    }

    pub fn public(&self) -> PublicKey {
        PublicKey(self.0.verifying_key())
    }

    /// A token for `claims`.
    pub fn mint(&self, claims: &Claims) -> String {
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).expect("claims serialise"));
        let signed = format!("{PREFIX}{payload}");
        let sig = self.0.sign(signed.as_bytes());
        format!("{signed}.{}", URL_SAFE_NO_PAD.encode(sig.to_bytes()))
    }
}

impl PublicKey {
    pub fn from_text(text: &str) -> Result<PublicKey, KeyError> {
        VerifyingKey::from_bytes(&decode_key(text, "public")?)
            .map(PublicKey)
            .map_err(|_| KeyError::Point)
    }

    pub fn to_text(&self) -> String {
        format!(
            "{PUBLIC_HEADER} (Ed25519): verifies tokens; for unikernel-repo serve --token-public-key\n{}\n",
            STANDARD.encode(self.0.to_bytes())
        )
    }
}

/// Checks a token's form, signature (against any of `keys`), validity at
/// `now` (Unix seconds) and lifetime (`exp - iat`, at most `max_lifetime`
/// seconds; `iat` after `exp` is refused). Whether its job and scope fit
/// the request is the caller's decision.
pub fn verify(token: &str, keys: &[PublicKey], now: u64, max_lifetime: u64) -> Result<Claims, TokenError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(TokenError::Malformed("too long"));
    }
    let rest = token
        .strip_prefix(PREFIX)
        .ok_or(TokenError::Malformed("it does not start with ukrepo.v1."))?;
    let (payload, sig) = rest.split_once('.').ok_or(TokenError::Malformed("no signature part"))?;
    let sig_bytes: [u8; 64] = URL_SAFE_NO_PAD
        .decode(sig)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or(TokenError::Malformed("the signature is not base64url of 64 bytes"))?;
    let sig = Signature::from_bytes(&sig_bytes);
    let signed = &token[..PREFIX.len() + payload.len()];
    if !keys.iter().any(|k| k.0.verify_strict(signed.as_bytes(), &sig).is_ok()) {
        return Err(TokenError::BadSignature);
    }
    let json = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| TokenError::Malformed("the payload is not base64url"))?;
    let claims: Claims =
        serde_json::from_slice(&json).map_err(|_| TokenError::Malformed("the payload is not the expected JSON"))?;
    if now > claims.exp.saturating_add(CLOCK_SKEW_SECS) {
        return Err(TokenError::Expired { exp: claims.exp, now });
    }
    if claims.iat > claims.exp {
        return Err(TokenError::IssuedAfterExpiry {
            iat: claims.iat,
            exp: claims.exp,
        });
    }
    if claims.exp - claims.iat > max_lifetime {
        return Err(TokenError::LifetimeTooLong {
            lifetime: claims.exp - claims.iat,
            max: max_lifetime,
        });
    }
    if now > claims.exp.saturating_add(CLOCK_SKEW_SECS) {
        return Err(TokenError::Expired { exp: claims.exp, now });
    }
    if claims.iat > now.saturating_add(CLOCK_SKEW_SECS) {
        return Err(TokenError::NotYetValid { iat: claims.iat, now });
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: u64) -> Claims {
        Claims {
            job: "web".parse().unwrap(),
            scope: Scope::Upload,
            iat: 1000,
            exp,
        }
    }

    #[test]
    fn round_trip_and_key_text() {
        let sk = SecretKey::generate();
        let sk2 = SecretKey::from_text(&sk.to_text()).unwrap();
        let pk = PublicKey::from_text(&sk.public().to_text()).unwrap();
        let t = sk2.mint(&claims(2000));
        assert!(t.starts_with("ukrepo.v1."));
        assert_eq!(verify(&t, &[pk], 1500, 3600), Ok(claims(2000)));
    }

    #[test]
    fn expiry_skew_wrong_key_and_tampering() {
        let sk = SecretKey::generate();
        let pk = sk.public();
        let t = sk.mint(&claims(2000));
        assert_eq!(
            verify(&t, std::slice::from_ref(&pk), 2000 + CLOCK_SKEW_SECS, 3600),
            Ok(claims(2000))
        );
        assert!(matches!(
            verify(&t, std::slice::from_ref(&pk), 2001 + CLOCK_SKEW_SECS, 3600),
            Err(TokenError::Expired { .. })
        ));
        assert!(matches!(
            verify(&t, std::slice::from_ref(&pk), 1000 - CLOCK_SKEW_SECS - 1, 3600),
            Err(TokenError::NotYetValid { .. })
        ));
        let other = SecretKey::generate().public();
        assert_eq!(
            verify(&t, std::slice::from_ref(&other), 1500, 3600),
            Err(TokenError::BadSignature)
        );
        assert_eq!(
            verify(&t, &[other, pk.clone()], 1500, 3600),
            Ok(claims(2000)),
            "any accepted key"
        );
        // Another job in the payload, same signature.
        let parts: Vec<&str> = t.split('.').collect();
        let forged = URL_SAFE_NO_PAD.encode(br#"{"job":"prod","scope":"upload","iat":1000,"exp":2000}"#);
        let tampered = format!("ukrepo.v1.{forged}.{}", parts[3]);
        assert_eq!(
            verify(&tampered, std::slice::from_ref(&pk), 1500, 3600),
            Err(TokenError::BadSignature)
        );
        for bad in [
            "",
            "ukrepo.v2.x.y",
            "ukrepo.v1.",
            "ukrepo.v1.abc",
            "ukrepo.v1.abc.!!!",
            &"a".repeat(5000),
        ] {
            assert!(
                matches!(
                    verify(bad, std::slice::from_ref(&pk), 1500, 3600),
                    Err(TokenError::Malformed(_))
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn lifetime_is_bounded_and_iat_after_exp_refused() {
        let sk = SecretKey::generate();
        let pk = [sk.public()];
        let forever = Claims {
            exp: u64::MAX,
            ..claims(2000)
        };
        assert!(matches!(
            verify(&sk.mint(&forever), &pk, 1500, 3600),
            Err(TokenError::LifetimeTooLong { .. })
        ));
        let backwards = Claims {
            iat: 1800,
            ..claims(1700)
        };
        assert!(matches!(
            verify(&sk.mint(&backwards), &pk, 1750, 3600),
            Err(TokenError::IssuedAfterExpiry { .. })
        ));
        assert_eq!(verify(&sk.mint(&claims(4600)), &pk, 1500, 3600), Ok(claims(4600)));
    }

    #[test]
    fn key_files_say_what_they_are() {
        let sk = SecretKey::generate();
        let err = PublicKey::from_text(&sk.to_text()).unwrap_err();
        assert!(err.to_string().contains("secret key"), "{err}");
        let err = SecretKey::from_text(&sk.public().to_text()).err().unwrap();
        assert!(err.to_string().contains("public key"), "{err}");
        // A bare base64 line (no comment) is read as the kind asked for.
        let bare = sk.public().to_text().lines().nth(1).unwrap().to_owned();
        assert!(PublicKey::from_text(&bare).is_ok());
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_strings_never_verify_or_panic(s in "\\PC{0,300}") {
            let pk = SecretKey::generate().public();
            proptest::prop_assert!(verify(&s, &[pk], 1500, 3600).is_err());
        }

        #[test]
        fn bit_flips_never_verify(i in 0usize..200, bit in 0u8..8) {
            let sk = SecretKey::generate();
            let t = sk.mint(&claims(2000));
            let mut b = t.clone().into_bytes();
            let i = i % b.len();
            b[i] ^= 1 << bit;
            if let Ok(s) = String::from_utf8(b) && s != t {
                proptest::prop_assert!(verify(&s, &[sk.public()], 1500, 3600).is_err());
            }
        }
    }
}
