//! Wakes long-polling clients when something about a job changes (a build is
//! committed, a deployment is reported): one `watch` channel per job, bumped
//! after the commit. Waiters hold a receiver and sleep in the runtime, so
//! thousands of them cost a little memory and no CPU; nothing polls.

use std::collections::HashMap;
use std::sync::RwLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::watch;
use uk_names::JobName;

#[derive(Default)]
pub struct Notifier {
    jobs: RwLock<HashMap<JobName, watch::Sender<u64>>>,
    waiting: AtomicUsize,
}

/// Counts a long-polling request while it waits (see `GET /metrics`).
pub struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Notifier {
    /// A receiver that sees every later [`Notifier::bump`] of `job`.
    pub fn subscribe(&self, job: &JobName) -> watch::Receiver<u64> {
        if let Some(tx) = self.jobs.read().unwrap_or_else(|e| e.into_inner()).get(job) {
            return tx.subscribe();
        }
        let mut jobs = self.jobs.write().unwrap_or_else(|e| e.into_inner());
        jobs.entry(job.clone())
            .or_insert_with(|| watch::channel(0).0)
            .subscribe()
    }

    /// How many times `job` has changed since the server started: caches
    /// keyed on it (see `cache.rs`) are valid while it stays the same.
    pub fn generation(&self, job: &JobName) -> u64 {
        self.jobs
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(job)
            .map(|tx| *tx.borrow())
            .unwrap_or(0)
    }

    /// Marks the caller as waiting until the guard is dropped.
    pub fn waiting(&self) -> Waiting<'_> {
        self.waiting.fetch_add(1, Ordering::Relaxed);
        Waiting(&self.waiting)
    }

    /// Requests waiting right now.
    pub fn waiters(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    /// Something changed in `job`: wake its waiters.
    pub fn bump(&self, job: &JobName) {
        if let Some(tx) = self.jobs.read().unwrap_or_else(|e| e.into_inner()).get(job) {
            tx.send_modify(|n| *n += 1);
            return;
        }
        let mut jobs = self.jobs.write().unwrap_or_else(|e| e.into_inner());
        jobs.entry(job.clone())
            .or_insert_with(|| watch::channel(0).0)
            .send_modify(|n| *n += 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bump_wakes_subscribers_of_that_job_only() {
        let n = Notifier::default();
        let (a, b): (JobName, JobName) = ("a".parse().unwrap(), "b".parse().unwrap());
        let mut ra = n.subscribe(&a);
        let mut rb = n.subscribe(&b);
        n.bump(&a);
        assert!(ra.has_changed().unwrap());
        ra.changed().await.unwrap();
        assert!(!rb.has_changed().unwrap());
        n.bump(&b);
        rb.changed().await.unwrap();
    }
}
