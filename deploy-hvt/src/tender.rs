//! Running the tender ourselves (`restart = "builtin"`): start it detached
//! in its own session with its console captured to `console.log` and its pid
//! in `tender.pid`; find our tenders by what they run (an image under our
//! `images/`), so a pid that was reused by another program is never
//! signalled; stop with SIGTERM, a bounded wait, then SIGKILL.

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use uk_digest::{AtomicFile, Sha256};

use crate::config::Config;
use crate::state::State;

/// A tender of ours, and the image it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Running {
    pub pid: i32,
    pub image: PathBuf,
    pub sha256: Option<Sha256>,
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

/// Every live process whose arguments name an image under our `images/`.
pub fn find(state: &State) -> Vec<Running> {
    let prefix = format!("{}/", state.images().display());
    let mut out = Vec::new();
    let Ok(entries) = fs::read_dir("/proc") else {
        return out;
    };
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Some(args) = cmdline(pid) else { continue };
        if let Some(img) = args.iter().skip(1).find(|a| a.starts_with(&prefix))
            && alive(pid)
        {
            let image = PathBuf::from(img);
            let sha256 = image
                .file_name()
                .and_then(|f| f.to_str())
                .and_then(|f| f.split('.').next())
                .and_then(|h| h.parse().ok());
            out.push(Running { pid, image, sha256 });
        }
    }
    out.sort_by_key(|r| r.pid);
    out
}

/// Our running tender: the one in `tender.pid` if it is really ours, else
/// any other of ours (after a crash between start and pid file).
pub fn running(state: &State) -> Option<Running> {
    let ours = find(state);
    let recorded = fs::read_to_string(state.path("tender.pid"))
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok());
    recorded
        .and_then(|p| ours.iter().find(|r| r.pid == p).cloned())
        .or_else(|| ours.into_iter().next())
}

/// Starts the tender on `image`, detached, console to `console.log` (the
/// previous run's console is kept as `console.log.old`).
pub fn start(cfg: &Config, state: &State, image: &Path) -> anyhow::Result<Child> {
    let console = state.path("console.log");
    if console.exists() {
        let _ = fs::rename(&console, state.path("console.log.old"));
    }
    let out = fs::File::create(&console).with_context(|| format!("creating {:?}", console.display()))?;
    let err = out.try_clone()?;
    let mut cmd = Command::new(&cfg.tender);
    cmd.args(&cfg.tender_args)
        .arg(image)
        .args(&cfg.args)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
    // Its own session: no signal for our terminal or process group reaches it,
    // and it outlives us.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd
        .spawn()
        .with_context(|| format!("starting {:?}", cfg.tender.display()))?;
    let mut pidfile = AtomicFile::new_in(&state.dir, "tender.pid")?;
    std::io::Write::write_all(&mut pidfile, format!("{}\n", child.id()).as_bytes())?;
    pidfile
        .finish()?
        .persist(&state.path("tender.pid"))
        .context("writing tender.pid")?;
    Ok(child)
}

fn signal(pid: i32, sig: i32) {
    // The tender leads its own process group (setsid): signal the group.
    unsafe {
        if libc::kill(-pid, sig) != 0 {
            libc::kill(pid, sig);
        }
    }
}

fn wait_gone(pids: &[i32], limit: Duration) -> bool {
    let end = Instant::now() + limit;
    loop {
        if pids.iter().all(|&p| !alive(p)) {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Stops every tender of ours: SIGTERM, up to `grace`, then SIGKILL.
pub fn stop_all(state: &State, grace: Duration) -> anyhow::Result<Vec<i32>> {
    let pids: Vec<i32> = find(state).into_iter().map(|r| r.pid).collect();
    for &p in &pids {
        signal(p, libc::SIGTERM);
    }
    if !wait_gone(&pids, grace) {
        for &p in &pids {
            if alive(p) {
                signal(p, libc::SIGKILL);
            }
        }
        if !wait_gone(&pids, Duration::from_secs(5)) {
            anyhow::bail!("tender(s) {pids:?} did not stop even after SIGKILL");
        }
    }
    let _ = fs::remove_file(state.path("tender.pid"));
    Ok(pids)
}
