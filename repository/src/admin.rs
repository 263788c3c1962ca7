//! `unikernel-repo user …` and `unikernel-repo access …`: manage uploaders
//! in the data dir's database directly (safe while the server runs: SQLite
//! serialises the writes). Passwords come from standard input, never argv.

use std::io::{BufRead, IsTerminal};
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Subcommand;
use uk_names::JobName;

use crate::auth::password;
use crate::db::{self, users};

#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Add a user; the password is read from standard input (first line).
    Add {
        /// The user's name.
        name: String,
        /// May upload to every job and create new jobs.
        #[arg(long)]
        unrestricted: bool,
    },
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
    /// Allow USER to upload to JOB (the job is created if new).
    Add { user: String, job: JobName },
    /// Take that right away again.
    Remove { user: String, job: JobName },
}

fn open(data_dir: &Path) -> anyhow::Result<rusqlite::Connection> {
    std::fs::create_dir_all(data_dir).with_context(|| format!("creating data dir {:?}", data_dir.display()))?;
    db::open(&db::db_path(data_dir))
}

fn read_password() -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprint!("password: ");
    }
    let mut line = String::new();
    stdin
        .lock()
        .read_line(&mut line)
        .context("reading the password from standard input")?;
    let pw = line.trim_end_matches(['\n', '\r']).to_owned();
    if pw.is_empty() {
        bail!("no password given on standard input");
    }
    Ok(pw)
}

pub fn user(data_dir: &Path, cmd: UserCommand) -> anyhow::Result<ExitCode> {
    let conn = open(data_dir)?;
    match cmd {
        UserCommand::Add { name, unrestricted } => {
            if name.is_empty() || name.contains(':') || name.chars().any(char::is_control) {
                bail!("invalid user name {name:?}: it must be non-empty, without ':' or control characters");
            }
            let hash = password::hash(&read_password()?)?;
            users::add(&conn, &name, &hash, unrestricted)?;
            eprintln!(
                "added user {name:?}{}",
                if unrestricted { " (unrestricted)" } else { "" }
            );
        }
        UserCommand::List { json } => {
            let list = users::list(&conn)?;
            if json {
                crate::out(serde_json::to_string(&list)?)?;
            } else {
                for u in list {
                    let rights = if u.unrestricted {
                        "unrestricted".to_owned()
                    } else {
                        format!("jobs: {}", u.jobs.join(","))
                    };
                    let state = if u.disabled { " (disabled)" } else { "" };
                    crate::out(format!("{}\t{rights}{state}", u.name))?;
                }
            }
        }
        UserCommand::Remove { name } => {
            users::remove(&conn, &name)?;
            eprintln!("removed user {name:?}");
        }
        UserCommand::Disable { name } => {
            users::set_disabled(&conn, &name, true)?;
            eprintln!("disabled user {name:?}");
        }
        UserCommand::Enable { name } => {
            users::set_disabled(&conn, &name, false)?;
            eprintln!("enabled user {name:?}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn access(data_dir: &Path, cmd: AccessCommand) -> anyhow::Result<ExitCode> {
    let mut conn = open(data_dir)?;
    match cmd {
        AccessCommand::Add { user, job } => {
            users::grant(&mut conn, &user, &job)?;
            eprintln!("user {user:?} may upload to job {:?}", job.as_str());
        }
        AccessCommand::Remove { user, job } => {
            users::revoke(&conn, &user, &job)?;
            eprintln!("user {user:?} may no longer upload to job {:?}", job.as_str());
        }
    }
    Ok(ExitCode::SUCCESS)
}
