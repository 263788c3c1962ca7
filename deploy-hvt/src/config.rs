//! One unikernel's configuration: the TOML file of CONTRACT.md §5 with every
//! key overridable by a flag, validated once into [`Config`]: the tender is
//! found (on `PATH`, beside `deploy-hvt`, in `UKREPO_BIN_DIR`) and
//! canonicalised (tenders are recognised by their executable), the `user`
//! resolved, and a command restart without any health check refused.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Deserialize;
use solo5_elf::{DeviceType, Target};
use uk_names::JobName;

/// The file as written (all optional: flags may supply any key).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub name: Option<String>,
    pub job: Option<String>,
    pub state_dir: Option<PathBuf>,
    pub tender: Option<String>,
    pub tender_args: Option<Vec<String>>,
    pub args: Option<Vec<String>>,
    pub restart: Option<String>,
    pub keep: Option<usize>,
    pub verify_key: Option<PathBuf>,
    pub user: Option<String>,
    #[serde(default)]
    pub health: FileHealth,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileHealth {
    pub settle: Option<String>,
    pub timeout: Option<String>,
    pub console: Option<String>,
    pub tcp: Option<String>,
    pub http: Option<String>,
    pub command: Option<String>,
}

/// Every key as a flag (flags win over the file).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ConfigArgs {
    /// The unikernel's TOML configuration file.
    #[arg(long, short, env = "UKREPO_DEPLOY_CONFIG")]
    pub config: Option<PathBuf>,
    /// Unikernel name (its folder under the state dir).
    #[arg(long)]
    pub name: Option<String>,
    /// The repository job whose builds this unikernel runs (for reports) [default: the name].
    #[arg(long)]
    pub job: Option<String>,
    /// Where unikernels keep their state [default: /var/lib/unikernels].
    #[arg(long, env = "UKREPO_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// The tender: solo5-hvt, solo5-spt, or a path to one [default: solo5-hvt].
    #[arg(long)]
    pub tender: Option<String>,
    /// An argument for the tender, e.g. --mem=64 or --net:service=tap0 (repeatable; replaces the file's list).
    #[arg(long = "tender-arg", allow_hyphen_values = true)]
    pub tender_args: Vec<String>,
    /// An argument for the unikernel itself (repeatable; replaces the file's list).
    #[arg(long = "arg", allow_hyphen_values = true)]
    pub args: Vec<String>,
    /// "builtin" (deploy-hvt runs the tender) or a command, e.g. "systemctl restart unikernel@web".
    #[arg(long)]
    pub restart: Option<String>,
    /// Images kept, the running one included [default: 3].
    #[arg(long)]
    pub keep: Option<usize>,
    /// minisign public key: only images signed by it are deployed.
    #[arg(long)]
    pub verify_key: Option<PathBuf>,
    /// Run the tender as this user (never as root); it needs only /dev/kvm
    /// (e.g. through the kvm group) and read access to the image.
    #[arg(long)]
    pub user: Option<String>,
    /// The tender must still run after this long [default: 1s].
    #[arg(long, value_name = "DURATION")]
    pub settle: Option<String>,
    /// All health checks must pass within this [default: 10s].
    #[arg(long = "health-timeout", value_name = "DURATION")]
    pub health_timeout: Option<String>,
    /// Health: a regex the console output must match.
    #[arg(long = "health-console", value_name = "REGEX")]
    pub health_console: Option<String>,
    /// Health: HOST:PORT that must accept a TCP connection.
    #[arg(long = "health-tcp", value_name = "ADDR")]
    pub health_tcp: Option<String>,
    /// Health: a URL that must answer 2xx or 3xx.
    #[arg(long = "health-http", value_name = "URL")]
    pub health_http: Option<String>,
    /// Health: a shell command that exits 0 when healthy.
    #[arg(long = "health-command", value_name = "CMD")]
    pub health_command: Option<String>,
    #[command(flatten)]
    pub report: crate::report::ReportArgs,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Restart {
    Builtin,
    Command(String),
}

#[derive(Debug, Clone)]
pub struct Health {
    pub settle: Duration,
    pub timeout: Duration,
    pub console: Option<regex::Regex>,
    pub tcp: Option<String>,
    pub http: Option<String>,
    pub command: Option<String>,
}

/// A device the tender is configured to give the unikernel.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Device {
    pub name: String,
    pub kind: DeviceKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum DeviceKind {
    Net,
    Block,
}

