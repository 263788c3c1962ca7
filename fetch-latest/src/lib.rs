//! `fetch-latest`: ask the repository for the latest build of a job and
//! either print its main binary's sha256 (`--print-sha256`, nothing
//! downloaded) or install it at `--output PATH`: downloaded beside PATH while
//! hashed, checked against the build's size and sha256, fsynced, renamed.
//! With `--if-differs-from`, nothing is downloaded when PATH (or the given
//! digest) already is the latest: exit 1.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use uk_cli::exit;
use uk_client::{Client, ConnectArgs, download};
use uk_names::{JobName, PlatformName};

#[derive(Parser, Debug)]
#[command(
    name = "fetch-latest",
    version,
    about = "Fetch the latest image of a job from the unikernel repository, verified and installed atomically.",
    after_help = exit::EXIT_CODES_HELP
)]
pub struct Args {
    /// The job whose latest build to fetch.
    #[arg(long, env = "UKREPO_JOB")]
    pub job: JobName,

    /// Only builds of this platform (default: any).
    #[arg(long, env = "UKREPO_PLATFORM")]
    pub platform: Option<PlatformName>,

    /// Print the latest main binary's sha256 and exit, downloading nothing.
    #[arg(long, conflicts_with_all = ["output", "if_differs_from"], required_unless_present = "output")]
    pub print_sha256: bool,

    /// Install the image here (atomically; untouched on any failure). Prints `<sha256>  <PATH>`.
    #[arg(long, short)]
    pub output: Option<PathBuf>,

    /// A file or a sha256: when the latest image is the same, download nothing and exit 1.
    /// A missing file counts as different.
    #[arg(long, value_name = "FILE_OR_HEX", requires = "output")]
    pub if_differs_from: Option<String>,

    /// Require a minisign signature by this public key (the build's
    /// `.minisig`, checked with its trusted comment); it is saved as PATH.minisig.
    #[arg(long, env = "UKREPO_VERIFY_KEY", value_name = "PUBKEY")]
    pub verify_key: Option<PathBuf>,

    /// With --if-differs-from: first wait up to DURATION (one long-poll; the
    /// server caps it at 5 minutes) for a build that differs; exit 1 if none came.
    #[arg(long, value_name = "DURATION", requires = "if_differs_from", value_parser = humantime::parse_duration)]
    pub wait: Option<std::time::Duration>,

    #[command(flatten)]
    pub connect: ConnectArgs,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let client = Client::new(&args.connect)?;
    let current = match &args.if_differs_from {
        Some(other) => uk_digest::file_or_digest(other).with_context(|| format!("hashing {other:?}"))?,
        None => None,
    };
    let lookup = || format!("looking up the latest build of job {:?}", args.job.as_str());
    let build = match (args.wait, &current) {
        (Some(wait), Some(cur)) => match client
            .wait_for_new_build(&args.job, args.platform.as_ref(), cur, wait)
            .with_context(lookup)?
        {
            Some(b) => b,
            None => {
                if args.connect.verbose {
                    eprintln!("nothing new within {wait:?}: the latest build still has sha256 {cur}");
                }
                return Ok(exit::code(exit::NEGATIVE));
            }
        },
        _ => client
            .latest_build(&args.job, args.platform.as_ref())
            .with_context(lookup)?,
    };
    let main = build.main_binary_file.clone().with_context(|| {
        format!(
            "the latest build {} of job {:?} has no main binary",
            build.uuid,
            args.job.as_str()
        )
    })?;
    if args.print_sha256 {
        exit::out(main.sha256)?;
        return Ok(exit::code(exit::SUCCESS));
    }
    let output = args.output.expect("clap requires --output without --print-sha256");
    // `current` is known only with --if-differs-from (and an existing file).
    if current == Some(main.sha256) {
        if args.connect.verbose {
            eprintln!(
                "nothing new: the latest build {} has sha256 {}",
                build.uuid, main.sha256
            );
        }
        return Ok(exit::code(exit::NEGATIVE));
    }
    let url = client.url(&format!("/job/{}/build/{}/f/{}", build.job, build.uuid, main.filepath));
    if args.connect.verbose {
        eprintln!("fetching {url} ({} bytes, sha256 {})", main.size, main.sha256);
    }
    let staged = download::download_verified(&client, &url, &output, &main.sha256, main.size)?;
    // Verified before anything is installed; kept beside the image as minisign does.
    let signature = match &args.verify_key {
        Some(pk) => Some(verify_signature(&client, &build, &main, staged.path(), pk)?),
        None => None,
    };
    staged
        .set_mode(0o644)
        .with_context(|| format!("setting the mode of the download for {:?}", output.display()))?;
    staged
        .persist(&output)
        .with_context(|| format!("renaming the download onto {:?}", output.display()))?;
    if let Some(text) = signature {
        install_signature(&output, &text)?;
    }
    exit::out(format!("{}  {}", main.sha256, output.display()))?;
    Ok(exit::code(exit::SUCCESS))
}

/// Fetches the build's `.minisig` and checks the downloaded image against it.
fn verify_signature(
    client: &Client,
    build: &uk_wire::BuildJson,
    main: &uk_wire::MainBinaryJson,
    image: &std::path::Path,
    pk: &std::path::Path,
) -> anyhow::Result<String> {
    let sig_path = main.signature.as_ref().with_context(|| {
        format!(
            "the latest build {} of job {:?} is not signed, and --verify-key requires a signature",
            build.uuid,
            build.job.as_str()
        )
    })?;
    let sig_url = client.url(&format!("/job/{}/build/{}/f/{sig_path}", build.job, build.uuid));
    let bytes = client
        .get_bytes_or_304(&sig_url, "*/*", 64 * 1024)?
        .context("the signature answered 304")?;
    let text = String::from_utf8(bytes).context("the signature is not text")?;
    uk_signatures::verify_file(pk, &text, image, Some(&build.job), &main.sha256).with_context(|| {
        format!(
            "verifying the signature of build {} with {:?}",
            build.uuid,
            pk.display()
        )
    })?;
    Ok(text)
}

/// Writes the signature beside the image as `PATH.minisig`, atomically.
fn install_signature(output: &std::path::Path, text: &str) -> anyhow::Result<()> {
    let sig_dest = PathBuf::from(format!("{}.minisig", output.display()));
    let mut f = uk_digest::AtomicFile::beside(&sig_dest)?;
    std::io::Write::write_all(&mut f, text.as_bytes())?;
    let staged = f.finish()?;
    staged.set_mode(0o644)?;
    staged
        .persist(&sig_dest)
        .with_context(|| format!("writing {:?}", sig_dest.display()))
}
