//! Helpers for the end-to-end tests in `tests/tests/`: the real server
//! in-process ([`server`]) on the backend under test ([`backend`], over
//! the real engines of [`services`]), the built binaries and child
//! processes ([`bins`]), the Solo5 images and tenders ([`solo5`]), a
//! unikernel host ([`host`]), and the host's scripts as they run for real
//! ([`watcher`]).

pub mod backend;
pub mod bins;
pub mod browser;
pub mod host;
pub mod hostile;
pub mod process;
pub mod sample;
pub mod server;
pub mod services;
pub mod shape;
pub mod solo5;
pub mod watcher;
