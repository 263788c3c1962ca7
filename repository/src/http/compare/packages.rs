//! The `env_diff` and `package_diff` of a comparison: two `KEY=VALUE`
//! texts (`build-environment`, `system-packages`) parsed and compared the
//! way builder-web's `Utils.compare_env`/`compare_pkgs`/`diff_map` do, down
//! to its naming quirk (see [`DiffMap`]).

use std::collections::BTreeMap;

/// A name with its value (a package version, or an environment value).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NameVersion {
    pub name: String,
    pub version: String,
}

/// A name whose value differs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct VersionChange {
    pub name: String,
    pub version_left: String,
    pub version_right: String,
}

/// builder-web's `diff_map_to_json`. Its quirk, kept because clients read
/// these names: `left_packages` holds the entries found only in the RIGHT
/// build and `right_packages` those only in the LEFT build (builder-web
/// binds `left` to what `diff_map` calls `added`). Every list is in
/// ascending name order.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DiffMap {
    pub left_packages: Vec<NameVersion>,
    pub right_packages: Vec<NameVersion>,
    pub different_versions: Vec<VersionChange>,
}

impl DiffMap {
    /// Entries only in the left build (builder-web's `right_packages`).
    pub fn only_left(&self) -> &[NameVersion] {
        &self.right_packages
    }

    /// Entries only in the right build (builder-web's `left_packages`).
    pub fn only_right(&self) -> &[NameVersion] {
        &self.left_packages
    }
}

fn diff_map(a: &BTreeMap<String, String>, b: &BTreeMap<String, String>) -> DiffMap {
    let only = |x: &BTreeMap<String, String>, y: &BTreeMap<String, String>| {
        x.iter()
            .filter(|(k, _)| !y.contains_key(*k))
            .map(|(k, v)| NameVersion {
                name: k.clone(),
                version: v.clone(),
            })
            .collect()
    };
    DiffMap {
        left_packages: only(b, a),
        right_packages: only(a, b),
        different_versions: a
            .iter()
            .filter_map(|(k, v)| {
                let w = b.get(k)?;
                (v != w).then(|| VersionChange {
                    name: k.clone(),
                    version_left: v.clone(),
                    version_right: w.clone(),
                })
            })
            .collect(),
    }
}

/// Lines cut at the first `=`; a line without one is a key with an empty
/// value (so is an empty line). Later duplicates win.
fn parse_env(text: &str) -> BTreeMap<String, String> {
    text.split('\n')
        .map(|l| match l.split_once('=') {
            Some((k, v)) => (k.to_owned(), v.to_owned()),
            None => (l.to_owned(), String::new()),
        })
        .collect()
}

/// Debian's `name=version` lines, or FreeBSD's `name-version` cut at the
/// FIRST `-` (builder-web's rule, which splits `py39-foo-1.0` into `py39`
/// and `foo-1.0`: kept as it is, so both agree).
fn parse_pkgs(text: &str) -> BTreeMap<String, String> {
    text.split('\n')
        .map(|l| match l.split_once('=').or_else(|| l.split_once('-')) {
            Some((k, v)) => (k.to_owned(), v.to_owned()),
            None => (l.to_owned(), String::new()),
        })
        .collect()
}

/// `env_diff`: two `build-environment` texts.
pub fn compare_env(left: &str, right: &str) -> DiffMap {
    diff_map(&parse_env(left), &parse_env(right))
}

/// `package_diff`: two `system-packages` texts.
pub fn compare_pkgs(left: &str, right: &str) -> DiffMap {
    diff_map(&parse_pkgs(left), &parse_pkgs(right))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nv(n: &str, v: &str) -> NameVersion {
        NameVersion {
            name: n.into(),
            version: v.into(),
        }
    }

    #[test]
    fn left_packages_are_those_only_in_the_right_build() {
        let d = compare_env(
            "PATH=/a\nONLY_LEFT=x\nSAME=1",
            "SAME=1\nPATH=/b\nONLY_RIGHT=1\nA_RIGHT=2",
        );
        assert_eq!(d.left_packages, [nv("A_RIGHT", "2"), nv("ONLY_RIGHT", "1")]);
        assert_eq!(d.right_packages, [nv("ONLY_LEFT", "x")]);
        assert_eq!(d.only_left(), [nv("ONLY_LEFT", "x")]);
        assert_eq!(
            d.different_versions,
            [VersionChange {
                name: "PATH".into(),
                version_left: "/a".into(),
                version_right: "/b".into()
            }]
        );
    }

    #[test]
    fn values_keep_later_equals_signs_and_lines_without_one() {
        let d = compare_env("A=b=c\nNOEQ", "");
        assert_eq!(d.right_packages, [nv("A", "b=c"), nv("NOEQ", "")]);
        // The empty right text is one empty line: an empty key.
        assert_eq!(d.left_packages, [nv("", "")]);
    }

    #[test]
    fn system_packages_debian_and_freebsd_forms() {
        let d = compare_pkgs(
            "libgmp-dev=2:6.2.0\npy39-foo-1.0\n",
            "libgmp-dev=2:6.3.0\npy39-foo-1.1\n",
        );
        assert_eq!(d.different_versions.len(), 2);
        assert_eq!(d.different_versions[0].name, "libgmp-dev");
        assert_eq!(
            (
                d.different_versions[1].name.as_str(),
                d.different_versions[1].version_left.as_str()
            ),
            ("py39", "foo-1.0")
        );
        assert!(d.left_packages.is_empty() && d.right_packages.is_empty(), "{d:?}");
    }
}
