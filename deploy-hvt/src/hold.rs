//! `deploy-hvt hold [--reason TEXT]` and `unhold`: while held, `deploy`
//! changes nothing and exits 1 (reported as `refused` with action `hold`),
//! so the cron script and the watcher stay on the running version; the
//! tender is still supervised. `unhold` forgets the last decided build, so
//! the next run reconsiders the latest one.

use crate::flows::{Outcome, Session};
use crate::journal::{self, Entry};
use crate::marks::Hold;

pub fn hold(s: &Session<'_>, reason: Option<String>) -> anyhow::Result<Outcome> {
    let state = &s.state;
    let reason = reason.unwrap_or_else(|| "no reason given".into());
    let h = Hold {
        reason: reason.clone(),
        since: journal::now(),
    };
    state.set_hold(Some(&h))?;
    journal::append(state, &Entry::new("hold", "held", None, &reason))?;
    Ok(Outcome::Changed(format!(
        "held: {reason} (deploy-hvt unhold releases it)"
    )))
}

pub fn unhold(s: &Session<'_>) -> anyhow::Result<Outcome> {
    let state = &s.state;
    let Some(h) = state.hold() else {
        return Ok(Outcome::Nothing {
            negative: false,
            why: "not held".into(),
        });
    };
    state.set_hold(None)?;
    // Builds refused while held are to be considered again.
    state.set_decided(None)?;
    journal::append(
        state,
        &Entry::new(
            "unhold",
            "unheld",
            None,
            format!("was held since {}: {}", h.since, h.reason),
        ),
    )?;
    Ok(Outcome::Changed("unheld: the next run deploys the latest build".into()))
}
