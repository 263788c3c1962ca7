//! The Debian packages (issue 14): `scripts/package.sh` builds both (here
//! with the debug binaries, which is quick; the release build is what
//! ships), they unpack into a throwaway root, every binary answers
//! `--version`, and every man page renders with `man -l`.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn unpack(deb: &Path, into: &Path) {
    run(Command::new("dpkg-deb").arg("-x").arg(deb).arg(into));
}

#[test]
fn both_packages_build_install_and_their_binaries_and_man_pages_work() {
    // The binaries scripts/test.sh built (rebuilding here would race the
    // other tests that run them).
    let listed = run(Command::new(root().join("scripts/package.sh")).args(["--profile", "dev", "--no-build"]));
    let debs: Vec<PathBuf> = listed.lines().map(PathBuf::from).collect();
    let find = |name: &str| {
        debs.iter()
            .find(|d| {
                d.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with(&format!("{name}_"))
            })
            .map(|d| root().join(d))
            .unwrap_or_else(|| panic!("no {name} package in {debs:?}"))
    };
    let (server, host) = (find("unikernel-repo"), find("unikernel-host"));
    let fs = tempfile::tempdir().unwrap();
    unpack(&server, fs.path());
    unpack(&host, fs.path());

    for bin in ["unikernel-repo", "upload", "fetch-latest", "compare-hash", "deploy-hvt"] {
        let v = run(Command::new(fs.path().join("usr/bin").join(bin)).arg("--version"));
        assert!(v.starts_with(&format!("{bin} ")), "{bin} --version: {v}");
    }
    for script in ["deploy-latest.sh", "watch-deploy.sh", "ci-upload.sh", "find-tool.sh"] {
        let p = fs.path().join("usr/lib/unikernel-repo").join(script);
        assert!(p.is_file(), "{} missing", p.display());
    }
    for unit in [
        "unikernel-repo.service",
        "unikernel@.service",
        "unikernel-update@.service",
        "unikernel-update@.timer",
        "unikernel-watch@.service",
    ] {
        assert!(
            fs.path().join("lib/systemd/system").join(unit).is_file(),
            "{unit} missing"
        );
    }
    let pages: Vec<PathBuf> = std::fs::read_dir(fs.path().join("usr/share/man/man1"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    for bin in [
        "unikernel-repo",
        "upload",
        "fetch-latest",
        "compare-hash",
        "deploy-hvt",
        "deploy-hvt-deploy",
    ] {
        assert!(
            pages
                .iter()
                .any(|p| p.file_name().unwrap() == format!("{bin}.1.gz").as_str()),
            "no man page {bin}.1.gz in {pages:?}"
        );
    }
    for page in &pages {
        let text = run(Command::new("man")
            .arg("-l")
            .arg(page)
            .env("MANPAGER", "cat")
            .env("MANWIDTH", "80"));
        let name = page.file_name().unwrap().to_string_lossy().replace(".1.gz", "");
        assert!(
            text.contains("SYNOPSIS") && text.contains(&name),
            "{}: {text}",
            page.display()
        );
    }
    for (shell, file) in [
        ("bash-completion/completions", "deploy-hvt"),
        ("zsh/vendor-completions", "_unikernel-repo"),
        ("fish/vendor_completions.d", "fetch-latest.fish"),
    ] {
        assert!(
            fs.path().join("usr/share").join(shell).join(file).is_file(),
            "{shell}/{file}"
        );
    }
    // The server package makes its user and data directory when installed.
    let info = run(Command::new("dpkg-deb").arg("-I").arg(&server).arg("postinst"));
    assert!(
        info.contains("adduser --system") && info.contains("/var/lib/unikernel-repo"),
        "{info}"
    );
}
