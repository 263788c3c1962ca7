//! In-memory answers to the two hottest questions, so that they need no
//! database round trip: "which build is the latest of this job (and
//! platform)?" and "which bytes are artifact P of build U?". A build's
//! files never change, but vacuum (perhaps in another process) can drop
//! them: a cached artifact whose bytes are gone is looked up again (see
//! `http/files.rs`). Latest answers carry the job's change generation (from
//! `longpoll.rs`) and are used only while it is unchanged, so a commit makes
//! them stale without any invalidation race. Only answers about builds that
//! exist are cached, so made-up names fill nothing.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use uk_digest::Sha256;
use uk_names::{ArtifactPath, BuildId, JobName, PlatformName};

use crate::db::builds::StoredFile;

/// Entries kept before a cache starts over (bounds memory).
const MAX_ENTRIES: usize = 50_000;
/// An answer is used at most this long: changes made by another process
/// (`build remove`, `vacuum`, another replica) show within it.
const MAX_AGE: Duration = Duration::from_secs(2);

/// The latest build of a job: its id and main binary's digest.
pub type Latest = Option<(BuildId, Option<Sha256>)>;

type ArtifactKey = (JobName, BuildId, ArtifactPath);

struct LatestEntry {
    platform: Option<PlatformName>,
    generation: u64,
    value: Latest,
    at: Instant,
}

#[derive(Default)]
pub struct Caches {
    /// Per job (looked up without allocating), per platform filter.
    latest: Mutex<HashMap<JobName, Vec<LatestEntry>>>,
    artifacts: Mutex<HashMap<ArtifactKey, (StoredFile, Instant)>>,
    /// The names of all jobs (as many as the operator made), so lookups of
    /// made-up names are answered without the database.
    jobs: Mutex<Option<(std::collections::HashSet<JobName>, Instant)>>,
    /// One is held while a `latest` answer is read from the database: the
    /// crowd of waiters a commit wakes reads it once, the rest from the
    /// cache. Chosen by job, so other jobs' reads run alongside.
    refills: Refills,
}

const REFILL_LOCKS: usize = 64;

struct Refills([tokio::sync::Mutex<()>; REFILL_LOCKS]);

impl Default for Refills {
    fn default() -> Refills {
        Refills(std::array::from_fn(|_| tokio::sync::Mutex::new(())))
    }
}

fn bounded<K: std::hash::Hash + Eq, V>(map: &mut HashMap<K, V>) {
    if map.len() >= MAX_ENTRIES {
        map.clear();
    }
}

impl Caches {
    /// The lock that serialises reads of `job`'s latest build.
    pub fn refill(&self, job: &JobName) -> &tokio::sync::Mutex<()> {
        use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
        let h = BuildHasherDefault::<DefaultHasher>::default().hash_one(job);
        &self.refills.0[(h % REFILL_LOCKS as u64) as usize]
    }

    pub fn latest(&self, job: &JobName, platform: &Option<PlatformName>, generation: u64) -> Option<Latest> {
        let map = self.latest.lock().unwrap_or_else(|e| e.into_inner());
        map.get(job)?
            .iter()
            .find(|e| &e.platform == platform)
            .filter(|e| e.generation == generation && e.at.elapsed() < MAX_AGE)
            .map(|e| e.value)
    }

    /// Remembers what the database said while the job was at `generation`.
    pub fn put_latest(&self, job: &JobName, platform: &Option<PlatformName>, generation: u64, v: Latest) {
        let mut map = self.latest.lock().unwrap_or_else(|e| e.into_inner());
        bounded(&mut map);
        let entry = LatestEntry {
            platform: platform.clone(),
            generation,
            value: v,
            at: Instant::now(),
        };
        let list = map.entry(job.clone()).or_default();
        match list.iter().position(|e| &e.platform == platform) {
            Some(i) => list[i] = entry,
            // Platforms per job are few; a bound all the same.
            None if list.len() < 64 => list.push(entry),
            None => list[0] = entry,
        }
    }

    pub fn artifact(&self, job: &JobName, uuid: &BuildId, path: &ArtifactPath) -> Option<StoredFile> {
        let map = self.artifacts.lock().unwrap_or_else(|e| e.into_inner());
        match map.get(&(job.clone(), *uuid, path.clone())) {
            Some((v, at)) if at.elapsed() < MAX_AGE => Some(*v),
            _ => None,
        }
    }

    pub fn put_artifact(&self, job: &JobName, uuid: &BuildId, path: &ArtifactPath, v: StoredFile) {
        let mut map = self.artifacts.lock().unwrap_or_else(|e| e.into_inner());
        bounded(&mut map);
        map.insert((job.clone(), *uuid, path.clone()), (v, Instant::now()));
    }

    pub fn forget_artifact(&self, job: &JobName, uuid: &BuildId, path: &ArtifactPath) {
        let mut map = self.artifacts.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(&(job.clone(), *uuid, path.clone()));
    }

    /// Whether `job` exists; `None` when the list is missing or too old.
    pub fn job_known(&self, job: &JobName) -> Option<bool> {
        match &*self.jobs.lock().unwrap_or_else(|e| e.into_inner()) {
            Some((set, at)) if at.elapsed() < MAX_AGE => Some(set.contains(job)),
            _ => None,
        }
    }

    pub fn put_jobs(&self, names: impl IntoIterator<Item = JobName>) {
        *self.jobs.lock().unwrap_or_else(|e| e.into_inner()) = Some((names.into_iter().collect(), Instant::now()));
    }

    /// A job was just created here.
    pub fn add_job(&self, job: &JobName) {
        if let Some((set, _)) = &mut *self.jobs.lock().unwrap_or_else(|e| e.into_inner()) {
            set.insert(job.clone());
        }
    }

    /// Drops everything (after a build or job was removed).
    pub fn clear(&self) {
        self.artifacts.lock().unwrap_or_else(|e| e.into_inner()).clear();
        self.latest.lock().unwrap_or_else(|e| e.into_inner()).clear();
        *self.jobs.lock().unwrap_or_else(|e| e.into_inner()) = None;
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
