//! Retention (CONTRACT.md §8): `vacuum` drops the artifact bytes of old
//! builds but keeps their rows and digests, so `/hash?sha256=` and the
//! build page still answer for them (albatross maps a running unikernel's
//! hash to its job that way; builder-web's own vacuum loses it). Their
//! files then answer 410. Blobs that no build with files uses any more are
//! removed. `serve --keep-builds N` applies the same policy to a job after
//! each of its uploads.

use std::time::Duration;

use uk_names::JobName;

use crate::db::Sql;
use crate::db::builds::{VacuumPolicy, Vacuumed, mark_vacuumed};
use crate::gc;
use crate::state::AppState;
use crate::store::ArtifactStore;
use crate::time::now_rfc3339;

/// What a vacuum did (or, dry, would do).
#[derive(Debug, serde::Serialize)]
pub struct VacuumReport {
    pub builds: Vec<Vacuumed>,
    pub blobs_removed: usize,
    pub bytes_freed: u64,
    pub dry_run: bool,
}

pub fn run(
    c: &mut dyn Sql,
    store: &dyn ArtifactStore,
    policy: &VacuumPolicy,
    dry_run: bool,
) -> anyhow::Result<VacuumReport> {
    c.begin_write()?;
    let marked = mark_vacuumed(c, policy, &now_rfc3339()).and_then(|(builds, shas)| {
        if dry_run {
            // Measured against the marks, which are then rolled back.
            let freed = gc::collect_in(c, store, Duration::ZERO, Some(&shas), true)?;
            Ok((builds, shas, Some(freed)))
        } else {
            Ok((builds, shas, None))
        }
    });
    let (builds, shas, measured) = match marked {
        Ok(v) => v,
        Err(e) => {
            let _ = c.rollback();
            return Err(e);
        }
    };
    let freed = match measured {
        Some(freed) => {
            c.rollback()?;
            freed
        }
        None => {
            // Marks first: a file is never gone while its build says it is there.
            c.commit()?;
            gc::collect(c, store, Duration::ZERO, Some(&shas), false)?
        }
    };
    Ok(VacuumReport {
        builds,
        blobs_removed: freed.len(),
        bytes_freed: freed.iter().map(|(_, n)| n).sum(),
        dry_run,
    })
}

/// `serve --keep-builds N`: after an upload to `job`, keep the files of its
/// newest N builds per platform. A failure is logged; the upload stands.
pub async fn after_upload(st: &AppState, job: &JobName, keep: u32) {
    let policy = VacuumPolicy {
        keep: Some(keep),
        older_than: None,
        job: Some(job.clone()),
    };
    let store = st.store.clone();
    match st.db.write(move |c| run(c, store.as_ref(), &policy, false)).await {
        Ok(r) if !r.builds.is_empty() => tracing::info!(
            job = %job,
            builds = r.builds.len(),
            bytes = r.bytes_freed,
            "vacuumed old builds (--keep-builds {keep})"
        ),
        Ok(_) => {}
        Err(e) => tracing::warn!(job = %job, error = format!("{e:#}"), "vacuum after upload failed"),
    }
}
