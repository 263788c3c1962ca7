//! A unikernel's state folder (CONTRACT.md §5): `images/<sha256>.<target>`
//! (read-only, never changed), the `current` and `previous` symlinks
//! (switched by writing a new link and renaming it over the old, then fsyncing
//! the folder), the list of digests that failed their health check here, and
//! pruning of old images.

use std::collections::BTreeSet;
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use solo5_elf::Target;
use uk_digest::{AtomicFile, Sha256, Staged, fsync_dir};

pub struct State {
    pub dir: PathBuf,
}

/// An image in `images/`, as a link names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    pub sha256: Sha256,
    pub path: PathBuf,
}

impl State {
    pub fn open(dir: &Path) -> anyhow::Result<State> {
        fs::create_dir_all(dir.join("images"))
            .with_context(|| format!("creating the state folder {:?}", dir.display()))?;
        Ok(State { dir: dir.to_owned() })
    }

    pub fn images(&self) -> PathBuf {
        self.dir.join("images")
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    pub fn image_path(&self, sha: &Sha256, target: Target) -> PathBuf {
        self.images().join(format!("{sha}.{}", target.as_str()))
    }

    /// The image a link (`current` or `previous`) points at, if any and if
    /// the file exists.
    pub fn link(&self, name: &str) -> anyhow::Result<Option<Image>> {
        let target = match fs::read_link(self.path(name)) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(e).with_context(|| format!("reading the link {:?}", self.path(name).display()));
            }
        };
        let path = if target.is_absolute() {
            target
        } else {
            self.dir.join(target)
        };
        let file = path
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        let Some(sha) = file.split('.').next().and_then(|h| h.parse::<Sha256>().ok()) else {
            bail!(
                "the link {name:?} points at {:?}, which is not one of our images",
                path.display()
            );
        };
        if !path.is_file() {
            return Ok(None);
        }
        Ok(Some(Image { sha256: sha, path }))
    }

    /// Points `name` at `image` (or removes it) atomically.
    pub fn set_link(&self, name: &str, image: Option<&Image>) -> anyhow::Result<()> {
        let link = self.path(name);
        match image {
            Some(img) => {
                let rel = Path::new("images").join(img.path.file_name().context("image without a file name")?);
                let tmp = self.path(&format!(".{name}.tmp"));
                let _ = fs::remove_file(&tmp);
                std::os::unix::fs::symlink(&rel, &tmp).with_context(|| format!("creating {:?}", tmp.display()))?;
                fs::rename(&tmp, &link).with_context(|| format!("switching {:?}", link.display()))?;
            }
            None => match fs::remove_file(&link) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(e).context("removing a link");
                }
                _ => {}
            },
        }
        fsync_dir(&self.dir).context("fsyncing the state folder")
    }

    /// Copies `src` into a temporary file in `images/` while hashing it;
    /// [`State::keep`] names it after its digest once it has been verified.
    pub fn stage(&self, src: &Path) -> anyhow::Result<Staged> {
        let mut out = AtomicFile::new_in(&self.images(), "incoming")?;
        let mut f = fs::File::open(src).with_context(|| format!("opening the image {:?}", src.display()))?;
        let mut buf = vec![0u8; uk_digest::BUF_SIZE];
        loop {
            let n = f
                .read(&mut buf)
                .with_context(|| format!("reading {:?}", src.display()))?;
            if n == 0 {
                break;
            }
            out.write_all(&buf[..n]).context("writing into images/")?;
        }
        out.finish().context("fsyncing the stored image")
    }

    /// Renames a verified staged image to `images/<sha256>.<target>`,
    /// read-only, with its signature beside it as `….minisig`.
    pub fn keep(&self, staged: Staged, target: Target, signature: Option<&str>) -> anyhow::Result<Image> {
        let dest = self.image_path(&staged.sha256, target);
        let sha256 = staged.sha256;
        if let Some(sig) = signature {
            let sig_dest = PathBuf::from(format!("{}.minisig", dest.display()));
            let mut f = AtomicFile::new_in(&self.images(), "signature")?;
            f.write_all(sig.as_bytes())?;
            let s = f.finish()?;
            s.set_mode(0o444)?;
            s.persist(&sig_dest).context("storing the signature")?;
        }
        if !dest.is_file() {
            staged.set_mode(0o444)?;
            staged.persist(&dest).context("renaming the stored image")?;
        }
        Ok(Image { sha256, path: dest })
    }

    /// When the stored image's signature says it was signed (if it has one).
    pub fn signed_timestamp(&self, image: &Image) -> Option<u64> {
        let sig = fs::read_to_string(format!("{}.minisig", image.path.display())).ok()?;
        uk_signatures::trusted_of(&sig).ok().map(|s| s.timestamp)
    }

    pub fn failed(&self) -> BTreeSet<Sha256> {
        fs::read_to_string(self.path("failed"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }

    fn write_failed(&self, set: &BTreeSet<Sha256>) -> anyhow::Result<()> {
        let mut f = AtomicFile::new_in(&self.dir, "failed")?;
        for s in set {
            writeln!(f, "{s}")?;
        }
        f.finish()?
            .persist(&self.path("failed"))
            .context("writing the failed list")
    }

    /// Remembers that `sha` failed its health check here.
    pub fn mark_failed(&self, sha: &Sha256) -> anyhow::Result<()> {
        let mut set = self.failed();
        if set.insert(*sha) {
            self.write_failed(&set)
        } else {
            Ok(())
        }
    }

    pub fn clear_failed(&self, sha: &Sha256) -> anyhow::Result<()> {
        let mut set = self.failed();
        if set.remove(sha) {
            self.write_failed(&set)
        } else {
            Ok(())
        }
    }

    /// Keeps the `keep` newest images, never removing `current` or `previous`.
    pub fn prune(&self, keep: usize) -> anyhow::Result<Vec<PathBuf>> {
        let pinned: Vec<PathBuf> = [self.link("current")?, self.link("previous")?]
            .into_iter()
            .flatten()
            .map(|i| i.path)
            .collect();
        let mut images: Vec<(std::time::SystemTime, PathBuf)> = fs::read_dir(self.images())?
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| !p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')))
            .filter(|p| p.extension().is_none_or(|e| e != "minisig"))
            .filter_map(|p| Some((fs::metadata(&p).ok()?.modified().ok()?, p)))
            .collect();
        images.sort_by_key(|(t, _)| std::cmp::Reverse(*t));
        let mut kept = pinned.len();
        let mut removed = Vec::new();
        for (_, p) in images {
            if pinned.contains(&p) {
                continue;
            }
            if kept < keep {
                kept += 1;
                continue;
            }
            fs::remove_file(&p).with_context(|| format!("removing old image {:?}", p.display()))?;
            let _ = fs::remove_file(format!("{}.minisig", p.display()));
            removed.push(p);
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_switch_and_prune_keeps_current_and_previous() {
        let d = tempfile::tempdir().unwrap();
        let st = State::open(d.path()).unwrap();
        let src = d.path().join("src");
        let mut imgs = vec![];
        for i in 0..5u8 {
            fs::write(&src, [i; 10]).unwrap();
            let staged = st.stage(&src).unwrap();
            imgs.push(st.keep(staged, Target::Hvt, None).unwrap());
            // distinct mtimes, oldest first
            let t = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1000 + i as u64);
            filetime_set(&imgs[i as usize].path, t).unwrap();
        }
        assert!(fs::metadata(&imgs[0].path).unwrap().permissions().readonly());
        st.set_link("current", Some(&imgs[0])).unwrap();
        st.set_link("previous", Some(&imgs[1])).unwrap();
        assert_eq!(st.link("current").unwrap(), Some(imgs[0].clone()));
        let removed = st.prune(3).unwrap();
        // kept: current (0), previous (1), newest other (4)
        assert_eq!(removed.len(), 2, "{removed:?}");
        assert!(imgs[0].path.exists() && imgs[1].path.exists() && imgs[4].path.exists());
        st.set_link("previous", None).unwrap();
        assert_eq!(st.link("previous").unwrap(), None);
    }

    fn filetime_set(p: &Path, t: std::time::SystemTime) -> std::io::Result<()> {
        let f = fs::File::options().read(true).open(p)?;
        f.set_modified(t)
    }

    #[test]
    fn failed_list() {
        let d = tempfile::tempdir().unwrap();
        let st = State::open(d.path()).unwrap();
        let (a, _) = uk_digest::hash_reader(&b"a"[..]).unwrap();
        st.mark_failed(&a).unwrap();
        st.mark_failed(&a).unwrap();
        assert_eq!(st.failed().len(), 1);
        st.clear_failed(&a).unwrap();
        assert!(st.failed().is_empty());
    }
}