impl From<DeviceType> for DeviceKind {
    fn from(t: DeviceType) -> Self {
        match t {
            DeviceType::NetBasic => DeviceKind::Net,
            DeviceType::BlockBasic => DeviceKind::Block,
        }
    }
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub name: JobName,
    pub job: JobName,
    pub dir: PathBuf,
    /// The tender's executable, canonical: a process is one of our tenders
    /// only if `/proc/PID/exe` is this file.
    pub tender: PathBuf,
    pub target: Target,
    pub tender_args: Vec<String>,
    pub args: Vec<String>,
    pub devices: Vec<Device>,
    pub restart: Restart,
    pub keep: usize,
    pub verify_key: Option<PathBuf>,
    pub user: Option<crate::user::TenderUser>,
    pub health: Health,
}

fn duration(what: &str, s: Option<String>, default: &str) -> anyhow::Result<Duration> {
    let s = s.unwrap_or_else(|| default.to_owned());
    humantime::parse_duration(&s).with_context(|| format!("{what} {s:?} is not a duration (e.g. 500ms, 2s, 1m)"))
}

/// `--net:NAME=…` and `--block:NAME=…` in the tender's arguments.
pub fn devices_of(tender_args: &[String]) -> anyhow::Result<Vec<Device>> {
    let mut out = Vec::new();
    for a in tender_args {
        let (kind, rest) = if let Some(r) = a.strip_prefix("--net:") {
            (DeviceKind::Net, r)
        } else if let Some(r) = a.strip_prefix("--block:") {
            (DeviceKind::Block, r)
        } else {
            continue;
        };
        // --net-mac:NAME=… is an option of a net device, not a device.
        let name = rest
            .split_once('=')
            .map(|(n, _)| n)
            .with_context(|| format!("tender argument {a:?} must be --net:NAME=IFACE or --block:NAME=FILE"))?;
        out.push(Device {
            name: name.to_owned(),
            kind,
        });
    }
    out.sort();
    Ok(out)
}

/// A tender given by name is looked for as the scripts look for tools: on
/// `PATH`, then beside `deploy-hvt` itself, then in `UKREPO_BIN_DIR` (cron's
/// `PATH` is only `/usr/bin:/bin`).
fn find_tender(t: &str) -> anyhow::Result<PathBuf> {
    let found = if t.contains('/') {
        PathBuf::from(t)
    } else {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let beside = std::env::current_exe()
            .ok()
            .and_then(|e| e.parent().map(Path::to_owned));
        let bin_dir = std::env::var_os("UKREPO_BIN_DIR").map(PathBuf::from);
        std::env::split_paths(&path)
            .chain(beside)
            .chain(bin_dir)
            .map(|d| d.join(t))
            .find(|p| p.is_file())
            .with_context(|| {
                format!("tender {t:?} not found on PATH, beside deploy-hvt or in UKREPO_BIN_DIR; give its path")
            })?
    };
    found
        .canonicalize()
        .with_context(|| format!("the tender {:?}", found.display()))
}

fn target_of(tender: &Path) -> anyhow::Result<Target> {
    let name = tender
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if name.contains("hvt") {
        Ok(Target::Hvt)
    } else if name.contains("spt") {
        Ok(Target::Spt)
    } else {
        bail!(
            "cannot tell the Solo5 target of tender {:?}: its name must contain hvt or spt",
            tender.display()
        )
    }
}

