//! The deployments page of a job (`GET /job/{job}/deployments`): each
//! host's current build (worked out by `running.rs`) and newest report,
//! then the job's recent history. The JSON twin keeps `deployments` (each
//! host's newest report) and `history`, and adds `hosts` and `latest`.

use askama::Template;
use uk_digest::Sha256;
use uk_names::BuildId;
use uk_wire::DeploymentJson;

use super::short;
use crate::http::running::HostState;

#[derive(Debug, Clone, serde::Serialize)]
pub struct DeploymentsPageJson {
    /// Each host's newest report, by host.
    pub deployments: Vec<DeploymentJson>,
    /// The job's newest reports, newest first.
    pub history: Vec<DeploymentJson>,
    pub hosts: Vec<HostState>,
    /// The job's latest build and its image, to tell hosts that are behind.
    pub latest: Option<BuildId>,
    pub latest_sha256: Option<Sha256>,
}

struct Host {
    host: String,
    current: Option<(String, String)>,
    on_latest: bool,
    last: Row,
}

struct Row {
    host: String,
    uuid: String,
    short: String,
    result: String,
    action: String,
    finished: String,
    message: String,
}

fn row(d: &DeploymentJson) -> Row {
    Row {
        host: d.host.to_string(),
        uuid: d.uuid.to_string(),
        short: short(&d.uuid),
        result: d.result.as_str().to_owned(),
        action: d.action.as_str().to_owned(),
        finished: d.finished.clone(),
        message: d.message.clone(),
    }
}

#[derive(Template)]
#[template(path = "deployments.html")]
pub struct DeploymentsPage {
    job: String,
    hosts: Vec<Host>,
    history: Vec<Row>,
}

impl DeploymentsPage {
    pub fn new(job: &str, j: &DeploymentsPageJson) -> DeploymentsPage {
        DeploymentsPage {
            job: job.to_owned(),
            hosts: j
                .hosts
                .iter()
                .map(|h| Host {
                    host: h.host.clone(),
                    current: h.current.as_ref().map(|c| (c.uuid.to_string(), short(&c.uuid))),
                    on_latest: h.current.as_ref().is_some_and(|c| Some(c.sha256) == j.latest_sha256),
                    last: row(&h.last),
                })
                .collect(),
            history: j.history.iter().map(row).collect(),
        }
    }
}
