//! `deploy-hvt deploy`, in the order CONTRACT.md §5 fixes: lock; stage the
//! image (a regular file, at most `--max-size`); learn which build it is
//! (`--build`, or `IMAGE.build.json` from `fetch-latest`); then decide:
//! already current and running (`already-running`), held or failed here
//! before (`refused`, exit 1), not verifiable (`refused`, exit 2), or switch
//! to it, restart, check, and on failure go back (exit 3, or 4). Every
//! decision about a known build is journalled with that build (and so
//! reported once) and recorded as `decided`.

use std::path::Path;

use uk_digest::Sha256;
use uk_names::BuildId;
use uk_wire::BuildRef;

use crate::config::{Config, Restart};
use crate::flows::{Outcome, Session, Switched, back_from, crash_point, older_than, sha_or_none, switch};
use crate::journal::{self, Entry};
use crate::state::{State, read_small};
use crate::verify::Refused;
use crate::{tender, verify};

pub struct DeployArgs<'a> {
    pub image: &'a Path,
    pub expect: Option<&'a Sha256>,
    pub retry_failed: bool,
    pub build: Option<BuildId>,
    pub max_size: u64,
}

/// Is `sha` what runs now (and, with the builtin restart, running)?
pub fn is_active(cfg: &Config, state: &State, sha: &Sha256) -> anyhow::Result<bool> {
    let current = state.link("current")?;
    if current.as_ref().map(|c| &c.sha256) != Some(sha) {
        return Ok(false);
    }
    Ok(match cfg.restart {
        Restart::Builtin => {
            let ours = tender::find(cfg, state);
            ours.len() == 1 && &ours[0].sha256 == sha
        }
        Restart::Command(_) => true,
    })
}

/// Which build `image` is: `--build` (of our job, with the expected digest),
/// or the `IMAGE.build.json` that `fetch-latest` wrote beside it.
fn build_identity(
    cfg: &Config,
    image: &Path,
    flag: Option<BuildId>,
    expect: Option<&Sha256>,
    staged: &Sha256,
) -> Result<Option<BuildRef>, String> {
    let sidecar: Option<BuildRef> = read_small(Path::new(&format!("{}.build.json", image.display())))
        .and_then(|t| serde_json::from_str(&t).ok())
        .filter(|b: &BuildRef| flag.is_none_or(|f| f == b.uuid));
    let build = match (flag, sidecar) {
        (_, Some(b)) => {
            if b.sha256 != *staged {
                eprintln!(
                    "deploy-hvt: warning: {}.build.json names another image ({}); ignoring it",
                    image.display(),
                    b.sha256
                );
                return Ok(None);
            }
            b
        }
        (Some(uuid), None) => BuildRef {
            job: cfg.job.clone(),
            uuid,
            platform: None,
            sha256: expect.copied().unwrap_or(*staged),
        },
        (None, None) => return Ok(None),
    };
    if build.job != cfg.job {
        return Err(format!(
            "it is build {} of job {:?}, but this unikernel runs job {:?}",
            build.uuid,
            build.job.as_str(),
            cfg.job.as_str()
        ));
    }
    Ok(Some(build))
}

