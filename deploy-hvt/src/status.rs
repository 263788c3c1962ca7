//! `deploy-hvt status`: what is current, previous, running, whether it is
//! held or stopped, which images failed here and why, and how the last
//! decision ended; as text for people or `--json` for programs. It reads
//! only: no lock, no reports. Running means our tender runs (builtin), or
//! the health checks pass now (restart by command).

use serde::Serialize;

use crate::config::{Config, Restart};
use crate::journal::{self, Entry};
use crate::marks::{Hold, Supervision};
use crate::state::State;
use crate::{health, tender};

#[derive(Debug, Serialize)]
pub struct Status {
    pub name: String,
    pub dir: String,
    pub current: Option<String>,
    pub previous: Option<String>,
    pub running: Option<RunningJson>,
    /// Does the unikernel run (exit 0) or not (exit 1)?
    pub runs: bool,
    pub held: Option<Hold>,
    pub stopped: bool,
    pub last_deploy: Option<Entry>,
    /// Images not deployed again unattended.
    pub failed: Vec<String>,
    pub failed_why: Vec<FailedJson>,
    /// The last build decided about: `<uuid> <sha256>`.
    pub decided: Option<String>,
    pub supervision: Option<Supervision>,
}

#[derive(Debug, Serialize)]
pub struct RunningJson {
    pub pid: i32,
    pub sha256: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct FailedJson {
    pub sha256: String,
    pub why: crate::marks::Why,
}

pub fn status(cfg: &Config) -> anyhow::Result<Status> {
    let state = State::open(&cfg.dir)?;
    let sha = |l: &str| -> anyhow::Result<Option<String>> { Ok(state.link(l)?.map(|i| i.sha256.to_string())) };
    let current = sha("current")?;
    let (running, runs) = match cfg.restart {
        Restart::Builtin => {
            let r = tender::running(cfg, &state).map(|r| RunningJson {
                pid: r.pid,
                sha256: Some(r.sha256.to_string()),
            });
            let runs = r.is_some();
            (r, runs)
        }
        Restart::Command(_) => (None, current.is_some() && health::probe(cfg)),
    };
    let failed = state.failed();
    Ok(Status {
        name: cfg.name.to_string(),
        dir: state.dir.display().to_string(),
        current,
        previous: sha("previous")?,
        running,
        runs,
        held: state.hold(),
        stopped: state.stopped(),
        last_deploy: journal::last(&state, &["deploy", "rollback", "start", "hold"]),
        failed: failed.keys().map(|s| s.to_string()).collect(),
        failed_why: failed
            .iter()
            .map(|(s, w)| FailedJson {
                sha256: s.to_string(),
                why: *w,
            })
            .collect(),
        decided: state.decided().map(|(u, s)| format!("{u} {s}")),
        supervision: state.supervision(),
    })
}

/// The status for people, one `key: value` line each.
pub fn text(s: &Status) -> String {
    let none = || "none".to_owned();
    let mut t = format!("name:      {}\ndir:       {}\n", s.name, s.dir);
    t += &format!("current:   {}\n", s.current.clone().unwrap_or_else(none));
    t += &format!("previous:  {}\n", s.previous.clone().unwrap_or_else(none));
    t += &match &s.running {
        Some(r) => format!("running:   pid {} ({})\n", r.pid, r.sha256.clone().unwrap_or_else(none)),
        None if s.runs => "running:   yes (health checks pass)\n".to_owned(),
        None if s.stopped => "running:   no (stopped by hand)\n".to_owned(),
        None => "running:   no\n".to_owned(),
    };
    if let Some(h) = &s.held {
        t += &format!("held:      since {}: {}\n", h.since, h.reason);
    }
    if let Some(e) = &s.last_deploy {
        t += &format!("last:      {} {} at {}: {}\n", e.action, e.result, e.time, e.message);
    }
    for f in &s.failed_why {
        t += &format!("failed:    {} ({})\n", f.sha256, f.why);
    }
    t.trim_end().to_owned()
}
