//! Who is asking, and may they upload to this job (CONTRACT.md §3).
//!
//! Credentials come as HTTP Basic (users in the database, argon2id) or as a
//! Bearer token; [`Principal`] is what the rest of the server sees, so a
//! second way to authenticate adds a variant, not a new code path.

mod limiter;
pub mod password;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderMap, header};
use base64::Engine;
use uk_names::JobName;

use uk_tokens::{PublicKey, Scope};

use crate::db::{self, Db};
use crate::error::ApiError;
use crate::metrics::{Metrics, inc};
pub use limiter::LoginLimiter;

/// An authenticated caller.
#[derive(Debug, Clone)]
pub enum Principal {
    User {
        id: i64,
        name: String,
        unrestricted: bool,
        /// May upload to a job that does not exist yet (creating it).
        create_jobs: bool,
    },
    /// A verified bearer token: one job, one action.
    Token { job: JobName, scope: Scope, exp: u64 },
}

impl Principal {
    /// For logs and the build's `uploader` column.
    pub fn label(&self) -> String {
        match self {
            Principal::User { name, .. } => format!("user:{name}"),
            Principal::Token { job, scope, exp } => format!("token:{job}/{scope}/exp={exp}"),
        }
    }
}

/// How logins are limited (from `serve`'s flags).
#[derive(Debug, Clone)]
pub struct AuthConfig {
    pub max_failures: u32,
    pub lockout: Duration,
    pub token_keys: Vec<PublicKey>,
    /// Longest token lifetime (`exp - iat`) accepted.
    pub token_max_ttl: Duration,
    /// Password checks that may run at once (each argon2 run takes 19 MiB).
    pub password_slots: usize,
    /// How long an attempt waits for a slot before it gets 503.
    pub password_wait: Duration,
}

/// Verified credentials are remembered this long, so a CI job that uploads
/// and reports again and again costs one password check, not one each.
const VERIFIED_TTL: Duration = Duration::from_secs(60);
const VERIFIED_MAX: usize = 1024;

pub struct Auth {
    db: Db,
    cfg: AuthConfig,
    /// Keyed digest of (user, password) → the stored hash it matched.
    verified: std::sync::Mutex<std::collections::HashMap<[u8; 32], (String, std::time::Instant)>>,
    verified_key: [u8; 32],
    limiter: Arc<LoginLimiter>,
    /// Bounds the memory and CPU that password checks take, whoever sends them.
    password_slots: tokio::sync::Semaphore,
    metrics: Arc<Metrics>,
    /// Verified against when the user is unknown, so that both cases take
    /// the same time.
    dummy_hash: String,
}

