//! What every command-line tool of the workspace shares, kept free of
//! network and TLS code so that a small tool (`compare-hash`) stays small:
//! the exit-code table and `main_with` ([`exit`]), results on stdout and
//! escaped text for people ([`output`]), progress bars ([`progress`]), and
//! the connection flags every repository client takes ([`ConnectArgs`]).

pub mod args;
pub mod exit;
pub mod output;
pub mod progress;

pub use args::ConnectArgs;
pub use output::{escaped, out};
