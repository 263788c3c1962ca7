//! `upload`: the CI side. Hashes the image, then streams it to the
//! repository with its `Content-Digest` (constant memory whatever its size),
//! as a raw body, or as multipart when `--attach` adds build artifacts.
//! Transient failures are retried with backoff: safe, because the server
//! answers an identical retry with the build it already has.

mod multipart;
mod platform;
mod wait;

use std::fs::File;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Parser;
use uk_cli::{exit, progress};
use uk_client::retry::{Attempt, with_retries};
use uk_client::{Client, ClientError, ConnectArgs};
use uk_digest::{Sha256, content_digest_header};
use uk_names::{ArtifactPath, BinaryName, HostName, JobName, PlatformName};
use uk_wire::BuildJson;

#[derive(Parser, Debug)]
#[command(
    name = "upload",
    version,
    about = "Upload a unikernel image to the repository; prints the build's URL.",
    after_help = exit::EXIT_CODES_HELP
)]
pub struct Args {
    /// The job the build belongs to.
    #[arg(long, env = "UKREPO_JOB")]
    pub job: JobName,

    /// Build platform (default: this host's, e.g. debian-12, from /etc/os-release).
    #[arg(long, env = "UKREPO_PLATFORM")]
    pub platform: Option<PlatformName>,

    /// Name of the main binary (default: the image's file name).
    #[arg(long, env = "UKREPO_BINARY_NAME")]
    pub name: Option<BinaryName>,

    /// Store FILE as artifact PATH of the same build (console, opam-switch, …). Repeatable.
    #[arg(long, value_name = "PATH=FILE")]
    pub attach: Vec<String>,

    /// Sign the image with this minisign secret key (unencrypted, or with its
    /// password in UKREPO_SIGN_KEY_PASSWORD); the signature is uploaded as
    /// `bin/<name>.minisig` with the build.
    #[arg(long, env = "UKREPO_SIGN_KEY", value_name = "FILE")]
    pub sign_key: Option<PathBuf>,

    /// The job's one-line description, shown on the repository's pages and
    /// in its job list (mollymawk shows it in its deploy form).
    #[arg(long, env = "UKREPO_SYNOPSIS", value_name = "TEXT")]
    pub synopsis: Option<String>,

    /// Print the build JSON instead of its URL.
    #[arg(long)]
    pub json: bool,

    /// After the upload, wait until each of these hosts reports deploying
    /// this build; prints one line per host (`HOST<TAB>RESULT<TAB>MESSAGE`).
    /// Exit 0 if all run it (deployed, already-running), 3 if any rolled it
    /// back or refused it, 2 on a failure or a timeout.
    #[arg(long, value_delimiter = ',', value_name = "HOST[,HOST...]")]
    pub wait_deployed: Vec<HostName>,

    /// How long --wait-deployed waits for the hosts.
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration, requires = "wait_deployed")]
    pub timeout: std::time::Duration,

    /// The unikernel image.
    pub image: PathBuf,

    #[command(flatten)]
    pub connect: ConnectArgs,
}

/// A validated upload.
struct Plan {
    job: JobName,
    platform: PlatformName,
    name: BinaryName,
    image: PathBuf,
    /// Known up front only when signing needs it; otherwise the image is
    /// read once, hashed while it is sent, and its digest follows it.
    sha256: Option<Sha256>,
    size: u64,
    attachments: Vec<(ArtifactPath, PathBuf)>,
    synopsis: Option<String>,
    /// Keeps the signature's temporary file until the upload is done.
    _signature: Option<tempfile::TempPath>,
}

fn plan(args: &Args) -> anyhow::Result<Plan> {
    let name = match &args.name {
        Some(n) => n.clone(),
        None => {
            let f = args
                .image
                .file_name()
                .with_context(|| format!("{:?} has no file name; pass --name", args.image.display()))?;
            f.to_string_lossy()
                .parse()
                .context("the image's file name is not a valid binary name; pass --name")?
        }
    };
    let platform = match &args.platform {
        Some(p) => p.clone(),
        None => platform::host_platform()?,
    };
    let mut attachments = Vec::new();
    for a in &args.attach {
        let (path, file) = a
            .split_once('=')
            .with_context(|| format!("--attach {a:?} must be PATH=FILE"))?;
        let path: ArtifactPath = path.parse().with_context(|| format!("--attach {a:?}"))?;
        if path == ArtifactPath::main_binary(&name) || attachments.iter().any(|(p, _)| p == &path) {
            bail!("--attach {a:?}: artifact {:?} is given twice", path.as_str());
        }
        let file = PathBuf::from(file);
        File::open(&file).with_context(|| format!("--attach {a:?}: opening {:?}", file.display()))?;
        attachments.push((path, file));
    }
    if let Some(text) = &args.synopsis
        && (text.chars().any(char::is_control) || text.len() > 1024)
    {
        bail!("--synopsis must be one line of at most 1024 bytes without control characters");
    }
    let read = |e| anyhow::Error::new(e).context(format!("reading the image {:?}", args.image.display()));
    let meta = std::fs::metadata(&args.image).map_err(read)?;
    if !meta.is_file() {
        bail!("the image {:?} is not a regular file", args.image.display());
    }
    let size = meta.len();
    // A signature names the digest, so signing reads the image first; a
    // plain upload reads it once, while sending.
    let (sha256, signature) = match &args.sign_key {
        Some(key) => {
            let (sha, _) = uk_digest::hash_file(&args.image).map_err(read)?;
            (Some(sha), Some(sign(key, &args.image, &name, &args.job, &sha)?))
        }
        None => (None, None),
    };
    if let Some((path, tmp)) = &signature {
        if attachments.iter().any(|(p, _)| p == path) {
            bail!("--attach {path} collides with the signature that --sign-key makes");
        }
        attachments.push((path.clone(), tmp.to_path_buf()));
    }
    Ok(Plan {
        job: args.job.clone(),
        platform,
        name,
        image: args.image.clone(),
        sha256,
        size,
        attachments,
        synopsis: args.synopsis.clone(),
        _signature: signature.map(|(_, t)| t),
    })
}