impl Config {
    pub fn load(a: &ConfigArgs) -> anyhow::Result<Config> {
        let file: FileConfig = match &a.config {
            Some(p) => {
                let text = std::fs::read_to_string(p).with_context(|| format!("reading config {:?}", p.display()))?;
                toml::from_str(&text).with_context(|| format!("parsing config {:?}", p.display()))?
            }
            None => FileConfig::default(),
        };
        let name_s = a
            .name
            .clone()
            .or(file.name)
            .context("no unikernel name: set name in the config or --name")?;
        let name: JobName = name_s.parse().context("the unikernel name")?;
        let job: JobName = match a.job.clone().or(file.job) {
            Some(j) => j.parse().context("the job")?,
            None => name.clone(),
        };
        let state_dir = a
            .state_dir
            .clone()
            .or(file.state_dir)
            .unwrap_or_else(|| PathBuf::from("/var/lib/unikernels"));
        let tender = find_tender(&a.tender.clone().or(file.tender).unwrap_or_else(|| "solo5-hvt".into()))?;
        let target = target_of(&tender)?;
        let tender_args = if a.tender_args.is_empty() {
            file.tender_args.unwrap_or_default()
        } else {
            a.tender_args.clone()
        };
        let args = if a.args.is_empty() {
            file.args.unwrap_or_default()
        } else {
            a.args.clone()
        };
        let devices = devices_of(&tender_args)?;
        let restart = match a.restart.clone().or(file.restart).as_deref() {
            None | Some("builtin") => Restart::Builtin,
            Some(c) if c.trim().is_empty() => bail!("restart must be \"builtin\" or a command"),
            Some(c) => Restart::Command(c.to_owned()),
        };
        let keep = a.keep.or(file.keep).unwrap_or(3);
        if keep < 2 {
            bail!("keep = {keep}: at least 2 images (current and previous) are kept");
        }
        let h = file.health;
        let console = a.health_console.clone().or(h.console);
        let console = console
            .map(|c| regex::Regex::new(&c).with_context(|| format!("health console regex {c:?}")))
            .transpose()?;
        if console.is_some() && restart != Restart::Builtin {
            bail!("the console health check needs restart = \"builtin\" (deploy-hvt captures the console only then)");
        }
        let health = Health {
            settle: duration("settle", a.settle.clone().or(h.settle), "1s")?,
            timeout: duration("health timeout", a.health_timeout.clone().or(h.timeout), "10s")?,
            console,
            tcp: a.health_tcp.clone().or(h.tcp),
            http: a.health_http.clone().or(h.http),
            command: a.health_command.clone().or(h.command),
        };
        if let Restart::Command(c) = &restart
            && health.tcp.is_none()
            && health.http.is_none()
            && health.command.is_none()
        {
            bail!(
                "restart = {c:?} needs a health check ([health] tcp, http or command): \
                 without one, a unikernel that never came up would count as healthy"
            );
        }
        let user = a
            .user
            .clone()
            .or(file.user)
            .map(|u| crate::user::TenderUser::resolve(&u))
            .transpose()?;
        if user.is_some() && restart != Restart::Builtin {
            bail!("user = … needs restart = \"builtin\" (with a command, the service manager picks the user)");
        }
        Ok(Config {
            dir: state_dir.join(name.as_str()),
            name,
            job,
            tender,
            target,
            tender_args,
            args,
            devices,
            restart,
            keep,
            verify_key: a.verify_key.clone().or(file.verify_key),
            user,
            health,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_from_tender_args() {
        let d = devices_of(&[
            "--mem=64".into(),
            "--net:service=tap0".into(),
            "--block:storage=/x.img".into(),
            "--net-mac:service=aa".into(),
        ])
        .unwrap();
        assert_eq!(
            d,
            vec![
                Device {
                    name: "service".into(),
                    kind: DeviceKind::Net
                },
                Device {
                    name: "storage".into(),
                    kind: DeviceKind::Block
                }
            ]
        );
        assert!(devices_of(&["--net:service".into()]).is_err());
    }

    #[test]
    fn file_and_flags_merge_flags_win() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("web.toml");
        // Tenders are canonicalised, so this one must exist.
        let tender = dir.path().join("solo5-spt");
        std::fs::write(&tender, "").unwrap();
        std::fs::write(
            &cfg,
            format!(
                "name = \"web\"\nstate_dir = \"/srv/uk\"\ntender = \"{}\"\ntender_args = [\"--mem=64\"]\nkeep = 4\n[health]\nsettle = \"2s\"\nconsole = \"ready\"\n",
                tender.display()
            ),
        )
        .unwrap();
        let a = ConfigArgs {
            config: Some(cfg.clone()),
            keep: Some(5),
            ..Default::default()
        };
        let c = Config::load(&a).unwrap();
        assert_eq!(c.dir, PathBuf::from("/srv/uk/web"));
        assert_eq!(
            (c.target, c.keep, c.health.settle),
            (Target::Spt, 5, Duration::from_secs(2))
        );
        assert_eq!(c.health.timeout, Duration::from_secs(10));
        std::fs::write(&cfg, "name = \"web\"\nbogus = 1\n").unwrap();
        let err = Config::load(&ConfigArgs {
            config: Some(cfg.clone()),
            ..Default::default()
        })
        .unwrap_err();
        assert!(format!("{err:#}").contains("bogus"), "{err:#}");
        std::fs::write(&cfg, "name = \"../etc\"\ntender = \"/x/solo5-hvt\"\n").unwrap();
        assert!(
            Config::load(&ConfigArgs {
                config: Some(cfg.clone()),
                ..Default::default()
            })
            .is_err()
        );
        // A command restart with nothing to check would call anything healthy.
        std::fs::write(
            &cfg,
            format!(
                "name = \"web\"\ntender = \"{}\"\nrestart = \"systemctl restart unikernel@web\"\n",
                tender.display()
            ),
        )
        .unwrap();
        let err = Config::load(&ConfigArgs {
            config: Some(cfg),
            ..Default::default()
        })
        .unwrap_err();
        assert!(format!("{err:#}").contains("needs a health check"), "{err:#}");
    }
}
