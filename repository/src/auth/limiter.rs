//! Failed-login rate limiting per client address: after `max` failures within
//! `window`, every further login attempt from that address gets 429 until the
//! window has passed since its first failure.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::error::ApiError;

pub struct LoginLimiter {
    max: u32,
    window: Duration,
    failures: Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

impl LoginLimiter {
    pub fn new(max: u32, window: Duration) -> Self {
        LoginLimiter {
            max,
            window,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// Refuses when the address has used up its failures.
    pub fn check(&self, ip: IpAddr) -> Result<(), ApiError> {
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        match map.get(&ip) {
            Some(&(n, since)) if since.elapsed() < self.window && n >= self.max => Err(ApiError::TooManyLogins),
            Some(&(_, since)) if since.elapsed() >= self.window => {
                map.remove(&ip);
                Ok(())
            }
            _ => Ok(()),
        }
    }

    pub fn fail(&self, ip: IpAddr) {
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        // Keep the table bounded: drop expired entries when it grows.
        if map.len() > 10_000 {
            let window = self.window;
            map.retain(|_, (_, since)| since.elapsed() < window);
        }
        let e = map.entry(ip).or_insert((0, Instant::now()));
        e.0 += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_out_after_max_failures_per_address() {
        let l = LoginLimiter::new(2, Duration::from_secs(60));
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        assert!(l.check(a).is_ok());
        l.fail(a);
        assert!(l.check(a).is_ok());
        l.fail(a);
        assert!(matches!(l.check(a), Err(ApiError::TooManyLogins)));
        assert!(l.check(b).is_ok());
    }

    #[test]
    fn window_expiry_clears() {
        let l = LoginLimiter::new(1, Duration::ZERO);
        let a: IpAddr = "::1".parse().unwrap();
        l.fail(a);
        assert!(l.check(a).is_ok());
    }
}
