//! The build page (`GET /job/{job}/build/{uuid}`): its artifacts with
//! digests and downloads, the main binary's signature, Solo5 ABI and
//! devices, the end of its console, what each host did with it, and a
//! link comparing it with the previous build of its job and platform. The
//! JSON twin is the build JSON of CONTRACT.md §2 with `previous` and
//! `console_excerpt` added.

use askama::Template;
use uk_names::BuildId;
use uk_wire::BuildJson;

use super::{human_size, short};

#[derive(Debug, Clone, serde::Serialize)]
pub struct BuildPageJson {
    #[serde(flatten)]
    pub build: BuildJson,
    /// The build of the same job and platform before this one.
    pub previous: Option<BuildId>,
    /// The last lines of the console, `null` without one.
    pub console_excerpt: Option<String>,
    /// Earlier console lines were left out of the excerpt.
    pub console_truncated: bool,
}

struct File {
    path: String,
    sha256: String,
    size: String,
    bytes: u64,
}

struct Main {
    path: String,
    sha256: String,
    size: String,
    signature: Option<String>,
}

struct Device {
    name: String,
    kind: String,
}

struct Report {
    host: String,
    result: String,
    action: String,
    finished: String,
    message: String,
}

#[derive(Template)]
#[template(path = "build.html")]
pub struct BuildPage {
    job: String,
    uuid: String,
    short: String,
    platform: String,
    start_time: String,
    finish_time: String,
    vacuumed: Option<String>,
    main: Option<Main>,
    /// `hvt`, `spt`, … and the ABI version.
    abi: Option<(String, String)>,
    devices: Option<Vec<Device>>,
    artifacts: Vec<File>,
    has_console: bool,
    has_script: bool,
    console: Option<String>,
    console_truncated: bool,
    deployments: Vec<Report>,
    previous: Option<String>,
}

fn abi(v: &Option<serde_json::Value>) -> Option<(String, String)> {
    let v = v.as_ref()?;
    Some((v.get("target")?.as_str()?.to_owned(), v.get("version")?.to_string()))
}

fn devices(v: &Option<serde_json::Value>) -> Option<Vec<Device>> {
    let list = v.as_ref()?.get("devices")?.as_array()?;
    Some(
        list.iter()
            .map(|d| Device {
                name: d.get("name").and_then(|n| n.as_str()).unwrap_or("").to_owned(),
                kind: match d.get("type").and_then(|t| t.as_str()) {
                    Some("NET_BASIC") => "network".to_owned(),
                    Some("BLOCK_BASIC") => "block".to_owned(),
                    Some(other) => other.to_owned(),
                    None => String::new(),
                },
            })
            .collect(),
    )
}

impl BuildPage {
    pub fn new(j: &BuildPageJson) -> BuildPage {
        let b = &j.build;
        let has = |p: &str| b.artifacts.iter().any(|a| a.filepath.as_str() == p);
        BuildPage {
            job: b.job.to_string(),
            uuid: b.uuid.to_string(),
            short: short(&b.uuid),
            platform: b.platform.to_string(),
            start_time: b.start_time.clone(),
            finish_time: b.finish_time.clone(),
            vacuumed: b.vacuumed.clone(),
            main: b.main_binary_file.as_ref().map(|m| Main {
                path: m.filepath.to_string(),
                sha256: m.sha256.to_string(),
                size: human_size(m.size),
                signature: m.signature.as_ref().map(|s| s.to_string()),
            }),
            abi: abi(&b.solo5_abi),
            devices: devices(&b.solo5_manifest),
            artifacts: b
                .artifacts
                .iter()
                .map(|a| File {
                    path: a.filepath.to_string(),
                    sha256: a.sha256.to_string(),
                    size: human_size(a.size),
                    bytes: a.size,
                })
                .collect(),
            has_console: has("console"),
            has_script: has("script"),
            console: j.console_excerpt.clone(),
            console_truncated: j.console_truncated,
            deployments: b
                .deployments
                .iter()
                .map(|d| Report {
                    host: d.host.to_string(),
                    result: d.result.as_str().to_owned(),
                    action: d.action.as_str().to_owned(),
                    finished: d.finished.clone(),
                    message: d.message.clone(),
                })
                .collect(),
            previous: j.previous.map(|p| p.to_string()),
        }
    }
}
