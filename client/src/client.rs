//! [`Client`]: a ureq agent (rustls; system roots plus `--cacert`), the base
//! URL, and the caller's credentials, which are sent as headers and never
//! printed: errors name the method, URL and status, not the request.

use std::fmt;
use std::io::Read;
use std::time::Duration;

use anyhow::{Context, bail};
use uk_names::{JobName, PlatformName};
use uk_wire::{BuildJson, ErrorJson};

use crate::ConnectArgs;
use crate::retry::{Attempt, with_retries};

/// A credential; its Debug form hides the value.
#[derive(Clone)]
pub enum Credential {
    Basic { user: String, password: String },
    Bearer(String),
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credential::Basic { user, .. } => write!(f, "Basic({user:?}, <redacted>)"),
            Credential::Bearer(_) => f.write_str("Bearer(<redacted>)"),
        }
    }
}

impl Credential {
    fn header(&self) -> String {
        use base64::Engine;
        match self {
            Credential::Basic { user, password } => {
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
                )
            }
            Credential::Bearer(t) => format!("Bearer {t}"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "{method} {url}: the server answered {status}: {}{}",
        uk_cli::escaped(message),
        status_hint(status, message)
    )]
    Status {
        method: &'static str,
        url: String,
        status: u16,
        message: String,
    },
    /// The request did not get an HTTP answer. The cause is the source
    /// (printed once, by the caller's error chain), with a hint for the
    /// usual mistakes.
    #[error("{method} {url}{}", hint(url, source))]
    Transport {
        method: &'static str,
        url: String,
        #[source]
        source: ureq::Error,
    },
    #[error("{0}")]
    Other(String),
}

/// A 404 for a page the server does not have usually means a wrong `--url`.
fn status_hint(status: &u16, message: &str) -> &'static str {
    if *status == 404 && (message.contains("there is no page") || message.is_empty()) {
        " (is --url the repository's base URL, e.g. https://builds.example.org?)"
    } else {
        ""
    }
}

/// What an operator most likely got wrong, from the failure and the URL.
fn hint(url: &str, e: &ureq::Error) -> &'static str {
    let https = url.starts_with("https://");
    let text = format!("{e:?}");
    if https && (text.contains("InvalidContentType") || text.contains("CorruptMessage")) {
        " (the server does not speak TLS here: is the URL http:// rather than https://?)"
    } else if !https && (matches!(e, ureq::Error::Protocol(_)) || text.contains("HTTP version")) {
        " (the server did not answer HTTP: if it serves HTTPS, use an https:// URL)"
    } else if text.contains("UnknownIssuer") || text.contains("CaUsedAsEndEntity") {
        " (the server's certificate is not trusted: give its CA, or the certificate itself, with --cacert)"
    } else {
        ""
    }
}

impl ClientError {
    /// Worth another attempt: the network, a busy or broken server.
    pub fn is_transient(&self) -> bool {
        match self {
            ClientError::Status { status, .. } => *status >= 500 || *status == 429,
            ClientError::Transport { source, .. } => !matches!(source, ureq::Error::BadUri(_) | ureq::Error::Http(_)),
            ClientError::Other(_) => false,
        }
    }
}

pub struct Client {
    agent: ureq::Agent,
    base: String,
    credential: Option<Credential>,
    pub retries: u32,
    pub verbose: bool,
    /// A download that receives no byte for this long fails (and is retried).
    pub idle_timeout: Duration,
}

/// Default [`Client::idle_timeout`] (CONTRACT.md §4: 30 s without a byte).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// What a long-poll client already has: held while the latest build still
/// has this main binary, or still is this build (so that a new build of the
/// same image wakes it too).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Current {
    Sha256(uk_digest::Sha256),
    Build(uk_names::BuildId),
}

impl fmt::Display for Current {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Current::Sha256(s) => write!(f, "{s}"),
            Current::Build(b) => write!(f, "{b}"),
        }
    }
}

fn first_line(path: &std::path::Path, what: &str) -> anyhow::Result<String> {
    let s = std::fs::read_to_string(path).with_context(|| format!("reading the {what} file {:?}", path.display()))?;
    let line = s.lines().next().unwrap_or("").trim().to_owned();
    if line.is_empty() {
        bail!("the {what} file {:?} is empty", path.display());
    }
    Ok(line)
}

fn credential(args: &ConnectArgs) -> anyhow::Result<Option<Credential>> {
    if let Some(path) = &args.token_file {
        return Ok(Some(Credential::Bearer(first_line(path, "token")?)));
    }
    if let Ok(t) = std::env::var("UKREPO_TOKEN")
        && !t.trim().is_empty()
    {
        return Ok(Some(Credential::Bearer(t.trim().to_owned())));
    }
    let Some(user) = &args.user else {
        return Ok(None);
    };
    let password = match &args.password_file {
        Some(p) => first_line(p, "password")?,
        None => std::env::var("UKREPO_PASSWORD")
            .map_err(|_| anyhow::anyhow!("user {user:?} is set but neither UKREPO_PASSWORD nor --password-file is"))?,
    };
    Ok(Some(Credential::Basic {
        user: user.clone(),
        password,
    }))
}

impl Client {
    pub fn new(args: &ConnectArgs) -> anyhow::Result<Client> {
        Self::with_timeouts(args, Duration::from_secs(30), Duration::from_secs(600))
    }

