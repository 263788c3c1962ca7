//! Durable, atomic file writes: bytes go to a temporary file in the
//! destination's directory while being hashed; [`AtomicFile::finish`] fsyncs
//! it, and [`Staged::persist`] renames it into place and fsyncs the directory.
//! Until the rename nobody sees the file; if anything fails before it, the
//! temporary file is removed when the value is dropped. A killed process
//! drops nothing, so each temporary file is also held under an exclusive
//! `flock` until it is renamed: [`remove_stale`] removes the ones nobody
//! holds any more (those of a killed run), never a live one.

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;

use tempfile::{NamedTempFile, TempPath};

use crate::{HashingWriter, Sha256};

/// A file being written: hashed and counted as it goes.
pub struct AtomicFile {
    writer: HashingWriter<NamedTempFile>,
    /// Bytes already handed to the kernel for writeback.
    flushed: u64,
}

/// Start writeback every this many bytes, so that the fsync at the end has
/// little left to do and the disk works while the network does.
const WRITEBACK_EVERY: u64 = 8 << 20;

/// A complete, fsynced temporary file with its digest, ready to be renamed.
pub struct Staged {
    path: TempPath,
    /// Kept open (and so locked) until the rename.
    _lock: File,
    pub sha256: Sha256,
    pub size: u64,
}

impl AtomicFile {
    /// A temporary file in `dir` (the destination's directory, so the final
    /// rename never crosses a file system), named `.{prefix}.XXXXXX.tmp`.
    pub fn new_in(dir: &Path, prefix: &str) -> io::Result<Self> {
        let tmp = tempfile::Builder::new()
            .prefix(&format!(".{prefix}."))
            .suffix(".tmp")
            .tempfile_in(dir)?;
        // Held until the file is renamed or removed: a later run tells a
        // live temporary file from a killed run's by this lock.
        tmp.as_file().try_lock().map_err(io::Error::from)?;
        Ok(AtomicFile {
            writer: HashingWriter::new(tmp),
            flushed: 0,
        })
    }

    /// A temporary file beside `dest`.
    pub fn beside(dest: &Path) -> io::Result<Self> {
        let dir = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let name = dest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "download".into());
        Self::new_in(dir, &name)
    }

    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.writer.len()
    }

    pub fn is_empty(&self) -> bool {
        self.writer.is_empty()
    }

    pub fn path(&self) -> &Path {
        self.writer.get_ref().path()
    }

    /// Flushes and fsyncs the data; the digest is of everything written.
    pub fn finish(self) -> io::Result<Staged> {
        let (sha256, size, mut tmp) = self.writer.finish();
        tmp.flush()?;
        tmp.as_file().sync_all()?;
        let (file, path) = tmp.into_parts();
        Ok(Staged {
            path,
            _lock: file,
            sha256,
            size,
        })
    }
}

impl AtomicFile {
    /// Asks the kernel to start writing back what was written since the last
    /// call (Linux `sync_file_range`, which does not wait); elsewhere a no-op.
    fn start_writeback(&mut self) {
        let len = self.writer.len();
        if len - self.flushed < WRITEBACK_EVERY {
            return;
        }
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::AsRawFd;
            let fd = self.writer.get_ref().as_file().as_raw_fd();
            // Failure only costs speed: the final fsync still makes it durable.
            unsafe {
                libc::sync_file_range(
                    fd,
                    self.flushed as i64,
                    (len - self.flushed) as i64,
                    libc::SYNC_FILE_RANGE_WRITE,
                );
            }
        }
        self.flushed = len;
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.writer.write(buf)?;
        self.start_writeback();
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.writer.flush()
    }
}

impl Staged {
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Renames onto `dest` (replacing it atomically) and fsyncs `dest`'s
    /// directory so the rename itself survives a crash.
    pub fn persist(self, dest: &Path) -> io::Result<()> {
        self.path.persist(dest).map_err(|e| e.error)?;
        if let Some(dir) = dest.parent() {
            fsync_dir(if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            })?;
        }
        Ok(())
    }

    /// Sets the permission bits the file will have once persisted (temporary
    /// files start as 0600; an installed image is usually 0644 or 0444).
    pub fn set_mode(&self, mode: u32) -> io::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&self.path, std::fs::Permissions::from_mode(mode))
    }
}

/// Writes a small file the one way this project does: `bytes` into a
/// temporary file `.{prefix}.XXXXXX.tmp` in `dest`'s directory, fsynced,
/// given `mode`, renamed onto `dest` (atomically, never following a symlink
/// in its place), and the directory fsynced.
pub fn write_atomically(dest: &Path, prefix: &str, bytes: &[u8], mode: u32) -> io::Result<()> {
    let dir = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut f = AtomicFile::new_in(dir, prefix)?;
    f.write_all(bytes)?;
    let staged = f.finish()?;
    staged.set_mode(mode)?;
    staged.persist(dest)
}

/// Removes the temporary files that [`AtomicFile::new_in`] made in `dir`
/// with this `prefix` and that no process holds any more (a killed run's);
/// returns how many. Files of a run still writing are locked and kept.
pub fn remove_stale(dir: &Path, prefix: &str) -> io::Result<usize> {
    use std::os::unix::fs::OpenOptionsExt;
    let start = format!(".{prefix}.");
    let mut removed = 0;
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    for e in entries {
        let e = e?;
        let name = e.file_name();
        let name = name.to_string_lossy();
        if !(name.starts_with(&start) && name.ends_with(".tmp") && e.file_type()?.is_file()) {
            continue;
        }
        let path = e.path();
        let Ok(f) = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
        else {
            continue;
        };
        if f.try_lock().is_ok() {
            // Unlinked while we hold the lock: nobody can have taken it since.
            if std::fs::remove_file(&path).is_ok() {
                removed += 1;
            }
        }
    }
    Ok(removed)
}

/// fsync a directory, making renames and creations in it durable.
pub fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_visible_until_persist_and_temp_removed_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("image.hvt");
        let mut f = AtomicFile::beside(&dest).unwrap();
        f.write_all(b"hello").unwrap();
        assert!(!dest.exists());
        let staged = f.finish().unwrap();
        assert_eq!(staged.size, 5);
        staged.persist(&dest).unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"hello");

        let mut g = AtomicFile::beside(&dest).unwrap();
        g.write_all(b"other").unwrap();
        drop(g);
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("image.hvt")]);
        assert_eq!(std::fs::read(&dest).unwrap(), b"hello");
    }

    #[test]
    fn stale_temporary_files_are_removed_live_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("image.hvt");
        let mut live = AtomicFile::beside(&dest).unwrap();
        live.write_all(b"still writing").unwrap();
        // A killed run's file: same name pattern, nobody holds its lock.
        let stale = dir.path().join(".image.hvt.abc123.tmp");
        std::fs::write(&stale, b"half").unwrap();
        let other = dir.path().join(".other.abc123.tmp");
        std::fs::write(&other, b"not ours").unwrap();
        assert_eq!(remove_stale(dir.path(), "image.hvt").unwrap(), 1);
        assert!(!stale.exists() && other.exists() && live.path().exists());
        let staged = live.finish().unwrap();
        assert_eq!(
            remove_stale(dir.path(), "image.hvt").unwrap(),
            0,
            "a finished, unrenamed file is still held"
        );
        staged.persist(&dest).unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"still writing");
    }
}
