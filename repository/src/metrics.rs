//! Counters the server keeps about itself, shown by `GET /metrics` in the
//! Prometheus text format. They are what an operator (and the hostile-load
//! tests) look at to see that limits hold: password checks actually run,
//! connections refused or closed by a timeout, long-polls waiting.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Default)]
pub struct Metrics {
    pub requests: AtomicU64,
    pub password_checks: AtomicU64,
    pub failed_logins: AtomicU64,
    pub logins_refused: AtomicU64,
    pub connections_accepted: AtomicU64,
    pub connections_refused: AtomicU64,
    pub connections_closed_idle: AtomicU64,
    pub connections_closed_stalled: AtomicU64,
    /// A gauge: long-polls parked outside hyper now (`parking.rs`).
    pub parked: AtomicU64,
    /// `latest` lookups answered from memory, outside hyper (`parking.rs`).
    pub latest_from_memory: AtomicU64,
}

/// Adds one to a counter.
pub fn inc(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

impl Metrics {
    /// The text format; `gauges` are current values owned elsewhere.
    pub fn render(&self, gauges: &[(&str, &str, u64)]) -> String {
        let mut s = String::new();
        let counters: [(&str, &str, &AtomicU64); 9] = [
            ("ukrepo_requests_total", "requests answered", &self.requests),
            (
                "ukrepo_password_checks_total",
                "passwords verified (argon2 runs)",
                &self.password_checks,
            ),
            ("ukrepo_failed_logins_total", "wrong credentials", &self.failed_logins),
            (
                "ukrepo_logins_refused_total",
                "login attempts refused unverified (429 or 503)",
                &self.logins_refused,
            ),
            (
                "ukrepo_connections_accepted_total",
                "connections accepted",
                &self.connections_accepted,
            ),
            (
                "ukrepo_connections_refused_total",
                "connections closed at once: a connection cap was reached",
                &self.connections_refused,
            ),
            (
                "ukrepo_connections_closed_idle_total",
                "connections closed for sending no complete request head in time",
                &self.connections_closed_idle,
            ),
            (
                "ukrepo_connections_closed_stalled_total",
                "connections closed because the client stopped reading",
                &self.connections_closed_stalled,
            ),
            (
                "ukrepo_latest_from_memory_total",
                "latest lookups answered from memory, outside hyper (also counted in ukrepo_requests_total)",
                &self.latest_from_memory,
            ),
        ];
        for (name, help, c) in counters {
            let _ = writeln!(
                s,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                c.load(Ordering::Relaxed)
            );
        }
        for (name, help, v) in gauges {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        }
        s
    }
}
