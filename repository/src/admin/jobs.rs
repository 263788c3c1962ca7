//! `unikernel-repo job …`, `build …` and `vacuum` (CONTRACT.md §8): list and
//! remove jobs and builds, and drop the files of old builds while keeping
//! their rows and digests. Blobs another build still uses stay; the others
//! are removed from the store (see `gc.rs` for why this is safe while the
//! server runs).

use std::process::ExitCode;
use std::time::Duration;

use anyhow::bail;
use clap::{Args, Subcommand};
use uk_names::{BuildId, JobName};

use super::Location;
use crate::db::builds::{self, VacuumPolicy};
use crate::db::jobs;
use crate::gc;

#[derive(Subcommand, Debug)]
pub enum JobCommand {
    /// List jobs with their number of builds and latest build.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Create a job (uploads go only to existing jobs, unless the uploader
    /// was added with --create-jobs).
    Add { name: JobName },
    /// Remove a job with all its builds, reports and grants.
    Remove { name: JobName },
}

#[derive(Subcommand, Debug)]
pub enum BuildCommand {
    /// List the builds of a job, newest first.
    List {
        job: JobName,
        #[arg(long)]
        json: bool,
    },
    /// Remove one build with its reports (its files too, unless another build shares them).
    Remove { uuid: BuildId },
}

#[derive(Args, Debug)]
pub struct VacuumArgs {
    /// Keep the files of the newest N builds of each job and platform.
    #[arg(long, value_name = "N")]
    pub keep: Option<u32>,
    /// Only builds that finished longer ago than this, e.g. 90d, 12weeks.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub older_than: Option<Duration>,
    /// Only this job's builds.
    #[arg(long)]
    pub job: Option<JobName>,
    /// Show what would go; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// The report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

pub fn job(loc: &Location, cmd: JobCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        JobCommand::List { json } => {
            let list = jobs::list(loc.open_existing()?.as_mut())?;
            if json {
                uk_cli::out(serde_json::to_string(&list)?)?;
            } else {
                for j in list {
                    let latest = match (&j.latest, &j.latest_finish_time) {
                        (Some(u), Some(t)) => format!("latest {u} ({t})"),
                        _ => "no build with a main binary".into(),
                    };
                    let vacuumed = if j.vacuumed > 0 {
                        format!(", {} vacuumed", j.vacuumed)
                    } else {
                        String::new()
                    };
                    uk_cli::out(format!("{}\t{} builds{vacuumed}\t{latest}", j.name, j.builds))?;
                }
            }
        }
        JobCommand::Add { name } => {
            jobs::add(loc.open_or_create()?.as_mut(), &name)?;
            eprintln!("added job {:?}", name.as_str());
        }
        JobCommand::Remove { name } => {
            let mut conn = loc.open_existing()?;
            let store = loc.open_store()?;
            let (n, shas) = jobs::remove(conn.as_mut(), &name)?;
            let freed = gc::collect(conn.as_mut(), store.as_ref(), Duration::ZERO, Some(&shas), false)?;
            eprintln!(
                "removed job {:?}: {n} builds, {} files ({}) no other build used",
                name.as_str(),
                freed.len(),
                human(freed.iter().map(|(_, s)| s).sum())
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn build(loc: &Location, cmd: BuildCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        BuildCommand::List { job, json } => {
            let mut conn = loc.open_existing()?;
            let Some(rows) = builds::job_builds(conn.as_mut(), &job, None)? else {
                bail!("there is no job {:?}", job.as_str());
            };
            if json {
                let list: Vec<_> = rows.iter().map(|b| b.to_json()).collect();
                uk_cli::out(serde_json::to_string(&list)?)?;
            } else {
                for b in rows {
                    let main = b
                        .main_file()
                        .map(|m| format!("{} {} {}", m.filepath, m.sha256, human(m.size)))
                        .unwrap_or_else(|| "no main binary".into());
                    let state = if b.vacuumed.is_some() { "\t(vacuumed)" } else { "" };
                    uk_cli::out(format!("{}\t{}\t{}\t{main}{state}", b.uuid, b.platform, b.finish_time))?;
                }
            }
        }
        BuildCommand::Remove { uuid } => {
            let mut conn = loc.open_existing()?;
            let store = loc.open_store()?;
            let Some((job, shas)) = builds::remove(conn.as_mut(), &uuid)? else {
                bail!("there is no build {uuid}");
            };
            let freed = gc::collect(conn.as_mut(), store.as_ref(), Duration::ZERO, Some(&shas), false)?;
            eprintln!(
                "removed build {uuid} of job {:?}: {} files ({}) no other build used",
                job.as_str(),
                freed.len(),
                human(freed.iter().map(|(_, s)| s).sum())
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn vacuum(loc: &Location, a: VacuumArgs) -> anyhow::Result<ExitCode> {
    if a.keep.is_none() && a.older_than.is_none() {
        bail!("say which builds to vacuum: --keep N, --older-than DURATION, or both");
    }
    let older_than = match a.older_than {
        Some(d) => {
            let cutoff = time::OffsetDateTime::now_utc() - d;
            Some(
                cutoff
                    .replace_nanosecond(0)
                    .unwrap_or(cutoff)
                    .format(&time::format_description::well_known::Rfc3339)?,
            )
        }
        None => None,
    };
    let policy = VacuumPolicy {
        keep: a.keep,
        older_than,
        job: a.job,
    };
    let mut conn = loc.open_existing()?;
    let store = loc.open_store()?;
    let report = crate::vacuum::run(conn.as_mut(), store.as_ref(), &policy, a.dry_run)?;
    if a.json {
        uk_cli::out(serde_json::to_string(&report)?)?;
    }
    let verb = if a.dry_run { "would drop" } else { "dropped" };
    for b in &report.builds {
        eprintln!(
            "{verb} the files of {} build {} ({}, {})",
            b.job, b.uuid, b.platform, b.finish_time
        );
    }
    eprintln!(
        "{} builds; {} files no longer used, {} {}",
        report.builds.len(),
        report.blobs_removed,
        human(report.bytes_freed),
        if a.dry_run {
            "would be freed (dry run: nothing changed)"
        } else {
            "freed"
        }
    );
    Ok(ExitCode::SUCCESS)
}
