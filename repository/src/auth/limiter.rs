//! Failed-login rate limiting per client address. An attempt is *reserved*
//! before its credentials are verified, and the failures plus the attempts
//! in flight of one address never exceed `max`: however many guesses arrive
//! at once, at most `max` per address per `window` are ever evaluated.
//! Attempts beyond that wait (briefly) for one in flight to end: a success
//! gives its place back, a failure keeps it, and once `max` have failed the
//! address gets 429 until the window has passed. So a CI farm behind one
//! address may upload concurrently, and an attacker's burst costs `max`
//! checks. IPv6 peers are counted per /64 (one host usually owns a whole
//! /64). The table is bounded: when it is full of live entries, new
//! addresses get 503 instead of growing it.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::error::ApiError;
use crate::net::peer_key;

/// Addresses tracked at most (a few MiB).
const MAX_ADDRESSES: usize = 65_536;

pub struct LoginLimiter {
    max: u32,
    window: Duration,
    table: Mutex<HashMap<IpAddr, Slot>>,
    /// Wakes attempts waiting for a place when one ends.
    ended: tokio::sync::Notify,
}

#[derive(Clone, Copy)]
struct Slot {
    failed: u32,
    inflight: u32,
    /// Start of the window the failures count in.
    since: Instant,
}

/// One attempt being verified; dropped without [`Reservation::succeeded`]
/// it counts as a failure.
pub struct Reservation {
    limiter: Arc<LoginLimiter>,
    key: IpAddr,
    succeeded: bool,
}

impl Reservation {
    pub fn succeeded(mut self) {
        self.succeeded = true;
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        {
            let mut t = self.limiter.table.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(s) = t.get_mut(&self.key) {
                s.inflight = s.inflight.saturating_sub(1);
                if !self.succeeded {
                    if s.failed == 0 {
                        s.since = Instant::now();
                    }
                    s.failed += 1;
                }
            }
        }
        self.limiter.ended.notify_waiters();
    }
}

impl LoginLimiter {
    pub fn new(max: u32, window: Duration) -> Self {
        LoginLimiter {
            max: max.max(1),
            window,
            table: Mutex::new(HashMap::new()),
            ended: tokio::sync::Notify::new(),
        }
    }

    /// A place for one attempt from `ip`; `Ok(None)` when all its places
    /// are taken by attempts in flight.
    fn try_reserve(self: &Arc<Self>, ip: IpAddr) -> Result<Option<Reservation>, ApiError> {
        let key = peer_key(ip);
        let mut t = self.table.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if !t.contains_key(&key) && t.len() >= MAX_ADDRESSES {
            let window = self.window;
            t.retain(|_, s| s.inflight > 0 || (s.failed > 0 && now.duration_since(s.since) < window));
            if t.len() >= MAX_ADDRESSES {
                return Err(ApiError::Busy(
                    "too many clients are logging in; try again later".into(),
                ));
            }
        }
        let slot = t.entry(key).or_insert(Slot {
            failed: 0,
            inflight: 0,
            since: now,
        });
        if slot.failed > 0 && now.duration_since(slot.since) >= self.window {
            slot.failed = 0;
        }
        if slot.failed >= self.max {
            return Err(ApiError::TooManyLogins);
        }
        if slot.failed + slot.inflight >= self.max {
            return Ok(None);
        }
        slot.inflight += 1;
        Ok(Some(Reservation {
            limiter: self.clone(),
            key,
            succeeded: false,
        }))
    }

    /// Reserves one attempt for `ip`, waiting up to `wait` for a place: 429
    /// when its failures are used up, 503 when no place came free in time.
    pub async fn reserve(self: &Arc<Self>, ip: IpAddr, wait: Duration) -> Result<Reservation, ApiError> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let ended = self.ended.notified();
            tokio::pin!(ended);
            ended.as_mut().enable();
            if let Some(r) = self.try_reserve(ip)? {
                return Ok(r);
            }
            if tokio::time::timeout_at(deadline, ended).await.is_err() {
                return Err(ApiError::Busy(
                    "too many logins from this address at once; try again shortly".into(),
                ));
            }
        }
    }

    /// Addresses tracked now.
    pub fn tracked(&self) -> usize {
        self.table.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Duration = Duration::ZERO;

    #[tokio::test]
    async fn failures_and_attempts_in_flight_never_exceed_max() {
        let l = Arc::new(LoginLimiter::new(2, Duration::from_secs(60)));
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        let r1 = l.reserve(a, NOW).await.unwrap();
        let r2 = l.reserve(a, NOW).await.unwrap();
        // Both places are in flight: a third waits, and without waiting gets 503.
        assert!(matches!(l.reserve(a, NOW).await, Err(ApiError::Busy(_))));
        assert!(l.reserve(b, NOW).await.is_ok(), "other addresses are not affected");
        // A success gives its place back; a failure keeps it.
        r1.succeeded();
        let r3 = l.reserve(a, NOW).await.unwrap();
        drop(r2);
        drop(r3);
        assert!(matches!(l.reserve(a, NOW).await, Err(ApiError::TooManyLogins)));
    }

    #[tokio::test]
    async fn a_waiting_attempt_gets_the_place_a_success_frees() {
        let l = Arc::new(LoginLimiter::new(1, Duration::from_secs(60)));
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let first = l.reserve(a, NOW).await.unwrap();
        let (second, ()) = tokio::join!(l.reserve(a, Duration::from_secs(30)), async move {
            tokio::task::yield_now().await;
            first.succeeded();
        });
        assert!(second.is_ok());
    }

    #[tokio::test]
    async fn ipv6_is_counted_per_64_and_the_window_expires() {
        let l = Arc::new(LoginLimiter::new(1, Duration::from_secs(60)));
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let same64: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let other64: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        drop(l.reserve(a, NOW).await.unwrap());
        assert!(matches!(l.reserve(same64, NOW).await, Err(ApiError::TooManyLogins)));
        assert!(l.reserve(other64, NOW).await.is_ok());
        let l = Arc::new(LoginLimiter::new(1, Duration::ZERO));
        drop(l.reserve(a, NOW).await.unwrap());
        assert!(l.reserve(a, NOW).await.is_ok());
    }
}
