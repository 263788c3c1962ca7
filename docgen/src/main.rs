//! `ukrepo-docgen OUT_DIR`: the build step that writes the man pages
//! (`OUT_DIR/man/<binary>.1`, and `<binary>-<subcommand>.1` for tools with
//! subcommands) and the shell completions (`OUT_DIR/completions/{bash,zsh,fish}/`)
//! of every binary, from the same clap definitions the binaries parse with,
//! so the documentation cannot drift from the flags. `scripts/package.sh`
//! runs it before building the Debian packages.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::CommandFactory;
use clap_complete::Shell;

fn commands() -> Vec<clap::Command> {
    vec![
        unikernel_repo::Args::command(),
        upload::Args::command(),
        fetch_latest::Args::command(),
        compare_hash::Args::command(),
        deploy_hvt::Args::command(),
    ]
}

/// Writes `cmd`'s page and one per subcommand (`name-sub.1`).
fn man_pages(cmd: &clap::Command, dir: &Path) -> anyhow::Result<usize> {
    let name = cmd.get_name().to_owned();
    let mut n = 0;
    let mut write = |file: String, c: clap::Command| -> anyhow::Result<()> {
        let mut out = Vec::new();
        clap_mangen::Man::new(c).render(&mut out)?;
        let path = dir.join(&file);
        std::fs::write(&path, out).with_context(|| format!("writing {}", path.display()))?;
        n += 1;
        Ok(())
    };
    write(format!("{name}.1"), cmd.clone())?;
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        let full = format!("{name}-{}", sub.get_name());
        write(format!("{full}.1"), sub.clone().name(full.clone()).bin_name(full))?;
    }
    Ok(n)
}

fn main() -> anyhow::Result<()> {
    let out: PathBuf = std::env::args_os()
        .nth(1)
        .context("usage: ukrepo-docgen OUT_DIR")?
        .into();
    let man = out.join("man");
    std::fs::create_dir_all(&man)?;
    let mut pages = 0;
    for cmd in commands() {
        let mut cmd = cmd;
        cmd.build();
        pages += man_pages(&cmd, &man)?;
        for (shell, sub) in [(Shell::Bash, "bash"), (Shell::Zsh, "zsh"), (Shell::Fish, "fish")] {
            let dir = out.join("completions").join(sub);
            std::fs::create_dir_all(&dir)?;
            let name = cmd.get_name().to_owned();
            clap_complete::generate_to(shell, &mut cmd, &name, &dir)
                .with_context(|| format!("writing the {sub} completion of {name}"))?;
        }
    }
    eprintln!(
        "ukrepo-docgen: {pages} man pages and 15 completions in {}",
        out.display()
    );
    Ok(())
}
