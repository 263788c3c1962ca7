//! `deploy-hvt start` and `stop`, and the supervision step that the cron
//! script (`start --unattended`) and the watcher (`supervise`) run: a
//! builtin tender that died is started again, unless an operator stopped it
//! or its image failed here. A new image that keeps dying right after it was
//! started ([`CRASH_LIMIT`] times, each within [`CRASH_WINDOW`] of its start,
//! before it ever ran that long) is rolled back as a failed deploy would be.

use std::time::Duration;

use anyhow::{Context, bail};

use crate::config::Restart;
use crate::deploy::is_active;
use crate::flows::{Outcome, STOP_GRACE, Session, Switched, back_from, older_than, run_and_check, switch, unix_now};
use crate::journal::{self, Entry};
use crate::marks::{Supervision, Why};
use crate::state::{Image, State};
use crate::tender;

/// Deaths within this long of a start count towards a crash loop.
pub const CRASH_WINDOW: Duration = Duration::from_secs(300);
/// This many such deaths in a row roll a new image back.
pub const CRASH_LIMIT: u32 = 3;

/// Who asks: an operator (`start`) or supervision (`start --unattended`,
/// `supervise`), which leaves alone what an operator stopped and images that
/// failed here, and is silent when there is nothing to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Who {
    Operator,
    Supervision,
}

/// When the system booted (unix seconds): a tender started before that did
/// not crash, the machine restarted.
fn boot_time() -> u64 {
    std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("btime "))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0)
}

/// The supervision record of `cur`, updated for a tender found running:
/// once it has run for [`CRASH_WINDOW`] it is proven, and its deaths no
/// longer roll it back.
pub fn note_running(state: &State, cur: &Image) -> anyhow::Result<()> {
    if let Some(mut rec) = state.supervision().filter(|r| r.sha256 == cur.sha256)
        && !rec.proven
        && unix_now().saturating_sub(rec.last_start) >= CRASH_WINDOW.as_secs()
    {
        rec.proven = true;
        rec.deaths = 0;
        state.set_supervision(&rec)?;
    }
    Ok(())
}

pub fn start(s: &Session<'_>, who: Who) -> anyhow::Result<Outcome> {
    let (cfg, state) = (s.cfg, &s.state);
    let nothing = |why: String| Ok(Outcome::Nothing { negative: false, why });
    let Some(cur) = state.link("current")? else {
        return match who {
            Who::Operator => bail!("there is no current image to start (deploy one first)"),
            Who::Supervision => nothing("there is no current image".into()),
        };
    };
    if who == Who::Operator {
        state.set_stopped(false)?;
    } else if state.stopped() {
        return nothing("stopped by hand (deploy-hvt start starts it)".into());
    }
    if is_active(cfg, state, &cur.sha256)? {
        note_running(state, &cur)?;
        return nothing(format!("{} is already running", cur.sha256));
    }
    if cfg.restart != Restart::Builtin {
        return nothing("restart is a command: its service manager starts it".into());
    }
    if who == Who::Supervision
        && let Some(why) = state.failed().get(&cur.sha256)
    {
        return nothing(format!("the current image {} {why} here: not starting it", cur.sha256));
    }
    // It died (or the machine rebooted): how soon after its last start?
    let rec = state.supervision().filter(|r| r.sha256 == cur.sha256);
    let crashed = rec.as_ref().is_some_and(|r| {
        !r.proven && r.last_start >= boot_time() && unix_now() - r.last_start < CRASH_WINDOW.as_secs()
    });
    let deaths = rec.as_ref().map_or(0, |r| r.deaths) + u32::from(crashed);
    if who == Who::Supervision
        && deaths >= CRASH_LIMIT
        && let Some(target) = back_from(state, &cur)?
    {
        return crash_loop(s, &cur, &target, deaths);
    }
    match run_and_check(cfg, state, &cur) {
        Ok(()) => {
            state.set_supervision(&Supervision {
                sha256: cur.sha256,
                last_start: unix_now(),
                deaths,
                proven: rec.is_some_and(|r| r.proven),
            })?;
            let (what, line) = match who {
                Who::Operator => ("started".to_owned(), format!("started {}", cur.sha256)),
                Who::Supervision => {
                    let why = if crashed {
                        format!("its tender had died, {deaths} time(s) soon after a start")
                    } else {
                        "its tender was not running".to_owned()
                    };
                    (format!("restarted: {why}"), format!("restarted {}: {why}", cur.sha256))
                }
            };
            let entry = Entry::new("start", "deployed", Some(&cur.sha256), what).build(state.build_of(&cur).as_ref());
            journal::append(state, &entry)?;
            Ok(Outcome::Changed(line))
        }
        Err(unhealthy) => {
            // Go back to the previous image, as a failed deploy would.
            state.mark_failed(&cur.sha256, Why::Unhealthy)?;
            let why = unhealthy.why.clone();
            match back_from(state, &cur)? {
                Some(p) => fall_back(s, &cur, &p, &why, unhealthy.console),
                None => {
                    let entry = Entry::new("start", "failed", Some(&cur.sha256), &why)
                        .build(state.build_of(&cur).as_ref())
                        .console(unhealthy.console);
                    journal::append(state, &entry)?;
                    Ok(Outcome::RestoreFailed(format!("{}: {why}", cur.sha256)))
                }
            }
        }
    }
}

