//! Validated names, parsed once at the edge and safe to use as path
//! components (never `.`, `..`, a slash or a NUL): [`JobName`],
//! [`PlatformName`] and [`HostName`] match `^[A-Za-z0-9][A-Za-z0-9._+~-]{0,127}$`;
//! [`BinaryName`] and each component of an [`ArtifactPath`] (one to four
//! components joined by `/`) match `^[A-Za-z0-9][A-Za-z0-9._+~@,-]{0,254}$`
//! (Debian package names carry `+` and `~`); [`BuildId`] is a UUIDv4. The server, the clients and `deploy-hvt` (whose
//! unikernel names are [`JobName`]s) all parse through here.

use std::fmt;
use std::str::FromStr;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid {what} {input:?}: {why}")]
pub struct NameError {
    pub what: &'static str,
    pub input: String,
    pub why: &'static str,
}

/// The two kinds of name.
#[derive(Clone, Copy)]
enum Kind {
    /// Jobs, platforms, hosts.
    Name,
    /// Binary and artifact file names.
    File,
}

impl Kind {
    fn max(self) -> usize {
        match self {
            Kind::Name => 128,
            Kind::File => 255,
        }
    }

    fn allows(self, b: u8) -> bool {
        b.is_ascii_alphanumeric()
            || matches!(b, b'.' | b'_' | b'-' | b'+' | b'~')
            || (matches!(self, Kind::File) && matches!(b, b'@' | b','))
    }

    fn allowed(self) -> &'static str {
        match self {
            Kind::Name => "only letters, digits, '.', '_', '-', '+' and '~' are allowed",
            Kind::File => "only letters, digits, '.', '_', '-', '+', '~', '@' and ',' are allowed",
        }
    }
}

fn check_component(what: &'static str, kind: Kind, s: &str) -> Result<(), NameError> {
    let err = |why| NameError {
        what,
        input: s.chars().take(80).collect(),
        why,
    };
    if s.is_empty() {
        return Err(err("it is empty"));
    }
    if s.len() > kind.max() {
        return Err(err(match kind {
            Kind::Name => "it is longer than 128 characters",
            Kind::File => "it is longer than 255 characters",
        }));
    }
    if !s.as_bytes()[0].is_ascii_alphanumeric() {
        return Err(err("it must start with a letter or digit"));
    }
    if !s.bytes().all(|b| kind.allows(b)) {
        return Err(err(kind.allowed()));
    }
    Ok(())
}

