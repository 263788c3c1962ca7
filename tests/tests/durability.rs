//! The store's durability order (STYLE.md "Storage", issue 14), pinned on
//! the real server's system calls, recorded with `strace`: an uploaded
//! artifact is fsynced in staging, renamed into `artifacts/`, the directory
//! is fsynced, and only then is the build committed (the SQLite write-ahead
//! log written and synced). A crash at any point before the commit leaves
//! no build that names a file that is not durable.

use std::process::{Command, Stdio};
use std::time::Duration;

use ukrepo_tests::bins::{add_user_cli, bin, wait_for};
use ukrepo_tests::server::{basic, sha256_hex, upload_raw};

#[test]
fn fsync_then_rename_then_directory_fsync_then_commit() {
    let data = tempfile::tempdir().unwrap();
    add_user_cli(data.path(), "ci", "pw");
    let trace = tempfile::NamedTempFile::new().unwrap();
    let url_file = tempfile::NamedTempFile::new().unwrap();
    let mut server = Command::new("strace")
        .args([
            "-f",
            "-y",
            "-qq",
            "-e",
            "trace=fsync,fdatasync,rename,renameat,renameat2,write,pwrite64",
            "-o",
        ])
        .arg(trace.path())
        .arg(bin("unikernel-repo"))
        .arg("--data-dir")
        .arg(data.path())
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("RUST_LOG", "warn")
        .stdout(url_file.reopen().unwrap())
        .stderr(Stdio::null())
        .spawn()
        .expect("strace (Debian package strace, installed by scripts/test.sh)");
    let mut url = String::new();
    wait_for("the server to listen", Duration::from_secs(30), || {
        url = std::fs::read_to_string(url_file.path()).unwrap_or_default();
        url.contains('\n')
    });
    let url = url.trim().strip_prefix("listening on ").unwrap().to_owned();
    let image = b"an image whose durability we follow".to_vec();
    let r = upload_raw(&url, "web", "x.hvt", &image, Some(&basic("ci", "pw")), &[]);
    assert_eq!(r.status, 201, "{}", r.text());
    let _ = server.kill();
    let _ = server.wait();

    let sha = sha256_hex(&image);
    let log = std::fs::read_to_string(trace.path()).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    let find = |what: &str, from: usize, pred: &dyn Fn(&str) -> bool| -> usize {
        lines
            .iter()
            .enumerate()
            .skip(from)
            .find(|(_, l)| pred(l))
            .map(|(i, _)| i)
            .unwrap_or_else(|| panic!("no {what} after line {from} in the trace:\n{log}"))
    };
    let is_sync = |l: &str| l.contains("fsync(") || l.contains("fdatasync(");
    // 1. The staged file is fsynced...
    let staged_sync = find("fsync of the staged file", 0, &|l| {
        is_sync(l) && l.contains("/staging/.upload.")
    });
    // 2. ...then renamed to its content address...
    let rename = find("rename into artifacts/", staged_sync, &|l| {
        l.contains("rename")
            && l.contains("/staging/.upload.")
            && l.contains(&format!("/artifacts/{}/{sha}", &sha[..2]))
    });
    // 3. ...then its directory is fsynced...
    let dir_sync = find("fsync of the artifact directory", rename, &|l| {
        is_sync(l) && l.contains(&format!("/artifacts/{}>", &sha[..2]))
    });
    // 4. ...and only then is the build committed: written to the WAL and synced.
    let wal_write = find("the commit's write to the WAL", dir_sync, &|l| {
        (l.contains("pwrite64(") || l.contains("write(")) && l.contains("repo.sqlite-wal>")
    });
    find("the commit's WAL sync", wal_write, &|l| {
        is_sync(l) && l.contains("repo.sqlite-wal>")
    });
    // Nothing was written to the database between the staged file's fsync
    // and the directory's: the commit really came after the file was durable.
    let early: Vec<&&str> = lines[staged_sync..dir_sync]
        .iter()
        .filter(|l| l.contains("repo.sqlite"))
        .collect();
    assert!(
        early.is_empty(),
        "database writes before the file was durable: {early:#?}"
    );
}
