//! The data directory's lock: `serve` holds an exclusive lock on
//! `DATA_DIR/serve.lock` (with its pid written in it) for as long as it
//! runs, so a second `serve` on the same directory stops before it touches
//! anything (it would otherwise remove the first one's staging files). The
//! kernel releases the lock when the process dies. Admin commands do not
//! take it: they work alongside a running server (SQLite serialises them).

use std::fs::{File, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

pub struct DataDirLock {
    _file: File,
}

pub fn lock_path(data_dir: &Path) -> PathBuf {
    data_dir.join("serve.lock")
}

impl DataDirLock {
    pub fn acquire(data_dir: &Path) -> anyhow::Result<DataDirLock> {
        let path = lock_path(data_dir);
        let mut f = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .with_context(|| format!("opening {:?}", path.display()))?;
        match f.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = f.read_to_string(&mut holder);
                let holder = holder.trim();
                let who = if holder.is_empty() {
                    "another process".to_owned()
                } else {
                    format!("process {holder}")
                };
                bail!(
                    "the data directory {:?} is in use: {who} (another unikernel-repo serve) holds {:?}",
                    data_dir.display(),
                    path.display()
                );
            }
            Err(TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("locking {:?}", path.display()));
            }
        }
        f.set_len(0)?;
        f.seek(SeekFrom::Start(0))?;
        writeln!(f, "{}", std::process::id())?;
        Ok(DataDirLock { _file: f })
    }
}

/// An error unless `data_dir` exists and looks like a repository: read-only
/// commands must not create an empty repository on a mistyped path.
pub fn require_existing(data_dir: &Path) -> anyhow::Result<()> {
    if !crate::db::db_path(data_dir).is_file() {
        bail!(
            "{:?} is not a repository data directory (no repo.sqlite in it); check --data-dir / UKREPO_DATA_DIR",
            data_dir.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_second_lock_names_the_holder_and_the_first_is_released_on_drop() {
        let d = tempfile::tempdir().unwrap();
        let first = super::DataDirLock::acquire(d.path()).unwrap();
        let err = super::DataDirLock::acquire(d.path()).err().unwrap().to_string();
        assert!(err.contains(&format!("process {}", std::process::id())), "{err}");
        drop(first);
        super::DataDirLock::acquire(d.path()).unwrap();
    }
}
