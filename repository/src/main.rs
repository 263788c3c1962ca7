//! `unikernel-repo`: parse the command line, run, map errors to exit code 2.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = unikernel_repo::Args::parse();
    match unikernel_repo::run(args) {
        Ok(code) => code,
        // A closed stdout (`user list | head -1`) is not an error.
        Err(err)
            if err.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
            }) =>
        {
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("unikernel-repo: error: {err:#}");
            ExitCode::from(2)
        }
    }
}
