//! The small files in the state folder that remember decisions, so that a
//! host running unattended does not undo what it or its operator decided:
//! `failed` (images never deployed again by cron or the watcher until
//! `deploy --retry-failed`, each with why: unhealthy, rolled back by hand,
//! crash loop), `hold` (no deploys while it exists), `stopped` (stopped by
//! hand: supervision leaves it down), `decided` (the last build this host
//! decided about; the scripts skip it) and `supervision.json` (when the
//! current image was last started and how often it died right after).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use uk_digest::Sha256;
use uk_names::BuildId;

use crate::state::State;

/// Why an image is not deployed again unattended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Why {
    /// It failed its health check here.
    Unhealthy,
    /// An operator rolled back from it (`deploy-hvt rollback`).
    RolledBackByHand,
    /// It kept dying right after being started.
    CrashLoop,
}

impl Why {
    fn as_str(self) -> &'static str {
        match self {
            Why::Unhealthy => "unhealthy",
            Why::RolledBackByHand => "rolled-back-by-hand",
            Why::CrashLoop => "crash-loop",
        }
    }

    fn parse(s: &str) -> Why {
        match s {
            "rolled-back-by-hand" => Why::RolledBackByHand,
            "crash-loop" => Why::CrashLoop,
            _ => Why::Unhealthy,
        }
    }
}

impl fmt::Display for Why {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Why::Unhealthy => "failed its health check",
            Why::RolledBackByHand => "rolled back by hand",
            Why::CrashLoop => "kept dying right after being started",
        })
    }
}

/// `deploy-hvt hold`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hold {
    pub reason: String,
    /// RFC 3339.
    pub since: String,
}

/// The current image's recent starts (for crash-loop detection).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Supervision {
    pub sha256: Sha256,
    /// Unix seconds of the last start of its tender.
    pub last_start: u64,
    /// Times it died soon after a start since it was deployed.
    pub deaths: u32,
    /// It once ran long enough to count as stable: deaths no longer roll it back.
    pub proven: bool,
}

impl State {
    /// Images not to deploy again unattended, and why.
    pub fn failed(&self) -> BTreeMap<Sha256, Why> {
        self.read_file("failed")
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let mut words = l.split_whitespace();
                let sha = words.next()?.parse().ok()?;
                Some((sha, Why::parse(words.next().unwrap_or(""))))
            })
            .collect()
    }

    fn write_failed(&self, set: &BTreeMap<Sha256, Why>) -> anyhow::Result<()> {
        let text: String = set.iter().map(|(s, w)| format!("{s} {}\n", w.as_str())).collect();
        self.write_file("failed", text.as_bytes())
    }

    pub fn mark_failed(&self, sha: &Sha256, why: Why) -> anyhow::Result<()> {
        let mut set = self.failed();
        if set.insert(*sha, why) != Some(why) {
            self.write_failed(&set)?;
        }
        Ok(())
    }

    pub fn clear_failed(&self, sha: &Sha256) -> anyhow::Result<()> {
        let mut set = self.failed();
        if set.remove(sha).is_some() {
            self.write_failed(&set)?;
        }
        Ok(())
    }

    pub fn hold(&self) -> Option<Hold> {
        serde_json::from_str(&self.read_file("hold")?).ok()
    }

    pub fn set_hold(&self, hold: Option<&Hold>) -> anyhow::Result<()> {
        match hold {
            Some(h) => self.write_file("hold", &serde_json::to_vec(h)?),
            None => self.remove_file("hold"),
        }
    }

    pub fn stopped(&self) -> bool {
        self.read_file("stopped").is_some()
    }

    pub fn set_stopped(&self, stopped: bool) -> anyhow::Result<()> {
        if stopped {
            self.write_file(
                "stopped",
                b"stopped by deploy-hvt stop; deploy-hvt start starts it again\n",
            )
        } else if self.stopped() {
            self.remove_file("stopped")
        } else {
            Ok(())
        }
    }

    /// The last build decided about: its uuid and image digest.
    pub fn decided(&self) -> Option<(BuildId, Sha256)> {
        let text = self.read_file("decided")?;
        let mut words = text.split_whitespace();
        Some((words.next()?.parse().ok()?, words.next()?.parse().ok()?))
    }

    pub fn set_decided(&self, build: Option<&uk_wire::BuildRef>) -> anyhow::Result<()> {
        match build {
            Some(b) => self.write_file("decided", format!("{} {}\n", b.uuid, b.sha256).as_bytes()),
            None => self.remove_file("decided"),
        }
    }

    pub fn supervision(&self) -> Option<Supervision> {
        serde_json::from_str(&self.read_file("supervision.json")?).ok()
    }

    pub fn set_supervision(&self, s: &Supervision) -> anyhow::Result<()> {
        self.write_file("supervision.json", &serde_json::to_vec(s)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_round_trip() {
        let d = tempfile::tempdir().unwrap();
        let st = State::open(&d.path().join("web")).unwrap();
        let (a, _) = uk_digest::hash_reader(&b"a"[..]).unwrap();
        st.mark_failed(&a, Why::Unhealthy).unwrap();
        st.mark_failed(&a, Why::RolledBackByHand).unwrap();
        assert_eq!(
            st.failed().into_iter().collect::<Vec<_>>(),
            [(a, Why::RolledBackByHand)]
        );
        st.clear_failed(&a).unwrap();
        assert!(st.failed().is_empty());
        // The old format (digests only) still reads.
        st.write_file("failed", format!("{a}\n").as_bytes()).unwrap();
        assert_eq!(st.failed().get(&a), Some(&Why::Unhealthy));

        assert_eq!(st.hold(), None);
        let h = Hold {
            reason: "freeze".into(),
            since: "2026-01-01T00:00:00Z".into(),
        };
        st.set_hold(Some(&h)).unwrap();
        assert_eq!(st.hold(), Some(h));
        st.set_hold(None).unwrap();
        assert_eq!(st.hold(), None);

        let b = uk_wire::BuildRef {
            job: "web".parse().unwrap(),
            uuid: BuildId::new_random(),
            platform: None,
            sha256: a,
        };
        st.set_decided(Some(&b)).unwrap();
        assert_eq!(st.decided(), Some((b.uuid, a)));
        assert!(!st.stopped());
        st.set_stopped(true).unwrap();
        assert!(st.stopped());
    }
}
