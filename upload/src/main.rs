//! `upload`: parse, run, exit (0 uploaded, 2 error).

use clap::Parser;

fn main() -> std::process::ExitCode {
    let args = upload::Args::parse();
    uk_cli::exit::main_with("upload", || upload::run(args))
}
