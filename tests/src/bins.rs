//! The workspace's binaries as built by cargo (beside the test executable),
//! and waiting for conditions with a deadline instead of sleeping.

use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Path of a workspace binary (`upload`, `fetch-latest`, …).
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap();
    let p = dir.join(name);
    assert!(
        p.exists(),
        "{} is not built; run the tests with `cargo nextest run --workspace`",
        p.display()
    );
    p
}

/// An assert_cmd command for a workspace binary, with a clean UKREPO_ environment.
pub fn cmd(name: &str) -> assert_cmd::Command {
    let mut c = assert_cmd::Command::new(bin(name));
    for (k, _) in std::env::vars() {
        if k.starts_with("UKREPO_") {
            c.env_remove(k);
        }
    }
    c
}

/// Polls `cond` until it holds, failing the test after `deadline`.
pub fn wait_for(what: &str, deadline: Duration, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + deadline;
    while !cond() {
        assert!(
            Instant::now() < end,
            "timed out after {deadline:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Peak RSS (KiB) of all children this process has waited for.
pub fn children_peak_rss_kib() -> i64 {
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    assert_eq!(
        unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) },
        0
    );
    ru.ru_maxrss
}
