//! In-memory answers to the two hottest questions, so that they need no
//! database round trip: "which build is the latest of this job (and
//! platform)?" and "which bytes are artifact P of build U?". Builds are
//! immutable, so artifact answers never go stale; latest answers carry the
//! job's change generation (from `notify.rs`) and are used only while it is
//! unchanged, so a commit makes them stale without any invalidation race.

use std::collections::HashMap;
use std::sync::Mutex;

use uk_digest::Sha256;
use uk_names::{ArtifactPath, BuildId, JobName, PlatformName};

/// Entries kept before a cache starts over (bounds memory).
const MAX_ENTRIES: usize = 50_000;

/// The latest build of a job: its id and main binary's digest.
pub type Latest = Option<(BuildId, Option<Sha256>)>;

type LatestKey = (JobName, Option<PlatformName>);
type ArtifactKey = (JobName, BuildId, ArtifactPath);

#[derive(Default)]
pub struct Caches {
    latest: Mutex<HashMap<LatestKey, (u64, Latest)>>,
    artifacts: Mutex<HashMap<ArtifactKey, (Sha256, u64)>>,
}

fn bounded<K: std::hash::Hash + Eq, V>(map: &mut HashMap<K, V>) {
    if map.len() >= MAX_ENTRIES {
        map.clear();
    }
}

impl Caches {
    pub fn latest(&self, job: &JobName, platform: &Option<PlatformName>, generation: u64) -> Option<Latest> {
        let map = self.latest.lock().unwrap_or_else(|e| e.into_inner());
        match map.get(&(job.clone(), platform.clone())) {
            Some((g, v)) if *g == generation => Some(*v),
            _ => None,
        }
    }

    /// Remembers what the database said while the job was at `generation`.
    pub fn put_latest(&self, job: &JobName, platform: &Option<PlatformName>, generation: u64, v: Latest) {
        let mut map = self.latest.lock().unwrap_or_else(|e| e.into_inner());
        bounded(&mut map);
        map.insert((job.clone(), platform.clone()), (generation, v));
    }

    pub fn artifact(&self, job: &JobName, uuid: &BuildId, path: &ArtifactPath) -> Option<(Sha256, u64)> {
        let map = self.artifacts.lock().unwrap_or_else(|e| e.into_inner());
        map.get(&(job.clone(), *uuid, path.clone())).copied()
    }

    pub fn put_artifact(&self, job: &JobName, uuid: &BuildId, path: &ArtifactPath, v: (Sha256, u64)) {
        let mut map = self.artifacts.lock().unwrap_or_else(|e| e.into_inner());
        bounded(&mut map);
        map.insert((job.clone(), *uuid, path.clone()), v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latest_is_valid_only_at_its_generation() {
        let c = Caches::default();
        let job: JobName = "web".parse().unwrap();
        let id = BuildId::new_random();
        c.put_latest(&job, &None, 3, Some((id, None)));
        assert_eq!(c.latest(&job, &None, 3), Some(Some((id, None))));
        assert_eq!(c.latest(&job, &None, 4), None);
        assert_eq!(c.latest(&job, &Some("p".parse().unwrap()), 3), None);
    }
}
