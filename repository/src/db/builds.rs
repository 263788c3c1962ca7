//! Queries on jobs, builds and artifacts. "Latest" is the build with the
//! highest id that has a main binary: ids are assigned inside the write
//! transaction, and both engines serialise writers (`sql.rs`), so id order
//! is commit order.

use anyhow::Context;
use uk_digest::Sha256;
use uk_names::{ArtifactPath, BuildId, JobName, PlatformName};
use uk_wire::{BuildJson, FileJson, MainBinaryJson};

use super::sql::{Row, Sql, query_opt, write_tx};
use crate::params;

/// A committed build as stored.
#[derive(Debug, Clone)]
pub struct BuildRow {
    pub id: i64,
    pub uuid: BuildId,
    pub job: JobName,
    pub platform: PlatformName,
    pub start_time: String,
    pub finish_time: String,
    pub main_binary: Option<ArtifactPath>,
    pub solo5_abi: Option<serde_json::Value>,
    pub solo5_manifest: Option<serde_json::Value>,
    /// When vacuum dropped this build's files (rows and digests stay).
    pub vacuumed: Option<String>,
    pub artifacts: Vec<FileJson>,
}

impl BuildRow {
    pub fn main_file(&self) -> Option<&FileJson> {
        let main = self.main_binary.as_ref()?;
        self.artifacts.iter().find(|a| &a.filepath == main)
    }

    /// The build JSON of CONTRACT.md §2.
    pub fn to_json(&self) -> BuildJson {
        let main_binary_file = self.main_file().map(|m| {
            let sig = format!("{}.minisig", m.filepath);
            MainBinaryJson {
                filepath: m.filepath.clone(),
                sha256: m.sha256,
                size: m.size,
                signature: self
                    .artifacts
                    .iter()
                    .find(|a| a.filepath.as_str() == sig)
                    .map(|a| a.filepath.clone()),
            }
        });
        BuildJson {
            job: self.job.clone(),
            uuid: self.uuid,
            platform: self.platform.clone(),
            start_time: self.start_time.clone(),
            finish_time: self.finish_time.clone(),
            main_binary: main_binary_file.is_some(),
            solo5_abi: self.solo5_abi.clone(),
            solo5_manifest: self.solo5_manifest.clone(),
            main_binary_file,
            artifacts: self.artifacts.clone(),
            vacuumed: self.vacuumed.clone(),
            deployments: Vec::new(),
        }
    }
}

/// A build about to be committed; its files are already durable in the store.
pub struct NewBuild {
    pub uuid: BuildId,
    pub job: JobName,
    pub platform: PlatformName,
    pub start_time: String,
    pub main_binary: Option<ArtifactPath>,
    pub solo5_abi: Option<serde_json::Value>,
    pub solo5_manifest: Option<serde_json::Value>,
    pub uploader: String,
    pub artifacts: Vec<FileJson>,
}

pub enum Inserted {
    Created(BuildRow),
    /// The upload repeated the job's latest main binary: nothing was added.
    Existing(BuildRow),
}

const BUILD_COLS: &str = "b.id, b.uuid, j.name, b.platform, b.start_time, b.finish_time, b.main_binary, b.solo5_abi, b.solo5_manifest, b.vacuumed";

fn json_col(s: Option<String>) -> Option<serde_json::Value> {
    s.and_then(|s| serde_json::from_str(&s).ok())
}

fn build_from_row(r: &Row) -> anyhow::Result<BuildRow> {
    Ok(BuildRow {
        id: r.int(0)?,
        uuid: r.parse(1, "uuid")?,
        job: r.parse(2, "job")?,
        platform: r.parse(3, "platform")?,
        start_time: r.text(4)?,
        finish_time: r.text(5)?,
        main_binary: match r.opt_text(6)? {
            Some(s) => Some(
                s.parse()
                    .map_err(|e| anyhow::anyhow!("bad filepath {s:?} in the database: {e}"))?,
            ),
            None => None,
        },
        solo5_abi: json_col(r.opt_text(7)?),
        solo5_manifest: json_col(r.opt_text(8)?),
        vacuumed: r.opt_text(9)?,
        artifacts: Vec::new(),
    })
}

fn artifacts_of(c: &mut dyn Sql, build_id: i64) -> anyhow::Result<Vec<FileJson>> {
    c.query(
        "SELECT filepath, sha256, size FROM artifacts WHERE build_id = ?1 ORDER BY filepath",
        params![build_id],
    )?
    .iter()
    .map(|r| {
        Ok(FileJson {
            filepath: r.parse(0, "filepath")?,
            sha256: r.parse(1, "sha256")?,
            size: r.int(2)? as u64,
        })
    })
    .collect()
}

