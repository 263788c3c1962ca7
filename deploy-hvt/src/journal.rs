//! `deploy.log`: one JSON line per deploy, rollback, start and stop, appended
//! and fsynced, so `status` and operators can tell what happened when.

use std::io::Write;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

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
    pub message: String,
}

static RUN_STARTED: std::sync::OnceLock<String> = std::sync::OnceLock::new();

fn now() -> String {
    OffsetDateTime::now_utc().format(&Rfc3339).unwrap_or_default()
}

/// Marks the start of this run (the `started` of its entries).
pub fn mark_run_started() {
    RUN_STARTED.get_or_init(now);
}

impl Entry {
    pub fn new(action: &str, result: &str, sha256: Option<String>, message: impl Into<String>) -> Entry {
        let started = Some(RUN_STARTED.get_or_init(now).clone());
        Entry {
            started,
            time: now(),
            action: action.into(),
            result: result.into(),
            sha256,
            message: message.into(),
        }
    }
}

pub fn append(state: &State, e: &Entry) -> anyhow::Result<()> {
    let path = state.path("deploy.log");
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("opening {:?}", path.display()))?;
    f.write_all(format!("{}\n", serde_json::to_string(e)?).as_bytes())?;
    f.sync_data().context("fsyncing deploy.log")
}

/// The most recent entry whose action is one of `actions`.
pub fn last(state: &State, actions: &[&str]) -> Option<Entry> {
    let text = std::fs::read_to_string(state.path("deploy.log")).ok()?;
    text.lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<Entry>(l).ok())
        .find(|e| actions.contains(&e.action.as_str()))
}
