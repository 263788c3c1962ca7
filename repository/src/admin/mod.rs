//! The admin commands (CONTRACT.md §3, §8, §9): users and grants
//! (`users.rs`), jobs, builds and retention (`jobs.rs`), copying a
//! repository elsewhere (`migrate.rs`). They work on the repository's
//! database and store directly, also while `serve` runs (the engines
//! serialise the writes). Only the commands that create something may
//! create a repository; every other one refuses a database that holds none.

pub mod jobs;
pub mod migrate;
pub mod users;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;

use crate::db::{DbUrl, Sql};
use crate::store::{ArtifactStore, StoreUrl};

/// Where a repository is: the global `--data-dir`, `--database-url` and
/// `--store-url`, defaults filled in.
#[derive(Debug, Clone)]
pub struct Location {
    pub data_dir: PathBuf,
    pub database: DbUrl,
    pub store: StoreUrl,
}

impl Location {
    pub fn new(data_dir: PathBuf, database: Option<DbUrl>, store: Option<StoreUrl>) -> Location {
        Location {
            database: database.unwrap_or_else(|| DbUrl::in_data_dir(&data_dir)),
            store: store.unwrap_or_else(|| StoreUrl::in_data_dir(&data_dir)),
            data_dir,
        }
    }

    /// The database of an existing repository (never creates one).
    pub fn open_existing(&self) -> anyhow::Result<Box<dyn Sql>> {
        if self.database == DbUrl::in_data_dir(&self.data_dir) {
            crate::datadir::require_existing(&self.data_dir)?;
        }
        self.database.open_existing()
    }

    /// The database, creating the data directory and the repository if needed.
    pub fn open_or_create(&self) -> anyhow::Result<Box<dyn Sql>> {
        if let DbUrl::Sqlite(path) = &self.database
            && let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        {
            std::fs::create_dir_all(dir).with_context(|| format!("creating data dir {:?}", dir.display()))?;
        }
        self.database.open()
    }

    /// The store of an existing repository.
    pub fn open_store(&self) -> anyhow::Result<Arc<dyn ArtifactStore>> {
        self.store.open(&self.data_dir.join("staging"))
    }
}
