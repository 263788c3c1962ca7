//! Long-polling: clients that wait for a job to change (`latest?wait=`,
//! a build's deployments `?wait=`) sleep in the runtime until a commit or a
//! report bumps the job, their wait ends, or the server shuts down. Nothing
//! polls. One `watch` channel per job, kept only for jobs that changed since
//! the server started (their generation keys the `latest` cache, see
//! `cache.rs`) or that have waiters right now: a waiter's entry is freed when
//! the last waiter leaves, so requests for made-up job names leave nothing
//! behind.

use std::collections::HashMap;
use std::future::Future;
use std::sync::RwLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use uk_names::JobName;

#[derive(Default)]
pub struct Notifier {
    jobs: RwLock<HashMap<JobName, Slot>>,
    waiting: AtomicUsize,
}

struct Slot {
    tx: watch::Sender<u64>,
    /// The job changed since start: keep the entry (its generation matters).
    pinned: bool,
}

/// A waiter's view of one job; dropping it may free the job's entry.
pub struct Subscription<'a> {
    notifier: &'a Notifier,
    job: JobName,
    rx: Option<watch::Receiver<u64>>,
}

impl Subscription<'_> {
    /// Resolves at the next bump of the job.
    pub async fn changed(&mut self) {
        let ok = match self.rx.as_mut() {
            Some(rx) => rx.changed().await.is_ok(),
            None => false,
        };
        if !ok {
            // The sender lives as long as any receiver: never here.
            std::future::pending::<()>().await;
        }
    }
}

impl Drop for Subscription<'_> {
    fn drop(&mut self) {
        let mut jobs = self.notifier.jobs.write().unwrap_or_else(|e| e.into_inner());
        drop(self.rx.take());
        if let Some(slot) = jobs.get(&self.job)
            && !slot.pinned
            && slot.tx.receiver_count() == 0
        {
            jobs.remove(&self.job);
        }
        self.notifier.waiting.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Notifier {
    /// Starts waiting on `job`: sees every later [`Notifier::bump`].
    pub fn subscribe(&self, job: &JobName) -> Subscription<'_> {
        let mut jobs = self.jobs.write().unwrap_or_else(|e| e.into_inner());
        let rx = jobs
            .entry(job.clone())
            .or_insert_with(|| Slot {
                tx: watch::channel(0).0,
                pinned: false,
            })
            .tx
            .subscribe();
        self.waiting.fetch_add(1, Ordering::Relaxed);
        Subscription {
            notifier: self,
            job: job.clone(),
            rx: Some(rx),
        }
    }

    /// How many times `job` has changed since the server started: caches
    /// keyed on it are valid while it stays the same.
    pub fn generation(&self, job: &JobName) -> u64 {
        self.jobs
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(job)
            .map(|s| *s.tx.borrow())
            .unwrap_or(0)
    }

    /// Something changed in `job` (it exists): wake its waiters.
    pub fn bump(&self, job: &JobName) {
        let mut jobs = self.jobs.write().unwrap_or_else(|e| e.into_inner());
        let slot = jobs.entry(job.clone()).or_insert_with(|| Slot {
            tx: watch::channel(0).0,
            pinned: true,
        });
        slot.pinned = true;
        slot.tx.send_modify(|n| *n += 1);
    }

    /// Something may have changed in every job (another replica's changes
    /// were missed): wake every waiter, make every cached answer stale.
    pub fn bump_all(&self) {
        let jobs = self.jobs.read().unwrap_or_else(|e| e.into_inner());
        for slot in jobs.values() {
            slot.tx.send_modify(|n| *n += 1);
        }
    }

    /// Forgets a removed job (its builds are gone).
    pub fn forget(&self, job: &JobName) {
        let mut jobs = self.jobs.write().unwrap_or_else(|e| e.into_inner());
        if let Some(slot) = jobs.get_mut(job) {
            slot.tx.send_modify(|n| *n += 1);
            slot.pinned = false;
            if slot.tx.receiver_count() == 0 {
                jobs.remove(job);
            }
        }
    }

    /// Requests waiting right now.
    pub fn waiters(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    /// Jobs with an entry right now (bounded: changed jobs plus waited-on ones).
    pub fn entries(&self) -> usize {
        self.jobs.read().unwrap_or_else(|e| e.into_inner()).len()
    }
}

/// How a wait ended.
pub enum Waited<T> {
    Ready(T),
    /// The wait (or, without one, the single look) found nothing.
    Nothing,
    /// The server is shutting down.
    ShuttingDown,
}

/// Looks with `check` until it finds something, re-looking after each bump
/// of `job`, for at most `wait` (`None`: look once). Subscribes before the
/// first look, so a commit in between is never missed.
pub async fn wait_for<T, E, Fut>(
    notifier: &Notifier,
    shutdown: &CancellationToken,
    job: &JobName,
    wait: Option<Duration>,
    mut check: impl FnMut() -> Fut,
) -> Result<Waited<T>, E>
where
    Fut: Future<Output = Result<Option<T>, E>>,
{
    let Some(wait) = wait else {
        return Ok(check().await?.map_or(Waited::Nothing, Waited::Ready));
    };
    let mut sub = notifier.subscribe(job);
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        if let Some(v) = check().await? {
            return Ok(Waited::Ready(v));
        }
        tokio::select! {
            _ = sub.changed() => {}
            _ = tokio::time::sleep_until(deadline) => return Ok(Waited::Nothing),
            _ = shutdown.cancelled() => return Ok(Waited::ShuttingDown),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bump_wakes_waiters_of_that_job_only() {
        let n = Notifier::default();
        let stop = CancellationToken::new();
        let (a, b): (JobName, JobName) = ("a".parse().unwrap(), "b".parse().unwrap());
        let mut looks = 0;
        let (waited, ()) = tokio::join!(
            wait_for::<u32, (), _>(&n, &stop, &a, Some(Duration::from_secs(30)), || {
                looks += 1;
                let seen = looks;
                async move { Ok((seen > 1).then_some(seen)) }
            }),
            async {
                while n.waiters() == 0 {
                    tokio::task::yield_now().await;
                }
                n.bump(&b);
                n.bump(&a);
            }
        );
        assert!(matches!(waited, Ok(Waited::Ready(2))));
        assert_eq!((n.generation(&a), n.generation(&b)), (1, 1));
    }

    #[tokio::test]
    async fn entries_of_waited_on_jobs_go_with_their_last_waiter() {
        let n = Notifier::default();
        let ghost: JobName = "no-such-job".parse().unwrap();
        let s1 = n.subscribe(&ghost);
        let s2 = n.subscribe(&ghost);
        assert_eq!((n.entries(), n.waiters()), (1, 2));
        drop(s1);
        assert_eq!(n.entries(), 1);
        drop(s2);
        assert_eq!((n.entries(), n.waiters()), (0, 0));
        // A job that changed keeps its entry (and generation).
        let real: JobName = "web".parse().unwrap();
        n.bump(&real);
        drop(n.subscribe(&real));
        assert_eq!((n.entries(), n.generation(&real)), (1, 1));
    }

    #[tokio::test]
    async fn shutdown_ends_waits_at_once() {
        let n = Notifier::default();
        let stop = CancellationToken::new();
        stop.cancel();
        let job: JobName = "web".parse().unwrap();
        let r = wait_for::<(), (), _>(&n, &stop, &job, Some(Duration::from_secs(300)), || async { Ok(None) }).await;
        assert!(matches!(r, Ok(Waited::ShuttingDown)));
        assert_eq!(n.entries(), 0);
    }
}
