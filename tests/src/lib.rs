//! Helpers for the end-to-end tests in `tests/tests/`: the real server
//! in-process ([`server`]) on the backend under test ([`backend`], over
//! the real engines of [`services`]), the built binaries and child
//! processes ([`bins`]), and the Solo5 images and tenders ([`solo5`]).

pub mod backend;
pub mod bins;
pub mod host;
pub mod hostile;
pub mod process;
pub mod server;
pub mod services;
pub mod solo5;
