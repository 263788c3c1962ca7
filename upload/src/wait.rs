//! `upload --wait-deployed`: after the upload, long-poll the build's
//! deployment reports until every named host has reported it, then print one
//! line per host and turn the results into the exit code: 0 when every host
//! runs it (`deployed`, `already-running`), 3 when any decided against it
//! (`rolled-back`, `refused`), 2 when any failed outright or never answered.

use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use uk_cli::exit;
use uk_client::Client;
use uk_names::HostName;
use uk_wire::{BuildJson, DeployResult, DeploymentJson, DeploymentsJson};

/// Longest single long-poll (the server caps it there too).
const MAX_POLL: Duration = Duration::from_secs(300);

pub fn wait_deployed(
    client: &Client,
    build: &BuildJson,
    hosts: &[HostName],
    timeout: Duration,
) -> anyhow::Result<ExitCode> {
    let deadline = Instant::now() + timeout;
    let mut seen = 0usize;
    let last: Vec<Option<DeploymentJson>> = loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let url = client.url(&format!(
            "/job/{}/build/{}/deployments?wait={}&after={seen}",
            build.job,
            build.uuid,
            remaining.min(MAX_POLL).as_secs().max(1)
        ));
        let list: DeploymentsJson = client.get_json(&url).context("waiting for deployment reports")?;
        seen = list.deployments.len();
        let last: Vec<Option<DeploymentJson>> = hosts
            .iter()
            .map(|h| list.deployments.iter().rev().find(|d| &d.host == h).cloned())
            .collect();
        if last.iter().all(Option::is_some) || remaining.is_zero() {
            break last;
        }
    };
    let mut out = std::io::stdout().lock();
    let mut code = exit::SUCCESS;
    for (host, d) in hosts.iter().zip(&last) {
        match d {
            Some(d) => {
                // The host's words, one line: its tabs and newlines escaped.
                writeln!(out, "{host}\t{}\t{}", d.result.as_str(), uk_cli::escaped(&d.message))?;
                code = code.max(match d.result {
                    DeployResult::Deployed | DeployResult::AlreadyRunning => exit::SUCCESS,
                    DeployResult::RolledBack | DeployResult::Refused => exit::ROLLED_BACK,
                    DeployResult::Failed => exit::ERROR,
                });
            }
            None => {
                writeln!(out, "{host}\tpending\tno report within {timeout:?}")?;
                code = code.max(exit::ERROR);
            }
        }
    }
    // 3 (rolled back, refused) outranks 2 only when nothing failed outright.
    if last.iter().flatten().any(|d| d.result == DeployResult::Failed) || last.iter().any(Option::is_none) {
        code = exit::ERROR;
    }
    Ok(exit::code(code))
}
