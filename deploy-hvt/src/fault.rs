//! Fault injection for the crash-safety tests (`tests/tests/deploy.rs`),
//! in its own module so that the steps it interrupts (`flows.rs`,
//! `health.rs`, …) do not import each other for it.

/// Fault injection for the crash-safety tests, compiled in only with the
/// `fault-injection` feature (which `scripts/test.sh` enables, and a
/// release build never has): with `DEPLOY_HVT_CRASH_AT=<point>` in the
/// environment, the process kills itself with SIGKILL when it reaches that
/// point, exactly as an operator's `kill -9` or a power cut would stop it.
#[cfg(feature = "fault-injection")]
pub fn crash_point(point: &str) {
    if std::env::var("DEPLOY_HVT_CRASH_AT").is_ok_and(|p| p == point) {
        let _ = rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::KILL);
    }
}

#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub fn crash_point(_point: &str) {}
