//! The `opam_diff` of a comparison: two opam switch exports compared as
//! builder-web's `Opamdiff.compare` does (its JSON shape exactly), from what
//! `opam.rs` reads:
//! - `version_diff`: packages installed on both sides at different versions
//!   (ascending by name);
//! - `only_in_left` / `only_in_right`: packages whose name the other side
//!   lacks (descending, as builder-web's set fold gives them);
//! - `opam_diff`: packages at the same version on both sides whose overlay
//!   opam files differ in effect, each with a unified diff of the two blocks
//!   (builder-web runs `diff -u` on opam's re-printed files; byte equality
//!   with that is not attempted, the labels and format are the same);
//! - `duniverse_diff`: the root package's `x-opam-monorepo-duniverse-dirs`,
//!   always an object (builder-web sends an error string when there is no
//!   single root, which makes mollymawk reject the whole comparison; we send
//!   empty lists instead).

use std::collections::BTreeMap;

use super::opam::{Overlay, SwitchExport, Val};
use super::packages::{NameVersion, VersionChange};

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PackageDiff {
    /// `name.version`.
    pub package_version: String,
    pub effectively_equal: bool,
    /// `diff -u` style, labelled `left/NAME/opam` and `right/NAME/opam`.
    pub diff: String,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DuniverseDir {
    /// The directory.
    pub name: String,
    /// Its source URL.
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DuniverseChanged {
    pub name: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DuniverseDiff {
    pub left: Vec<DuniverseDir>,
    pub right: Vec<DuniverseDir>,
    pub detailed_diff: Vec<DuniverseChanged>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OpamDiff {
    pub opam_diff: Vec<PackageDiff>,
    pub version_diff: Vec<VersionChange>,
    pub only_in_left: Vec<NameVersion>,
    pub only_in_right: Vec<NameVersion>,
    pub duniverse_diff: DuniverseDiff,
}

/// Fields that describe a package without changing what is built (opam's
/// `effectively_equal` ignores such metadata too).
fn is_metadata(field: &str) -> bool {
    field.starts_with("x-")
        || matches!(
            field,
            "maintainer"
                | "authors"
                | "author"
                | "homepage"
                | "bug-reports"
                | "dev-repo"
                | "doc"
                | "tags"
                | "license"
                | "synopsis"
                | "description"
                | "descr"
                | "messages"
                | "post-messages"
        )
}

fn effective(o: &Overlay) -> Vec<&(String, Vec<Val>)> {
    o.fields.iter().filter(|(n, _)| !is_metadata(n)).collect()
}

fn unified(name: &str, left: &str, right: &str) -> String {
    similar::TextDiff::from_lines(left, right)
        .unified_diff()
        .context_radius(3)
        .header(&format!("left/{name}/opam"), &format!("right/{name}/opam"))
        .to_string()
}

fn installed(e: &SwitchExport) -> BTreeMap<&str, &str> {
    e.installed.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect()
}

pub fn compare(left: &SwitchExport, right: &SwitchExport) -> OpamDiff {
    let (l, r) = (installed(left), installed(right));
    let only = |a: &BTreeMap<&str, &str>, b: &BTreeMap<&str, &str>| {
        a.iter()
            .rev()
            .filter(|(n, _)| !b.contains_key(*n))
            .map(|(n, v)| NameVersion {
                name: (*n).to_owned(),
                version: (*v).to_owned(),
            })
            .collect::<Vec<_>>()
    };
    let version_diff = l
        .iter()
        .filter_map(|(n, v)| {
            let w = r.get(n)?;
            (v != w).then(|| VersionChange {
                name: (*n).to_owned(),
                version_left: (*v).to_owned(),
                version_right: (*w).to_owned(),
            })
        })
        .collect();
    let opam_diff = l
        .iter()
        .rev()
        .filter(|(n, v)| r.get(*n) == Some(*v))
        .filter_map(|(n, v)| {
            let (a, b) = (left.overlays.get(*n), right.overlays.get(*n));
            let same = match (a, b) {
                (None, None) => true,
                (Some(a), Some(b)) => effective(a) == effective(b),
                _ => false,
            };
            (!same).then(|| PackageDiff {
                package_version: format!("{n}.{v}"),
                effectively_equal: false,
                diff: unified(n, a.map_or("", |o| o.text.as_str()), b.map_or("", |o| o.text.as_str())),
            })
        })
        .collect();
    OpamDiff {
        opam_diff,
        version_diff,
        only_in_left: only(&l, &r),
        only_in_right: only(&r, &l),
        duniverse_diff: duniverse_diff(duniverse(left), duniverse(right)),
    }
}

/// Directory → (URL, hashes as `kind=value`).
type Duniverse = BTreeMap<String, (String, Vec<String>)>;

/// The root package's duniverse directories; `None` when there is no single
/// root, no overlay for it, or the field is absent or not understood.
fn duniverse(e: &SwitchExport) -> Option<Duniverse> {
    let [(root, _)] = e.roots.as_slice() else {
        return None;
    };
    let field = e.overlays.get(root)?.field("x-opam-monorepo-duniverse-dirs")?;
    let [Val::Group('[', entries)] = field else {
        return None;
    };
    let mut out = Duniverse::new();
    for entry in entries {
        let Val::Group('[', parts) = entry else {
            return None;
        };
        match parts.as_slice() {
            [Val::Str(url), Val::Str(dir)] => {
                out.insert(dir.clone(), (url.clone(), vec![]));
            }
            [Val::Str(url), Val::Str(dir), Val::Group('[', hashes)] => {
                let hashes = hashes
                    .iter()
                    .map(|h| match h {
                        Val::Str(s) => Some(s.clone()),
                        _ => None,
                    })
                    .collect::<Option<Vec<_>>>()?;
                out.insert(dir.clone(), (url.clone(), hashes));
            }
            _ => return None,
        }
    }
    Some(out)
}

fn hash_kind(h: &str) -> &str {
    h.split_once('=').map_or("md5", |(k, _)| k)
}

/// builder-web's `equal_hashes`: both non-empty and agreeing on every kind.
fn equal_hashes(a: &[String], b: &[String]) -> bool {
    let agree = |x: &[String], y: &[String]| {
        x.iter()
            .all(|h| y.iter().any(|g| hash_kind(g) == hash_kind(h) && g == h))
    };
    !a.is_empty() && !b.is_empty() && agree(a, b) && agree(b, a)
}

fn duniverse_diff(l: Option<Duniverse>, r: Option<Duniverse>) -> DuniverseDiff {
    let (l, r) = (l.unwrap_or_default(), r.unwrap_or_default());
    let only = |a: &Duniverse, b: &Duniverse| {
        a.iter()
            .filter(|(k, _)| !b.contains_key(*k))
            .map(|(k, (url, _))| DuniverseDir {
                name: k.clone(),
                value: url.clone(),
            })
            .collect()
    };
    let detailed_diff = l
        .iter()
        .rev()
        .filter(|(k, (url_l, h_l))| {
            let Some((url_r, h_r)) = r.get(*k) else {
                return false;
            };
            let same = equal_hashes(h_l, h_r) || (h_l.is_empty() && h_r.is_empty() && url_l == url_r);
            !same
        })
        .map(|(k, _)| DuniverseChanged { name: k.clone() })
        .collect();
    DuniverseDiff {
        left: only(&l, &r),
        right: only(&r, &l),
        detailed_diff,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEFT: &str = r#"roots: ["tlstunnel.dev"]
installed: ["cstruct-lwt.6.2.0" "mirage.4.5.0" "tls.0.17.3" "tlstunnel.dev" "zarith.1.13"]
package "mirage" {
  opam-version: "2.0"
  build: ["dune" "build"]
  maintainer: "a"
}
package "zarith" {
  opam-version: "2.0"
  homepage: "left"
}
package "tlstunnel" {
  x-opam-monorepo-duniverse-dirs: [
    ["https://e/tls.tbz" "tls" ["sha256=11"]]
    ["https://e/gone.tbz" "gone" ["sha256=22"]]
    ["git+https://e/same.git#1" "same"]
  ]
}
"#;
    const RIGHT: &str = r#"roots: ["tlstunnel.dev"]
installed: ["digestif.1.2.0" "mirage.4.5.0" "tls.1.0.0" "tlstunnel.dev" "zarith.1.13"]
package "mirage" {
  opam-version: "2.0"
  build: ["dune" "build" "-p" name]
  maintainer: "b"
}
package "zarith" {
  opam-version:   "2.0"
  homepage: "right"
}
package "tlstunnel" {
  x-opam-monorepo-duniverse-dirs: [
    ["https://e/tls.tbz" "tls" ["sha256=33"]]
    ["https://e/new.tbz" "new"]
    ["git+https://e/same.git#1" "same"]
  ]
}
"#;

    #[test]
    fn compares_as_builder_web() {
        let d = compare(&SwitchExport::parse(LEFT), &SwitchExport::parse(RIGHT));
        assert_eq!(
            d.only_in_left,
            [NameVersion {
                name: "cstruct-lwt".into(),
                version: "6.2.0".into()
            }]
        );
        assert_eq!(
            d.only_in_right,
            [NameVersion {
                name: "digestif".into(),
                version: "1.2.0".into()
            }]
        );
        assert_eq!(
            d.version_diff,
            [VersionChange {
                name: "tls".into(),
                version_left: "0.17.3".into(),
                version_right: "1.0.0".into()
            }]
        );
        // zarith differs only in metadata and spacing: effectively equal, not listed.
        assert_eq!(d.opam_diff.len(), 1, "{:?}", d.opam_diff);
        let m = &d.opam_diff[0];
        assert_eq!(m.package_version, "mirage.4.5.0");
        assert!(!m.effectively_equal);
        assert!(
            m.diff.starts_with("--- left/mirage/opam\n+++ right/mirage/opam\n@@"),
            "{}",
            m.diff
        );
        assert!(m.diff.contains("\n-build: [\"dune\" \"build\"]\n"), "{}", m.diff);
        assert!(
            m.diff.contains("\n+build: [\"dune\" \"build\" \"-p\" name]\n"),
            "{}",
            m.diff
        );
        assert_eq!(
            d.duniverse_diff.left,
            [DuniverseDir {
                name: "gone".into(),
                value: "https://e/gone.tbz".into()
            }]
        );
        assert_eq!(
            d.duniverse_diff.right,
            [DuniverseDir {
                name: "new".into(),
                value: "https://e/new.tbz".into()
            }]
        );
        assert_eq!(
            d.duniverse_diff.detailed_diff,
            [DuniverseChanged { name: "tls".into() }]
        );
    }

    #[test]
    fn only_in_lists_are_descending() {
        let l = SwitchExport::parse("installed: [\"a.1\" \"c.1\" \"b.1\"]");
        let d = compare(&l, &SwitchExport::default());
        let names: Vec<_> = d.only_in_left.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["c", "b", "a"]);
    }

    #[test]
    fn no_single_root_gives_empty_duniverse_lists() {
        let two = SwitchExport::parse("roots: [\"a.1\" \"b.1\"] installed: [\"a.1\" \"b.1\"]");
        assert_eq!(compare(&two, &two).duniverse_diff, DuniverseDiff::default());
    }
}
