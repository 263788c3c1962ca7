//! `deploy-hvt rollback [--to SHA]`: back to `previous` (or to any kept
//! image), sticky: the image left is recorded as rolled back by hand, so
//! neither the cron script nor the watcher deploys it again (until `deploy
//! --retry-failed`), and the new `previous` is an image stored before the
//! one gone back to: a second rollback goes further back, never forward. Signatures are
//! not checked for downgrades here: going back is the point.

use anyhow::{Context, bail};

use crate::flows::{Outcome, Session, Switched, back_from, older_than, switch};
use crate::journal::{self, Entry};
use crate::marks::Why;
use crate::state::{Image, State};

/// The kept image whose sha256 starts with `prefix` (at least 4 hex digits).
fn find_kept(state: &State, prefix: &str) -> anyhow::Result<Image> {
    let p = prefix.to_ascii_lowercase();
    if p.len() < 4 || !p.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!("--to {prefix:?}: give a sha256 (or its first digits, at least 4)");
    }
    let matching: Vec<Image> = state
        .kept()?
        .into_iter()
        .filter(|i| i.sha256.to_string().starts_with(&p))
        .collect();
    match matching.len() {
        1 => Ok(matching.into_iter().next().expect("one")),
        0 => bail!("--to {prefix}: no kept image has that sha256 (see images/ in the state folder)"),
        n => bail!("--to {prefix}: {n} kept images start with that; give more digits"),
    }
}

pub fn rollback(s: &Session<'_>, to: Option<&str>) -> anyhow::Result<Outcome> {
    let state = &s.state;
    let cur = state
        .link("current")?
        .context("there is no current image to roll back from")?;
    let old_prev = state.link("previous")?;
    let target = match to {
        Some(p) => {
            let t = find_kept(state, p)?;
            if t == cur {
                bail!("--to {p}: {} is the current image already", t.sha256);
            }
            t
        }
        None => back_from(state, &cur)?.context(
            "there is no image to roll back to: no older kept image that did not fail here or was rolled back from (--to SHA picks one anyway)",
        )?,
    };
    state.mark_failed(&cur.sha256, Why::RolledBackByHand)?;
    let prev = older_than(state, &target, &[cur.sha256])?;
    let (t, c) = (target.sha256, cur.sha256);
    match switch(s, &target, prev.as_ref(), Some((&cur, old_prev.as_ref())))? {
        Switched::Healthy => {
            let left = Entry::new(
                "rollback",
                "rolled-back",
                Some(&c),
                format!("rolled back by hand to {t}"),
            )
            .build(state.build_of(&cur).as_ref());
            journal::append(state, &left)?;
            let back = Entry::new(
                "rollback",
                "deployed",
                Some(&t),
                format!("runs again: rolled back by hand from {c}"),
            )
            .build(state.build_of(&target).as_ref());
            journal::append(state, &back)?;
            Ok(Outcome::Changed(format!("rolled back to {t}: by hand, from {c}")))
        }
        Switched::Restored { failed, .. } => {
            // The rollback did not happen: what runs is not "rolled back from".
            state.clear_failed(&c)?;
            let msg = format!("{}; back on {c}", failed.why);
            let entry = Entry::new("rollback", "rolled-back", Some(&t), &msg)
                .build(state.build_of(&target).as_ref())
                .console(failed.console);
            journal::append(state, &entry)?;
            Ok(Outcome::RolledBack(format!(
                "rolled back to {c}: {t} is unhealthy: {}",
                failed.why
            )))
        }
        Switched::Unrestored { why, failed } => {
            let entry = Entry::new("rollback", "failed", Some(&t), &why)
                .build(state.build_of(&target).as_ref())
                .console(failed.console);
            journal::append(state, &entry)?;
            Ok(Outcome::RestoreFailed(format!("{t}: {why}")))
        }
    }
}
