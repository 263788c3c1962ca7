//! The client side of the repository's HTTP API, shared by `upload`,
//! `fetch-latest` and `deploy-hvt`: a [`Client`] built from the connection
//! flags (`uk_cli::ConnectArgs`) with credentials and CA, retries with
//! backoff ([`retry`]), and resumable verified downloads ([`download`]).
//! Exit codes, output and progress bars live in `uk-cli`, which has no
//! network code.

pub mod client;
pub mod download;
pub mod retry;
pub mod tls;

pub use client::{Client, ClientError, Current, IDLE_TIMEOUT};
pub use uk_cli::ConnectArgs;
