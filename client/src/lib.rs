//! The client side of the repository's HTTP API, shared by `upload`,
//! `fetch-latest` and `deploy-hvt`: connection flags and credentials
//! ([`ConnectArgs`] → [`Client`]), retries with backoff ([`retry`]), resumable
//! verified downloads ([`download`]), progress bars, and the exit-code table
//! every tool prints in its `--help` ([`exit`]).

pub mod args;
pub mod client;
pub mod download;
pub mod exit;
pub mod progress;
pub mod retry;

pub use args::ConnectArgs;
pub use client::{Client, ClientError};