fn with_artifacts(c: &mut dyn Sql, row: Option<Row>) -> anyhow::Result<Option<BuildRow>> {
    match row {
        Some(r) => {
            let mut b = build_from_row(&r)?;
            b.artifacts = artifacts_of(c, b.id)?;
            Ok(Some(b))
        }
        None => Ok(None),
    }
}

pub fn job_exists(c: &mut dyn Sql, job: &JobName) -> anyhow::Result<bool> {
    Ok(query_opt(c, "SELECT 1 FROM jobs WHERE name = ?1", params![job.as_str()])?.is_some())
}

/// The latest build of a job with a main binary (and its files: vacuum
/// never drops a latest build's, but `build remove` can make an older one
/// the latest), optionally of one platform.
pub fn latest(c: &mut dyn Sql, job: &JobName, platform: Option<&PlatformName>) -> anyhow::Result<Option<BuildRow>> {
    let sql = format!(
        "SELECT {BUILD_COLS} FROM builds b JOIN jobs j ON j.id = b.job_id
         WHERE j.name = ?1 AND b.main_binary IS NOT NULL AND b.vacuumed IS NULL AND (CAST(?2 AS TEXT) IS NULL OR b.platform = ?2)
         ORDER BY b.id DESC LIMIT 1"
    );
    let row = query_opt(c, &sql, params![job.as_str(), platform.map(|p| p.as_str())])?;
    with_artifacts(c, row)
}

/// One build of a job.
pub fn build(c: &mut dyn Sql, job: &JobName, uuid: &BuildId) -> anyhow::Result<Option<BuildRow>> {
    let sql =
        format!("SELECT {BUILD_COLS} FROM builds b JOIN jobs j ON j.id = b.job_id WHERE j.name = ?1 AND b.uuid = ?2");
    let row = query_opt(c, &sql, params![job.as_str(), &uuid.to_string()])?;
    with_artifacts(c, row)
}

/// All builds of a job, newest first; `None` when the job does not exist.
pub fn job_builds(
    c: &mut dyn Sql,
    job: &JobName,
    platform: Option<&PlatformName>,
) -> anyhow::Result<Option<Vec<BuildRow>>> {
    if !job_exists(c, job)? {
        return Ok(None);
    }
    let sql = format!(
        "SELECT {BUILD_COLS} FROM builds b JOIN jobs j ON j.id = b.job_id
         WHERE j.name = ?1 AND (CAST(?2 AS TEXT) IS NULL OR b.platform = ?2) ORDER BY b.id DESC"
    );
    let rows = c.query(&sql, params![job.as_str(), platform.map(|p| p.as_str())])?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        out.extend(with_artifacts(c, Some(r))?);
    }
    Ok(Some(out))
}

/// Every job with its synopsis, by name.
pub fn jobs(c: &mut dyn Sql) -> anyhow::Result<Vec<(JobName, Option<String>)>> {
    c.query("SELECT name, synopsis FROM jobs ORDER BY name", &[])?
        .iter()
        .map(|r| Ok((r.parse(0, "job")?, r.opt_text(1)?)))
        .collect()
}

/// One stored file of a build, as a download needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredFile {
    pub sha256: Sha256,
    pub size: u64,
    /// Its bytes were dropped by vacuum (410 Gone).
    pub vacuumed: bool,
}

/// Digest and size of one artifact of a build.
pub fn artifact(
    c: &mut dyn Sql,
    job: &JobName,
    uuid: &BuildId,
    path: &ArtifactPath,
) -> anyhow::Result<Option<StoredFile>> {
    let row = query_opt(
        c,
        "SELECT a.sha256, a.size, b.vacuumed IS NOT NULL FROM artifacts a JOIN builds b ON b.id = a.build_id JOIN jobs j ON j.id = b.job_id
         WHERE j.name = ?1 AND b.uuid = ?2 AND a.filepath = ?3",
        params![job.as_str(), &uuid.to_string(), path.as_str()],
    )
    .context("looking up an artifact")?;
    row.map(|r| {
        Ok(StoredFile {
            sha256: r.parse(0, "sha256")?,
            size: r.int(1)? as u64,
            vacuumed: r.bool(2)?,
        })
    })
    .transpose()
}

