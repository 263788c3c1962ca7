//! `unikernel-repo user …` and `unikernel-repo access …`: who may upload
//! and who may report (CONTRACT.md §3). Passwords come from standard input
//! (on a terminal: asked twice, not echoed), never from argv.

use std::io::{BufRead, IsTerminal};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Subcommand;
use uk_names::JobName;

use super::Location;
use crate::auth::password;
use crate::db::users::{self, Rights};

#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Add a user; the password is read from standard input (first line;
    /// on a terminal it is asked twice and not shown).
    Add {
        /// The user's name.
        name: String,
        /// May upload to every existing job (without grants).
        #[arg(long)]
        unrestricted: bool,
        /// May also create a job by uploading to it (otherwise jobs are made
        /// with `job add`, so a typo in CI does not create one).
        #[arg(long)]
        create_jobs: bool,
    },
    /// Change a user's password (read as for `add`).
    Passwd { name: String },
    /// List users (name, rights, state, granted jobs); `--json` for scripts.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Remove a user and their grants.
    Remove { name: String },
    /// Disable a user: their credentials stop working, grants are kept.
    Disable { name: String },
    /// Enable a disabled user again.
    Enable { name: String },
}

#[derive(Subcommand, Debug)]
pub enum AccessCommand {
    /// Allow USER to upload to JOB (and report its deployments); the job must exist.
    Add {
        user: String,
        job: JobName,
        /// Only deployment reports, no uploads (for a host's account).
        #[arg(long)]
        report_only: bool,
    },
    /// Take that right away again.
    Remove { user: String, job: JobName },
}

/// The new password: from a terminal, asked twice without echo; otherwise
/// the first line of standard input.
fn read_password() -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    let pw = if stdin.is_terminal() {
        let first = rpassword::prompt_password("password: ").context("reading the password")?;
        let again = rpassword::prompt_password("again: ").context("reading the password")?;
        if first != again {
            bail!("the two passwords differ; nothing was changed");
        }
        first
    } else {
        let mut line = String::new();
        stdin
            .lock()
            .read_line(&mut line)
            .context("reading the password from standard input")?;
        line.trim_end_matches(['\n', '\r']).to_owned()
    };
    if pw.is_empty() {
        bail!("no password given on standard input");
    }
    Ok(pw)
}

fn check_name(name: &str) -> anyhow::Result<()> {
    if name.is_empty() || name.contains(':') || name.chars().any(char::is_control) {
        bail!("invalid user name {name:?}: it must be non-empty, without ':' or control characters");
    }
    Ok(())
}

pub fn user(loc: &Location, cmd: UserCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        UserCommand::Add {
            name,
            unrestricted,
            create_jobs,
        } => {
            check_name(&name)?;
            let hash = password::hash(&read_password()?)?;
            let mut conn = loc.open_or_create()?;
            users::add(
                conn.as_mut(),
                &name,
                &hash,
                Rights {
                    unrestricted,
                    create_jobs,
                },
            )?;
            let mut rights = Vec::new();
            if unrestricted {
                rights.push("unrestricted");
            }
            if create_jobs {
                rights.push("may create jobs");
            }
            let rights = if rights.is_empty() {
                String::new()
            } else {
                format!(" ({})", rights.join(", "))
            };
            eprintln!("added user {name:?}{rights}");
        }
        UserCommand::Passwd { name } => {
            let mut conn = loc.open_existing()?;
            if users::find(conn.as_mut(), &name)?.is_none() {
                bail!("no user {name:?}");
            }
            let hash = password::hash(&read_password()?)?;
            users::set_password(conn.as_mut(), &name, &hash)?;
            eprintln!("changed the password of {name:?}");
        }
        UserCommand::List { json } => {
            let list = users::list(loc.open_existing()?.as_mut())?;
            if json {
                uk_cli::out(serde_json::to_string(&list)?)?;
            } else {
                for u in list {
                    let mut rights = vec![if u.unrestricted {
                        "unrestricted".to_owned()
                    } else {
                        format!("jobs: {}", u.jobs.join(","))
                    }];
                    if !u.report_jobs.is_empty() {
                        rights.push(format!("reports: {}", u.report_jobs.join(",")));
                    }
                    if u.create_jobs {
                        rights.push("creates jobs".into());
                    }
                    let state = if u.disabled { " (disabled)" } else { "" };
                    uk_cli::out(format!("{}\t{}{state}", u.name, rights.join("; ")))?;
                }
            }
        }
        UserCommand::Remove { name } => {
            users::remove(loc.open_existing()?.as_mut(), &name)?;
            eprintln!("removed user {name:?}");
        }
        UserCommand::Disable { name } => {
            users::set_disabled(loc.open_existing()?.as_mut(), &name, true)?;
            eprintln!("disabled user {name:?}");
        }
        UserCommand::Enable { name } => {
            users::set_disabled(loc.open_existing()?.as_mut(), &name, false)?;
            eprintln!("enabled user {name:?}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn access(loc: &Location, cmd: AccessCommand) -> anyhow::Result<ExitCode> {
    let mut conn = loc.open_existing()?;
    match cmd {
        AccessCommand::Add { user, job, report_only } => {
            users::grant(conn.as_mut(), &user, &job, report_only)?;
            let what = if report_only {
                "may send deployment reports for"
            } else {
                "may upload to"
            };
            eprintln!("user {user:?} {what} job {:?}", job.as_str());
        }
        AccessCommand::Remove { user, job } => {
            users::revoke(conn.as_mut(), &user, &job)?;
            eprintln!("user {user:?} may no longer upload to job {:?}", job.as_str());
        }
    }
    Ok(ExitCode::SUCCESS)
}
