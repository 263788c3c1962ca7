//! Running the tender ourselves (`restart = "builtin"`): start it detached
//! in its own session (as `user` when set), with `console.log` as its output
//! and its pid in `tender.pid`. A process is one of our tenders only if its
//! executable (`/proc/PID/exe`) is the configured tender and its image
//! argument is an image in our `images/`: an operator's `less images/x.hvt`
//! or a `sleep 600 images/x.hvt` is never signalled. Signals go through a
//! pidfd opened before the identity is checked (so a pid reused meanwhile is
//! never hit), to the process alone, never to a process group.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use rustix::fd::OwnedFd;
use rustix::process::{Pid, PidfdFlags, Signal, pidfd_open, pidfd_send_signal};
use uk_digest::Sha256;

use crate::config::Config;
use crate::state::State;

/// A tender of ours, and the image it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Running {
    pub pid: i32,
    pub image: PathBuf,
    pub sha256: Sha256,
}

/// Alive: exists and is not a zombie waiting to be reaped.
pub fn alive(pid: i32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|s| s != "Z" && s != "X"),
        Err(_) => false,
    }
}

fn cmdline(pid: i32) -> Option<Vec<String>> {
    let raw = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    Some(
        raw.split(|&b| b == 0)
            .filter(|s| !s.is_empty())
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect(),
    )
}

/// Is `/proc/PID/exe` the configured tender (the same file, or the same
/// path when the tender was replaced on disk since)?
fn runs_tender(pid: i32, tender: &Path) -> bool {
    let exe = format!("/proc/{pid}/exe");
    if let (Ok(a), Ok(b)) = (fs::metadata(&exe), fs::metadata(tender))
        && (a.dev(), a.ino()) == (b.dev(), b.ino())
    {
        return true;
    }
    fs::read_link(&exe).is_ok_and(|p| {
        let p = p.to_string_lossy();
        Path::new(p.strip_suffix(" (deleted)").unwrap_or(&p)) == tender
    })
}

/// `pid` as one of our tenders, or `None`.
fn identify(cfg: &Config, state: &State, pid: i32) -> Option<Running> {
    if !alive(pid) || !runs_tender(pid, &cfg.tender) {
        return None;
    }
    // The image is the tender's first argument that is not an option.
    let args = cmdline(pid)?;
    let image = PathBuf::from(args.iter().skip(1).find(|a| !a.starts_with('-'))?);
    let sha256 = state.ours(&image)?;
    Some(Running { pid, image, sha256 })
}

/// Every live tender of ours.
pub fn find(cfg: &Config, state: &State) -> Vec<Running> {
    let mut out = Vec::new();
    let Ok(entries) = fs::read_dir("/proc") else {
        return out;
    };
    for e in entries.flatten() {
        if let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok())
            && let Some(r) = identify(cfg, state, pid)
        {
            out.push(r);
        }
    }
    out.sort_by_key(|r| r.pid);
    out
}

/// Our running tender: the one in `tender.pid` if it is really ours, else
/// any other of ours (after a crash between start and pid file).
pub fn running(cfg: &Config, state: &State) -> Option<Running> {
    let recorded = state.read_file("tender.pid").and_then(|s| s.trim().parse::<i32>().ok());
    recorded
        .and_then(|p| identify(cfg, state, p))
        .or_else(|| find(cfg, state).into_iter().next())
}

/// A pidfd on `pid`, opened before its identity is checked again: if the
/// pid was reused meanwhile, the check fails; if the tender dies after it,
/// signals through the pidfd reach nobody else.
fn pidfd_of(cfg: &Config, state: &State, pid: i32) -> Option<OwnedFd> {
    let fd = pidfd_open(Pid::from_raw(pid)?, PidfdFlags::empty()).ok()?;
    identify(cfg, state, pid).map(|_| fd)
}

/// Waits up to `limit` for our tender `pid` to exit; whether it did (or is
/// no longer ours).
pub fn wait_exit(cfg: &Config, state: &State, pid: i32, limit: Duration) -> bool {
    match pidfd_of(cfg, state, pid) {
        Some(fd) => crate::command::wait_pidfd(&fd, Instant::now() + limit),
        None => true,
    }
}

/// Starts the tender on `image`, detached, its output appended to
/// `console.log`; returns it and where its console output begins.
pub fn start(cfg: &Config, state: &State, image: &Path) -> anyhow::Result<(Child, u64)> {
    if let Err(e) = crate::console::rotate(state) {
        eprintln!("deploy-hvt: warning: rotating console.log: {e:#}");
    }
    let (out, offset) = crate::console::open_for_tender(state)?;
    let err = out.try_clone()?;
    let mut cmd = Command::new(&cfg.tender);
    cmd.args(&cfg.tender_args)
        .arg(image)
        .args(&cfg.args)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
    let user = cfg.user.clone();
    // SAFETY: only async-signal-safe system calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            // Its own session: no signal for our terminal or process group
            // reaches it, and it outlives us.
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            // Nothing we inherited (a script's lock, a pipe) stays open in it.
            libc::close_range(3, libc::c_uint::MAX, libc::CLOSE_RANGE_CLOEXEC as libc::c_int);
            match &user {
                Some(u) => u.become_user(),
                None => Ok(()),
            }
        });
    }
    let child = cmd
        .spawn()
        .with_context(|| format!("starting {:?}", cfg.tender.display()))?;
    state
        .write_file("tender.pid", format!("{}\n", child.id()).as_bytes())
        .context("writing tender.pid")?;
    Ok((child, offset))
}

/// Waits until none of `fds` is running or `limit` passes.
fn wait_all(fds: &[OwnedFd], limit: Duration) -> bool {
    let end = Instant::now() + limit;
    fds.iter().all(|fd| crate::command::wait_pidfd(fd, end))
}

/// Stops every tender of ours: SIGTERM, up to `grace`, then SIGKILL.
pub fn stop_all(cfg: &Config, state: &State, grace: Duration) -> anyhow::Result<Vec<i32>> {
    let (pids, fds): (Vec<i32>, Vec<OwnedFd>) = find(cfg, state)
        .into_iter()
        .filter_map(|r| Some((r.pid, pidfd_of(cfg, state, r.pid)?)))
        .unzip();
    for fd in &fds {
        let _ = pidfd_send_signal(fd, Signal::TERM);
    }
    if !wait_all(&fds, grace) {
        for fd in &fds {
            let _ = pidfd_send_signal(fd, Signal::KILL);
        }
        if !wait_all(&fds, Duration::from_secs(5)) {
            anyhow::bail!("tender(s) {pids:?} did not stop even after SIGKILL");
        }
    }
    let _ = fs::remove_file(state.path("tender.pid"));
    Ok(pids)
}
