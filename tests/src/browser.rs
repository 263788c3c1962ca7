//! A real browser for the page tests: Debian's headless Chromium driven
//! through `chromedriver` with the WebDriver client `fantoccini`.
//!
//! `chromedriver --port=0` picks its own port and prints it; we read it
//! back from its output, so no port is chosen here and rebound. Every
//! session has a fresh profile directory. The browser's console log
//! (`goog:loggingPrefs`, read through chromedriver's `se/log` endpoint)
//! lets a test fail on any error a page logs, CSP violations included.
//!
//! Missing Chromium or chromedriver is a failure, not a skip, unless
//! `UKREPO_SKIP_BROWSER=1` says to skip (`scripts/test.sh` installs both).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder};
use serde_json::{Value, json};

/// Where Debian's packages `chromium` and `chromium-driver` put them
/// (`UKREPO_CHROMIUM`, `UKREPO_CHROMEDRIVER` point elsewhere).
fn program(env: &str, default: &str) -> PathBuf {
    std::env::var_os(env).map_or_else(|| PathBuf::from(default), PathBuf::from)
}

/// Should a test that needs the browser skip? Only when told to.
pub fn skipped() -> bool {
    if std::env::var("UKREPO_SKIP_BROWSER").is_ok_and(|v| v == "1") {
        eprintln!("UKREPO_SKIP_BROWSER=1: skipping a browser test");
        return true;
    }
    false
}

/// One console message of the page.
#[derive(Debug, Clone)]
pub struct LogEntry {
    pub level: String,
    pub source: String,
    pub message: String,
}

pub struct Browser {
    pub client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
}

/// chromedriver's `POST /session/{id}/se/log` (`{"type": "browser"}`):
/// the console messages since the last call.
#[derive(Debug)]
struct GetLog {
    session: String,
}

impl WebDriverCompatibleCommand for GetLog {
    fn endpoint(&self, base: &url::Url, _session: Option<&str>) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/se/log", self.session))
    }

    fn method_and_body(&self, _url: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(json!({"type": "browser"}).to_string()))
    }
}

/// Kills chromedriver's process group (it and the browsers it started).
fn kill_all(driver: &mut Child) {
    if let Some(pid) = rustix::process::Pid::from_raw(driver.id() as i32) {
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    }
    let _ = driver.wait();
}

/// Starts chromedriver on a port of its choosing and returns it with that port.
fn start_driver(driver: &PathBuf) -> (Child, u16) {
    use std::os::unix::process::CommandExt;
    let mut child = Command::new(driver)
        .arg("--port=0")
        // Its own process group, with the browsers it starts: `kill_all`
        // ends exactly these.
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {}: {e}", driver.display()));
    let out = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            // "ChromeDriver was started successfully on port 40123."
            if let Some(rest) = line.split("started successfully on port ").nth(1) {
                let _ = tx.send(rest.trim_end_matches('.').trim().parse::<u16>().ok());
            }
        }
    });
    match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(Some(port)) => (child, port),
        other => {
            kill_all(&mut child);
            panic!("{} did not say which port it listens on: {other:?}", driver.display());
        }
    }
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session; panics (with
    /// what to install) when either is missing.
    pub async fn start() -> Browser {
        let chromium = program("UKREPO_CHROMIUM", "/usr/bin/chromium");
        let driver = program("UKREPO_CHROMEDRIVER", "/usr/bin/chromedriver");
        for p in [&chromium, &driver] {
            assert!(
                p.exists(),
                "{} is missing: install the Debian packages chromium and chromium-driver \
                 (scripts/test.sh does), or set UKREPO_SKIP_BROWSER=1 to skip the browser tests",
                p.display()
            );
        }
        let (driver, port) = start_driver(&driver);
        let profile = tempfile::tempdir().unwrap();
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    "--no-first-run", "--window-size=1280,900",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            },
            "goog:loggingPrefs": {"browser": "ALL"},
        });
        let Value::Object(caps) = caps else { unreachable!() };
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .unwrap_or_else(|e| panic!("starting a Chromium session through chromedriver: {e}"));
        Browser {
            client,
            driver,
            _profile: profile,
        }
    }

    /// The console messages logged since the last call.
    pub async fn log(&self) -> Vec<LogEntry> {
        let session = self.client.session_id().await.unwrap().expect("a session");
        let v = self
            .client
            .issue_cmd(GetLog { session })
            .await
            .expect("reading the browser log");
        v.as_array()
            .into_iter()
            .flatten()
            .map(|e| LogEntry {
                level: e["level"].as_str().unwrap_or("").to_owned(),
                source: e["source"].as_str().unwrap_or("").to_owned(),
                message: e["message"].as_str().unwrap_or("").to_owned(),
            })
            .collect()
    }

    /// Loads `url` and fails on any error the page logged while loading.
    pub async fn visit(&self, url: &str) {
        self.client
            .goto(url)
            .await
            .unwrap_or_else(|e| panic!("loading {url}: {e}"));
        self.assert_no_console_errors(url).await;
    }

    /// Fails when the console has errors (or security messages, which is
    /// how CSP violations arrive).
    pub async fn assert_no_console_errors(&self, what: &str) {
        let bad: Vec<LogEntry> = self
            .log()
            .await
            .into_iter()
            .filter(|e| e.level == "SEVERE" || e.source == "security")
            .collect();
        assert!(bad.is_empty(), "{what} logged errors in the browser console: {bad:#?}");
    }

    /// Ends the session (and the browser) and chromedriver.
    pub async fn stop(self) {
        let _ = self.client.clone().close().await;
        // Drop ends chromedriver.
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // A failed test never reaches `stop`: chromedriver (our child) and
        // the browser it started go now.
        kill_all(&mut self.driver);
    }
}
