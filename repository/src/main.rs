//! `unikernel-repo`: parse the command line, run, map errors to exit code 2.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = unikernel_repo::Args::parse();
    match unikernel_repo::run(args) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("unikernel-repo: error: {err:#}");
            ExitCode::from(2)
        }
    }
}
