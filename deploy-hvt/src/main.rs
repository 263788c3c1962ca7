//! `deploy-hvt`: parse, run, exit (0 ok, 1 nothing to do, 2 refused/error,
//! 3 rolled back, 4 rollback failed).

use clap::Parser;

fn main() -> std::process::ExitCode {
    let args = deploy_hvt::Args::parse();
    uk_cli::exit::main_with("deploy-hvt", || deploy_hvt::run(args))
}
