//! What every command-line tool of the workspace shares, kept free of
//! network and TLS code so that a small tool (`compare-hash`) stays small:
//! the exit-code table and `main_with` ([`exit`]), results on stdout and
//! escaped text for people ([`output`]), progress bars ([`progress`]),
//! the connection flags every repository client takes ([`ConnectArgs`]), and
//! byte sizes on the command line ([`size`]).

pub mod args;
pub mod exit;
pub mod output;
pub mod progress;
pub mod size;

pub use args::ConnectArgs;
pub use output::{escaped, out};