/// Signs the image (trusted comment as CONTRACT.md §6) into a temporary
/// file, uploaded as `bin/<name>.minisig`.
fn sign(
    key: &std::path::Path,
    image: &std::path::Path,
    name: &BinaryName,
    job: &JobName,
    sha256: &Sha256,
) -> anyhow::Result<(ArtifactPath, tempfile::TempPath)> {
    let password = std::env::var("UKREPO_SIGN_KEY_PASSWORD").ok();
    let trusted = uk_signatures::trusted_comment(uk_signatures::now(), name.as_str(), job, sha256);
    let sig = uk_signatures::sign_file(key, password.as_deref(), image, &trusted)
        .with_context(|| format!("signing {:?} with {:?}", image.display(), key.display()))?;
    let mut tmp = tempfile::NamedTempFile::new().context("a temporary file for the signature")?;
    std::io::Write::write_all(&mut tmp, sig.as_bytes())?;
    Ok((format!("bin/{name}.minisig").parse()?, tmp.into_temp_path()))
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let plan = plan(&args)?;
    let client = Client::new(&args.connect)?;
    let url = client.url(&format!(
        "/job/{}/platform/{}/upload?binary_name={}",
        plan.job,
        plan.platform,
        // In a query `+` means a space; the other characters of a name are safe.
        plan.name.as_str().replace('+', "%2B")
    ));
    if args.connect.verbose {
        eprintln!("uploading {:?} ({} bytes) to {url}", plan.image.display(), plan.size);
    }
    let (status, build) = with_retries(client.retries, client.verbose, |_| match send(&client, &url, &plan) {
        Ok(v) => Attempt::Done(v),
        Err(e) if e.is_transient() => Attempt::Transient(e),
        Err(e) => Attempt::Fatal(e),
    })
    .with_context(|| format!("uploading {:?}", plan.image.display()))?;
    if args.connect.verbose && status == 200 {
        eprintln!(
            "the repository already had this image as the latest build of {:?}",
            plan.job.as_str()
        );
    }
    if args.json {
        exit::out(serde_json::to_string(&build)?)?;
    } else {
        exit::out(client.url(&format!("/job/{}/build/{}", build.job, build.uuid)))?;
    }
    if !args.wait_deployed.is_empty() {
        return wait::wait_deployed(&client, &build, &args.wait_deployed, args.timeout);
    }
    Ok(exit::code(exit::SUCCESS))
}

/// One attempt: stream the body, read the answer.
fn send(client: &Client, url: &str, plan: &Plan) -> Result<(u16, BuildJson), ClientError> {
    let io = |e: std::io::Error| ClientError::Other(format!("reading {:?}: {e}", plan.image.display()));
    let image = File::open(&plan.image).map_err(io)?;
    let mut req = client.post(url);
    // The digest goes first as a header when it is known, else after the
    // image as a `content-digest` part of the multipart body (one pass).
    let (image, digest) = uk_digest::hashing_reader(image);
    let (content_type, len, body) = match &plan.sha256 {
        Some(sha) if plan.attachments.is_empty() && plan.synopsis.is_none() => {
            req = req.header("Content-Digest", content_digest_header(sha));
            (
                "application/octet-stream".to_owned(),
                plan.size,
                Box::new(image) as Box<dyn std::io::Read + Send>,
            )
        }
        known => {
            if let Some(sha) = known {
                req = req.header("Content-Digest", content_digest_header(sha));
            }
            let parts = multipart::Parts {
                name: &plan.name,
                image,
                image_len: plan.size,
                attachments: &plan.attachments,
                synopsis: plan.synopsis.as_deref(),
                // Unknown before the image is read: a part after it.
                digest: known.is_none().then(|| digest.clone()),
            };
            multipart::body(parts).map_err(io)?
        }
    };
    let bar = progress::bar(len, "upload");
    let reader = bar.wrap_read(body);
    let resp = req
        .header("Content-Type", content_type)
        .header("Content-Length", len.to_string())
        .send(ureq::SendBody::from_owned_reader(reader));
    bar.finish_and_clear();
    let resp = resp.map_err(|e| ClientError::Transport {
        method: "POST",
        url: url.to_owned(),
        source: e,
    })?;
    let mut resp = Client::check("POST", url, resp)?;
    let status = resp.status().as_u16();
    let bytes = resp.body_mut().read_to_vec().map_err(|e| ClientError::Transport {
        method: "POST",
        url: url.to_owned(),
        source: e,
    })?;
    let build = serde_json::from_slice::<BuildJson>(&bytes)
        .map_err(|e| ClientError::Other(format!("POST {url}: the answer is not a build: {e}")))?;
    // What the repository stored is what was read here.
    let (sent, sent_len) = digest.get();
    let stored = build.main_binary_file.as_ref().map(|m| (m.sha256, m.size));
    if sent_len == plan.size && stored != Some((sent, sent_len)) {
        return Err(ClientError::Other(format!(
            "POST {url}: the repository recorded {stored:?} for the image, but sha256 {sent} ({sent_len} bytes) was sent"
        )));
    }
    Ok((status, build))
}
