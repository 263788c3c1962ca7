//! `deploy-hvt`: replace a running Solo5 unikernel without fear. `deploy`
//! verifies an image before anything running is touched, stores it under
//! `images/`, switches `current`, restarts the tender and checks its health;
//! an unhealthy image is replaced by the previous one within seconds (exit 3).
//! See `flows.rs` for the order of steps, `state.rs` for the files on disk.

mod config;
mod flows;
mod health;
mod journal;
mod lock;
mod report;
mod state;
mod status;
mod tender;
mod verify;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use uk_cli::exit;
use uk_digest::Sha256;

pub use config::{Config, ConfigArgs};
use flows::Outcome;

#[derive(Parser, Debug)]
#[command(
    name = "deploy-hvt",
    version,
    about = "Deploy a Solo5 unikernel image: verify, swap atomically, restart, health-check, roll back.",
    after_help = exit::EXIT_CODES_HELP
)]
pub struct Args {
    #[command(subcommand)]
    pub command: Cmd,
}

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Verify IMAGE, make it current, restart, check health; roll back if unhealthy.
    Deploy {
        #[command(flatten)]
        config: ConfigArgs,
        /// Refuse the image unless its sha256 is this.
        #[arg(long, value_name = "HEX")]
        expect_sha256: Option<Sha256>,
        /// Deploy even an image that already failed its health check here.
        #[arg(long, env = "UKREPO_RETRY_FAILED")]
        retry_failed: bool,
        /// The unikernel image.
        image: PathBuf,
    },
    /// Switch back to the previous image (restart and health check as deploy).
    Rollback {
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Show current, previous, running and the last deploy.
    Status {
        #[command(flatten)]
        config: ConfigArgs,
        /// As JSON.
        #[arg(long)]
        json: bool,
        /// Print only the unikernel's state folder (for scripts).
        #[arg(long, conflicts_with = "json")]
        print_dir: bool,
    },
    /// Start the current image if it is not running (after a reboot).
    Start {
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Stop the running tender.
    Stop {
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Send deployment reports that could not be delivered yet.
    Report {
        #[command(flatten)]
        config: ConfigArgs,
    },
}

fn report(outcome: Outcome) -> ExitCode {
    match outcome {
        Outcome::Done => exit::code(exit::SUCCESS),
        Outcome::Nothing { negative, why } => {
            eprintln!("deploy-hvt: nothing to do: {why}");
            exit::code(if negative { exit::NEGATIVE } else { exit::SUCCESS })
        }
        Outcome::RolledBack(why) => {
            eprintln!("deploy-hvt: rolled back: {why}");
            exit::code(exit::ROLLED_BACK)
        }
        Outcome::RestoreFailed(why) => {
            eprintln!("deploy-hvt: failed, and nothing healthy could be restored: {why}");
            exit::code(exit::ROLLBACK_FAILED)
        }
    }
}

/// Sends pending deployment reports; never fails the command.
fn flush_reports(cfg: &Config, a: &ConfigArgs) {
    match report::Reporter::new(&a.report, false) {
        Ok(Some(r)) => {
            if let Ok(state) = state::State::open(&cfg.dir) {
                r.flush(&state, &cfg.job);
            }
        }
        Ok(None) => {}
        Err(e) => eprintln!("deploy-hvt: not reporting deployments: {e:#}"),
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    journal::mark_run_started();
    let (Cmd::Deploy { config, .. }
    | Cmd::Rollback { config }
    | Cmd::Status { config, .. }
    | Cmd::Start { config }
    | Cmd::Stop { config }
    | Cmd::Report { config }) = &args.command;
    let a = config.clone();
    let cfg = Config::load(&a)?;
    let result = run_command(&cfg, args.command);
    flush_reports(&cfg, &a);
    result
}

fn run_command(cfg: &Config, command: Cmd) -> anyhow::Result<ExitCode> {
    match command {
        Cmd::Deploy {
            expect_sha256,
            retry_failed,
            image,
            ..
        } => Ok(report(flows::deploy(
            cfg,
            &image,
            expect_sha256.as_ref(),
            retry_failed,
        )?)),
        Cmd::Rollback { .. } => Ok(report(flows::rollback(cfg)?)),
        Cmd::Start { .. } => Ok(report(flows::start(cfg)?)),
        Cmd::Stop { .. } => Ok(report(flows::stop(cfg)?)),
        Cmd::Report { .. } => Ok(exit::code(exit::SUCCESS)),
        Cmd::Status { json, print_dir, .. } => {
            if print_dir {
                exit::out(cfg.dir.display())?;
                return Ok(exit::code(exit::SUCCESS));
            }
            let s = status::status(cfg)?;
            if json {
                exit::out(serde_json::to_string(&s)?)?;
            } else {
                exit::out(status::text(&s))?;
            }
            Ok(exit::code(exit::SUCCESS))
        }
    }
}
