//! The admin commands (CONTRACT.md §3, §8): users and grants (`users.rs`),
//! jobs, builds and retention (`jobs.rs`). They work on the data directory
//! directly, also while `serve` runs (SQLite serialises the writes). Only
//! the commands that create something may create a data directory; every
//! other one refuses a directory that holds no repository.

pub mod jobs;
pub mod users;

use std::path::Path;

use anyhow::Context;

use crate::db;
use crate::store::LocalStore;

/// The database of an existing repository (never creates one).
pub(crate) fn open_existing(data_dir: &Path) -> anyhow::Result<rusqlite::Connection> {
    db::open_existing(data_dir)
}

/// The database, creating the data directory and the repository if needed.
pub(crate) fn open_or_create(data_dir: &Path) -> anyhow::Result<rusqlite::Connection> {
    std::fs::create_dir_all(data_dir).with_context(|| format!("creating data dir {:?}", data_dir.display()))?;
    db::open(&db::db_path(data_dir))
}

/// The store of an existing repository.
pub(crate) fn open_store(data_dir: &Path) -> anyhow::Result<LocalStore> {
    LocalStore::open(data_dir).with_context(|| format!("opening the store in {:?}", data_dir.display()))
}
