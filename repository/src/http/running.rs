//! Which build each host runs, worked out from its deployment reports (the
//! front page's "running on", the deployments page's "current build").
//!
//! A host runs the build of its newest `deployed` or `already-running`
//! report, unless a newer report says it left that build (`rolled-back`:
//! it went back to an older one; `failed`: nothing healthy runs). `refused`
//! reports change nothing: the host kept what it had.

use std::collections::BTreeMap;

use uk_wire::{DeployResult, DeploymentJson};

/// One host as the pages show it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct HostState {
    pub host: String,
    /// The report that says what runs there now; `None` when nothing we
    /// know of runs (no successful deploy, or a failure since).
    pub current: Option<DeploymentJson>,
    /// Its newest report, whatever it says.
    pub last: DeploymentJson,
}

/// `reports`: a job's reports, newest first (as `db::deployments::recent`).
pub fn hosts(reports: &[DeploymentJson]) -> Vec<HostState> {
    let mut by_host: BTreeMap<&str, Vec<&DeploymentJson>> = BTreeMap::new();
    for r in reports {
        by_host.entry(r.host.as_str()).or_default().push(r);
    }
    by_host
        .into_iter()
        .map(|(host, list)| HostState {
            host: host.to_owned(),
            current: current(&list).cloned(),
            last: list[0].clone(),
        })
        .collect()
}

fn current<'a>(newest_first: &[&'a DeploymentJson]) -> Option<&'a DeploymentJson> {
    let mut left = Vec::new();
    for r in newest_first {
        match r.result {
            DeployResult::Deployed | DeployResult::AlreadyRunning if !left.contains(&r.uuid) => return Some(r),
            DeployResult::Deployed | DeployResult::AlreadyRunning | DeployResult::Refused => {}
            DeployResult::RolledBack => left.push(r.uuid),
            DeployResult::Failed => return None,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use uk_wire::DeployAction;

    fn rep(id: i64, host: &str, build: u8, result: DeployResult) -> DeploymentJson {
        DeploymentJson {
            id,
            host: host.parse().unwrap(),
            job: "web".parse().unwrap(),
            uuid: format!("00000000-0000-4000-8000-0000000000{build:02}").parse().unwrap(),
            sha256: "0".repeat(64).parse().unwrap(),
            result,
            action: DeployAction::Deploy,
            message: String::new(),
            started: String::new(),
            finished: String::new(),
            received: String::new(),
        }
    }

    fn current_build(reports: &[DeploymentJson]) -> Vec<(String, Option<i64>)> {
        hosts(reports)
            .into_iter()
            .map(|h| (h.host, h.current.map(|c| c.id)))
            .collect()
    }

    #[test]
    fn newest_deploy_wins_and_a_rollback_goes_back() {
        use DeployResult::*;
        // Newest first: host a deployed 2 then rolled it back: it runs 1.
        let r = [
            rep(5, "a", 2, RolledBack),
            rep(4, "b", 2, Deployed),
            rep(3, "a", 2, Deployed),
            rep(2, "b", 1, Deployed),
            rep(1, "a", 1, Deployed),
        ];
        assert_eq!(
            current_build(&r),
            [("a".to_owned(), Some(1)), ("b".to_owned(), Some(4))]
        );
    }

    #[test]
    fn refused_changes_nothing_failed_means_nothing_runs() {
        use DeployResult::*;
        let r = [
            rep(4, "a", 3, Refused),
            rep(3, "a", 2, AlreadyRunning),
            rep(2, "b", 2, Failed),
            rep(1, "b", 1, Deployed),
        ];
        assert_eq!(current_build(&r), [("a".to_owned(), Some(3)), ("b".to_owned(), None)]);
        assert_eq!(hosts(&r)[0].last.id, 4);
    }
}
