//! Collecting blobs that no build references: after a failed commit (the
//! blobs that upload just stored), at start-up (a crash between storing and
//! committing), and after `vacuum` / `build remove` / `job remove`.
//!
//! Deletion happens while holding the database's write lock, and a commit
//! checks under that same lock that its blobs are still stored (see
//! `db::builds::insert_build`), so a build never commits with a missing
//! file, even when the collector runs in another process. A sweep of the
//! whole store spares blobs stored (or re-stored) within `min_age`: an
//! upload in progress elsewhere has not committed yet (at start-up that is
//! `serve --orphan-grace` when replicas share the database or the bucket,
//! and nothing on the embedded default, where the data-dir lock excludes
//! other servers; on PostgreSQL the write lock is an advisory lock that
//! every replica's commits take, see `db/sql.rs`). Named candidates
//! (the blobs of builds just vacuumed or removed) go whatever their age.

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use uk_digest::Sha256;

use crate::db::{Db, Sql};
use crate::store::ArtifactStore;

/// Digests that builds with files still reference.
fn referenced(c: &mut dyn Sql) -> anyhow::Result<HashSet<Sha256>> {
    let rows = c.query(
        "SELECT DISTINCT a.sha256 FROM artifacts a JOIN builds b ON b.id = a.build_id WHERE b.vacuumed IS NULL",
        &[],
    )?;
    Ok(rows.iter().filter_map(|r| r.parse(0, "digest").ok()).collect())
}

/// Removes unreferenced blobs (only those in `only`, when given) older than
/// `min_age`; returns each removed digest with its size. `dry_run` removes
/// nothing and reports what would go.
pub fn collect(
    c: &mut dyn Sql,
    store: &dyn ArtifactStore,
    min_age: Duration,
    only: Option<&[Sha256]>,
    dry_run: bool,
) -> anyhow::Result<Vec<(Sha256, u64)>> {
    c.begin_write()?;
    let removed = collect_in(c, store, min_age, only, dry_run);
    // Nothing was written: the transaction only held the lock.
    c.rollback()?;
    removed
}

/// [`collect`] inside the caller's write transaction (which sees its own
/// uncommitted changes: `vacuum --dry-run` marks, measures, rolls back).
pub fn collect_in(
    tx: &mut dyn Sql,
    store: &dyn ArtifactStore,
    min_age: Duration,
    only: Option<&[Sha256]>,
    dry_run: bool,
) -> anyhow::Result<Vec<(Sha256, u64)>> {
    let keep = referenced(tx)?;
    let now = SystemTime::now();
    let candidates: Vec<(Sha256, SystemTime)> = match only {
        Some(list) => {
            let unique: std::collections::BTreeSet<Sha256> = list.iter().copied().collect();
            unique.into_iter().map(|s| (s, SystemTime::UNIX_EPOCH)).collect()
        }
        None => store.list().context("listing the store")?,
    };
    let mut removed = Vec::new();
    for (sha, stored_at) in candidates {
        if keep.contains(&sha) || now.duration_since(stored_at).unwrap_or_default() < min_age {
            continue;
        }
        let Some(size) = store.size_of(&sha).context("reading the store")? else {
            continue;
        };
        if !dry_run {
            store.delete(&sha).with_context(|| format!("removing blob {sha}"))?;
        }
        removed.push((sha, size));
    }
    Ok(removed)
}

/// [`collect`] over the whole store at start-up; returns how many went.
pub fn remove_unreferenced_blobs_blocking(
    db: &Db,
    store: &dyn ArtifactStore,
    min_age: Duration,
) -> anyhow::Result<usize> {
    db.write_blocking(|c| collect(c, store, min_age, None, false))
        .map(|v| v.len())
}
