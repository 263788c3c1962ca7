//! `fetch-latest`: ask the repository for the latest build of a job (or for
//! one build, `--build UUID`) and either print what it is (`--print-sha256`,
//! `--print-build`: nothing downloaded) or install it at `--output PATH`:
//! downloaded beside PATH while hashed, checked against the build's size and
//! sha256, fsynced, renamed, with `PATH.minisig` and `PATH.build.json` beside
//! it. With `--if-differs-from`, nothing is downloaded when PATH (or the
//! given digest or build) already is the latest: exit 1.
//!
//! The repository is trusted no further than it must be ([`select`]): the
//! build it names must be of the job and platform asked for, signatures are
//! checked against the job asked for, downloads stop at `--max-size` and
//! after `--idle-timeout` without a byte, and a killed run's temporary files
//! are removed by the next one ([`install`]).

mod install;
mod select;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use uk_cli::exit;
use uk_cli::size::{parse_size, show_size};
use uk_client::{Client, ConnectArgs, Current};
use uk_names::{BuildId, JobName, PlatformName};

#[derive(Parser, Debug)]
#[command(
    name = "fetch-latest",
    version,
    about = "Fetch the latest image of a job from the unikernel repository, verified and installed atomically.",
    after_help = exit::EXIT_CODES_HELP
)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["print_sha256", "print_build", "output"])))]
pub struct Args {
    /// The job whose latest build to fetch.
    #[arg(long, env = "UKREPO_JOB")]
    pub job: JobName,

    /// Only builds of this platform (default: any).
    #[arg(long, env = "UKREPO_PLATFORM")]
    pub platform: Option<PlatformName>,

    /// Print the latest main binary's sha256 and exit, downloading nothing.
    #[arg(long, conflicts_with_all = ["if_differs_from", "print_build"])]
    pub print_sha256: bool,

    /// Print `<sha256> <build uuid>` of the latest build and exit, downloading nothing.
    #[arg(long)]
    pub print_build: bool,

    /// Fetch exactly this build of the job instead of the latest.
    #[arg(long, value_name = "UUID", conflicts_with = "wait")]
    pub build: Option<BuildId>,

    /// Install the image here (atomically; untouched on any failure). Prints
    /// `<sha256>  <PATH>`; the build's signature (if any) goes to PATH.minisig
    /// and which build it is to PATH.build.json.
    #[arg(long, short, conflicts_with = "print_build")]
    pub output: Option<PathBuf>,

    /// A file, a sha256 or a build uuid: when the latest build is the same,
    /// download nothing and exit 1. A missing file counts as different.
    #[arg(long, value_name = "FILE_OR_HEX_OR_UUID")]
    pub if_differs_from: Option<String>,

    /// Require a minisign signature by this public key (the build's
    /// `.minisig`, checked with its trusted comment against --job).
    #[arg(long, env = "UKREPO_VERIFY_KEY", value_name = "PUBKEY")]
    pub verify_key: Option<PathBuf>,

    /// With --if-differs-from: first wait up to DURATION (one long-poll; the
    /// server caps it at 5 minutes) for a build that differs; exit 1 if none came.
    #[arg(long, value_name = "DURATION", requires = "if_differs_from", value_parser = humantime::parse_duration)]
    pub wait: Option<Duration>,

    /// Refuse images larger than this (e.g. 512M, 1G).
    #[arg(long, env = "UKREPO_MAX_SIZE", value_name = "SIZE", default_value = "1G", value_parser = parse_size)]
    pub max_size: u64,

    /// Give up on a download (and retry it) after this long without a byte.
    #[arg(long, env = "UKREPO_IDLE_TIMEOUT", value_name = "DURATION", default_value = "30s", value_parser = humantime::parse_duration)]
    pub idle_timeout: Duration,

    #[command(flatten)]
    pub connect: ConnectArgs,
}

/// `--if-differs-from`: a build id, a digest, or a file to hash.
fn current_of(arg: &str) -> anyhow::Result<Option<Current>> {
    if let Ok(b) = arg.parse::<BuildId>() {
        return Ok(Some(Current::Build(b)));
    }
    Ok(uk_digest::file_or_digest(arg)
        .with_context(|| format!("hashing {arg:?}"))?
        .map(Current::Sha256))
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if let Some(out) = &args.output {
        install::remove_stale(out);
    }
    let mut client = Client::new(&args.connect)?;
    client.idle_timeout = args.idle_timeout;
    let current = match &args.if_differs_from {
        Some(other) => current_of(other)?,
        None => None,
    };
    let want = select::Want {
        job: &args.job,
        platform: args.platform.as_ref(),
        build: args.build.as_ref(),
    };
    let Some((build, main)) = select::build(&client, &want, current.as_ref(), args.wait)? else {
        return Ok(exit::code(exit::NEGATIVE));
    };
    if main.size > args.max_size {
        anyhow::bail!(
            "build {} of job {:?}: its image is {} bytes, more than --max-size {}",
            build.uuid,
            args.job.as_str(),
            main.size,
            show_size(args.max_size)
        );
    }
    let same = match &current {
        Some(Current::Sha256(s)) => *s == main.sha256,
        Some(Current::Build(b)) => *b == build.uuid,
        None => false,
    };
    if same {
        if args.connect.verbose {
            eprintln!(
                "nothing new: the latest build {} has sha256 {}",
                build.uuid, main.sha256
            );
        }
        return Ok(exit::code(exit::NEGATIVE));
    }
    if args.print_sha256 {
        exit::out(main.sha256)?;
        return Ok(exit::code(exit::SUCCESS));
    }
    if args.print_build {
        exit::out(format!("{} {}", main.sha256, build.uuid))?;
        return Ok(exit::code(exit::SUCCESS));
    }
    let output = args
        .output
        .expect("clap requires one of --print-sha256, --print-build, --output");
    install::install(&client, &args.job, &build, &main, &output, args.verify_key.as_deref())?;
    exit::out(format!("{}  {}", main.sha256, output.display()))?;
    Ok(exit::code(exit::SUCCESS))
}
