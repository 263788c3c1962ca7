//! A unikernel's state folder (CONTRACT.md §5): `images/<sha256>.<target>`
//! (read-only, never changed) with the build each came from beside it
//! (`….build.json`) and its signature (`….minisig`), the `current` and
//! `previous` symlinks (switched by writing a new link and renaming it over
//! the old, then fsyncing the folder), and pruning of old images. The small
//! files that remember decisions (failed images, hold, …) are in `marks.rs`.
//!
//! `deploy-hvt` never follows a symlink it did not make: the links it reads
//! must point at a regular file in `images/`, and the files it opens for
//! writing are opened with `O_NOFOLLOW` or replaced by rename.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use solo5_elf::Target;
use uk_digest::{AtomicFile, Sha256, Staged, fsync_dir};
use uk_wire::BuildRef;

pub struct State {
    /// Canonical, so that the image paths tenders are started with are absolute.
    pub dir: PathBuf,
}

/// An image in `images/`, as a link names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    pub sha256: Sha256,
    pub path: PathBuf,
}

/// The temporary-file prefix of images being staged.
const STAGING: &str = "incoming";

/// Creates a folder of ours readable by all (an unprivileged tender reads its
/// image through it) and writable by its owner only; one that exists must be
/// a real folder, not a symlink to somewhere else.
pub fn ensure_dir(p: &Path) -> std::io::Result<()> {
    match fs::create_dir(p) {
        Ok(()) => fs::set_permissions(p, fs::Permissions::from_mode(0o755)),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            if fs::symlink_metadata(p)?.is_dir() {
                Ok(())
            } else {
                Err(std::io::Error::other(format!(
                    "{:?} is not a folder (a symlink?): not using it",
                    p.display()
                )))
            }
        }
        Err(e) => Err(e),
    }
}

/// `<sha256>.<target>`: the name of an image of ours.
fn image_sha(name: &str) -> Option<Sha256> {
    let (hash, target) = name.split_once('.')?;
    matches!(target, "hvt" | "spt").then_some(())?;
    hash.parse().ok()
}

