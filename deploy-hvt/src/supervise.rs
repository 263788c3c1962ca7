//! `deploy-hvt supervise`: the watcher's supervision process. It waits on
//! the running tender through a pidfd (no polling of the tender itself) and
//! runs the supervision step of `start.rs` as soon as it is gone, so a dead
//! tender is back within about its settle time; a new image that keeps dying
//! is rolled back there. Tenders it starts are its children: they are reaped
//! here. SIGTERM ends it at once (the default action): the tender, in its
//! own session, keeps running.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use uk_cli::exit;

use crate::config::{Config, Restart};
use crate::flows::{Outcome, Session};
use crate::report::Reporter;
use crate::start::{self, Who};
use crate::state::State;
use crate::{console, lock, tender};

/// How long one wait on a running tender lasts before housekeeping.
const WATCH: Duration = Duration::from_secs(5);
/// How often to look again when nothing runs (stopped, nothing deployed).
const IDLE: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// Reaps tenders we started that have exited since.
fn reap_children() {
    while let Ok(Some(_)) = rustix::process::wait(rustix::process::WaitOptions::NOHANG) {}
}

/// Under the lock if nobody else holds it: console rotation and marking a
/// long-running image as proven.
fn housekeeping(cfg: &Config, state: &State) {
    let Ok(_lock) = lock::acquire(state, Duration::ZERO, false) else {
        return;
    };
    if let Err(e) = console::rotate(state) {
        eprintln!("deploy-hvt: warning: rotating console.log: {e:#}");
    }
    if let Ok(Some(cur)) = state.link("current")
        && tender::running(cfg, state).is_some_and(|r| r.sha256 == cur.sha256)
        && let Err(e) = start::note_running(state, &cur)
    {
        eprintln!("deploy-hvt: warning: {e:#}");
    }
}

/// Prints what changed, as `lib.rs` does for a single run.
fn say(outcome: &Outcome) {
    match outcome {
        Outcome::Changed(line) | Outcome::RolledBack(line) => eprintln!("deploy-hvt: {line}"),
        Outcome::RestoreFailed(why) => {
            eprintln!("deploy-hvt: failed, and nothing healthy could be restored: {why}")
        }
        Outcome::Nothing { .. } => {}
    }
}

pub fn supervise(cfg: &Config, reporter: Option<&Reporter>) -> anyhow::Result<ExitCode> {
    if cfg.restart != Restart::Builtin {
        eprintln!("deploy-hvt: nothing to supervise: restart is a command (its service manager supervises it)");
        return Ok(exit::code(exit::SUCCESS));
    }
    let mut backoff = Duration::ZERO;
    let mut next_housekeeping = Instant::now();
    loop {
        reap_children();
        let state = State::open(&cfg.dir)?;
        if let Some(r) = tender::running(cfg, &state) {
            if Instant::now() >= next_housekeeping {
                housekeeping(cfg, &state);
                next_housekeeping = Instant::now() + WATCH;
            }
            tender::wait_exit(cfg, &state, r.pid, WATCH);
            continue;
        }
        // Nothing to start (nothing deployed, stopped by hand, failed here):
        // look again later, without taking the lock.
        let startable = state
            .link("current")
            .ok()
            .flatten()
            .is_some_and(|c| !state.stopped() && !state.failed().contains_key(&c.sha256));
        if !startable {
            std::thread::sleep(IDLE);
            continue;
        }
        std::thread::sleep(backoff);
        let s = Session::open_telling(cfg, false)?;
        let result = start::start(&s, Who::Supervision);
        if let Some(r) = reporter {
            r.flush(&s.state);
        }
        drop(s);
        backoff = match &result {
            Ok(o @ (Outcome::Changed(_) | Outcome::RolledBack(_))) => {
                say(o);
                Duration::ZERO
            }
            Ok(Outcome::Nothing { .. }) => IDLE,
            Ok(o @ Outcome::RestoreFailed(_)) => {
                say(o);
                (backoff * 2).clamp(Duration::from_secs(1), MAX_BACKOFF)
            }
            Err(e) => {
                eprintln!("deploy-hvt: supervising: {}", uk_cli::escaped(&format!("{e:#}")));
                (backoff * 2).clamp(Duration::from_secs(1), MAX_BACKOFF)
            }
        };
    }
}
