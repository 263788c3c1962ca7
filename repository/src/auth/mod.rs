//! Who is asking, and may they upload to this job (CONTRACT.md §3).
//!
//! Credentials come as HTTP Basic (users in the database, argon2id) or as a
//! Bearer token; [`Principal`] is what the rest of the server sees, so a
//! second way to authenticate adds a variant, not a new code path.

mod limiter;
pub mod password;

use std::net::IpAddr;
use std::time::Duration;

use axum::http::{HeaderMap, header};
use base64::Engine;
use uk_names::JobName;

use uk_tokens::{PublicKey, Scope};

use crate::db::{self, Db};
use crate::error::ApiError;
pub use limiter::LoginLimiter;

/// An authenticated caller.
#[derive(Debug, Clone)]
pub enum Principal {
    User {
        id: i64,
        name: String,
        unrestricted: bool,
    },
    /// A verified bearer token: one job, one action.
    Token {
        job: JobName,
        scope: Scope,
        exp: u64,
    },
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

pub struct Auth {
    db: Db,
    /// Public keys whose tokens are accepted (several during a rotation).
    token_keys: Vec<PublicKey>,
    limiter: LoginLimiter,
    /// Verified against when the user is unknown, so that both cases take
    /// the same time.
    dummy_hash: String,
}

impl Auth {
    pub fn new(db: Db, max_failures: u32, lockout: Duration, token_keys: Vec<PublicKey>) -> anyhow::Result<Auth> {
        Ok(Auth {
            db,
            token_keys,
            limiter: LoginLimiter::new(max_failures, lockout),
            dummy_hash: password::hash("not a password")?,
        })
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
            return self.bearer(rest.trim(), ip);
        }
        if !scheme.eq_ignore_ascii_case("basic") {
            return Err(ApiError::Unauthorized(format!(
                "unsupported authorization scheme {scheme:?}"
            )));
        }
        self.limiter.check(ip)?;
        let (user, pass) = decode_basic(rest.trim())?;
        let row = {
            let user = user.clone();
            self.db.read(move |c| db::users::find(c, &user)).await?
        };
        let hash = row
            .as_ref()
            .map(|r| r.password_hash.clone())
            .unwrap_or_else(|| self.dummy_hash.clone());
        let ok = tokio::task::spawn_blocking(move || password::verify(&hash, &pass))
            .await
            .map_err(|e| ApiError::Internal(e.into()))?;
        match row {
            Some(r) if ok && !r.disabled => Ok(Principal::User {
                id: r.id,
                name: r.name,
                unrestricted: r.unrestricted,
            }),
            _ => {
                self.limiter.fail(ip);
                tracing::info!(%ip, user = %user, "failed login");
                Err(ApiError::Unauthorized("wrong user name or password".into()))
            }
        }
    }

    fn bearer(&self, token: &str, ip: IpAddr) -> Result<Principal, ApiError> {
        if self.token_keys.is_empty() {
            return Err(ApiError::Unauthorized(
                "this server accepts no tokens (no --token-public-key)".into(),
            ));
        }
        self.limiter.check(ip)?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        match uk_tokens::verify(token, &self.token_keys, now) {
            Ok(c) => Ok(Principal::Token {
                job: c.job,
                scope: c.scope,
                exp: c.exp,
            }),
            Err(e) => {
                self.limiter.fail(ip);
                tracing::info!(%ip, "refused token: {e}");
                Err(ApiError::Unauthorized(format!("{e}")))
            }
        }
    }

    /// May `who` report deployments of `job`? Users who may upload to it,
    /// and `report` tokens for it.
    pub async fn authorize_report(&self, who: &Principal, job: &JobName) -> Result<(), ApiError> {
        match who {
            Principal::Token { .. } => token_allows(who, job, Scope::Report),
            Principal::User { .. } => self.authorize_upload(who, job).await,
        }
    }

    /// May `who` upload a build of `job`?
    pub async fn authorize_upload(&self, who: &Principal, job: &JobName) -> Result<(), ApiError> {
        match who {
            Principal::Token { .. } => token_allows(who, job, Scope::Upload),
            Principal::User { unrestricted: true, .. } => Ok(()),
            Principal::User { id, name, .. } => {
                let (id, job2) = (*id, job.clone());
                if self.db.read(move |c| db::users::has_access(c, id, &job2)).await? {
                    Ok(())
                } else {
                    Err(ApiError::Forbidden(format!(
                        "user {name:?} may not upload to job {:?}",
                        job.as_str()
                    )))
                }
            }
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
