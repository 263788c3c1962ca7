//! The `Sha256` value: 32 bytes, parsed once from 64 hex digits, shown as 64
//! lowercase hex digits. Also usable as a single path component (it is one).

use std::fmt;
use std::str::FromStr;

/// A SHA-256 digest.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sha256([u8; 32]);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{input:?} is not a sha256 digest (64 hexadecimal digits)")]
pub struct ParseSha256Error {
    pub input: String,
}

impl Sha256 {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Sha256(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The 64-digit lowercase hex form.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl FromStr for Sha256 {
    type Err = ParseSha256Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseSha256Error {
            input: s.chars().take(80).collect(),
        };
        if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(err());
        }
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).map_err(|_| err())?;
        Ok(Sha256(out))
    }
}

impl fmt::Display for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sha256({})", self.to_hex())
    }
}

impl serde::Serialize for Sha256 {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> serde::Deserialize<'de> for Sha256 {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn round_trips_lowercase_and_accepts_uppercase() {
        let d: Sha256 = EMPTY.parse().unwrap();
        assert_eq!(d.to_string(), EMPTY);
        let up: Sha256 = EMPTY.to_uppercase().parse().unwrap();
        assert_eq!(up, d);
    }

    #[test]
    fn rejects_wrong_length_and_non_hex() {
        for bad in ["", "abc", &EMPTY[..63], &format!("{EMPTY}0"), &EMPTY.replace('e', "g")] {
            let err = bad.parse::<Sha256>().unwrap_err();
            assert!(err.to_string().contains("not a sha256"), "{bad}: {err}");
        }
        assert!(format!("+{}", &EMPTY[1..]).parse::<Sha256>().is_err());
    }
}
