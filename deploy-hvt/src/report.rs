//! Deployment reports to the repository (`POST /job/{job}/build/{uuid}/deployments`).
//! The journal (`deploy.log`) is the spool: every entry about a build (its
//! job and uuid recorded when the host fetched it: never looked up by digest)
//! is one report, and `reports.offset` records how far the journal has been
//! delivered. Sending happens under the unikernel's lock, after the work,
//! with short timeouts, so two `deploy-hvt` never send the same report; a
//! repository that cannot be reached, or that refuses the host's credential
//! (401, 403: an operator can fix that), only delays delivery to the next
//! run. Reporting never changes an exit code.

use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::OpenOptionsExt;

use uk_cli::escaped;
use uk_client::{Client, ClientError, ConnectArgs};
use uk_names::{BuildId, HostName, JobName};
use uk_wire::{DeployAction, DeployResult, DeploymentReport};

use crate::journal::Entry;
use crate::state::State;

/// Where and as whom to report.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ReportArgs {
    /// Repository to report deployments to (reports need a credential:
    /// UKREPO_TOKEN, UKREPO_TOKEN_FILE, or UKREPO_USER with UKREPO_PASSWORD).
    #[arg(long, env = "UKREPO_URL")]
    pub report_url: Option<String>,
    /// This host's name in reports [default: the system host name].
    #[arg(long, env = "UKREPO_HOST_NAME")]
    pub report_host: Option<String>,
}

pub struct Reporter {
    client: Client,
    host: HostName,
}

fn system_host_name() -> Option<String> {
    let mut buf = [0u8; 256];
    let ok = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0;
    let end = buf.iter().position(|&b| b == 0)?;
    ok.then(|| String::from_utf8_lossy(&buf[..end]).into_owned())
}

impl Reporter {
    /// `None` when no repository or no credential is configured.
    pub fn new(args: &ReportArgs, verbose: bool) -> anyhow::Result<Option<Reporter>> {
        let Some(url) = args.report_url.clone() else {
            return Ok(None);
        };
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let connect = ConnectArgs {
            url,
            cacert: env("UKREPO_CACERT").map(Into::into),
            user: env("UKREPO_USER"),
            password_file: env("UKREPO_PASSWORD_FILE").map(Into::into),
            token_file: env("UKREPO_TOKEN_FILE").map(Into::into),
            retries: 0,
            verbose,
        };
        let client = Client::quick(&connect)?;
        if !client.has_credential() {
            if verbose {
                eprintln!("deploy-hvt: not reporting deployments: no credential for the repository");
            }
            return Ok(None);
        }
        let name = args
            .report_host
            .clone()
            .or_else(system_host_name)
            .unwrap_or_else(|| "localhost".into());
        let host: HostName = name
            .parse()
            .map_err(|e| anyhow::anyhow!("the host name for reports: {e}; set --report-host"))?;
        Ok(Some(Reporter { client, host }))
    }

    /// Delivers every journal entry not delivered yet, oldest first; stops at
    /// the first that cannot be delivered now (it is retried next time).
    pub fn flush(&self, state: &State) {
        let offset_path = state.path("reports.offset");
        let mut offset: u64 = std::fs::read_to_string(&offset_path)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
        let mut open = std::fs::OpenOptions::new();
        open.read(true).custom_flags(libc::O_NOFOLLOW);
        let Ok(mut f) = open.open(state.path("deploy.log")) else {
            return;
        };
        let mut text = String::new();
        if f.seek(SeekFrom::Start(offset)).is_err() || f.read_to_string(&mut text).is_err() {
            return;
        }
        let start = offset;
        for line in text.split_inclusive('\n') {
            if !line.ends_with('\n') {
                break; // a line still being written
            }
            if let Ok(e) = serde_json::from_str::<Entry>(line) {
                match self.send(&e) {
                    Ok(()) => {}
                    Err(Retry::Later(why)) => {
                        eprintln!(
                            "deploy-hvt: the deployment report will be sent later: {}",
                            escaped(&why)
                        );
                        break;
                    }
                    Err(Retry::Never(why)) => {
                        eprintln!("deploy-hvt: dropping a deployment report: {}", escaped(&why));
                    }
                }
            }
            offset += line.len() as u64;
        }
        if offset != start {
            // Replaced atomically, so a crash never leaves a torn offset
            // (which would resend everything).
            if let Err(e) = state.write_file("reports.offset", format!("{offset}\n").as_bytes()) {
                eprintln!("deploy-hvt: recording delivered reports: {e}");
            }
        }
    }

    fn send(&self, e: &Entry) -> Result<(), Retry> {
        let action = match e.action.as_str() {
            "deploy" => DeployAction::Deploy,
            "rollback" => DeployAction::Rollback,
            "start" => DeployAction::Start,
            "hold" => DeployAction::Hold,
            _ => return Ok(()),
        };
        let result = match e.result.as_str() {
            "deployed" => DeployResult::Deployed,
            "rolled-back" => DeployResult::RolledBack,
            "failed" => DeployResult::Failed,
            "refused" => DeployResult::Refused,
            "already-running" => DeployResult::AlreadyRunning,
            _ => return Ok(()),
        };
        // Only entries that name their build are reports.
        let (Some(sha256), Some(job), Some(uuid)) = (
            e.sha256.as_deref().and_then(|s| s.parse().ok()),
            e.job.as_deref().and_then(|j| j.parse::<JobName>().ok()),
            e.uuid.as_deref().and_then(|u| u.parse::<BuildId>().ok()),
        ) else {
            return Ok(());
        };
        let report = DeploymentReport {
            host: self.host.clone(),
            sha256,
            result,
            action,
            message: e.message.clone(),
            started: e.started.clone().unwrap_or_else(|| e.time.clone()),
            finished: e.time.clone(),
        };
        let url = self.client.url(&format!("/job/{job}/build/{uuid}/deployments"));
        let body = serde_json::to_vec(&report).map_err(|e| Retry::Never(e.to_string()))?;
        let resp = self
            .client
            .post(&url)
            .header("Content-Type", "application/json")
            .send(&body[..])
            .map_err(|err| Retry::Later(format!("POST {url}: {err}")))?;
        Client::check("POST", &url, resp).map(|_| ()).map_err(|err| match &err {
            ClientError::Status { status: 401 | 403, .. } => Retry::Later(format!(
                "{err} (check this host's credential for job {:?}; the report stays queued)",
                job.as_str()
            )),
            _ if err.is_transient() => Retry::Later(err.to_string()),
            _ => Retry::Never(err.to_string()),
        })
    }
}

enum Retry {
    Later(String),
    Never(String),
}