pub fn deploy(s: &Session<'_>, a: &DeployArgs<'_>) -> anyhow::Result<Outcome> {
    let (cfg, state) = (s.cfg, &s.state);
    let image_name = a.image.display().to_string();
    let refused = |why: String| Refused {
        image: image_name.clone(),
        why,
    };
    let staged = match state.stage(a.image, a.max_size) {
        Ok(st) => st,
        Err(e) => {
            let r = refused(format!("{e:#}"));
            journal::append(state, &Entry::new("deploy", "refused", None, r.to_string()))?;
            return Err(r.into());
        }
    };
    let sha = staged.sha256;
    let build = match build_identity(cfg, a.image, a.build, a.expect, &sha) {
        Ok(b) => b,
        Err(why) => {
            let r = refused(why);
            journal::append(state, &Entry::new("deploy", "refused", Some(&sha), r.to_string()))?;
            return Err(r.into());
        }
    };
    // A decision about the build: journalled with it (so reported once) and
    // remembered, so the scripts do not decide about it again.
    let decide = |action: &str, result: &str, msg: &str| -> anyhow::Result<()> {
        let about = build.as_ref().map(|b| b.sha256).unwrap_or(sha);
        journal::append(
            state,
            &Entry::new(action, result, Some(&about), msg).build(build.as_ref()),
        )?;
        state.set_decided(build.as_ref())
    };
    if let Some(want) = a.expect
        && *want != sha
    {
        let r = refused(format!("its sha256 is {sha}, expected {want}"));
        decide("deploy", "refused", &r.to_string())?;
        return Err(r.into());
    }
    if is_active(cfg, state, &sha)? {
        let why = format!("{sha} is already current and running");
        decide("deploy", "already-running", &why)?;
        return Ok(Outcome::Nothing { negative: false, why });
    }
    if let Some(h) = state.hold() {
        let why = format!("held since {}: {}", h.since, h.reason);
        decide("hold", "refused", &format!("not deploying {sha}: {why}"))?;
        return Ok(Outcome::Nothing { negative: true, why });
    }
    if let Some(why) = state.failed().get(&sha).filter(|_| !a.retry_failed) {
        let why = match why {
            crate::marks::Why::RolledBackByHand => {
                format!("{sha} was rolled back by hand here (use --retry-failed to deploy it again)")
            }
            why => format!("{sha} already failed here: it {why} (use --retry-failed)"),
        };
        decide("deploy", "refused", &why)?;
        return Ok(Outcome::Nothing { negative: true, why });
    }
    let signature = match verify::verify(cfg, state, a.image, &staged) {
        Ok(sig) => sig,
        Err(why) => {
            let r = refused(why);
            decide("deploy", "refused", &r.to_string())?;
            return Err(r.into());
        }
    };
    let image = state.keep(staged, cfg.target, signature.as_deref(), build.as_ref())?;
    crash_point("after-store");
    let old = state.link("current")?;
    let old_prev = state.link("previous")?;
    // On failure go back to what ran; when that is this very image (a
    // redeploy of the current one), to the previous one, as start does.
    let (back, back_prev) = match old.as_ref().filter(|o| **o != image) {
        Some(o) => (Some(o.clone()), old_prev.clone()),
        None => {
            let b = back_from(state, &image)?;
            let bp = match &b {
                Some(b) => older_than(state, b, &[sha])?,
                None => None,
            };
            (b, bp)
        }
    };
    let prev = old.as_ref().filter(|o| **o != image).or(old_prev.as_ref());
    let outcome = match switch(s, &image, prev, back.as_ref().map(|b| (b, back_prev.as_ref())))? {
        Switched::Healthy => {
            let line = format!("deployed {sha} (was {})", sha_or_none(old.as_ref()));
            decide(
                "deploy",
                "deployed",
                &format!("{} runs and is healthy", image.path.display()),
            )?;
            Outcome::Changed(line)
        }
        Switched::Restored { back, failed } => {
            let msg = format!("{}; back on {}", failed.why, back.sha256);
            let entry = Entry::new("deploy", "rolled-back", Some(&sha), &msg)
                .build(build.as_ref())
                .console(failed.console);
            journal::append(state, &entry)?;
            state.set_decided(build.as_ref())?;
            Outcome::RolledBack(format!(
                "rolled back to {}: {sha} is unhealthy: {}",
                back.sha256, failed.why
            ))
        }
        Switched::Unrestored { why, failed } => {
            let entry = Entry::new("deploy", "failed", Some(&sha), &why)
                .build(build.as_ref())
                .console(failed.console);
            journal::append(state, &entry)?;
            state.set_decided(build.as_ref())?;
            Outcome::RestoreFailed(format!("{sha}: {why}"))
        }
    };
    Ok(outcome)
}
