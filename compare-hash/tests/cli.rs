//! `compare-hash` as a script sees it: exit codes 0/1/2 and messages.

use assert_cmd::Command;

fn cmd() -> Command {
    Command::cargo_bin("compare-hash").unwrap()
}

const ABC: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

#[test]
fn exit_codes() {
    let d = tempfile::tempdir().unwrap();
    let (a, b, c) = (d.path().join("a"), d.path().join("b"), d.path().join("c"));
    std::fs::write(&a, "abc").unwrap();
    std::fs::write(&b, "abc").unwrap();
    std::fs::write(&c, "abd").unwrap();
    let missing = d.path().join("missing");

    cmd().args([&a, &b]).assert().code(0).stdout("");
    cmd().args([&a, &c]).assert().code(1).stdout("");
    cmd().arg(&a).arg(ABC).assert().code(0);
    cmd().arg(ABC.to_uppercase()).arg(&a).assert().code(0);
    cmd().arg(&c).arg(ABC).assert().code(1);
    cmd().arg(ABC).arg(ABC).assert().code(0);
    cmd()
        .arg(&a)
        .arg(&missing)
        .assert()
        .code(2)
        .stderr(predicates::str::contains("does not exist"));
    cmd().arg(&a).arg(&missing).arg("--missing-ok").assert().code(1);
    cmd().arg(&missing).arg(&missing).arg("--missing-ok").assert().code(1);
    cmd()
        .arg(&a)
        .arg("abc123")
        .assert()
        .code(2)
        .stderr(predicates::str::contains("neither an existing file nor a sha256"));
    cmd().arg(&a).arg(&ABC[1..]).assert().code(2);
    cmd().arg(&a).assert().code(2);
}

#[test]
fn help_shows_the_exit_code_table() {
    cmd()
        .arg("--help")
        .assert()
        .code(0)
        .stdout(predicates::str::contains("Exit codes:"))
        .stdout(predicates::str::contains("3  deploy-hvt"));
}

#[test]
fn large_sparse_file_hashes_correctly() {
    let d = tempfile::tempdir().unwrap();
    let big = d.path().join("big");
    std::fs::File::create(&big).unwrap().set_len(1 << 30).unwrap();
    let (expected, _) = uk_digest::hash_file(&big).unwrap();
    cmd().arg(&big).arg(expected.to_string()).assert().code(0);
    cmd().arg(&big).arg(ABC).assert().code(1);
}
