//! The comparison page (`GET /compare/{left}/{right}`) for people: what
//! changed between two builds in opam packages (versions, packages only on
//! one side, opam file diffs, duniverse sources), in the build environment
//! and in the system packages. Its JSON twin is `compare::CompareJson`.

use askama::Template;

use super::{human_size, short};
use crate::http::compare::packages::{DiffMap, NameVersion, VersionChange};
use crate::http::compare::{CompareBuild, CompareJson};

struct Side {
    job: String,
    uuid: String,
    short: String,
    platform: String,
    finish_time: String,
    size: Option<String>,
}

fn side(b: &CompareBuild) -> Side {
    Side {
        job: b.job.to_string(),
        uuid: b.uuid.to_string(),
        short: short(&b.uuid),
        platform: b.platform.to_string(),
        finish_time: b.finish_time.clone(),
        size: b.main_binary_size.map(human_size),
    }
}

/// A line of a unified diff with its CSS class.
struct Line {
    class: &'static str,
    text: String,
}

struct OpamFileDiff {
    package: String,
    lines: Vec<Line>,
}

fn lines(diff: &str) -> Vec<Line> {
    diff.lines()
        .map(|l| Line {
            class: if l.starts_with("+++") || l.starts_with("---") {
                "diff-head"
            } else if l.starts_with("@@") {
                "diff-hunk"
            } else if l.starts_with('+') {
                "diff-add"
            } else if l.starts_with('-') {
                "diff-del"
            } else {
                "diff-ctx"
            },
            text: l.to_owned(),
        })
        .collect()
}

/// A `DiffMap` with its sides named for what they are.
struct Changes {
    only_left: Vec<NameVersion>,
    only_right: Vec<NameVersion>,
    changed: Vec<VersionChange>,
}

fn changes(d: &DiffMap) -> Changes {
    Changes {
        only_left: d.only_left().to_vec(),
        only_right: d.only_right().to_vec(),
        changed: d.different_versions.clone(),
    }
}

#[derive(Template)]
#[template(path = "compare.html")]
pub struct ComparePage {
    left: Side,
    right: Side,
    /// Inputs a build lacks ("the left build has no opam-switch").
    missing: Vec<String>,
    version_diff: Vec<VersionChange>,
    only_in_left: Vec<NameVersion>,
    only_in_right: Vec<NameVersion>,
    opam_files: Vec<OpamFileDiff>,
    duniverse_left: Vec<(String, String)>,
    duniverse_right: Vec<(String, String)>,
    duniverse_changed: Vec<String>,
    env: Changes,
    pkgs: Changes,
}

impl ComparePage {
    pub fn new(j: &CompareJson, missing: Vec<String>) -> ComparePage {
        let o = &j.opam_diff;
        let dirs = |l: &[crate::http::compare::opamdiff::DuniverseDir]| {
            l.iter().map(|d| (d.name.clone(), d.value.clone())).collect()
        };
        ComparePage {
            left: side(&j.left),
            right: side(&j.right),
            missing,
            version_diff: o.version_diff.clone(),
            only_in_left: o.only_in_left.clone(),
            only_in_right: o.only_in_right.clone(),
            opam_files: o
                .opam_diff
                .iter()
                .map(|d| OpamFileDiff {
                    package: d.package_version.clone(),
                    lines: lines(&d.diff),
                })
                .collect(),
            duniverse_left: dirs(&o.duniverse_diff.left),
            duniverse_right: dirs(&o.duniverse_diff.right),
            duniverse_changed: o.duniverse_diff.detailed_diff.iter().map(|d| d.name.clone()).collect(),
            env: changes(&j.env_diff),
            pkgs: changes(&j.package_diff),
        }
    }

    fn nothing_changed(&self) -> bool {
        self.version_diff.is_empty()
            && self.only_in_left.is_empty()
            && self.only_in_right.is_empty()
            && self.opam_files.is_empty()
            && self.duniverse_left.is_empty()
            && self.duniverse_right.is_empty()
            && self.duniverse_changed.is_empty()
            && self.env.changed.is_empty()
            && self.env.only_left.is_empty()
            && self.env.only_right.is_empty()
            && self.pkgs.changed.is_empty()
            && self.pkgs.only_left.is_empty()
            && self.pkgs.only_right.is_empty()
    }
}
