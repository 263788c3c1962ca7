//! Which build to fetch: the latest one, one by id, or the next one after a
//! long-poll; and the checks that the repository's answer is about what was
//! asked for. A server that names a build of another job or platform (or
//! another build than the one asked for) is refused, whatever its JSON says.

use std::time::Duration;

use anyhow::{Context, bail};
use uk_client::{Client, Current};
use uk_names::{BuildId, JobName, PlatformName};
use uk_wire::{BuildJson, MainBinaryJson};

/// What the user asked for.
pub struct Want<'a> {
    pub job: &'a JobName,
    pub platform: Option<&'a PlatformName>,
    pub build: Option<&'a BuildId>,
}

/// The build and its main binary; `None` when a long-poll ended with
/// nothing new.
pub fn build(
    client: &Client,
    want: &Want<'_>,
    current: Option<&Current>,
    wait: Option<Duration>,
) -> anyhow::Result<Option<(BuildJson, MainBinaryJson)>> {
    let job = want.job;
    let build = match (want.build, wait, current) {
        (Some(id), _, _) => client
            .build(job, id)
            .with_context(|| format!("looking up build {id} of job {:?}", job.as_str()))?,
        (None, Some(wait), Some(cur)) => {
            let lookup = || format!("waiting for a new build of job {:?}", job.as_str());
            match client
                .wait_for_new_build(job, want.platform, cur, wait)
                .with_context(lookup)?
            {
                Some(b) => b,
                None => {
                    if client.verbose {
                        eprintln!("nothing new within {wait:?}: the latest build still is {cur}");
                    }
                    return Ok(None);
                }
            }
        }
        _ => client
            .latest_build(job, want.platform)
            .with_context(|| format!("looking up the latest build of job {:?}", job.as_str()))?,
    };
    check(&build, want)?;
    let main = build
        .main_binary_file
        .clone()
        .with_context(|| format!("build {} of job {:?} has no main binary", build.uuid, job.as_str()))?;
    Ok(Some((build, main)))
}

/// The repository's answer must be about the job, platform and build asked for.
pub fn check(build: &BuildJson, want: &Want<'_>) -> anyhow::Result<()> {
    if &build.job != want.job {
        bail!(
            "the repository answered with build {} of job {:?}, but job {:?} was asked for",
            build.uuid,
            build.job.as_str(),
            want.job.as_str()
        );
    }
    if let Some(p) = want.platform
        && &build.platform != p
    {
        bail!(
            "the repository answered with build {} for platform {:?}, but platform {:?} was asked for",
            build.uuid,
            build.platform.as_str(),
            p.as_str()
        );
    }
    if let Some(id) = want.build
        && &build.uuid != id
    {
        bail!(
            "the repository answered with build {}, but build {id} was asked for",
            build.uuid
        );
    }
    Ok(())
}
