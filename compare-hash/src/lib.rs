//! `compare-hash A B`: is A the same image as B? Each side is a file (hashed
//! while streaming, SHA-NI where the CPU has it) or a 64-hex sha256 digest.
//! The answer is the exit code, so a cron script can chain on it.

use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Parser;
use uk_cli::exit;
use uk_digest::Sha256;

#[derive(Parser, Debug)]
#[command(
    name = "compare-hash",
    version,
    about = "Compare two files or sha256 digests: exit 0 if the same, 1 if different, 2 on error.",
    after_help = exit::EXIT_CODES_HELP
)]
pub struct Args {
    /// A file, or a sha256 digest (64 hexadecimal digits).
    pub a: String,
    /// A file, or a sha256 digest (64 hexadecimal digits).
    pub b: String,
    /// A missing file counts as different (exit 1) instead of an error.
    #[arg(long)]
    pub missing_ok: bool,
    /// Print both digests to stderr.
    #[arg(short, long)]
    pub verbose: bool,
}

/// One side of the comparison, resolved.
enum Side {
    Digest(Sha256),
    Missing,
}

fn resolve(arg: &str, missing_ok: bool) -> anyhow::Result<Side> {
    match uk_digest::file_or_digest(arg).with_context(|| format!("hashing {arg:?}"))? {
        Some(d) => Ok(Side::Digest(d)),
        None if missing_ok => Ok(Side::Missing),
        None if looks_like_digest(arg) => {
            bail!("{arg:?} is neither an existing file nor a sha256 digest (64 hexadecimal digits)")
        }
        None => {
            bail!("{arg:?} does not exist (use --missing-ok to count a missing file as different)")
        }
    }
}

/// Hex-only arguments that are not files were meant as digests.
fn looks_like_digest(arg: &str) -> bool {
    !arg.is_empty() && arg.bytes().all(|b| b.is_ascii_hexdigit())
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let a = resolve(&args.a, args.missing_ok)?;
    let b = resolve(&args.b, args.missing_ok)?;
    let same = match (&a, &b) {
        (Side::Digest(x), Side::Digest(y)) => x == y,
        _ => false,
    };
    if args.verbose {
        let show = |s: &Side| match s {
            Side::Digest(d) => d.to_string(),
            Side::Missing => "(missing)".into(),
        };
        eprintln!("{}  {}\n{}  {}", show(&a), args.a, show(&b), args.b);
    }
    Ok(exit::code(if same { exit::SUCCESS } else { exit::NEGATIVE }))
}
