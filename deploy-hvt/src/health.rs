//! Is the freshly started unikernel healthy? First the tender must still be
//! running after `settle`; then every configured check (console regex, TCP
//! connect, HTTP 2xx/3xx, a command exiting 0) must pass within `timeout`.
//! Checks are polled; the tender dying at any point fails at once.

use std::io::Read;
use std::net::{TcpStream, ToSocketAddrs};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::state::State;

const POLL: Duration = Duration::from_millis(20);

/// Why the unikernel is not healthy, for the log and the operator.
fn exited(child: &mut Option<&mut Child>) -> Option<String> {
    let c = child.as_mut()?;
    match c.try_wait() {
        Ok(Some(status)) => Some(format!("the tender exited ({status})")),
        _ => None,
    }
}

fn console_matches(state: &State, re: &regex::Regex) -> bool {
    let mut text = String::new();
    let _ = std::fs::File::open(state.path("console.log")).map(|f| f.take(16 << 20).read_to_string(&mut text));
    re.is_match(&text)
}

fn tcp_ok(addr: &str) -> bool {
    addr.to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .is_some_and(|a| TcpStream::connect_timeout(&a, Duration::from_millis(500)).is_ok())
}

fn http_ok(url: &str) -> bool {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(Duration::from_secs(2)))
        .build()
        .into();
    agent
        .get(url)
        .call()
        .is_ok_and(|r| r.status().is_success() || r.status().is_redirection())
}

fn command_ok(cmd: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Runs the checks; `child` is our tender when we started it ourselves.
pub fn check(cfg: &Config, state: &State, mut child: Option<&mut Child>) -> Result<(), String> {
    let h = &cfg.health;
    let settle_end = Instant::now() + h.settle;
    while Instant::now() < settle_end {
        if let Some(why) = exited(&mut child) {
            return Err(format!("{why} within the settle time of {:?}", h.settle));
        }
        std::thread::sleep(POLL.min(settle_end.saturating_duration_since(Instant::now())));
    }
    if let Some(why) = exited(&mut child) {
        return Err(format!("{why} within the settle time of {:?}", h.settle));
    }
    crate::flows::crash_point("during-health");
    let end = Instant::now() + h.timeout;
    let (mut console, mut tcp, mut http, mut command) = (
        h.console.is_none(),
        h.tcp.is_none(),
        h.http.is_none(),
        h.command.is_none(),
    );
    loop {
        console = console || h.console.as_ref().is_some_and(|re| console_matches(state, re));
        tcp = tcp || h.tcp.as_deref().is_some_and(tcp_ok);
        http = http || h.http.as_deref().is_some_and(http_ok);
        command = command || h.command.as_deref().is_some_and(command_ok);
        if let Some(why) = exited(&mut child) {
            return Err(why);
        }
        if console && tcp && http && command {
            return Ok(());
        }
        if Instant::now() >= end {
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
                failing.push(format!("no good HTTP answer from {}", h.http.as_deref().unwrap_or("")));
            }
            if !command {
                failing.push(format!(
                    "the health command {:?} did not succeed",
                    h.command.as_deref().unwrap_or("")
                ));
            }
            return Err(format!("unhealthy after {:?}: {}", h.timeout, failing.join("; ")));
        }
        std::thread::sleep(POLL);
    }
}
