//! Deployment reports to the repository (`POST /job/{job}/build/{uuid}/deployments`).
//! The journal (`deploy.log`) is the spool: every deploy, rollback and start
//! entry is a report, and `reports.offset` records how far the journal has
//! been delivered. Sending happens after the work is done, with short
//! timeouts; a repository that cannot be reached only delays delivery to the
//! next `deploy-hvt` run. Reporting never changes an exit code.

use std::io::{Read, Seek, SeekFrom};

use uk_client::{Client, ConnectArgs};
use uk_names::{HostName, JobName};
use uk_wire::{BuildJson, DeployResult, DeploymentReport};

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
    pub fn flush(&self, state: &State, job: &JobName) {
        let offset_path = state.path("reports.offset");
        let mut offset: u64 = std::fs::read_to_string(&offset_path)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
        let Ok(mut f) = std::fs::File::open(state.path("deploy.log")) else {
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
                match self.send(job, &e) {
                    Ok(()) => {}
                    Err(Retry::Later(why)) => {
                        eprintln!("deploy-hvt: the deployment report will be sent later: {why}");
                        break;
                    }
                    Err(Retry::Never(why)) => eprintln!("deploy-hvt: dropping a deployment report: {why}"),
                }
            }
            offset += line.len() as u64;
        }
        if offset != start {
            // Replaced atomically, so a crash never leaves a torn offset
            // (which would resend everything).
            let write = || -> std::io::Result<()> {
                let mut f = uk_digest::AtomicFile::new_in(&state.dir, "reports.offset")?;
                std::io::Write::write_all(&mut f, format!("{offset}\n").as_bytes())?;
                f.finish()?.persist(&offset_path)
            };
            if let Err(e) = write() {
                eprintln!("deploy-hvt: recording delivered reports: {e}");
            }
        }
    }

    fn send(&self, job: &JobName, e: &Entry) -> Result<(), Retry> {
        let result = match (e.action.as_str(), e.result.as_str()) {
            ("deploy" | "rollback" | "start", "deployed") => DeployResult::Deployed,
            ("deploy" | "rollback" | "start", "rolled-back") => DeployResult::RolledBack,
            ("deploy" | "rollback" | "start", "failed") => DeployResult::Failed,
            ("deploy", "refused") => DeployResult::Refused,
            _ => return Ok(()),
        };
        let Some(sha256) = e.sha256.as_deref().and_then(|s| s.parse().ok()) else {
            return Ok(());
        };
        let classify = |err: uk_client::ClientError| {
            if err.is_transient() {
                Retry::Later(err.to_string())
            } else {
                Retry::Never(err.to_string())
            }
        };
        let build: BuildJson = self
            .client
            .get_json(&self.client.url(&format!("/hash?sha256={sha256}")))
            .map_err(classify)?;
        if &build.job != job {
            return Err(Retry::Never(format!(
                "{sha256} belongs to job {:?}, not {:?}",
                build.job.as_str(),
                job.as_str()
            )));
        }
        let report = DeploymentReport {
            host: self.host.clone(),
            sha256,
            result,
            action: uk_wire::DeployAction::default(),
            message: e.message.clone(),
            started: e.started.clone().unwrap_or_else(|| e.time.clone()),
            finished: e.time.clone(),
        };
        let url = self
            .client
            .url(&format!("/job/{}/build/{}/deployments", build.job, build.uuid));
        let body = serde_json::to_vec(&report).map_err(|e| Retry::Never(e.to_string()))?;
        let resp = self
            .client
            .post(&url)
            .header("Content-Type", "application/json")
            .send(&body[..])
            .map_err(|err| Retry::Later(format!("POST {url}: {err}")))?;
        Client::check("POST", &url, resp).map(|_| ()).map_err(classify)
    }
}

enum Retry {
    Later(String),
    Never(String),
}