macro_rules! name_type {
    ($(#[$doc:meta])* $ty:ident, $what:literal, $kind:expr) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
        pub struct $ty(String);

        impl $ty {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $ty {
            type Err = NameError;
            fn from_str(s: &str) -> Result<Self, NameError> {
                check_component($what, $kind, s)?;
                Ok($ty(s.to_owned()))
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $ty {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

name_type!(
    /// A job: the name under which a unikernel's builds are kept.
    JobName,
    "job name",
    Kind::Name
);
name_type!(
    /// A build platform, e.g. `debian-12`.
    PlatformName,
    "platform name",
    Kind::Name
);
name_type!(
    /// A unikernel host, as it names itself in deployment reports.
    HostName,
    "host name",
    Kind::Name
);
name_type!(
    /// The file name of a main binary, stored as `bin/{name}`.
    BinaryName,
    "binary name",
    Kind::File
);

/// A relative artifact path such as `bin/web.hvt` or `console`: one to four
/// components, each a valid name.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct ArtifactPath(String);

impl ArtifactPath {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `bin/{name}`, where main binaries live.
    pub fn main_binary(name: &BinaryName) -> Self {
        ArtifactPath(format!("bin/{name}"))
    }

    /// The last component.
    pub fn file_name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or(&self.0)
    }
}

impl FromStr for ArtifactPath {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, NameError> {
        let parts: Vec<&str> = s.split('/').collect();
        if parts.len() > 4 {
            return Err(NameError {
                what: "artifact path",
                input: s.chars().take(80).collect(),
                why: "it has more than 4 components",
            });
        }
        for p in parts {
            check_component("artifact path", Kind::File, p).map_err(|e| NameError {
                input: s.chars().take(80).collect(),
                ..e
            })?;
        }
        Ok(ArtifactPath(s.to_owned()))
    }
}

impl fmt::Display for ArtifactPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl serde::Serialize for ArtifactPath {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for ArtifactPath {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

/// A build id: a UUIDv4 in its hyphenated lowercase form.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct BuildId(uuid::Uuid);

impl BuildId {
    pub fn new_random() -> Self {
        BuildId(uuid::Uuid::new_v4())
    }
}

impl FromStr for BuildId {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, NameError> {
        let err = || NameError {
            what: "build id",
            input: s.chars().take(80).collect(),
            why: "expected a UUIDv4 like 6a1f0c2e-8d3b-4c5e-9f7a-0b1c2d3e4f50",
        };
        let u = uuid::Uuid::try_parse(s).map_err(|_| err())?;
        if s.len() != 36 || u.get_version_num() != 4 {
            return Err(err());
        }
        Ok(BuildId(u))
    }
}

impl TryFrom<String> for BuildId {
    type Error = NameError;
    fn try_from(s: String) -> Result<Self, NameError> {
        s.parse()
    }
}

impl From<BuildId> for String {
    fn from(b: BuildId) -> String {
        b.to_string()
    }
}

impl fmt::Display for BuildId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.hyphenated())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_accept_the_contract_pattern() {
        for ok in ["a", "web", "web-1.2_x", "0", "libfoo+dfsg~1", &"a".repeat(128)] {
            assert!(ok.parse::<JobName>().is_ok(), "{ok}");
        }
        for ok in ["x_1.0+dfsg-1~bpo12+1_amd64.deb", "a@b,c", &"f".repeat(255)] {
            assert!(ok.parse::<BinaryName>().is_ok(), "{ok}");
            assert!(format!("bin/{ok}").parse::<ArtifactPath>().is_ok(), "{ok}");
        }
        assert!("a@b".parse::<JobName>().is_err(), "@ only in file names");
        assert!("f".repeat(256).parse::<BinaryName>().is_err());
    }

    #[test]
    fn names_reject_traversal_slashes_nul_and_length() {
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "%2F",
            "a\0b",
            ".hidden",
            "-x",
            &"a".repeat(129),
            "é",
            "a b",
        ] {
            let e = bad.parse::<JobName>().unwrap_err();
            assert!(e.to_string().starts_with("invalid job name"), "{bad}: {e}");
        }
    }

    #[test]
    fn artifact_paths() {
        assert_eq!("bin/web.hvt".parse::<ArtifactPath>().unwrap().file_name(), "web.hvt");
        for bad in ["", "/abs", "bin/", "bin//x", "../x", "bin/../x", "a/b/c/d/e", "bin/.x"] {
            assert!(bad.parse::<ArtifactPath>().is_err(), "{bad}");
        }
    }

    #[test]
    fn build_ids_are_v4_only() {
        let id = BuildId::new_random();
        assert_eq!(id.to_string().parse::<BuildId>().unwrap(), id);
        assert!("00000000-0000-1000-8000-000000000000".parse::<BuildId>().is_err());
        assert!("not-a-uuid".parse::<BuildId>().is_err());
        assert!(id.to_string().replace('-', "").parse::<BuildId>().is_err());
    }

    fn pattern_ok(s: &str) -> bool {
        let b = s.as_bytes();
        !b.is_empty()
            && b.len() <= 128
            && b[0].is_ascii_alphanumeric()
            && b.iter().all(|c| c.is_ascii_alphanumeric() || b"._-+~".contains(c))
    }

    fn file_pattern_ok(s: &str) -> bool {
        let b = s.as_bytes();
        !b.is_empty()
            && b.len() <= 255
            && b[0].is_ascii_alphanumeric()
            && b.iter().all(|c| c.is_ascii_alphanumeric() || b"._-+~@,".contains(c))
    }

    // Property tests (run longer by scripts/fuzz.sh).
    proptest::proptest! {
        #[test]
        fn names_accept_exactly_the_pattern(s in "\\PC{0,80}") {
            let parsed = s.parse::<JobName>();
            proptest::prop_assert_eq!(parsed.is_ok(), pattern_ok(&s));
            if let Ok(n) = parsed {
                proptest::prop_assert_eq!(n.as_str(), s.as_str());
            }
        }

        #[test]
        fn artifact_paths_are_safe_relative_paths(s in "[a-z./_+~@,-]{0,40}") {
            if let Ok(p) = s.parse::<ArtifactPath>() {
                let path = std::path::Path::new(p.as_str());
                proptest::prop_assert!(path.is_relative());
                proptest::prop_assert!(path.components().all(|c| matches!(c, std::path::Component::Normal(_))));
                proptest::prop_assert!(p.as_str().split('/').all(file_pattern_ok));
            }
        }

        #[test]
        fn build_ids_round_trip(bytes in proptest::array::uniform16(proptest::prelude::any::<u8>())) {
            let v4 = uuid::Builder::from_random_bytes(bytes).into_uuid();
            let text = v4.hyphenated().to_string();
            let id = text.parse::<BuildId>();
            proptest::prop_assert!(id.is_ok(), "{} refused", text);
            proptest::prop_assert_eq!(id.unwrap().to_string(), text.clone());
            // The dashless form, and the same bits as another version, are refused.
            proptest::prop_assert!(text.replace('-', "").parse::<BuildId>().is_err());
            let mut v1 = text.clone().into_bytes();
            v1[14] = b'1';
            proptest::prop_assert!(String::from_utf8(v1).unwrap().parse::<BuildId>().is_err());
        }

        #[test]
        fn every_name_of_the_pattern_parses_and_round_trips(s in "[A-Za-z0-9][A-Za-z0-9._+~-]{0,127}") {
            let job = s.parse::<JobName>();
            proptest::prop_assert!(job.is_ok(), "{:?} refused", s);
            let job = job.unwrap();
            proptest::prop_assert_eq!(job.as_str(), s.as_str());
        }
    }
}
