//! `deploy.log`: one JSON line per decision (deploy, rollback, start, stop,
//! hold), appended and fsynced, so `status` and operators can tell what
//! happened when. Each entry about an image names the build it came from
//! (job and uuid) when that is known, and the console of a failed image
//! (kept under `consoles/`). The journal is also the spool of deployment
//! reports (`report.rs`).

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uk_digest::Sha256;
use uk_wire::BuildRef;

use crate::state::State;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    /// When the run that wrote this entry started.
    #[serde(default)]
    pub started: Option<String>,
    pub time: String,
    pub action: String,
    pub result: String,
    pub sha256: Option<String>,
    /// The build the image came from: reports go to exactly this build.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uuid: Option<String>,
    pub message: String,
    /// The failed image's console, relative to the state folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub console: Option<String>,
}

static RUN_STARTED: std::sync::OnceLock<String> = std::sync::OnceLock::new();

pub fn now() -> String {
    OffsetDateTime::now_utc().format(&Rfc3339).unwrap_or_default()
}

/// Marks the start of this run (the `started` of its entries).
pub fn mark_run_started() {
    RUN_STARTED.get_or_init(now);
}

impl Entry {
    pub fn new(action: &str, result: &str, sha256: Option<&Sha256>, message: impl Into<String>) -> Entry {
        let started = Some(RUN_STARTED.get_or_init(now).clone());
        Entry {
            started,
            time: now(),
            action: action.into(),
            result: result.into(),
            sha256: sha256.map(|s| s.to_string()),
            job: None,
            uuid: None,
            message: message.into(),
            console: None,
        }
    }

    /// Names the build the image came from (when known and about this image).
    pub fn build(mut self, build: Option<&BuildRef>) -> Entry {
        if let Some(b) = build
            && self.sha256.as_deref() == Some(b.sha256.to_string().as_str())
        {
            self.job = Some(b.job.to_string());
            self.uuid = Some(b.uuid.to_string());
        }
        self
    }

    pub fn console(mut self, console: Option<String>) -> Entry {
        self.console = console;
        self
    }
}

pub fn append(state: &State, e: &Entry) -> anyhow::Result<()> {
    let path = state.path("deploy.log");
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&path)
        .with_context(|| format!("opening {:?}", path.display()))?;
    f.write_all(format!("{}\n", serde_json::to_string(e)?).as_bytes())?;
    f.sync_data().context("fsyncing deploy.log")
}

/// The most recent entry whose action is one of `actions`.
pub fn last(state: &State, actions: &[&str]) -> Option<Entry> {
    let mut text = String::new();
    std::io::Read::read_to_string(
        &mut std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(state.path("deploy.log"))
            .ok()?,
        &mut text,
    )
    .ok()?;
    text.lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<Entry>(l).ok())
        .find(|e| actions.contains(&e.action.as_str()))
}
