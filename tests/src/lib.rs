//! Helpers for the end-to-end tests in `tests/tests/`: the real server
//! in-process ([`server`]), the built binaries and child processes
//! ([`bins`]), the Solo5 images and tenders ([`solo5`]), a unikernel host
//! ([`host`]), and the host's scripts as they run for real ([`watcher`]).

pub mod bins;
pub mod browser;
pub mod host;
pub mod hostile;
pub mod process;
pub mod sample;
pub mod server;
pub mod shape;
pub mod solo5;
pub mod watcher;
