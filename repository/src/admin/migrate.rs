//! `unikernel-repo migrate --to-database-url URL --to-store-url URL`
//! (CONTRACT.md §9): copies the repository named by the global flags (by
//! default the data directory's) into another database and store, e.g.
//! from the embedded default to PostgreSQL + S3.
//!
//! Blobs first: each one is read from the source, hashed while it is
//! staged, refused unless its digest and size are what the database
//! records, then stored. A blob the destination already holds (with the
//! recorded size) is skipped, so an interrupted run resumes where it
//! stopped. Then every row (jobs, users, grants, builds, artifacts,
//! reports, with their ids, so "latest" stays the same build) in one
//! transaction: a repository appears in the destination whole or not at
//! all. Blobs of vacuumed builds are gone and are not copied; their rows are.

use std::collections::HashSet;
use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Args;
use uk_digest::Sha256;

use super::Location;
use crate::db::sql::{Param, Row, Value, write_tx};
use crate::db::{DbUrl, Engine, Sql};
use crate::store::{ArtifactStore, StoreUrl};

#[derive(Args, Debug)]
pub struct MigrateArgs {
    /// The database to copy into: sqlite://PATH or postgres://… (made and
    /// migrated if empty; it must hold nothing but an earlier copy of this one).
    #[arg(long, env = "UKREPO_TO_DATABASE_URL", value_name = "URL", value_parser = DbUrl::parse)]
    pub to_database_url: DbUrl,
    /// The store to copy the artifacts into: file://DIR or s3://BUCKET[/PREFIX].
    #[arg(long, env = "UKREPO_TO_STORE_URL", value_name = "URL", value_parser = StoreUrl::parse)]
    pub to_store_url: StoreUrl,
}

/// The tables in an order that satisfies their references, with the
/// columns copied.
const TABLES: &[(&str, &str)] = &[
    ("jobs", "id, name, synopsis"),
    ("users", "id, name, password_hash, unrestricted, create_jobs, disabled"),
    ("access", "user_id, job, report_only"),
    (
        "builds",
        "id, uuid, job_id, platform, start_time, finish_time, main_binary, main_sha256, solo5_abi, solo5_manifest, uploader, vacuumed",
    ),
    ("artifacts", "build_id, filepath, sha256, size"),
    (
        "deployments",
        "id, build_id, host, sha256, result, message, started, finished, received, action",
    ),
];

/// Rows that identify a repository's contents: a destination that holds
/// any other is another repository.
const IDENTITIES: &[(&str, &str)] = &[("jobs", "id, name"), ("users", "id, name"), ("builds", "id, uuid")];

pub fn migrate(from: &Location, a: MigrateArgs) -> anyhow::Result<ExitCode> {
    if a.to_database_url == from.database || a.to_store_url == from.store {
        bail!("the destination must differ from the source (both its database and its store)");
    }
    let mut src = from.open_existing()?;
    let src_store = from.open_store()?;
    if let DbUrl::Sqlite(path) = &a.to_database_url
        && let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
    {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {:?}", dir.display()))?;
    }
    let mut dst = a.to_database_url.open()?;
    let staging = match &a.to_store_url {
        StoreUrl::File(dir) => dir.parent().unwrap_or(dir).join("staging"),
        StoreUrl::S3 { .. } => from.data_dir.join("staging"),
    };
    let dst_store = a.to_store_url.open(&staging)?;
    check_destination(src.as_mut(), dst.as_mut())?;

    let blobs = src.query(
        "SELECT DISTINCT a.sha256, a.size FROM artifacts a JOIN builds b ON b.id = a.build_id
         WHERE b.vacuumed IS NULL ORDER BY a.sha256",
        &[],
    )?;
    let (mut copied, mut skipped, mut bytes) = (0usize, 0usize, 0u64);
    for (i, r) in blobs.iter().enumerate() {
        let (sha, size): (Sha256, u64) = (r.parse(0, "sha256")?, r.int(1)? as u64);
        let n = format!("[{}/{}]", i + 1, blobs.len());
        if dst_store.size_of(&sha).context("asking the destination store")? == Some(size) {
            eprintln!("migrate: {n} {sha} already there");
            skipped += 1;
            continue;
        }
        copy_blob(src_store.as_ref(), dst_store.as_ref(), &sha, size)?;
        eprintln!("migrate: {n} {sha} copied and verified ({size} bytes)");
        copied += 1;
        bytes += size;
    }

    let counts = write_tx(dst.as_mut(), |tx| copy_rows(src.as_mut(), tx))?;
    let summary: Vec<String> = counts.iter().map(|(t, n)| format!("{n} {t}")).collect();
    eprintln!(
        "migrate: {copied} blobs copied ({bytes} bytes), {skipped} already there; rows: {}",
        summary.join(", ")
    );
    eprintln!(
        "migrate: done: serve with --database-url {} --store-url {}",
        a.to_database_url.display(),
        a.to_store_url
    );
    Ok(ExitCode::SUCCESS)
}

