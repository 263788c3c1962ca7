//! One `deploy-hvt` at a time per unikernel: an exclusive lock on the state
//! folder's `lock` file. A second one waits up to a bound, saying so, and
//! then fails clearly; the kernel drops the lock if its holder dies.

use std::fs::{File, TryLockError};
use std::os::unix::fs::OpenOptionsExt;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::state::State;

pub struct Lock(#[allow(dead_code)] File);

/// Takes the lock, waiting up to `wait`; says so on stderr once when it has
/// to wait and `tell` is set (supervision waits silently).
pub fn acquire(state: &State, wait: Duration, tell: bool) -> anyhow::Result<Lock> {
    let path = state.path("lock");
    let f = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&path)
        .with_context(|| format!("opening {:?}", path.display()))?;
    let end = Instant::now() + wait;
    let mut said = !tell;
    loop {
        match f.try_lock() {
            Ok(()) => return Ok(Lock(f)),
            Err(TryLockError::WouldBlock) => {
                if Instant::now() >= end {
                    bail!("another deploy-hvt holds {:?}; gave up after {wait:?}", path.display());
                }
                if !said {
                    eprintln!(
                        "deploy-hvt: waiting for another deploy-hvt on {:?}",
                        state.dir.display()
                    );
                    said = true;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("locking {:?}", path.display()));
            }
        }
    }
}
