//! A unikernel host for tests: a state dir, a `deploy-hvt` config for a real
//! Solo5 tender, and what a person would look at: the tenders that run, the
//! console, the links. Dropping it stops every tender it started.

use std::path::{Path, PathBuf};

use crate::bins::cmd;
use crate::solo5::{solo5_dir, tender};

pub struct Host {
    pub dir: tempfile::TempDir,
    pub target: &'static str,
    pub config: PathBuf,
}

/// A live process running an image of this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tender {
    pub pid: i32,
    pub image: PathBuf,
}

impl Host {
    /// `target` is "hvt" or "spt"; `health` is extra TOML for `[health]`.
    pub fn new(target: &'static str, health: &str) -> Host {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("web.toml");
        let toml = format!(
            "name = \"web\"\nstate_dir = \"{}\"\ntender = \"{}\"\ntender_args = [\"--mem=32\"]\nargs = [\"test\"]\nkeep = 3\n[health]\nsettle = \"200ms\"\ntimeout = \"5s\"\nconsole = \"(?m)^ready$\"\n{health}",
            dir.path().join("state").display(),
            tender(&format!("solo5-{target}")).display()
        );
        std::fs::write(&config, toml).unwrap();
        Host { dir, target, config }
    }

    pub fn state(&self) -> PathBuf {
        self.dir.path().join("state").join("web")
    }

    /// A test image for this host's target, e.g. `image("ticker-v1")`.
    pub fn image(&self, name: &str) -> PathBuf {
        solo5_dir().join("images").join(format!("{name}.{}", self.target))
    }

    pub fn deploy_hvt(&self, sub: &str) -> assert_cmd::Command {
        let mut c = cmd("deploy-hvt");
        c.arg(sub).arg("--config").arg(&self.config);
        c
    }

    /// Live tenders (processes of the configured tender executable) running
    /// one of this host's images; a decoy like `sleep 600 images/x.hvt` is not one.
    pub fn tenders(&self) -> Vec<Tender> {
        let prefix = format!("{}/", self.state().join("images").display());
        let tender_exe = tender(&format!("solo5-{}", self.target)).canonicalize().unwrap();
        let mut out = Vec::new();
        for e in std::fs::read_dir("/proc").unwrap().flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
                continue;
            };
            let Ok(raw) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
                continue;
            };
            let args: Vec<String> = raw
                .split(|&b| b == 0)
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect();
            let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .map(|s| {
                    s.rsplit_once(')')
                        .map(|(_, r)| r.trim_start().starts_with('Z'))
                        .unwrap_or(true)
                })
                .unwrap_or(true);
            let exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok();
            if let Some(img) = args.iter().skip(1).find(|a| a.starts_with(&prefix))
                && !zombie
                && exe.as_deref() == Some(tender_exe.as_path())
            {
                out.push(Tender {
                    pid,
                    image: PathBuf::from(img),
                });
            }
        }
        out
    }

    /// The one running tender; fails the test unless there is exactly one.
    pub fn the_tender(&self) -> Tender {
        let t = self.tenders();
        assert_eq!(
            t.len(),
            1,
            "expected exactly one tender, found {t:?}\n{}",
            self.listing()
        );
        t[0].clone()
    }

    /// Is the test image `name` current, and the one tender running it?
    pub fn runs(&self, name: &str) -> bool {
        let sha = sha_of(&self.image(name));
        self.the_tender().image.to_string_lossy().contains(&sha) && self.link_sha("current") == Some(sha)
    }

    /// Whether `deploy.log` records `sha` as deployed (healthy), not only started.
    pub fn deployed(&self, sha: &str) -> bool {
        std::fs::read_to_string(self.state().join("deploy.log"))
            .unwrap_or_default()
            .lines()
            .any(|l| l.contains("\"result\":\"deployed\"") && l.contains(sha))
    }

    pub fn console(&self) -> String {
        std::fs::read_to_string(self.state().join("console.log")).unwrap_or_default()
    }

    /// sha256 named by a link (`current`, `previous`), checked against the file's bytes.
    pub fn link_sha(&self, link: &str) -> Option<String> {
        let target = std::fs::read_link(self.state().join(link)).ok()?;
        let path = self.state().join(target);
        assert!(path.is_file(), "{link} points at a missing file\n{}", self.listing());
        let name = path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .split('.')
            .next()
            .unwrap()
            .to_owned();
        let (actual, _) = uk_digest::hash_file(&path).unwrap();
        assert_eq!(
            actual.to_string(),
            name,
            "{link}: the image's bytes do not match its name"
        );
        Some(name)
    }

    /// A listing of the state dir and the deploy log, for failure messages.
    pub fn listing(&self) -> String {
        let mut s = String::new();
        for sub in ["", "images"] {
            if let Ok(rd) = std::fs::read_dir(self.state().join(sub)) {
                for e in rd.flatten() {
                    let p = e.path();
                    let link = std::fs::read_link(&p)
                        .map(|t| format!(" -> {}", t.display()))
                        .unwrap_or_default();
                    s.push_str(&format!("{}{link}\n", p.display()));
                }
            }
        }
        s.push_str(&std::fs::read_to_string(self.state().join("deploy.log")).unwrap_or_default());
        s
    }
}

pub fn sha_of(path: &Path) -> String {
    uk_digest::hash_file(path).unwrap().0.to_string()
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = self.deploy_hvt("stop").output();
        for t in self.tenders() {
            unsafe {
                libc::kill(t.pid, libc::SIGKILL);
            }
        }
    }
}