impl State {
    pub fn open(dir: &Path) -> anyhow::Result<State> {
        let parent = dir.parent().filter(|p| !p.as_os_str().is_empty());
        if let Some(p) = parent {
            fs::create_dir_all(p).with_context(|| format!("creating the state folder {:?}", p.display()))?;
        }
        // The unikernel's folder itself may be a symlink an operator made.
        if !dir.is_dir() {
            ensure_dir(dir).with_context(|| format!("creating the state folder {:?}", dir.display()))?;
        }
        let dir = dir
            .canonicalize()
            .with_context(|| format!("the state folder {:?}", dir.display()))?;
        ensure_dir(&dir.join("images")).with_context(|| format!("creating {:?}", dir.join("images").display()))?;
        Ok(State { dir })
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

    /// Is `path` an image of ours (a regular file named `<sha256>.<target>`
    /// directly in `images/`)? Its digest if so.
    pub fn ours(&self, path: &Path) -> Option<Sha256> {
        if path.parent() != Some(self.images().as_path()) {
            return None;
        }
        let sha = image_sha(path.file_name()?.to_str()?)?;
        fs::symlink_metadata(path).ok()?.is_file().then_some(sha)
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
        let path = self.dir.join(target);
        let in_images = path.parent() == Some(self.images().as_path());
        let name_ok = path.file_name().and_then(|f| f.to_str()).and_then(image_sha);
        let (true, Some(sha)) = (in_images, name_ok) else {
            bail!(
                "the link {name:?} points at {:?}, which is not one of our images",
                path.display()
            );
        };
        Ok(self.ours(&path).map(|_| Image { sha256: sha, path }))
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

    /// Every image kept in `images/`, newest first (by when it was stored).
    pub fn kept(&self) -> anyhow::Result<Vec<Image>> {
        let mut images: Vec<(std::time::SystemTime, Image)> = Vec::new();
        for e in fs::read_dir(self.images()).context("listing images/")? {
            let path = e?.path();
            let Some(sha256) = self.ours(&path) else { continue };
            let t = fs::symlink_metadata(&path)?.modified()?;
            images.push((t, Image { sha256, path }));
        }
        images.sort_by_key(|(t, i)| (std::cmp::Reverse(*t), i.path.clone()));
        Ok(images.into_iter().map(|(_, i)| i).collect())
    }

    /// Removes images a killed `deploy-hvt` was staging (call under the lock).
    pub fn remove_stale_staging(&self) {
        if let Err(e) = uk_digest::remove_stale(&self.images(), STAGING) {
            eprintln!("deploy-hvt: warning: cleaning up images/: {e}");
        }
    }

    /// Copies `src` into a temporary file in `images/` while hashing it;
    /// [`State::keep`] names it after its digest once it has been verified.
    /// Only a regular file of at most `max_size` bytes is taken.
    pub fn stage(&self, src: &Path, max_size: u64) -> anyhow::Result<Staged> {
        let f = fs::File::open(src).with_context(|| format!("opening the image {:?}", src.display()))?;
        let meta = f.metadata()?;
        if !meta.is_file() {
            bail!("{:?} is not a regular file", src.display());
        }
        if meta.len() > max_size {
            bail!(
                "it is {} bytes, more than --max-size {}",
                meta.len(),
                uk_cli::size::show_size(max_size)
            );
        }
        let mut out = AtomicFile::new_in(&self.images(), STAGING)?;
        let mut limited = f.take(max_size + 1);
        let mut buf = vec![0u8; uk_digest::BUF_SIZE];
        loop {
            let n = limited
                .read(&mut buf)
                .with_context(|| format!("reading {:?}", src.display()))?;
            if n == 0 {
                break;
            }
            out.write_all(&buf[..n]).context("writing into images/")?;
            if out.len() > max_size {
                bail!(
                    "it grew past --max-size {} while being read",
                    uk_cli::size::show_size(max_size)
                );
            }
        }
        out.finish().context("fsyncing the stored image")
    }

    /// Renames a verified staged image to `images/<sha256>.<target>`,
    /// read-only, with its signature beside it as `….minisig` and the build
    /// it came from as `….build.json`.
    pub fn keep(
        &self,
        staged: Staged,
        target: Target,
        signature: Option<&str>,
        build: Option<&BuildRef>,
    ) -> anyhow::Result<Image> {
        let dest = self.image_path(&staged.sha256, target);
        let sha256 = staged.sha256;
        if let Some(sig) = signature {
            self.write_beside(&dest, ".minisig", sig.as_bytes())
                .context("storing the signature")?;
        }
        if let Some(b) = build {
            self.write_beside(&dest, ".build.json", &serde_json::to_vec(b)?)
                .context("storing the build identity")?;
        }
        if self.ours(&dest).is_none() {
            staged.set_mode(0o444)?;
            staged.persist(&dest).context("renaming the stored image")?;
        }
        Ok(Image { sha256, path: dest })
    }

    fn write_beside(&self, image: &Path, suffix: &str, bytes: &[u8]) -> anyhow::Result<()> {
        let dest = PathBuf::from(format!("{}{suffix}", image.display()));
        uk_digest::write_atomically(&dest, "sidecar", bytes, 0o444)
            .with_context(|| format!("writing {:?}", dest.display()))
    }

    /// A small file of ours beside an image (`.minisig`, `.build.json`).
    fn read_beside(&self, image: &Image, suffix: &str) -> Option<String> {
        read_small(Path::new(&format!("{}{suffix}", image.path.display())))
    }

    /// The stored signature of an image, if it has one.
    pub fn signature(&self, image: &Image) -> Option<String> {
        self.read_beside(image, ".minisig")
    }

    /// When the stored image's signature says it was signed (if it has one).
    pub fn signed_timestamp(&self, image: &Image) -> Option<u64> {
        let sig = self.signature(image)?;
        uk_signatures::trusted_of(&sig).ok().map(|s| s.timestamp)
    }

    /// The build the image was last deployed from, when known.
    pub fn build_of(&self, image: &Image) -> Option<BuildRef> {
        let b: BuildRef = serde_json::from_str(&self.read_beside(image, ".build.json")?).ok()?;
        (b.sha256 == image.sha256).then_some(b)
    }

    /// Keeps the `keep` newest images, never removing `current` or `previous`.
    pub fn prune(&self, keep: usize) -> anyhow::Result<Vec<PathBuf>> {
        let pinned: Vec<PathBuf> = [self.link("current")?, self.link("previous")?]
            .into_iter()
            .flatten()
            .map(|i| i.path)
            .collect();
        let mut kept = pinned.len();
        let mut removed = Vec::new();
        for img in self.kept()? {
            if pinned.contains(&img.path) {
                continue;
            }
            if kept < keep {
                kept += 1;
                continue;
            }
            let p = img.path;
            fs::remove_file(&p).with_context(|| format!("removing old image {:?}", p.display()))?;
            for suffix in [".minisig", ".build.json"] {
                let _ = fs::remove_file(format!("{}{suffix}", p.display()));
            }
            removed.push(p);
        }
        Ok(removed)
    }

    /// Replaces the small file `name` atomically (a rename never follows a
    /// symlink that might be in its place).
    pub fn write_file(&self, name: &str, bytes: &[u8]) -> anyhow::Result<()> {
        uk_digest::write_atomically(&self.path(name), name, bytes, 0o644)
            .with_context(|| format!("writing {:?}", self.path(name).display()))
    }

    pub fn remove_file(&self, name: &str) -> anyhow::Result<()> {
        match fs::remove_file(self.path(name)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(e).with_context(|| format!("removing {:?}", self.path(name).display()))
            }
            _ => Ok(()),
        }
    }

    /// The small file `name`, if it is one (never through a symlink).
    pub fn read_file(&self, name: &str) -> Option<String> {
        read_small(&self.path(name))
    }
}

/// A small regular file (at most 1 MiB), never through a symlink.
pub fn read_small(path: &Path) -> Option<String> {
    let f = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .ok()?;
    if !f.metadata().ok()?.is_file() {
        return None;
    }
    let mut s = String::new();
    f.take(1 << 20).read_to_string(&mut s).ok()?;
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(st: &State, bytes: &[u8], age: u64) -> Image {
        let src = st.dir.join("src");
        fs::write(&src, bytes).unwrap();
        let staged = st.stage(&src, 1 << 20).unwrap();
        let img = st.keep(staged, Target::Hvt, None, None).unwrap();
        // distinct mtimes, oldest first
        let t = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1000 + age);
        fs::File::options()
            .read(true)
            .open(&img.path)
            .unwrap()
            .set_modified(t)
            .unwrap();
        img
    }

