//! The operations, in the order CONTRACT.md §5 fixes: lock; verify before
//! anything running is touched; store; switch `current`; restart; check
//! health; on failure switch back, restart the previous image, check it
//! (exit 3, or 4 when that fails too). `rollback` and `start` reuse the same
//! switch-restart-check step ([`activate`]).

use std::path::Path;
use std::process::Child;
use std::time::Duration;

use anyhow::{Context, bail};
use uk_digest::Sha256;

use crate::config::{Config, Restart};
use crate::journal::{self, Entry};
use crate::state::{Image, State};
use crate::{health, lock, tender, verify};

/// How long a second deploy-hvt waits for the lock.
const LOCK_WAIT: Duration = Duration::from_secs(300);
/// SIGTERM to SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// What happened, mapped to the exit codes by `lib.rs`.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The image now runs and is healthy.
    Done,
    /// Nothing to do (message says why); `negative` maps to exit 1.
    Nothing { negative: bool, why: String },
    /// The image failed; the previous one was restored and is healthy.
    RolledBack(String),
    /// The image failed and nothing healthy could be restored.
    RestoreFailed(String),
}

/// Fault injection for the crash-safety tests: with
/// `DEPLOY_HVT_CRASH_AT=<point>` in the environment, the process kills itself
/// with SIGKILL when it reaches that point, exactly as an operator's
/// `kill -9` or a power cut would stop it there.
pub(crate) fn crash_point(point: &str) {
    if std::env::var("DEPLOY_HVT_CRASH_AT").is_ok_and(|p| p == point) {
        unsafe {
            libc::raise(libc::SIGKILL);
        }
    }
}

fn restart(cfg: &Config, state: &State, image: &Image) -> anyhow::Result<Option<Child>> {
    match &cfg.restart {
        Restart::Builtin => {
            tender::stop_all(state, STOP_GRACE)?;
            Ok(Some(tender::start(cfg, state, &image.path)?))
        }
        Restart::Command(c) => {
            let status = std::process::Command::new("sh")
                .arg("-c")
                .arg(c)
                .status()
                .with_context(|| format!("running the restart command {c:?}"))?;
            if !status.success() {
                bail!("the restart command {c:?} failed ({status})");
            }
            Ok(None)
        }
    }
}

/// Restart on `image` and check it; the error says why it is not healthy.
fn run_and_check(cfg: &Config, state: &State, image: &Image) -> Result<(), String> {
    let mut child = restart(cfg, state, image).map_err(|e| format!("{e:#}"))?;
    crash_point("after-restart");
    health::check(cfg, state, child.as_mut())
}

/// Switches to `new` (with `previous` = the current one), restarts, checks;
/// on failure switches back to `old_current`/`old_previous` and checks that.
fn activate(cfg: &Config, state: &State, action: &str, new: &Image) -> anyhow::Result<Outcome> {
    let old_current = state.link("current")?;
    let old_previous = state.link("previous")?;
    if old_current.as_ref() != Some(new) {
        state.set_link("previous", old_current.as_ref())?;
        crash_point("after-previous");
        state.set_link("current", Some(new))?;
        crash_point("after-switch");
    }
    let sha = Some(new.sha256.to_string());
    let why = match run_and_check(cfg, state, new) {
        Ok(()) => {
            state.clear_failed(&new.sha256)?;
            journal::append(
                state,
                &Entry::new(
                    action,
                    "deployed",
                    sha,
                    format!("{} runs and is healthy", new.path.display()),
                ),
            )?;
            state.prune(cfg.keep)?;
            return Ok(Outcome::Done);
        }
        Err(why) => why,
    };
    state.mark_failed(&new.sha256)?;
    eprintln!("deploy-hvt: {} is unhealthy: {why}", new.sha256);
    let back = match &old_current {
        Some(old) if old != new => old,
        _ => {
            // Nothing else to go back to.
            if cfg.restart == Restart::Builtin {
                tender::stop_all(state, STOP_GRACE)?;
            }
            let msg = format!("{why}; there is no previous image to go back to");
            journal::append(state, &Entry::new(action, "failed", sha, &msg))?;
            return Ok(Outcome::RestoreFailed(msg));
        }
    };
    state.set_link("current", Some(back))?;
    state.set_link("previous", old_previous.as_ref())?;
    match run_and_check(cfg, state, back) {
        Ok(()) => {
            let msg = format!("{why}; back on {}", back.sha256);
            journal::append(state, &Entry::new(action, "rolled-back", sha, &msg))?;
            Ok(Outcome::RolledBack(msg))
        }
        Err(why2) => {
            let msg = format!("{why}; the previous image {} failed too: {why2}", back.sha256);
            journal::append(state, &Entry::new(action, "failed", sha, &msg))?;
            Ok(Outcome::RestoreFailed(msg))
        }
    }
}

