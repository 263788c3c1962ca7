//! What every operation shares: a [`Session`] (the state folder under the
//! unikernel's lock), the [`Outcome`] that `lib.rs` maps to an exit code and
//! one line for the operator, and [`switch`]: make an image current, restart,
//! check its health, and on failure switch back to another image and check
//! that (CONTRACT.md §5). `deploy.rs`, `rollback.rs` and `start.rs` are the
//! operations; they decide what to switch to and what to journal.

use std::process::{Child, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use uk_digest::Sha256;

use crate::command::{self, Ran};
use crate::config::{Config, Restart};
use crate::lock::{self, Lock};
use crate::marks::Supervision;
use crate::state::{Image, State};
use crate::{console, health, tender};

/// How long a second deploy-hvt waits for the lock.
pub const LOCK_WAIT: Duration = Duration::from_secs(300);
/// SIGTERM to SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(5);

/// What happened, mapped to the exit codes by `lib.rs`.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A change: the line says what (`deployed <sha> (was <sha>)`).
    Changed(String),
    /// Nothing to do (message says why); `negative` maps to exit 1.
    Nothing { negative: bool, why: String },
    /// The image failed; another one was restored and is healthy. The line
    /// says so (`rolled back to <sha>: <why>`).
    RolledBack(String),
    /// The image failed and nothing healthy could be restored.
    RestoreFailed(String),
}

/// The state folder of one unikernel, held under its lock. Reports are sent
/// before the lock is released (`lib.rs`).
pub struct Session<'a> {
    pub cfg: &'a Config,
    pub state: State,
    _lock: Lock,
}

