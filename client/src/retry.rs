//! Retrying transient failures (connection errors, 5xx, 429) with
//! exponential backoff and a bound. Only callers whose request is safe to
//! repeat use it: reads, and uploads (the server answers an identical retry
//! with the existing build).

use std::time::Duration;

/// Base delay; doubled each attempt, capped at [`MAX_DELAY`].
pub const BASE_DELAY: Duration = Duration::from_millis(200);
pub const MAX_DELAY: Duration = Duration::from_secs(10);

/// What an attempt's failure means for the next one.
pub enum Attempt<T, E> {
    Done(T),
    /// Try again (after the backoff) unless attempts are used up.
    Transient(E),
    /// Give up at once.
    Fatal(E),
}

pub fn delay(attempt: u32) -> Duration {
    BASE_DELAY.saturating_mul(1u32 << attempt.min(16)).min(MAX_DELAY)
}

/// Runs `f` up to `1 + retries` times; `f` gets the attempt number.
pub fn with_retries<T, E: std::fmt::Display>(
    retries: u32,
    verbose: bool,
    mut f: impl FnMut(u32) -> Attempt<T, E>,
) -> Result<T, E> {
    let mut attempt = 0;
    loop {
        match f(attempt) {
            Attempt::Done(v) => return Ok(v),
            Attempt::Fatal(e) => return Err(e),
            Attempt::Transient(e) if attempt >= retries => return Err(e),
            Attempt::Transient(e) => {
                let d = delay(attempt);
                if verbose {
                    // The error may quote the server: escaped.
                    let e = uk_cli::escaped(&e.to_string()).to_string();
                    eprintln!("attempt {} failed: {e}; retrying in {d:?}", attempt + 1);
                }
                std::thread::sleep(d);
                attempt += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        assert_eq!(delay(0), BASE_DELAY);
        assert_eq!(delay(1), BASE_DELAY * 2);
        assert_eq!(delay(30), MAX_DELAY);
    }

    #[test]
    fn transient_then_success_and_fatal_stops() {
        let r: Result<u32, String> = with_retries(3, false, |n| {
            if n < 1 {
                Attempt::Transient("x".into())
            } else {
                Attempt::Done(n)
            }
        });
        assert_eq!(r, Ok(1));
        let mut calls = 0;
        let r: Result<(), String> = with_retries(3, false, |_| {
            calls += 1;
            Attempt::Fatal("no".into())
        });
        assert_eq!((r, calls), (Err("no".into()), 1));
        let r: Result<(), String> = with_retries(0, false, |_| Attempt::Transient("t".into()));
        assert_eq!(r, Err("t".into()));
    }
}