/// `cur` kept dying right after it was started: roll back to `target`.
fn crash_loop(s: &Session<'_>, cur: &Image, target: &Image, deaths: u32) -> anyhow::Result<Outcome> {
    let state = &s.state;
    state.mark_failed(&cur.sha256, Why::CrashLoop)?;
    let why = format!("it died {deaths} times within {:?} of being started", CRASH_WINDOW);
    fall_back(s, cur, target, &why, None)
}

/// Switches from the failed `cur` to `target`; the journal (and so the
/// reports) says what became of `cur`.
fn fall_back(
    s: &Session<'_>,
    cur: &Image,
    target: &Image,
    why: &str,
    console: Option<String>,
) -> anyhow::Result<Outcome> {
    let state = &s.state;
    let prev = older_than(state, target, &[cur.sha256])?;
    let c = cur.sha256;
    match switch(s, target, prev.as_ref(), None)? {
        Switched::Healthy => {
            let msg = format!("{why}; back on {}", target.sha256);
            let entry = Entry::new("start", "rolled-back", Some(&c), &msg)
                .build(state.build_of(cur).as_ref())
                .console(console);
            journal::append(state, &entry)?;
            Ok(Outcome::RolledBack(format!(
                "rolled back to {}: {c}: {why}",
                target.sha256
            )))
        }
        Switched::Restored { .. } => unreachable!("switch without a way back never restores"),
        Switched::Unrestored { failed, .. } => {
            let msg = format!("{why}; the previous image {} failed too: {}", target.sha256, failed.why);
            let entry = Entry::new("start", "failed", Some(&c), &msg)
                .build(state.build_of(cur).as_ref())
                .console(console);
            journal::append(state, &entry)?;
            Ok(Outcome::RestoreFailed(format!("{c}: {msg}")))
        }
    }
}

pub fn stop(s: &Session<'_>) -> anyhow::Result<Outcome> {
    let (cfg, state) = (s.cfg, &s.state);
    if cfg.restart != Restart::Builtin {
        bail!("stop needs restart = \"builtin\"; stop the service with its own manager");
    }
    let pids = tender::stop_all(cfg, state, STOP_GRACE).context("stopping the tender")?;
    state.set_stopped(true)?;
    journal::append(
        state,
        &Entry::new("stop", "stopped", None, format!("stopped pids {pids:?}")),
    )?;
    Ok(Outcome::Changed(if pids.is_empty() {
        "stopped (nothing was running)".into()
    } else {
        format!("stopped (pid {pids:?})")
    }))
}