impl<'a> Session<'a> {
    pub fn open(cfg: &'a Config) -> anyhow::Result<Session<'a>> {
        Self::open_telling(cfg, true)
    }

    /// `tell`: say on stderr when waiting for another deploy-hvt.
    pub fn open_telling(cfg: &'a Config, tell: bool) -> anyhow::Result<Session<'a>> {
        let state = State::open(&cfg.dir)?;
        let lock = lock::acquire(&state, LOCK_WAIT, tell)?;
        state.remove_stale_staging();
        Ok(Session {
            cfg,
            state,
            _lock: lock,
        })
    }
}

pub(crate) use crate::fault::crash_point;

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Why an image is not healthy, and its console when we captured it.
pub struct Unhealthy {
    pub why: String,
    pub console: Option<String>,
}

fn restart(cfg: &Config, state: &State, image: &Image) -> Result<(Option<Child>, u64), String> {
    match &cfg.restart {
        Restart::Builtin => {
            tender::stop_all(cfg, state, STOP_GRACE).map_err(|e| format!("{e:#}"))?;
            let (child, offset) = tender::start(cfg, state, &image.path).map_err(|e| format!("{e:#}"))?;
            Ok((Some(child), offset))
        }
        Restart::Command(c) => {
            // Its output is for people: stdout stays for our results.
            let out = std::os::fd::AsFd::as_fd(&std::io::stderr())
                .try_clone_to_owned()
                .map(Stdio::from)
                .map_err(|e| format!("running the restart command {c:?}: {e}"))?;
            let timeout = cfg.health.timeout;
            match command::run(c, out, Instant::now() + timeout) {
                Ok(Ran::Exited(s)) if s.success() => Ok((None, 0)),
                Ok(Ran::Exited(s)) => Err(format!("the restart command {c:?} failed ({s})")),
                Ok(Ran::TimedOut) => Err(format!(
                    "the restart command {c:?} did not finish within {timeout:?} and was killed"
                )),
                Err(e) => Err(format!("running the restart command {c:?}: {e}")),
            }
        }
    }
}

/// Restarts on `image` and checks it.
pub fn run_and_check(cfg: &Config, state: &State, image: &Image) -> Result<(), Unhealthy> {
    let (mut child, offset) = restart(cfg, state, image).map_err(|why| Unhealthy { why, console: None })?;
    crash_point("after-restart");
    health::check(cfg, state, child.as_mut(), offset).map_err(|why| Unhealthy {
        why,
        console: child
            .is_some()
            .then(|| console::keep_failed(state, &image.sha256, offset))
            .flatten(),
    })
}

/// The image to go back to from `current`: `previous` when it is a good one
/// (not current, not failed here or rolled back from), else the newest good
/// image older than `current`.
pub fn back_from(state: &State, current: &Image) -> anyhow::Result<Option<Image>> {
    let failed = state.failed();
    if let Some(p) = state.link("previous")?
        && p != *current
        && !failed.contains_key(&p.sha256)
    {
        return Ok(Some(p));
    }
    older_than(state, current, &[])
}

/// The newest good kept image stored before `image` (neither failed here
/// nor rolled back from, nor in `exclude`): the `previous` of an image that
/// was gone back to, so that the next rollback goes further back, never
/// forward.
pub fn older_than(state: &State, image: &Image, exclude: &[Sha256]) -> anyhow::Result<Option<Image>> {
    let failed = state.failed();
    let stored = |i: &Image| std::fs::symlink_metadata(&i.path).and_then(|m| m.modified()).ok();
    let Some(limit) = stored(image) else {
        return Ok(None);
    };
    Ok(state.kept()?.into_iter().find(|i| {
        i != image
            && !failed.contains_key(&i.sha256)
            && !exclude.contains(&i.sha256)
            && stored(i).is_some_and(|t| t < limit)
    }))
}

/// How a [`switch`] ended.
pub enum Switched {
    Healthy,
    /// `new` failed; `back` runs again and is healthy.
    Restored {
        back: Image,
        failed: Unhealthy,
    },
    /// `new` failed and nothing healthy runs: why, and its console.
    Unrestored {
        why: String,
        failed: Unhealthy,
    },
}

/// Makes `new` current (with `prev` as previous), restarts, checks. On
/// failure `new` is recorded as failed and `back` (with its previous) is
/// made current again and checked.
pub fn switch(
    s: &Session<'_>,
    new: &Image,
    prev: Option<&Image>,
    back: Option<(&Image, Option<&Image>)>,
) -> anyhow::Result<Switched> {
    let (cfg, state) = (s.cfg, &s.state);
    if state.link("current")?.as_ref() != Some(new) || state.link("previous")?.as_ref() != prev {
        state.set_link("previous", prev)?;
        crash_point("after-previous");
        state.set_link("current", Some(new))?;
        crash_point("after-switch");
    }
    state.set_stopped(false)?;
    let failed = match run_and_check(cfg, state, new) {
        Ok(()) => {
            state.clear_failed(&new.sha256)?;
            state.set_supervision(&Supervision {
                sha256: new.sha256,
                last_start: unix_now(),
                deaths: 0,
                proven: false,
            })?;
            state.prune(cfg.keep)?;
            return Ok(Switched::Healthy);
        }
        Err(u) => u,
    };
    state.mark_failed(&new.sha256, crate::marks::Why::Unhealthy)?;
    let Some((back, back_prev)) = back.filter(|(b, _)| *b != new) else {
        if cfg.restart == Restart::Builtin {
            tender::stop_all(cfg, state, STOP_GRACE)?;
        }
        let why = format!("{}; there is no previous image to go back to", failed.why);
        return Ok(Switched::Unrestored { why, failed });
    };
    state.set_link("current", Some(back))?;
    state.set_link("previous", back_prev)?;
    match run_and_check(cfg, state, back) {
        Ok(()) => {
            state.set_supervision(&Supervision {
                sha256: back.sha256,
                last_start: unix_now(),
                deaths: 0,
                proven: false,
            })?;
            Ok(Switched::Restored {
                back: back.clone(),
                failed,
            })
        }
        Err(u2) => {
            let why = format!(
                "{}; the previous image {} failed too: {}",
                failed.why, back.sha256, u2.why
            );
            Ok(Switched::Unrestored { why, failed })
        }
    }
}

/// `<sha>`, or `none`.
pub fn sha_or_none(i: Option<&Image>) -> String {
    i.map(|i| i.sha256.to_string()).unwrap_or_else(|| "none".into())
}
