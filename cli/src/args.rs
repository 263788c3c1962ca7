//! Connection flags shared by every tool that talks to the repository, each
//! with its `UKREPO_…` twin. Secrets are taken from the environment or from
//! files only, never from a flag's value.

use std::path::PathBuf;

#[derive(clap::Args, Debug, Clone)]
pub struct ConnectArgs {
    /// Base URL of the repository, e.g. https://builds.example.org
    #[arg(long, env = "UKREPO_URL")]
    pub url: String,

    /// Extra CA certificate(s) to trust, PEM (in addition to the system roots).
    #[arg(long, env = "UKREPO_CACERT", value_name = "FILE")]
    pub cacert: Option<PathBuf>,

    /// User for HTTP Basic; the password comes from UKREPO_PASSWORD or --password-file.
    #[arg(long, env = "UKREPO_USER")]
    pub user: Option<String>,

    /// File holding the password for --user (first line).
    #[arg(long, env = "UKREPO_PASSWORD_FILE", value_name = "FILE")]
    pub password_file: Option<PathBuf>,

    /// File holding a bearer token (first line); UKREPO_TOKEN holds one directly.
    #[arg(long, env = "UKREPO_TOKEN_FILE", value_name = "FILE")]
    pub token_file: Option<PathBuf>,

    /// Attempts after the first for connection failures, 5xx and 429.
    #[arg(long, env = "UKREPO_RETRIES", default_value_t = 5)]
    pub retries: u32,

    /// Print more about what happens (to stderr).
    #[arg(short, long)]
    pub verbose: bool,
}