/// Is `image` what runs now (and, with the builtin restart, running)?
fn is_active(cfg: &Config, state: &State, sha: &Sha256) -> anyhow::Result<bool> {
    let current = state.link("current")?;
    if current.as_ref().map(|c| &c.sha256) != Some(sha) {
        return Ok(false);
    }
    Ok(match cfg.restart {
        Restart::Builtin => {
            let ours = tender::find(state);
            ours.len() == 1 && ours[0].sha256.as_ref() == Some(sha)
        }
        Restart::Command(_) => true,
    })
}

pub fn deploy(cfg: &Config, src: &Path, expect: Option<&Sha256>, retry_failed: bool) -> anyhow::Result<Outcome> {
    let state = State::open(&cfg.dir)?;
    let _lock = lock::acquire(&state, LOCK_WAIT)?;
    let verified = match verify::stage_verified(cfg, &state, src, expect) {
        Ok(v) => v,
        Err(refused) => {
            journal::append(
                &state,
                &Entry::new(
                    "deploy",
                    "refused",
                    refused.sha256.map(|s| s.to_string()),
                    refused.to_string(),
                ),
            )?;
            return Err(refused.into());
        }
    };
    let sha = verified.staged.sha256;
    if !retry_failed && state.failed().contains(&sha) {
        return Ok(Outcome::Nothing {
            negative: true,
            why: format!("{sha} already failed its health check here (use --retry-failed)"),
        });
    }
    if is_active(cfg, &state, &sha)? {
        return Ok(Outcome::Nothing {
            negative: false,
            why: format!("{sha} is already current and running"),
        });
    }
    let image = state.keep(verified.staged, cfg.target, verified.signature.as_deref())?;
    crash_point("after-store");
    activate(cfg, &state, "deploy", &image)
}

pub fn rollback(cfg: &Config) -> anyhow::Result<Outcome> {
    let state = State::open(&cfg.dir)?;
    let _lock = lock::acquire(&state, LOCK_WAIT)?;
    let prev = state
        .link("previous")?
        .context("there is no previous image to roll back to")?;
    activate(cfg, &state, "rollback", &prev)
}

/// Ensures exactly one tender runs `current` (after a reboot or a crash).
pub fn start(cfg: &Config) -> anyhow::Result<Outcome> {
    let state = State::open(&cfg.dir)?;
    let _lock = lock::acquire(&state, LOCK_WAIT)?;
    let cur = state
        .link("current")?
        .context("there is no current image to start (deploy one first)")?;
    if is_active(cfg, &state, &cur.sha256)? {
        return Ok(Outcome::Nothing {
            negative: false,
            why: format!("{} is already running", cur.sha256),
        });
    }
    match run_and_check(cfg, &state, &cur) {
        Ok(()) => {
            journal::append(
                &state,
                &Entry::new("start", "deployed", Some(cur.sha256.to_string()), "started"),
            )?;
            Ok(Outcome::Done)
        }
        Err(why) => {
            // Go back to the previous image, as a failed deploy would.
            let prev = state.link("previous")?;
            match prev {
                Some(p) if p != cur => {
                    state.mark_failed(&cur.sha256)?;
                    eprintln!("deploy-hvt: {} is unhealthy: {why}", cur.sha256);
                    match activate(cfg, &state, "start", &p)? {
                        Outcome::Done => {
                            // The journal (and so the reports) says what became of `cur`.
                            let msg = format!("{why}; back on {}", p.sha256);
                            let entry = Entry::new("start", "rolled-back", Some(cur.sha256.to_string()), &msg);
                            journal::append(&state, &entry)?;
                            Ok(Outcome::RolledBack(msg))
                        }
                        other => Ok(other),
                    }
                }
                _ => {
                    journal::append(
                        &state,
                        &Entry::new("start", "failed", Some(cur.sha256.to_string()), &why),
                    )?;
                    Ok(Outcome::RestoreFailed(why))
                }
            }
        }
    }
}

pub fn stop(cfg: &Config) -> anyhow::Result<Outcome> {
    let state = State::open(&cfg.dir)?;
    let _lock = lock::acquire(&state, LOCK_WAIT)?;
    if cfg.restart != Restart::Builtin {
        bail!("stop needs restart = \"builtin\"; stop the service with its own manager");
    }
    let pids = tender::stop_all(&state, STOP_GRACE)?;
    journal::append(
        &state,
        &Entry::new("stop", "stopped", None, format!("stopped pids {pids:?}")),
    )?;
    Ok(Outcome::Done)
}
