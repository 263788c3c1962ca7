//! The job page (`GET /job/{job}[?platform=][&page=]`): builds grouped by
//! their main binary's digest, as builder-web lists a job (a rebuild that
//! reproduced the same image joins its group instead of repeating it),
//! newest group first, with a platform filter and pages of [`PER_PAGE`]
//! groups. The JSON twin keeps `builds` (every build, newest first, as
//! before) and adds `groups` (this page's), `platforms` and the paging.

use askama::Template;
use uk_wire::{JobBuildJson, JobFileJson};

use super::{human_size, short, short_sha};

/// Groups per page.
pub const PER_PAGE: usize = 20;

#[derive(Debug, Clone, serde::Serialize)]
pub struct GroupJson {
    /// The image every build of the group produced (`null`: builds without one).
    pub main_binary: Option<JobFileJson>,
    /// Newest first.
    pub builds: Vec<JobBuildJson>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct JobPageJson {
    pub builds: Vec<JobBuildJson>,
    pub job: String,
    pub synopsis: String,
    /// The filter in force.
    pub platform: Option<String>,
    /// Every platform the job has builds for.
    pub platforms: Vec<String>,
    pub groups: Vec<GroupJson>,
    /// 1-based.
    pub page: usize,
    pub pages: usize,
}

/// Groups builds (newest first) by main-binary digest, in order of each
/// group's newest build. Builds without a main binary stay alone.
pub fn group(builds: &[JobBuildJson]) -> Vec<GroupJson> {
    let mut groups: Vec<GroupJson> = Vec::new();
    for b in builds {
        let same = b.main_binary.as_ref().and_then(|m| {
            groups
                .iter_mut()
                .find(|g| g.main_binary.as_ref().is_some_and(|n| n.sha256 == m.sha256))
        });
        match same {
            Some(g) => g.builds.push(b.clone()),
            None => groups.push(GroupJson {
                main_binary: b.main_binary.clone(),
                builds: vec![b.clone()],
            }),
        }
    }
    groups
}

/// One page of groups; `page` is clamped into range.
pub fn paginate(groups: Vec<GroupJson>, page: usize) -> (Vec<GroupJson>, usize, usize) {
    let pages = groups.len().div_ceil(PER_PAGE).max(1);
    let page = page.clamp(1, pages);
    let list = groups.into_iter().skip((page - 1) * PER_PAGE).take(PER_PAGE).collect();
    (list, page, pages)
}

struct Build {
    uuid: String,
    short: String,
    platform: String,
    finish_time: String,
    vacuumed: bool,
}

struct Group {
    file: Option<String>,
    sha256: String,
    sha_short: String,
    size: String,
    builds: Vec<Build>,
}

struct PlatformLink {
    name: String,
    current: bool,
}

#[derive(Template)]
#[template(path = "job.html")]
pub struct JobPage {
    job: String,
    synopsis: String,
    platform: Option<String>,
    platforms: Vec<PlatformLink>,
    groups: Vec<Group>,
    total: usize,
    page: usize,
    pages: usize,
    /// `platform=…&amp;` for the paging links, or empty (escaped by the template).
    platform_query: String,
}

impl JobPage {
    pub fn new(j: &JobPageJson) -> JobPage {
        JobPage {
            job: j.job.clone(),
            synopsis: j.synopsis.clone(),
            platform: j.platform.clone(),
            platforms: j
                .platforms
                .iter()
                .map(|p| PlatformLink {
                    name: p.clone(),
                    current: j.platform.as_deref() == Some(p),
                })
                .collect(),
            groups: j
                .groups
                .iter()
                .map(|g| Group {
                    file: g.main_binary.as_ref().map(|m| m.filename.clone()),
                    sha256: g.main_binary.as_ref().map(|m| m.sha256.to_string()).unwrap_or_default(),
                    sha_short: g.main_binary.as_ref().map(|m| short_sha(&m.sha256)).unwrap_or_default(),
                    size: g.main_binary.as_ref().map(|m| human_size(m.size)).unwrap_or_default(),
                    builds: g
                        .builds
                        .iter()
                        .map(|b| Build {
                            uuid: b.uuid.to_string(),
                            short: short(&b.uuid),
                            platform: b.platform.to_string(),
                            finish_time: b.finish_time.clone(),
                            vacuumed: b.vacuumed,
                        })
                        .collect(),
                })
                .collect(),
            total: j.builds.len(),
            page: j.page,
            pages: j.pages,
            platform_query: j.platform.clone().unwrap_or_default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(n: u8, sha: Option<u8>) -> JobBuildJson {
        JobBuildJson {
            uuid: format!("00000000-0000-4000-8000-0000000000{n:02}").parse().unwrap(),
            platform: "debian-12".parse().unwrap(),
            finish_time: String::new(),
            main_binary: sha.map(|s| JobFileJson {
                filename: "a.hvt".into(),
                sha256: format!("{s:02x}").repeat(32).parse().unwrap(),
                size: 1,
            }),
            vacuumed: false,
        }
    }

    #[test]
    fn groups_by_digest_in_order_of_newest_build() {
        let builds = [build(4, Some(1)), build(3, Some(2)), build(2, Some(1)), build(1, None)];
        let g = group(&builds);
        let shape: Vec<Vec<_>> = g
            .iter()
            .map(|g| g.builds.iter().map(|b| b.uuid.to_string()[34..].to_owned()).collect())
            .collect();
        assert_eq!(shape, [vec!["04", "02"], vec!["03"], vec!["01"]]);
        assert!(g[2].main_binary.is_none());
    }

    #[test]
    fn pages_are_clamped() {
        let many: Vec<JobBuildJson> = (0..45).map(|i| build(i, Some(i))).collect();
        let (list, page, pages) = paginate(group(&many), 3);
        assert_eq!((list.len(), page, pages), (5, 3, 3));
        let (list, page, _) = paginate(group(&many), 0);
        assert_eq!((list.len(), page), (PER_PAGE, 1));
        assert_eq!(paginate(Vec::new(), 7).1, 1);
    }
}
