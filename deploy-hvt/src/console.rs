//! The builtin tender's console, `console.log`: opened by `deploy-hvt`
//! itself (append-only, never through a symlink, owned by us) and handed to
//! the tender as its stdout and stderr, so an unprivileged tender needs no
//! right on the file. Every start appends; the file is rotated by size
//! (copied to `console.log.1`, then truncated: the tender's `O_APPEND`
//! writes carry on at the new end). The console of each image that failed
//! is kept under `consoles/`, named in its `deploy.log` entry.

use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};

use anyhow::{Context, bail};
use uk_digest::Sha256;

use crate::state::State;

/// Above this size `console.log` is rotated.
pub const ROTATE_AT: u64 = 8 << 20;
/// At most this much of a failed image's console is kept.
const KEEP_FAILED: u64 = 1 << 20;
/// Failed consoles kept under `consoles/`.
const KEEP_CONSOLES: usize = 10;

fn open_nofollow(state: &State, name: &str, write: bool) -> std::io::Result<File> {
    fs::OpenOptions::new()
        .read(!write)
        .append(write)
        .create(write)
        .mode(0o640)
        .custom_flags(libc::O_NOFOLLOW)
        .open(state.path(name))
}

/// `console.log` for a tender to write to, and where this start's output
/// begins in it.
pub fn open_for_tender(state: &State) -> anyhow::Result<(File, u64)> {
    let path = state.path("console.log");
    let f = open_nofollow(state, "console.log", true).with_context(|| format!("opening {:?}", path.display()))?;
    let meta = f.metadata()?;
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    if !meta.is_file() || meta.uid() != me {
        bail!("{:?} is not a regular file of ours: not writing to it", path.display());
    }
    Ok((f, meta.len()))
}

/// The console from `offset` on (at most 16 MiB), for the health check.
pub fn since(state: &State, offset: u64) -> String {
    let mut text = String::new();
    if let Ok(mut f) = open_nofollow(state, "console.log", false) {
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        // Rotated meanwhile: all of it is this start's.
        let from = if len < offset { 0 } else { offset };
        if f.seek(SeekFrom::Start(from)).is_ok() {
            let mut bytes = Vec::new();
            let _ = f.take(16 << 20).read_to_end(&mut bytes);
            text = String::from_utf8_lossy(&bytes).into_owned();
        }
    }
    text
}

/// Rotates `console.log` once it is over [`ROTATE_AT`]: its content goes to
/// `console.log.1` (replacing the older one) and it is truncated.
pub fn rotate(state: &State) -> anyhow::Result<bool> {
    let Ok(f) = open_nofollow(state, "console.log", false) else {
        return Ok(false);
    };
    if f.metadata()?.len() <= ROTATE_AT {
        return Ok(false);
    }
    let mut copy = uk_digest::AtomicFile::new_in(&state.dir, "console.log.1")?;
    std::io::copy(&mut (&f), &mut copy)?;
    let staged = copy.finish()?;
    staged.set_mode(0o640)?;
    staged.persist(&state.path("console.log.1"))?;
    let w = open_nofollow(state, "console.log", true)?;
    w.set_len(0).context("truncating console.log")?;
    Ok(true)
}

/// Keeps this start's console (from `offset`, its last MiB at most) as
/// `consoles/<time>-<sha256>.log`; the path relative to the state folder.
pub fn keep_failed(state: &State, sha: &Sha256, offset: u64) -> Option<String> {
    let text = since(state, offset);
    let bytes = text.as_bytes();
    let tail = &bytes[bytes.len().saturating_sub(KEEP_FAILED as usize)..];
    let dir = state.path("consoles");
    let stamp = crate::journal::now().replace(':', "");
    let rel = format!("consoles/{stamp}-{sha}.log");
    let write = || -> anyhow::Result<()> {
        crate::state::ensure_dir(&dir)?;
        uk_digest::write_atomically(&state.path(&rel), "console", tail, 0o640)?;
        prune(&dir)
    };
    match write() {
        Ok(()) => Some(rel),
        Err(e) => {
            eprintln!("deploy-hvt: warning: keeping the console of {sha}: {e:#}");
            None
        }
    }
}

/// Keeps the newest [`KEEP_CONSOLES`] (their names start with the time).
fn prune(dir: &std::path::Path) -> anyhow::Result<()> {
    let mut names: Vec<String> = fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".log") && !n.starts_with('.'))
        .collect();
    names.sort();
    let excess = names.len().saturating_sub(KEEP_CONSOLES);
    for n in &names[..excess] {
        fs::remove_file(dir.join(n))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn appended_rotated_and_failed_consoles_kept() {
        let d = tempfile::tempdir().unwrap();
        let st = State::open(&d.path().join("web")).unwrap();
        let (mut f, off) = open_for_tender(&st).unwrap();
        assert_eq!(off, 0);
        f.write_all(b"first run\nready\n").unwrap();
        let (mut g, off2) = open_for_tender(&st).unwrap();
        assert_eq!(off2, 16);
        g.write_all(b"second run\n").unwrap();
        assert_eq!(since(&st, off2), "second run\n");
        let (sha, _) = uk_digest::hash_reader(&b"x"[..]).unwrap();
        let rel = keep_failed(&st, &sha, off2).unwrap();
        assert_eq!(fs::read_to_string(st.path(&rel)).unwrap(), "second run\n");

        assert!(!rotate(&st).unwrap());
        g.write_all(&vec![b'x'; ROTATE_AT as usize]).unwrap();
        assert!(rotate(&st).unwrap());
        assert_eq!(fs::metadata(st.path("console.log")).unwrap().len(), 0);
        assert!(fs::metadata(st.path("console.log.1")).unwrap().len() > ROTATE_AT);
        // The tender's O_APPEND writes carry on at the new end.
        g.write_all(b"after\n").unwrap();
        assert_eq!(fs::read_to_string(st.path("console.log")).unwrap(), "after\n");

        fs::remove_file(st.path("console.log")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", st.path("console.log")).unwrap();
        assert!(open_for_tender(&st).is_err(), "never through a symlink");
    }
}
