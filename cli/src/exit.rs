//! The exit codes of CONTRACT.md §4, the same for every tool.

use std::process::ExitCode;

pub const SUCCESS: u8 = 0;
/// A negative answer, not an error.
pub const NEGATIVE: u8 = 1;
pub const ERROR: u8 = 2;
pub const ROLLED_BACK: u8 = 3;
pub const ROLLBACK_FAILED: u8 = 4;

pub fn code(c: u8) -> ExitCode {
    ExitCode::from(c)
}

/// Shown at the end of every tool's `--help`.
pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  success
  1  a negative answer, not an error (a difference was found; nothing new;
     a wait ended with no change)
  2  error (bad arguments, network, verification failure, ...): nothing was changed
  3  deploy-hvt: the new image failed its checks; the previous one was restored and runs
  4  deploy-hvt: the new image failed and the previous one could not be restored";

pub use crate::output::out;

/// The shape of every tool's `main`: run, print `<tool>: error: …` with the
/// cause chain on failure (control characters escaped: causes may quote a
/// server) and exit 2. A closed stdout (`| head`) is not an error.
pub fn main_with(tool: &str, run: impl FnOnce() -> anyhow::Result<ExitCode>) -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(err) => {
            let broken_pipe = err.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
            });
            if broken_pipe {
                return ExitCode::SUCCESS;
            }
            eprintln!("{tool}: error: {}", crate::output::escaped(&format!("{err:#}")));
            ExitCode::from(ERROR)
        }
    }
}
