//! The front page (`GET /`, `GET /all-builds`): every job with its latest
//! build, its size and age, and the hosts that run it. The JSON twin is
//! builder-web's `{"jobs", "jobs_by_section"}` with a `hosts` list added
//! to each job.

use std::collections::BTreeMap;

use askama::Template;
use time::OffsetDateTime;
use uk_names::BuildId;
use uk_wire::JobSummaryJson;

use super::{age, human_size, short};
use crate::http::running::HostState;

/// A host in a job's row: what it runs, and whether that is the latest.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunningJson {
    pub host: String,
    /// The build it runs, `null` when nothing we know of runs.
    pub uuid: Option<BuildId>,
    /// Its newest report's result.
    pub result: &'static str,
    /// It runs the image of the job's latest build.
    pub latest: bool,
}

/// One job of the JSON twin: builder-web's fields, then ours.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FrontJobJson {
    #[serde(flatten)]
    pub job: JobSummaryJson,
    pub hosts: Vec<RunningJson>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct FrontJson {
    pub jobs: Vec<FrontJobJson>,
    /// builder-web's sections; ours are all "Uncategorized".
    pub jobs_by_section: BTreeMap<String, Vec<FrontJobJson>>,
}

pub fn json(jobs: Vec<(JobSummaryJson, Vec<HostState>)>) -> FrontJson {
    let jobs: Vec<FrontJobJson> = jobs
        .into_iter()
        .map(|(job, hosts)| {
            let latest = job
                .latest
                .as_ref()
                .and_then(|l| l.main_binary.as_ref())
                .map(|m| m.sha256);
            FrontJobJson {
                hosts: hosts
                    .into_iter()
                    .map(|h| RunningJson {
                        uuid: h.current.as_ref().map(|c| c.uuid),
                        latest: h.current.as_ref().is_some_and(|c| Some(c.sha256) == latest),
                        result: h.last.result.as_str(),
                        host: h.host,
                    })
                    .collect(),
                job,
            }
        })
        .collect();
    let mut jobs_by_section = BTreeMap::new();
    if !jobs.is_empty() {
        jobs_by_section.insert("Uncategorized".to_owned(), jobs.clone());
    }
    FrontJson { jobs, jobs_by_section }
}

struct Latest {
    uuid: String,
    short: String,
    platform: String,
    file: String,
    size: String,
    age: String,
    finish_time: String,
}

struct Row {
    name: String,
    synopsis: String,
    latest: Option<Latest>,
    hosts: Vec<RunningJson>,
}

#[derive(Template)]
#[template(path = "front.html")]
pub struct FrontPage {
    jobs: Vec<Row>,
}

impl FrontPage {
    pub fn new(data: &FrontJson, now: OffsetDateTime) -> FrontPage {
        let jobs = data
            .jobs
            .iter()
            .map(|j| Row {
                name: j.job.name.to_string(),
                synopsis: j.job.synopsis.clone(),
                latest: j.job.latest.as_ref().map(|l| Latest {
                    uuid: l.uuid.to_string(),
                    short: short(&l.uuid),
                    platform: l.platform.to_string(),
                    file: l.main_binary.as_ref().map(|m| m.filename.clone()).unwrap_or_default(),
                    size: l.main_binary.as_ref().map(|m| human_size(m.size)).unwrap_or_default(),
                    age: age(&l.finish_time, now),
                    finish_time: l.finish_time.clone(),
                }),
                hosts: j.hosts.clone(),
            })
            .collect();
        FrontPage { jobs }
    }
}
