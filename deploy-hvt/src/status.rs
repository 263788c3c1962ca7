//! `deploy-hvt status`: what is current, previous, running, and how the last
//! deploy ended; as text for people or `--json` for programs.

use serde::Serialize;

use crate::config::Config;
use crate::journal::{self, Entry};
use crate::state::State;
use crate::tender;

#[derive(Debug, Serialize)]
pub struct Status {
    pub name: String,
    pub dir: String,
    pub current: Option<String>,
    pub previous: Option<String>,
    pub running: Option<RunningJson>,
    pub last_deploy: Option<Entry>,
    pub failed: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct RunningJson {
    pub pid: i32,
    pub sha256: Option<String>,
}

pub fn status(cfg: &Config) -> anyhow::Result<Status> {
    let state = State::open(&cfg.dir)?;
    let sha = |l: &str| -> anyhow::Result<Option<String>> { Ok(state.link(l)?.map(|i| i.sha256.to_string())) };
    let running = match cfg.restart {
        crate::config::Restart::Builtin => tender::running(&state).map(|r| RunningJson {
            pid: r.pid,
            sha256: r.sha256.map(|s| s.to_string()),
        }),
        crate::config::Restart::Command(_) => None,
    };
    Ok(Status {
        name: cfg.name.to_string(),
        dir: state.dir.display().to_string(),
        current: sha("current")?,
        previous: sha("previous")?,
        running,
        last_deploy: journal::last(&state, &["deploy", "rollback", "start"]),
        failed: state.failed().iter().map(|s| s.to_string()).collect(),
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
        None => "running:   none\n".to_owned(),
    };
    if let Some(e) = &s.last_deploy {
        t += &format!("last:      {} {} at {}: {}\n", e.action, e.result, e.time, e.message);
    }
    for f in &s.failed {
        t += &format!("failed:    {f}\n");
    }
    t.trim_end().to_owned()
}