impl Auth {
    pub fn new(db: Db, cfg: AuthConfig, metrics: Arc<Metrics>) -> anyhow::Result<Auth> {
        let mut verified_key = [0u8; 32];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut verified_key);
        Ok(Auth {
            db,
            verified: Default::default(),
            verified_key,
            limiter: Arc::new(LoginLimiter::new(cfg.max_failures, cfg.lockout)),
            password_slots: tokio::sync::Semaphore::new(cfg.password_slots.max(1)),
            cfg,
            metrics,
            dummy_hash: password::hash("not a password")?,
        })
    }

    fn credential_key(&self, user: &str, pass: &str) -> [u8; 32] {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        h.update(self.verified_key);
        h.update(user.as_bytes());
        h.update([0]);
        h.update(pass.as_bytes());
        h.finalize().into()
    }

    /// The user, if these exact credentials were verified within the TTL
    /// and the account has not changed since (password, disabled).
    async fn recently_verified(&self, key: &[u8; 32], user: &str) -> Result<Option<Principal>, ApiError> {
        let hash = {
            let map = self.verified.lock().unwrap_or_else(|e| e.into_inner());
            match map.get(key) {
                Some((h, at)) if at.elapsed() < VERIFIED_TTL => h.clone(),
                _ => return Ok(None),
            }
        };
        let u = user.to_owned();
        let row = self.db.read(move |c| db::users::find(c, &u)).await?;
        Ok(row
            .filter(|r| r.password_hash == hash && !r.disabled)
            .map(|r| Principal::User {
                id: r.id,
                name: r.name,
                unrestricted: r.unrestricted,
                create_jobs: r.create_jobs,
            }))
    }

    fn remember(&self, key: [u8; 32], hash: String) {
        let mut map = self.verified.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= VERIFIED_MAX {
            map.retain(|_, (_, at)| at.elapsed() < VERIFIED_TTL);
            if map.len() >= VERIFIED_MAX {
                map.clear();
            }
        }
        map.insert(key, (hash, std::time::Instant::now()));
    }

    fn refused(&self, e: ApiError) -> ApiError {
        inc(&self.metrics.logins_refused);
        e
    }

    /// Checks the request's credentials.
    pub async fn authenticate(&self, headers: &HeaderMap, ip: IpAddr) -> Result<Principal, ApiError> {
        let Some(value) = headers.get(header::AUTHORIZATION) else {
            return Err(ApiError::Unauthorized("credentials are required to upload".into()));
        };
        let value = value
            .to_str()
            .map_err(|_| ApiError::Unauthorized("malformed Authorization header".into()))?;
        let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
        if scheme.eq_ignore_ascii_case("bearer") {
            return self.bearer(rest.trim(), ip).await;
        }
        if !scheme.eq_ignore_ascii_case("basic") {
            return Err(ApiError::Unauthorized(format!(
                "unsupported authorization scheme {scheme:?}"
            )));
        }
        let (user, pass) = decode_basic(rest.trim())?;
        let key = self.credential_key(&user, &pass);
        if let Some(p) = self.recently_verified(&key, &user).await? {
            return Ok(p);
        }
        // Reserved before anything is verified: a burst of guesses from one
        // address gets at most `max_failures` evaluations.
        let attempt = self
            .limiter
            .reserve(ip, self.cfg.password_wait)
            .await
            .map_err(|e| self.refused(e))?;
        let slot = tokio::time::timeout(self.cfg.password_wait, self.password_slots.acquire())
            .await
            .map_err(|_| self.refused(ApiError::Busy("too many logins at once; try again shortly".into())))?
            .map_err(|e| ApiError::Internal(e.into()))?;
        let row = {
            let user = user.clone();
            self.db.read(move |c| db::users::find(c, &user)).await?
        };
        let hash = row
            .as_ref()
            .map(|r| r.password_hash.clone())
            .unwrap_or_else(|| self.dummy_hash.clone());
        inc(&self.metrics.password_checks);
        let ok = tokio::task::spawn_blocking(move || password::verify(&hash, &pass))
            .await
            .map_err(|e| ApiError::Internal(e.into()))?;
        drop(slot);
        match row {
            Some(r) if ok && !r.disabled => {
                attempt.succeeded();
                self.remember(key, r.password_hash.clone());
                Ok(Principal::User {
                    id: r.id,
                    name: r.name,
                    unrestricted: r.unrestricted,
                    create_jobs: r.create_jobs,
                })
            }
            _ => {
                inc(&self.metrics.failed_logins);
                tracing::info!(%ip, user = %uk_cli::escaped(&user), "failed login");
                Err(ApiError::Unauthorized("wrong user name or password".into()))
            }
        }
    }

    async fn bearer(&self, token: &str, ip: IpAddr) -> Result<Principal, ApiError> {
        if self.cfg.token_keys.is_empty() {
            return Err(ApiError::Unauthorized(
                "this server accepts no tokens (no --token-public-key)".into(),
            ));
        }
        let attempt = self
            .limiter
            .reserve(ip, self.cfg.password_wait)
            .await
            .map_err(|e| self.refused(e))?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        match uk_tokens::verify(token, &self.cfg.token_keys, now, self.cfg.token_max_ttl.as_secs()) {
            Ok(c) => {
                attempt.succeeded();
                Ok(Principal::Token {
                    job: c.job,
                    scope: c.scope,
                    exp: c.exp,
                })
            }
            Err(e) => {
                inc(&self.metrics.failed_logins);
                tracing::info!(%ip, "refused token: {e}");
                Err(ApiError::Unauthorized(format!("{e}")))
            }
        }
    }

    /// May `who` report deployments of `job`? `report` tokens for it,
    /// unrestricted users, and users granted the job (also `--report-only`).
    pub async fn authorize_report(&self, who: &Principal, job: &JobName) -> Result<(), ApiError> {
        match who {
            Principal::Token { .. } => token_allows(who, job, Scope::Report),
            Principal::User { unrestricted: true, .. } => Ok(()),
            Principal::User { id, name, .. } => match self.access(*id, job).await? {
                Some(_) => Ok(()),
                None => Err(ApiError::Forbidden(format!(
                    "user {name:?} may not report deployments of job {:?}",
                    job.as_str()
                ))),
            },
        }
    }

    /// `Some(report_only)` when user `id` was granted `job`.
    async fn access(&self, id: i64, job: &JobName) -> Result<Option<bool>, ApiError> {
        let job = job.clone();
        Ok(self.db.read(move |c| db::users::access(c, id, &job)).await?)
    }

    /// May `who` upload a build of `job`? The job must exist unless the
    /// user may create jobs (so a typo in CI does not make a new job).
    pub async fn authorize_upload(&self, who: &Principal, job: &JobName) -> Result<(), ApiError> {
        if let Principal::Token { .. } = who {
            token_allows(who, job, Scope::Upload)?;
        }
        let j = job.clone();
        let exists = self.db.read(move |c| db::builds::job_exists(c, &j)).await?;
        let may_create = matches!(who, Principal::User { create_jobs: true, .. });
        if !exists && !may_create {
            return Err(ApiError::NotFound(format!(
                "there is no job {job:?}: an administrator creates it with `unikernel-repo job add {job}` \
                 (or adds the uploader with --create-jobs)",
                job = job.as_str()
            )));
        }
        match who {
            Principal::Token { .. } | Principal::User { unrestricted: true, .. } => Ok(()),
            Principal::User { id, name, .. } => match self.access(*id, job).await? {
                Some(false) => Ok(()),
                Some(true) => Err(ApiError::Forbidden(format!(
                    "user {name:?} may only report deployments of job {:?} (granted with --report-only)",
                    job.as_str()
                ))),
                None => Err(ApiError::Forbidden(format!(
                    "user {name:?} may not upload to job {:?}",
                    job.as_str()
                ))),
            },
        }
    }
}

fn token_allows(who: &Principal, job: &JobName, wanted: Scope) -> Result<(), ApiError> {
    match who {
        Principal::Token { job: j, scope, .. } if j == job && *scope == wanted => Ok(()),
        Principal::Token { job: j, scope, .. } if j == job => Err(ApiError::Forbidden(format!(
            "a {scope} token may not {wanted} (job {:?})",
            job.as_str()
        ))),
        Principal::Token { job: j, .. } => Err(ApiError::Forbidden(format!(
            "the token is for job {:?}, not {:?}",
            j.as_str(),
            job.as_str()
        ))),
        Principal::User { .. } => Err(ApiError::Forbidden("not a token".into())),
    }
}

fn decode_basic(b64: &str) -> Result<(String, String), ApiError> {
    let bad = || ApiError::Unauthorized("malformed Basic credentials".into());
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|_| bad())?;
    let s = String::from_utf8(raw).map_err(|_| bad())?;
    let (u, p) = s.split_once(':').ok_or_else(bad)?;
    Ok((u.to_owned(), p.to_owned()))
}
