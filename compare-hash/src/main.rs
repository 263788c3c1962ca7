//! `compare-hash`: parse, run, exit (0 same, 1 different, 2 error).

use clap::Parser;

fn main() -> std::process::ExitCode {
    let args = compare_hash::Args::parse();
    uk_cli::exit::main_with("compare-hash", || compare_hash::run(args))
}