/// The newest build holding an artifact with this digest.
pub fn build_by_hash(c: &mut dyn Sql, sha: &Sha256) -> anyhow::Result<Option<(JobName, BuildId)>> {
    let row = query_opt(
        c,
        "SELECT j.name, b.uuid FROM artifacts a JOIN builds b ON b.id = a.build_id JOIN jobs j ON j.id = b.job_id
         WHERE a.sha256 = ?1 ORDER BY b.id DESC LIMIT 1",
        params![&sha.to_hex()],
    )
    .context("looking up a digest")?;
    row.map(|r| Ok((r.parse(0, "job")?, r.parse(1, "uuid")?))).transpose()
}

/// Commits a build in one transaction, unless it repeats the job's latest
/// main binary (a CI retry), in which case that build is returned.
/// `stored` is asked, under the write lock, whether each file is still in
/// the store: a blob collector (`vacuum` in another process) deletes only
/// under the same lock, so a build never commits with a missing file.
pub fn insert_build(
    c: &mut dyn Sql,
    nb: NewBuild,
    finish_time: String,
    stored: &dyn Fn(&Sha256) -> std::io::Result<bool>,
) -> anyhow::Result<Inserted> {
    write_tx(c, |tx| {
        if let Some(main) = &nb.main_binary {
            let new_sha = nb.artifacts.iter().find(|a| &a.filepath == main).map(|a| a.sha256);
            if let Some(prev) = latest(tx, &nb.job, None)? {
                let same = prev.platform == nb.platform
                    && prev.main_binary.as_ref() == Some(main)
                    && prev.main_file().map(|f| f.sha256) == new_sha;
                if same {
                    return Ok(Inserted::Existing(prev));
                }
            }
        }
        for a in &nb.artifacts {
            if !stored(&a.sha256).context("checking the store")? {
                anyhow::bail!(
                    "artifact {} ({}) disappeared from the store before the commit (a concurrent vacuum?)",
                    a.filepath,
                    a.sha256
                );
            }
        }
        tx.execute(
            "INSERT INTO jobs (name) VALUES (?1) ON CONFLICT DO NOTHING",
            params![nb.job.as_str()],
        )?;
        let job_id = query_opt(tx, "SELECT id FROM jobs WHERE name = ?1", params![nb.job.as_str()])?
            .context("the job just inserted")?
            .int(0)?;
        let main_sha = nb
            .main_binary
            .as_ref()
            .and_then(|m| nb.artifacts.iter().find(|a| &a.filepath == m))
            .map(|a| a.sha256.to_hex());
        let (abi, manifest) = (
            nb.solo5_abi.as_ref().map(|v| v.to_string()),
            nb.solo5_manifest.as_ref().map(|v| v.to_string()),
        );
        let build_id = query_opt(
            tx,
            "INSERT INTO builds (uuid, job_id, platform, start_time, finish_time, main_binary, main_sha256, solo5_abi, solo5_manifest, uploader)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) RETURNING id",
            params![
                &nb.uuid.to_string(),
                job_id,
                nb.platform.as_str(),
                &nb.start_time,
                &finish_time,
                nb.main_binary.as_ref().map(|m| m.as_str()),
                main_sha.as_ref(),
                abi.as_ref(),
                manifest.as_ref(),
                &nb.uploader,
            ],
        )?
        .context("the build just inserted")?
        .int(0)?;
        for a in &nb.artifacts {
            tx.execute(
                "INSERT INTO artifacts (build_id, filepath, sha256, size) VALUES (?1, ?2, ?3, ?4)",
                params![build_id, a.filepath.as_str(), &a.sha256.to_hex(), a.size as i64],
            )?;
        }
        let row = build(tx, &nb.job, &nb.uuid)?.context("reading back the new build")?;
        tx.notify(nb.job.as_str())?;
        Ok(Inserted::Created(row))
    })
}

/// Removes one build (any job) with its artifacts and reports; returns its
/// job and the digests it held, or `None` if there is no such build.
pub fn remove(c: &mut dyn Sql, uuid: &BuildId) -> anyhow::Result<Option<(JobName, Vec<Sha256>)>> {
    write_tx(c, |tx| {
        let found = query_opt(
            tx,
            "SELECT b.id, j.name FROM builds b JOIN jobs j ON j.id = b.job_id WHERE b.uuid = ?1",
            params![&uuid.to_string()],
        )?;
        let Some(found) = found else {
            return Ok(None);
        };
        let (id, job): (i64, JobName) = (found.int(0)?, found.parse(1, "job")?);
        let shas = super::jobs::digests_of(tx, "SELECT DISTINCT sha256 FROM artifacts WHERE build_id = ?1", id)?;
        tx.execute("DELETE FROM deployments WHERE build_id = ?1", params![id])?;
        tx.execute("DELETE FROM artifacts WHERE build_id = ?1", params![id])?;
        tx.execute("DELETE FROM builds WHERE id = ?1", params![id])?;
        tx.notify(job.as_str())?;
        Ok(Some((job, shas)))
    })
}

