//! `compare-hash A B`: is A the same image as B? Each side is a file (hashed
//! while streaming, SHA-NI where the CPU has it) or a 64-hex sha256 digest.
//! The answer is the exit code, so a cron script can chain on it.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Parser;
use uk_client::exit;
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
    if let Ok(d) = arg.parse::<Sha256>() {
        return Ok(Side::Digest(d));
    }
    let path = Path::new(arg);
    match uk_digest::hash_file(path) {
        Ok((d, _)) => Ok(Side::Digest(d)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if missing_ok {
                Ok(Side::Missing)
            } else if looks_like_digest(arg) {
                bail!("{arg:?} is neither an existing file nor a sha256 digest (64 hexadecimal digits)")
            } else {
                bail!("{arg:?} does not exist (use --missing-ok to count a missing file as different)")
            }
        }
        Err(e) => Err(e).with_context(|| format!("hashing {arg:?}")),
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