/// Streams one blob into the destination's staging, hashing it, and
/// stores it only if it is the blob the database names.
fn copy_blob(src: &dyn ArtifactStore, dst: &dyn ArtifactStore, sha: &Sha256, size: u64) -> anyhow::Result<()> {
    let mut reader = src
        .read(sha)
        .with_context(|| format!("reading blob {sha}"))?
        .with_context(|| format!("blob {sha} is missing from the source store {}", src.describe()))?;
    let mut staged = dst.begin().context("staging a blob")?;
    std::io::copy(&mut reader, &mut staged).with_context(|| format!("copying blob {sha}"))?;
    staged.flush()?;
    let staged = staged.finish().with_context(|| format!("staging blob {sha}"))?;
    if staged.sha256 != *sha || staged.size != size {
        bail!(
            "blob {sha} of the source store holds {} bytes with sha256 {} (recorded: {size} bytes): not copied",
            staged.size,
            staged.sha256
        );
    }
    dst.put(staged)
        .with_context(|| format!("storing blob {sha} in {}", dst.describe()))?;
    Ok(())
}

fn identities(c: &mut dyn Sql, table: &str, cols: &str) -> anyhow::Result<HashSet<String>> {
    Ok(c.query(&format!("SELECT {cols} FROM {table}"), &[])?
        .iter()
        .map(|r| format!("{:?}", r.0))
        .collect())
}

/// The destination is empty or an earlier copy of this source.
fn check_destination(src: &mut dyn Sql, dst: &mut dyn Sql) -> anyhow::Result<()> {
    for (table, cols) in IDENTITIES {
        let theirs = identities(dst, table, cols)?;
        if theirs.is_empty() {
            continue;
        }
        let ours = identities(src, table, cols)?;
        if let Some(other) = theirs.difference(&ours).next() {
            bail!(
                "the destination database holds another repository ({table} row {other} is not in the source); migrate into an empty one"
            );
        }
    }
    Ok(())
}

fn param(v: &Value) -> Param<'_> {
    match v {
        Value::Null => Param::Null,
        Value::Int(i) => Param::Int(*i),
        Value::Text(s) => Param::Text(s),
        Value::Bool(b) => Param::Bool(*b),
    }
}

/// Copies every row the destination lacks; returns the rows per table.
fn copy_rows(src: &mut dyn Sql, dst: &mut dyn Sql) -> anyhow::Result<Vec<(&'static str, usize)>> {
    let mut counts = Vec::new();
    for (table, cols) in TABLES {
        let rows: Vec<Row> = src.query(&format!("SELECT {cols} FROM {table}"), &[])?;
        let n = cols.split(',').count();
        let placeholders: Vec<String> = (1..=n).map(|i| format!("?{i}")).collect();
        let insert = format!(
            "INSERT INTO {table} ({cols}) VALUES ({}) ON CONFLICT DO NOTHING",
            placeholders.join(", ")
        );
        for r in &rows {
            let params: Vec<Param<'_>> = r.0.iter().map(param).collect();
            dst.execute(&insert, &params)
                .with_context(|| format!("copying a row of {table}"))?;
        }
        counts.push((*table, rows.len()));
    }
    if dst.engine() == Engine::Postgres {
        // Rows came with their ids: new ones continue after them.
        for table in ["jobs", "users", "builds", "deployments"] {
            dst.query(
                &format!(
                    "SELECT setval(pg_get_serial_sequence('{table}', 'id'), COALESCE((SELECT MAX(id) FROM {table}), 0) + 1, false)"
                ),
                &[],
            )?;
        }
    }
    Ok(counts)
}