    #[test]
    fn links_switch_and_prune_keeps_current_and_previous() {
        let d = tempfile::tempdir().unwrap();
        let st = State::open(&d.path().join("web")).unwrap();
        let imgs: Vec<Image> = (0..5u8).map(|i| store(&st, &[i; 10], i as u64)).collect();
        assert!(fs::metadata(&imgs[0].path).unwrap().permissions().readonly());
        assert_eq!(st.kept().unwrap()[0], imgs[4], "newest first");
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

    #[test]
    fn links_that_we_did_not_make_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let st = State::open(&d.path().join("web")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", st.path("current")).unwrap();
        assert!(st.link("current").is_err());
        // A symlink in images/ that looks like an image is not one of ours.
        let fake = st.images().join(format!("{}.hvt", "a".repeat(64)));
        std::os::unix::fs::symlink("/etc/passwd", &fake).unwrap();
        fs::remove_file(st.path("current")).unwrap();
        std::os::unix::fs::symlink(format!("images/{}.hvt", "a".repeat(64)), st.path("current")).unwrap();
        assert_eq!(st.link("current").unwrap(), None);
        assert!(st.kept().unwrap().is_empty());
        std::os::unix::fs::symlink("/etc/passwd", st.path("hold")).unwrap();
        assert_eq!(st.read_file("hold"), None);
        // images/ must be a real folder.
        let other = d.path().join("other");
        fs::create_dir_all(other.join("images")).unwrap();
        fs::remove_dir(other.join("images")).unwrap();
        std::os::unix::fs::symlink("/tmp", other.join("images")).unwrap();
        assert!(State::open(&other).is_err());
    }

    #[test]
    fn staging_refuses_big_and_special_files() {
        let d = tempfile::tempdir().unwrap();
        let st = State::open(&d.path().join("web")).unwrap();
        let src = d.path().join("big");
        fs::write(&src, [7u8; 100]).unwrap();
        let err = st.stage(&src, 99).err().expect("refused");
        assert!(format!("{err:#}").contains("more than --max-size"), "{err:#}");
        assert!(st.stage(Path::new("/dev/zero"), 99).is_err());
        assert!(st.stage(&src, 100).is_ok());
    }

    #[test]
    fn build_identity_is_kept_with_the_image() {
        let d = tempfile::tempdir().unwrap();
        let st = State::open(&d.path().join("web")).unwrap();
        let img = store(&st, b"image", 0);
        assert_eq!(st.build_of(&img), None);
        let b = BuildRef {
            job: "web".parse().unwrap(),
            uuid: uk_names::BuildId::new_random(),
            platform: None,
            sha256: img.sha256,
        };
        let src = st.dir.join("src");
        let again = st
            .keep(st.stage(&src, 1 << 20).unwrap(), Target::Hvt, None, Some(&b))
            .unwrap();
        assert_eq!(again, img);
        assert_eq!(st.build_of(&img), Some(b));
    }
}