/// Which builds `vacuum` drops the files of (CONTRACT.md §8).
#[derive(Debug, Clone, Default)]
pub struct VacuumPolicy {
    /// Keep the files of the newest N builds of each job and platform.
    pub keep: Option<u32>,
    /// Only builds finished before this RFC 3339 time.
    pub older_than: Option<String>,
    pub job: Option<JobName>,
}

/// A build whose files a vacuum drops.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Vacuumed {
    pub job: JobName,
    pub uuid: BuildId,
    pub platform: PlatformName,
    pub finish_time: String,
}

/// Marks the builds the policy selects as vacuumed (never the latest build
/// with a main binary of a job and platform, never one already vacuumed)
/// and returns them with the digests they held. Runs in the caller's
/// write transaction.
pub fn mark_vacuumed(
    tx: &mut dyn Sql,
    policy: &VacuumPolicy,
    now: &str,
) -> anyhow::Result<(Vec<Vacuumed>, Vec<Sha256>)> {
    // Rank builds with files per job and platform, newest first.
    let rows = tx.query(
        "SELECT b.id, j.name, b.uuid, b.platform, b.finish_time,
                ROW_NUMBER() OVER (PARTITION BY b.job_id, b.platform ORDER BY b.id DESC) AS rank,
                b.id = (SELECT MAX(b2.id) FROM builds b2 WHERE b2.job_id = b.job_id AND b2.platform = b.platform
                        AND b2.main_binary IS NOT NULL AND b2.vacuumed IS NULL) AS is_latest
         FROM builds b JOIN jobs j ON j.id = b.job_id
         WHERE b.vacuumed IS NULL AND (CAST(?1 AS TEXT) IS NULL OR j.name = ?1)",
        params![policy.job.as_ref().map(|j| j.as_str())],
    )?;
    let mut chosen = Vec::new();
    for r in rows {
        let (id, finish_time, rank, is_latest) = (r.int(0)?, r.text(4)?, r.int(5)?, r.bool(6)?);
        let beyond_keep = policy.keep.is_none_or(|k| rank > i64::from(k));
        let old_enough = policy.older_than.as_deref().is_none_or(|t| finish_time.as_str() < t);
        if is_latest || !beyond_keep || !old_enough {
            continue;
        }
        chosen.push((
            id,
            Vacuumed {
                job: r.parse(1, "job")?,
                uuid: r.parse(2, "uuid")?,
                platform: r.parse(3, "platform")?,
                finish_time,
            },
        ));
    }
    let mut shas = Vec::new();
    for (id, _) in &chosen {
        shas.extend(super::jobs::digests_of(
            tx,
            "SELECT sha256 FROM artifacts WHERE build_id = ?1",
            *id,
        )?);
        tx.execute("UPDATE builds SET vacuumed = ?2 WHERE id = ?1", params![*id, now])?;
    }
    Ok((chosen.into_iter().map(|(_, v)| v).collect(), shas))
}

/// One build by its id alone, whatever its job (`/compare` names builds so).
pub fn build_by_uuid(c: &mut dyn Sql, uuid: &BuildId) -> anyhow::Result<Option<BuildRow>> {
    let sql = format!("SELECT {BUILD_COLS} FROM builds b JOIN jobs j ON j.id = b.job_id WHERE b.uuid = ?1");
    let row = query_opt(c, &sql, params![&uuid.to_string()])?;
    with_artifacts(c, row)
}

/// The build of the same job and platform committed just before `b` (the
/// build page's "compare with the previous build").
pub fn previous(c: &mut dyn Sql, b: &BuildRow) -> anyhow::Result<Option<BuildId>> {
    query_opt(
        c,
        "SELECT b.uuid FROM builds b JOIN jobs j ON j.id = b.job_id
         WHERE j.name = ?1 AND b.platform = ?2 AND b.id < ?3 ORDER BY b.id DESC LIMIT 1",
        params![b.job.as_str(), b.platform.as_str(), b.id],
    )
    .context("looking up the previous build")?
    .map(|r| r.parse(0, "uuid"))
    .transpose()
}
