//! `deploy-hvt`: replace a running Solo5 unikernel without fear, and keep it
//! running with nobody watching. `deploy` verifies an image before anything
//! running is touched, stores it under `images/`, switches `current`,
//! restarts the tender and checks its health; an unhealthy image is replaced
//! by the previous one within seconds (exit 3). `rollback` is sticky, `hold`
//! stops deploys, `start --unattended` and `supervise` bring a dead tender
//! back. See `flows.rs` for the shared steps, `state.rs` and `marks.rs` for
//! the files on disk, `report.rs` for what the repository hears.

mod command;
mod config;
mod console;
mod deploy;
mod fault;
mod flows;
mod health;
mod hold;
mod journal;
mod lock;
mod marks;
mod report;
mod rollback;
mod start;
mod state;
mod status;
mod supervise;
mod tender;
mod user;
mod verify;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use uk_cli::exit;
use uk_cli::size::parse_size;
use uk_digest::Sha256;
use uk_names::BuildId;

pub use config::{Config, ConfigArgs};
use flows::{Outcome, Session};
use start::Who;

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
        /// Deploy even an image that failed here or was rolled back from.
        #[arg(long, env = "UKREPO_RETRY_FAILED")]
        retry_failed: bool,
        /// The repository build IMAGE is (of --job), for the deployment
        /// report [default: from IMAGE.build.json, written by fetch-latest].
        #[arg(long, value_name = "UUID")]
        build: Option<BuildId>,
        /// Refuse images larger than this.
        #[arg(long, env = "UKREPO_MAX_SIZE", value_name = "SIZE", default_value = "1G", value_parser = parse_size)]
        max_size: u64,
        /// No message when nothing changed (exit 0 or 1), as the scripts want.
        #[arg(long, short)]
        quiet: bool,
        /// The unikernel image.
        image: PathBuf,
    },
    /// Go back to the previous image (or --to a kept one); the image left is
    /// not deployed again unattended until deploy --retry-failed.
    Rollback {
        #[command(flatten)]
        config: ConfigArgs,
        /// A kept image's sha256 (or its first digits) instead of previous.
        #[arg(long, value_name = "SHA")]
        to: Option<String>,
    },
    /// Show current, previous, running, the hold and failed images; exit 0
    /// when the unikernel runs, 1 when it does not.
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
    /// Start the current image if it is not running (after a reboot, a crash).
    Start {
        #[command(flatten)]
        config: ConfigArgs,
        /// As the cron script runs it: leave a unikernel stopped by `stop`
        /// (or whose image failed here) alone, roll back a new image that
        /// keeps dying, say nothing when nothing needs doing.
        #[arg(long)]
        unattended: bool,
    },
    /// Stop the running tender; supervision leaves it stopped until `start`.
    Stop {
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Deploy nothing until `unhold` (the running unikernel stays supervised).
    Hold {
        #[command(flatten)]
        config: ConfigArgs,
        /// Why, for `status` and the reports of refused builds.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Allow deploys again; the next cron or watcher run deploys the latest build.
    Unhold {
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Keep the tender running: restart it within moments when it dies (the
    /// watcher runs this). Runs until killed.
    Supervise {
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Send deployment reports that could not be delivered yet.
    Report {
        #[command(flatten)]
        config: ConfigArgs,
    },
}

impl Cmd {
    fn config(&self) -> &ConfigArgs {
        match self {
            Cmd::Deploy { config, .. }
            | Cmd::Rollback { config, .. }
            | Cmd::Status { config, .. }
            | Cmd::Start { config, .. }
            | Cmd::Stop { config }
            | Cmd::Hold { config, .. }
            | Cmd::Unhold { config }
            | Cmd::Supervise { config }
            | Cmd::Report { config } => config,
        }
    }
}

/// One line for the operator (stderr) and the exit code.
fn report(outcome: Outcome, quiet: bool) -> ExitCode {
    match outcome {
        Outcome::Changed(line) => {
            eprintln!("deploy-hvt: {line}");
            exit::code(exit::SUCCESS)
        }
        Outcome::Nothing { negative, why } => {
            if !quiet {
                eprintln!("deploy-hvt: nothing to do: {why}");
            }
            exit::code(if negative { exit::NEGATIVE } else { exit::SUCCESS })
        }
        Outcome::RolledBack(line) => {
            eprintln!("deploy-hvt: {line}");
            exit::code(exit::ROLLED_BACK)
        }
        Outcome::RestoreFailed(why) => {
            eprintln!("deploy-hvt: failed, and nothing healthy could be restored: {why}");
            exit::code(exit::ROLLBACK_FAILED)
        }
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    journal::mark_run_started();
    let cfg = Config::load(args.command.config())?;
    let reporter = match report::Reporter::new(&args.command.config().report, false) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("deploy-hvt: not reporting deployments: {e:#}");
            None
        }
    };
    let quiet = match &args.command {
        Cmd::Status { json, print_dir, .. } => return status(&cfg, *json, *print_dir),
        Cmd::Supervise { .. } => return supervise::supervise(&cfg, reporter.as_ref()),
        Cmd::Deploy { quiet, .. } => *quiet,
        Cmd::Start { unattended, .. } => *unattended,
        Cmd::Report { .. } => true,
        _ => false,
    };
    let s = Session::open(&cfg)?;
    let result = run_locked(&s, args.command);
    // Sent under the lock: two runs never send the same report.
    if let Some(r) = &reporter {
        r.flush(&s.state);
    }
    Ok(report(result?, quiet))
}

fn run_locked(s: &Session<'_>, command: Cmd) -> anyhow::Result<Outcome> {
    match command {
        Cmd::Deploy {
            expect_sha256,
            retry_failed,
            build,
            max_size,
            image,
            ..
        } => deploy::deploy(
            s,
            &deploy::DeployArgs {
                image: &image,
                expect: expect_sha256.as_ref(),
                retry_failed,
                build,
                max_size,
            },
        ),
        Cmd::Rollback { to, .. } => rollback::rollback(s, to.as_deref()),
        Cmd::Start { unattended, .. } => start::start(s, if unattended { Who::Supervision } else { Who::Operator }),
        Cmd::Stop { .. } => start::stop(s),
        Cmd::Hold { reason, .. } => hold::hold(s, reason),
        Cmd::Unhold { .. } => hold::unhold(s),
        Cmd::Report { .. } => Ok(Outcome::Nothing {
            negative: false,
            why: String::new(),
        }),
        Cmd::Status { .. } | Cmd::Supervise { .. } => unreachable!("not run under the lock"),
    }
}

fn status(cfg: &Config, json: bool, print_dir: bool) -> anyhow::Result<ExitCode> {
    if print_dir {
        let state = state::State::open(&cfg.dir)?;
        exit::out(state.dir.display())?;
        return Ok(exit::code(exit::SUCCESS));
    }
    let s = status::status(cfg)?;
    if json {
        exit::out(serde_json::to_string(&s)?)?;
    } else {
        exit::out(status::text(&s))?;
    }
    Ok(exit::code(if s.runs { exit::SUCCESS } else { exit::NEGATIVE }))
}
