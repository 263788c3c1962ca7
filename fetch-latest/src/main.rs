//! `fetch-latest`: parse, run, exit (0 fetched, 1 nothing new, 2 error).

use clap::Parser;

fn main() -> std::process::ExitCode {
    let args = fetch_latest::Args::parse();
    uk_cli::exit::main_with("fetch-latest", || fetch_latest::run(args))
}
