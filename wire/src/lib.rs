//! The JSON bodies of the repository's HTTP API (CONTRACT.md §2), shared by
//! the server that writes them and the clients that read them. Field names
//! follow builder-web, plus ours (`main_binary_file`, `artifacts`).

use serde::{Deserialize, Serialize};
use uk_digest::Sha256;
use uk_names::{ArtifactPath, BuildId, HostName, JobName, PlatformName};

/// One stored file of a build.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileJson {
    pub filepath: ArtifactPath,
    pub sha256: Sha256,
    pub size: u64,
}

/// The main binary, with the path of its detached signature if one was uploaded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MainBinaryJson {
    pub filepath: ArtifactPath,
    pub sha256: Sha256,
    pub size: u64,
    pub signature: Option<ArtifactPath>,
}

/// `GET /job/{job}/build/{uuid}` with `Accept: application/json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BuildJson {
    pub job: JobName,
    pub uuid: BuildId,
    pub platform: PlatformName,
    /// RFC 3339.
    pub start_time: String,
    /// RFC 3339.
    pub finish_time: String,
    pub main_binary: bool,
    pub solo5_abi: Option<serde_json::Value>,
    pub solo5_manifest: Option<serde_json::Value>,
    pub main_binary_file: Option<MainBinaryJson>,
    pub artifacts: Vec<FileJson>,
    /// When vacuum dropped this build's files (they answer 410); absent
    /// while they are there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vacuumed: Option<String>,
    /// The last report of each host that deployed this build.
    #[serde(default)]
    pub deployments: Vec<DeploymentJson>,
}

/// The main binary in `GET /job/{job}` rows: `filename` is its last path
/// component, as builder-web shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobFileJson {
    pub filename: String,
    pub sha256: Sha256,
    pub size: u64,
}

/// One row of `GET /job/{job}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobBuildJson {
    pub uuid: BuildId,
    pub platform: PlatformName,
    pub finish_time: String,
    pub main_binary: Option<JobFileJson>,
    /// Its files were dropped by vacuum (its digests stay listed).
    #[serde(default)]
    pub vacuumed: bool,
}

/// `GET /job/{job}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobJson {
    pub builds: Vec<JobBuildJson>,
}

/// The latest build in `GET /` rows: builder-web's `uuid`, `solo5_manifest`
/// and `solo5_abi` (what mollymawk reads), plus ours.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatestJson {
    pub uuid: BuildId,
    pub solo5_manifest: Option<serde_json::Value>,
    pub solo5_abi: Option<serde_json::Value>,
    pub platform: PlatformName,
    pub finish_time: String,
    pub main_binary: Option<JobFileJson>,
}

/// One row of `GET /` and `GET /all-builds`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobSummaryJson {
    pub name: JobName,
    /// Always a string (empty when unknown): mollymawk drops the whole list
    /// when one job's synopsis is `null`.
    pub synopsis: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub latest: Option<LatestJson>,
}

/// `GET /` and `GET /all-builds`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobsJson {
    pub jobs: Vec<JobSummaryJson>,
    /// The same jobs by section (builder-web's; ours are all "Uncategorized").
    pub jobs_by_section: std::collections::BTreeMap<String, Vec<JobSummaryJson>>,
}

/// Every error body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorJson {
    pub error: String,
}

/// Which build a file on a host came from: `fetch-latest --output PATH`
/// writes it beside the image as `PATH.build.json`, and `deploy-hvt` keeps it
/// with the image, so that what the host reports names the exact build
/// (never one found by digest alone).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildRef {
    pub job: JobName,
    pub uuid: BuildId,
    /// Unknown when only the build's uuid was given (`deploy-hvt --build`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<PlatformName>,
    pub sha256: Sha256,
}

/// What a host decided about a build (CONTRACT.md §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeployResult {
    /// It runs now and is healthy.
    Deployed,
    /// It failed its checks; the previous image runs again.
    RolledBack,
    /// It failed, and nothing healthy could be restored.
    Failed,
    /// Not tried: it failed here before, the host is held, the signature or
    /// target is wrong, …
    Refused,
    /// It already was current and running.
    AlreadyRunning,
}

impl DeployResult {
    pub fn as_str(&self) -> &'static str {
        match self {
            DeployResult::Deployed => "deployed",
            DeployResult::RolledBack => "rolled-back",
            DeployResult::Failed => "failed",
            DeployResult::Refused => "refused",
            DeployResult::AlreadyRunning => "already-running",
        }
    }
}

/// What the host was doing when it decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum DeployAction {
    #[default]
    Deploy,
    Rollback,
    Start,
    Hold,
}

impl DeployAction {
    pub fn as_str(&self) -> &'static str {
        match self {
            DeployAction::Deploy => "deploy",
            DeployAction::Rollback => "rollback",
            DeployAction::Start => "start",
            DeployAction::Hold => "hold",
        }
    }
}

/// `POST /job/{job}/build/{uuid}/deployments`: a host reports a deploy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeploymentReport {
    pub host: HostName,
    pub sha256: Sha256,
    pub result: DeployResult,
    /// Absent in reports of older hosts: `deploy`.
    #[serde(default)]
    pub action: DeployAction,
    pub message: String,
    /// RFC 3339.
    pub started: String,
    /// RFC 3339.
    pub finished: String,
}

/// A stored report, as the deployment views show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeploymentJson {
    pub id: i64,
    pub host: HostName,
    pub job: JobName,
    pub uuid: BuildId,
    pub sha256: Sha256,
    pub result: DeployResult,
    pub action: DeployAction,
    pub message: String,
    pub started: String,
    pub finished: String,
    pub received: String,
}

/// `GET /job/{job}/deployments` and `GET /job/{job}/build/{uuid}/deployments`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeploymentsJson {
    pub deployments: Vec<DeploymentJson>,
}