    /// A client that gives up quickly, for work that must never hold up its
    /// caller (deployment reports).
    pub fn quick(args: &ConnectArgs) -> anyhow::Result<Client> {
        Self::with_timeouts(args, Duration::from_secs(3), Duration::from_secs(10))
    }

    fn with_timeouts(args: &ConnectArgs, connect: Duration, response: Duration) -> anyhow::Result<Client> {
        let base = args.url.trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            bail!("--url {:?} must start with http:// or https://", args.url);
        }
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(connect))
            .timeout_recv_response(Some(response))
            .user_agent(concat!("ukrepo-client/", env!("CARGO_PKG_VERSION")))
            .build();
        let agent = crate::tls::agent(config, crate::tls::client_config(args.cacert.as_deref())?);
        Ok(Client {
            agent,
            base,
            credential: credential(args)?,
            retries: args.retries,
            verbose: args.verbose,
            idle_timeout: IDLE_TIMEOUT,
        })
    }

    /// `base` + an absolute path.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn has_credential(&self) -> bool {
        self.credential.is_some()
    }

    pub fn get(&self, url: &str) -> ureq::RequestBuilder<ureq::typestate::WithoutBody> {
        let req = self.agent.get(url);
        match &self.credential {
            Some(c) => req.header("Authorization", c.header()),
            None => req,
        }
    }

    pub fn post(&self, url: &str) -> ureq::RequestBuilder<ureq::typestate::WithBody> {
        let req = self.agent.post(url);
        match &self.credential {
            Some(c) => req.header("Authorization", c.header()),
            None => req,
        }
    }

    /// Turns a response into an error unless its status is 2xx.
    pub fn check(
        method: &'static str,
        url: &str,
        resp: ureq::http::Response<ureq::Body>,
    ) -> Result<ureq::http::Response<ureq::Body>, ClientError> {
        let status = resp.status().as_u16();
        if (200..300).contains(&status) {
            return Ok(resp);
        }
        let mut text = String::new();
        let _ = resp.into_body().into_reader().take(64 * 1024).read_to_string(&mut text);
        let message = serde_json::from_str::<ErrorJson>(&text)
            .map(|e| e.error)
            .unwrap_or_else(|_| text.chars().take(200).collect::<String>().trim().to_owned());
        Err(ClientError::Status {
            method,
            url: url.to_owned(),
            status,
            message,
        })
    }

    /// GET a JSON document, following redirects, retrying transient failures.
    pub fn get_json<T: serde::de::DeserializeOwned>(&self, url: &str) -> Result<T, ClientError> {
        self.get_json_or_304(url)?
            .ok_or_else(|| ClientError::Other(format!("GET {url}: the server answered 304 Not Modified")))
    }

    /// As [`Client::get_json`], but `Ok(None)` for a 304 (a long-poll that ended
    /// with nothing new).
    pub fn get_json_or_304<T: serde::de::DeserializeOwned>(&self, url: &str) -> Result<Option<T>, ClientError> {
        match self.get_bytes_or_304(url, "application/json", 16 << 20)? {
            Some(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| ClientError::Other(format!("GET {url}: the answer is not the expected JSON: {e}"))),
            None => Ok(None),
        }
    }

    /// GET a small document (at most `limit` bytes), retrying transient
    /// failures; `Ok(None)` for a 304.
    pub fn get_bytes_or_304(&self, url: &str, accept: &str, limit: u64) -> Result<Option<Vec<u8>>, ClientError> {
        let transport = |e| ClientError::Transport {
            method: "GET",
            url: url.to_owned(),
            source: e,
        };
        with_retries(self.retries, self.verbose, |_| {
            let resp = match self.get(url).header("Accept", accept).call() {
                Ok(r) => r,
                Err(e) => return Attempt::Transient(transport(e)),
            };
            if resp.status().as_u16() == 304 {
                return Attempt::Done(None);
            }
            let mut resp = match Self::check("GET", url, resp) {
                Ok(r) => r,
                Err(e) if e.is_transient() => return Attempt::Transient(e),
                Err(e) => return Attempt::Fatal(e),
            };
            match resp.body_mut().with_config().limit(limit).read_to_vec() {
                Ok(bytes) => Attempt::Done(Some(bytes)),
                Err(e) => Attempt::Transient(transport(e)),
            }
        })
    }

    /// The latest build of a job (with a main binary), optionally of one platform.
    pub fn latest_build(&self, job: &JobName, platform: Option<&PlatformName>) -> Result<BuildJson, ClientError> {
        let mut url = self.url(&format!("/job/{job}/build/latest"));
        if let Some(p) = platform {
            url.push_str(&format!("?platform={p}"));
        }
        self.get_json(&url)
    }

    /// One build of a job, by its id.
    pub fn build(&self, job: &JobName, uuid: &uk_names::BuildId) -> Result<BuildJson, ClientError> {
        self.get_json(&self.url(&format!("/job/{job}/build/{uuid}")))
    }

    /// Long-polls for a latest build that is not `current`: `Ok(None)` when
    /// the server's wait ended with nothing new (304).
    pub fn wait_for_new_build(
        &self,
        job: &JobName,
        platform: Option<&PlatformName>,
        current: &Current,
        wait: Duration,
    ) -> Result<Option<BuildJson>, ClientError> {
        let mut url = self.url(&format!(
            "/job/{job}/build/latest?wait={}&current={current}",
            wait.as_secs().max(1)
        ));
        if let Some(p) = platform {
            url.push_str(&format!("&platform={p}"));
        }
        self.get_json_or_304(&url)
    }
}
