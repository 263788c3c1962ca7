//! Is the freshly started unikernel healthy? First the tender must still be
//! running after `settle`; then every configured check (console regex on
//! this start's output, TCP connect, HTTP 2xx/3xx, a command exiting 0)
//! must pass within `timeout`. Checks are polled with a growing interval
//! (a command is not forked every few milliseconds); a command runs in its
//! own process group and is killed at the deadline; the tender dying at any
//! point fails at once.

use std::net::{TcpStream, ToSocketAddrs};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::command::{self, Ran};
use crate::config::Config;
use crate::state::State;

/// First poll interval; doubled after each round up to [`MAX_POLL`].
const FIRST_POLL: Duration = Duration::from_millis(10);
const MAX_POLL: Duration = Duration::from_millis(500);
/// How often the tender is looked at while it settles.
const SETTLE_POLL: Duration = Duration::from_millis(20);

/// Why the unikernel is not healthy, for the log and the operator.
fn exited(child: &mut Option<&mut Child>) -> Option<String> {
    let c = child.as_mut()?;
    match c.try_wait() {
        Ok(Some(status)) => Some(format!("the tender exited ({status})")),
        _ => None,
    }
}

fn tcp_ok(addr: &str) -> bool {
    addr.to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .is_some_and(|a| TcpStream::connect_timeout(&a, Duration::from_millis(500)).is_ok())
}

/// The HTTP check's client: `https://` goes through the same rustls
/// connector as the other tools (the system's roots, `SSL_CERT_FILE` /
/// `SSL_CERT_DIR`); made once per run, it is polled many times.
fn http_agent(https: bool) -> Result<&'static ureq::Agent, &'static str> {
    use std::sync::OnceLock;
    static PLAIN: OnceLock<ureq::Agent> = OnceLock::new();
    static TLS: OnceLock<Result<ureq::Agent, String>> = OnceLock::new();
    let config = || {
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_global(Some(Duration::from_secs(2)))
            .build()
    };
    if !https {
        return Ok(PLAIN.get_or_init(|| config().into()));
    }
    TLS.get_or_init(|| {
        uk_client::tls::client_config(None)
            .map(|tls| uk_client::tls::agent(config(), tls))
            .map_err(|e| format!("{e:#}"))
    })
    .as_ref()
    .map_err(String::as_str)
}

fn is_https(url: &str) -> bool {
    url.get(..8).is_some_and(|s| s.eq_ignore_ascii_case("https://"))
}

fn http_ok(url: &str) -> bool {
    http_agent(is_https(url)).is_ok_and(|agent| {
        agent
            .get(url)
            .call()
            .is_ok_and(|r| r.status().is_success() || r.status().is_redirection())
    })
}

/// The health command, given until `deadline`; `Err` when it hung.
fn command_ok(cmd: &str, deadline: Instant) -> Result<bool, String> {
    match command::run(cmd, Stdio::null(), deadline) {
        Ok(Ran::Exited(s)) => Ok(s.success()),
        Ok(Ran::TimedOut) => Err(format!(
            "the health command {cmd:?} did not finish in time and was killed"
        )),
        Err(e) => Err(format!("the health command {cmd:?} could not be run: {e}")),
    }
}

/// The checks that do not need the console: TCP, HTTP, command; one round
/// (for `status` with a command restart).
pub fn probe(cfg: &Config) -> bool {
    let h = &cfg.health;
    let deadline = Instant::now() + h.timeout;
    h.tcp.as_deref().is_none_or(tcp_ok)
        && h.http.as_deref().is_none_or(http_ok)
        && h.command.as_deref().is_none_or(|c| command_ok(c, deadline) == Ok(true))
}

/// Runs the checks; `child` is our tender when we started it ourselves,
/// `console_from` where its output begins in `console.log`.
pub fn check(cfg: &Config, state: &State, mut child: Option<&mut Child>, console_from: u64) -> Result<(), String> {
    let h = &cfg.health;
    let settle_end = Instant::now() + h.settle;
    while Instant::now() < settle_end {
        if let Some(why) = exited(&mut child) {
            return Err(format!("{why} within the settle time of {:?}", h.settle));
        }
        std::thread::sleep(SETTLE_POLL.min(settle_end.saturating_duration_since(Instant::now())));
    }
    if let Some(why) = exited(&mut child) {
        return Err(format!("{why} within the settle time of {:?}", h.settle));
    }
    crate::fault::crash_point("during-health");
    let end = Instant::now() + h.timeout;
    let (mut console, mut tcp, mut http, mut command) = (
        h.console.is_none(),
        h.tcp.is_none(),
        h.http.is_none(),
        h.command.is_none(),
    );
    let mut hung = None;
    let mut poll = FIRST_POLL;
    loop {
        console = console
            || h.console
                .as_ref()
                .is_some_and(|re| re.is_match(&crate::console::since(state, console_from)));
        tcp = tcp || h.tcp.as_deref().is_some_and(tcp_ok);
        http = http || h.http.as_deref().is_some_and(http_ok);
        if !command && let Some(c) = h.command.as_deref() {
            match command_ok(c, end) {
                Ok(ok) => command = ok,
                Err(why) => hung = Some(why),
            }
        }
        if let Some(why) = exited(&mut child) {
            return Err(why);
        }
        if console && tcp && http && command {
            return Ok(());
        }
        if Instant::now() >= end || hung.is_some() {
            let mut failing = Vec::new();
            if !console {
                failing.push(format!(
                    "console never matched {:?}",
                    h.console.as_ref().map(|r| r.as_str()).unwrap_or("")
                ));
            }
            if !tcp {
                failing.push(format!("no TCP connection to {}", h.tcp.as_deref().unwrap_or("")));
            }
            if !http {
                let url = h.http.as_deref().unwrap_or("");
                let why = match http_agent(is_https(url)) {
                    Err(e) => format!(" (no TLS: {e})"),
                    Ok(_) => String::new(),
                };
                failing.push(format!("no good HTTP answer from {url}{why}"));
            }
            if let Some(why) = hung {
                failing.push(why);
            } else if !command {
                failing.push(format!(
                    "the health command {:?} did not succeed",
                    h.command.as_deref().unwrap_or("")
                ));
            }
            return Err(format!("unhealthy after {:?}: {}", h.timeout, failing.join("; ")));
        }
        std::thread::sleep(poll.min(end.saturating_duration_since(Instant::now())));
        poll = (poll * 2).min(MAX_POLL);
    }
}
