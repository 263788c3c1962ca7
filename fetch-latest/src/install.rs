//! Installing a build at PATH: the image is downloaded beside PATH while
//! hashed and checked against the build's size and sha256 (uk-client's
//! verified download); its signature, when the build has one, is fetched and
//! (with `--verify-key`) checked against the job asked for; then the image is
//! renamed onto PATH and `PATH.minisig` and `PATH.build.json` are written
//! beside it (or a stale `PATH.minisig` removed). Temporary files are locked
//! while in use, so the next run removes those of a killed one.

use std::path::{Path, PathBuf};

use anyhow::Context;
use uk_client::{Client, download};
use uk_names::JobName;
use uk_wire::{BuildJson, BuildRef, MainBinaryJson};

fn beside(output: &Path, suffix: &str) -> PathBuf {
    PathBuf::from(format!("{}{suffix}", output.display()))
}

/// Removes temporary files a killed run left beside `output` (its image,
/// signature and build file share the prefix); a running one's are locked.
pub fn remove_stale(output: &Path) {
    let dir = match output.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let Some(name) = output.file_name() else { return };
    if let Err(e) = uk_digest::remove_stale(dir, &name.to_string_lossy()) {
        eprintln!(
            "fetch-latest: warning: cleaning up temporary files in {:?}: {e}",
            dir.display()
        );
    }
}

pub fn install(
    client: &Client,
    job: &JobName,
    build: &BuildJson,
    main: &MainBinaryJson,
    output: &Path,
    verify_key: Option<&Path>,
) -> anyhow::Result<()> {
    let url = client.url(&format!("/job/{}/build/{}/f/{}", build.job, build.uuid, main.filepath));
    if client.verbose {
        eprintln!("fetching {url} ({} bytes, sha256 {})", main.size, main.sha256);
    }
    let staged = download::download_verified(client, &url, output, &main.sha256, main.size)?;
    // Fetched (and verified) before anything is installed.
    let signature = match &main.signature {
        Some(_) => Some(fetch_signature(client, build, main)?),
        None => None,
    };
    if let Some(pk) = verify_key {
        let text = signature.as_deref().with_context(|| {
            format!(
                "build {} of job {:?} is not signed, and --verify-key requires a signature",
                build.uuid,
                job.as_str()
            )
        })?;
        uk_signatures::verify_file(pk, text, staged.path(), Some(job), &main.sha256).with_context(|| {
            format!(
                "verifying the signature of build {} with {:?}",
                build.uuid,
                pk.display()
            )
        })?;
    }
    staged
        .set_mode(0o644)
        .with_context(|| format!("setting the mode of the download for {:?}", output.display()))?;
    staged
        .persist(output)
        .with_context(|| format!("renaming the download onto {:?}", output.display()))?;
    let sig_dest = beside(output, ".minisig");
    match signature {
        Some(text) => write_beside(&sig_dest, text.as_bytes())?,
        // A signature of what was there before would be checked against this image.
        None => match std::fs::remove_file(&sig_dest) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(e).with_context(|| format!("removing the stale {:?}", sig_dest.display()));
            }
            _ => {}
        },
    }
    let build_ref = BuildRef {
        job: job.clone(),
        uuid: build.uuid,
        platform: Some(build.platform.clone()),
        sha256: main.sha256,
    };
    write_beside(&beside(output, ".build.json"), &serde_json::to_vec(&build_ref)?)
}

/// The build's detached signature (at most 64 KiB of text).
fn fetch_signature(client: &Client, build: &BuildJson, main: &MainBinaryJson) -> anyhow::Result<String> {
    let sig_path = main.signature.as_ref().context("the build has no signature")?;
    let sig_url = client.url(&format!("/job/{}/build/{}/f/{sig_path}", build.job, build.uuid));
    let bytes = client
        .get_bytes_or_304(&sig_url, "*/*", 64 * 1024)?
        .context("the signature answered 304")?;
    String::from_utf8(bytes).context("the signature is not text")
}

/// Writes `dest` atomically, mode 0644.
fn write_beside(dest: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let prefix = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "download".into());
    uk_digest::write_atomically(dest, &prefix, bytes, 0o644).with_context(|| format!("writing {:?}", dest.display()))
}
