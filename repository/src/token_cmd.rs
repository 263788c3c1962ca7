//! `unikernel-repo token keygen|mint`: what a CI coordinator runs to make a
//! key pair and to hand each CI job a token for its own job, for minutes.
//! (The format is in `uk-tokens`; other languages can mint too.)

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use clap::Subcommand;
use uk_names::JobName;
use uk_tokens::{Claims, Scope, SecretKey};

#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    /// Make a key pair: the secret key mints tokens, the public key goes to `serve --token-public-key`.
    Keygen {
        #[arg(long, value_name = "FILE")]
        secret_key: PathBuf,
        #[arg(long, value_name = "FILE")]
        public_key: PathBuf,
    },
    /// Print a token for one job and one action.
    Mint {
        /// The secret key file.
        #[arg(long, env = "UKREPO_TOKEN_KEY", value_name = "FILE")]
        key: PathBuf,
        #[arg(long)]
        job: JobName,
        /// upload or report.
        #[arg(long)]
        scope: Scope,
        /// How long the token is valid, e.g. 15m.
        #[arg(long, default_value = "15m", value_parser = humantime::parse_duration)]
        ttl: Duration,
        /// Longest TTL this command will mint.
        #[arg(long, env = "UKREPO_TOKEN_MAX_TTL", default_value = "1h", value_parser = humantime::parse_duration)]
        max_ttl: Duration,
    },
}

fn write_new(path: &PathBuf, text: &str, mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("creating {:?} (an existing key is never overwritten)", path.display()))?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    Ok(())
}

pub fn run(cmd: TokenCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        TokenCommand::Keygen { secret_key, public_key } => {
            let sk = SecretKey::generate();
            write_new(&secret_key, &sk.to_text(), 0o600)?;
            write_new(&public_key, &sk.public().to_text(), 0o644)?;
            eprintln!(
                "wrote {:?} (secret) and {:?} (public)",
                secret_key.display(),
                public_key.display()
            );
        }
        TokenCommand::Mint {
            key,
            job,
            scope,
            ttl,
            max_ttl,
        } => {
            if ttl > max_ttl {
                bail!(
                    "--ttl {} is longer than the allowed {}",
                    humantime::format_duration(ttl),
                    humantime::format_duration(max_ttl)
                );
            }
            if ttl.is_zero() {
                bail!("--ttl must be positive");
            }
            let text = std::fs::read_to_string(&key).with_context(|| format!("reading {:?}", key.display()))?;
            let sk = SecretKey::from_text(&text).with_context(|| format!("the secret key {:?}", key.display()))?;
            let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
            uk_cli::out(sk.mint(&Claims {
                job,
                scope,
                iat: now,
                exp: now + ttl.as_secs(),
            }))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
