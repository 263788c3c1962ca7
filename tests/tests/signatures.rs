//! The signature matrix with real keys made by the `minisign` program:
//! `upload --sign-key` signatures verify with `minisign -V`; files signed by
//! hand with `minisign -S` deploy; `fetch-latest --verify-key` and a
//! `deploy-hvt` with `verify_key` refuse unsigned, foreign-key, swapped and
//! (for deploy) older-signed images before anything is installed or touched;
//! `rollback` may still go back.

use std::path::{Path, PathBuf};
use std::process::Command;

use ukrepo_tests::bins::cmd;
use ukrepo_tests::host::{Host, sha_of};
use ukrepo_tests::server::*;
use ukrepo_tests::watcher::{deploy_latest, reports};

fn minisign(args: &[&std::ffi::OsStr]) -> std::process::Output {
    let out = Command::new("minisign")
        .args(args)
        .output()
        .expect("the minisign program (Debian package minisign, installed by scripts/test.sh)");
    assert!(
        out.status.success(),
        "minisign {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn keypair(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let (pk, sk) = (dir.join(format!("{name}.pub")), dir.join(format!("{name}.key")));
    minisign(&[
        "-G".as_ref(),
        "-W".as_ref(),
        "-p".as_ref(),
        pk.as_os_str(),
        "-s".as_ref(),
        sk.as_os_str(),
    ]);
    (pk, sk)
}

/// A copy of `src` at `dest`, signed by `sk` with the given trusted timestamp (our signer).
fn signed_copy(src: &Path, dest: &Path, sk: &Path, job: &str, timestamp: u64) {
    std::fs::copy(src, dest).unwrap();
    let (sha, _) = uk_digest::hash_file(dest).unwrap();
    let tc = uk_signatures::trusted_comment(timestamp, "web.spt", &job.parse().unwrap(), &sha);
    let sig = uk_signatures::sign_file(sk, None, dest, &tc).unwrap();
    std::fs::write(format!("{}.minisig", dest.display()), sig).unwrap();
}

#[test]
fn upload_signs_fetch_verifies_and_minisign_agrees() {
    let d = tempfile::tempdir().unwrap();
    let (pk, sk) = keypair(d.path(), "ci");
    let (other_pk, _) = keypair(d.path(), "other");
    let s = start();
    s.add_user("ci", "pw", true);
    let img = d.path().join("web.hvt");
    std::fs::write(&img, b"a unikernel image").unwrap();
    let a = cmd("upload")
        .envs([
            ("UKREPO_URL", s.url.as_str()),
            ("UKREPO_USER", "ci"),
            ("UKREPO_PASSWORD", "pw"),
        ])
        .args(["--job", "web", "--platform", "p", "--json", "--sign-key"])
        .arg(&sk)
        .arg(&img)
        .assert()
        .code(0);
    let build: serde_json::Value = serde_json::from_slice(&a.get_output().stdout).unwrap();
    assert_eq!(build["main_binary_file"]["signature"], "bin/web.hvt.minisig");

    // Our signature verifies with the minisign program, trusted comment and all.
    let sig = get(
        &format!(
            "{}/job/web/build/{}/f/bin/web.hvt.minisig",
            s.url,
            build["uuid"].as_str().unwrap()
        ),
        &[],
    )
    .body;
    let sig_file = d.path().join("downloaded.minisig");
    std::fs::write(&sig_file, &sig).unwrap();
    let out = minisign(&[
        "-V".as_ref(),
        "-p".as_ref(),
        pk.as_os_str(),
        "-m".as_ref(),
        img.as_os_str(),
        "-x".as_ref(),
        sig_file.as_os_str(),
    ]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains(&format!("job:web\tsha256:{}", sha_of(&img))), "{said}");

    // fetch-latest --verify-key installs image and signature; a foreign key changes nothing.
    let out_dir = d.path().join("host");
    std::fs::create_dir(&out_dir).unwrap();
    let dest = out_dir.join("web.hvt");
    cmd("fetch-latest")
        .env("UKREPO_URL", &s.url)
        .args(["--job", "web", "--output"])
        .arg(&dest)
        .arg("--verify-key")
        .arg(&other_pk)
        .assert()
        .code(2)
        .stderr(predicates::str::contains("signature"));
    assert_eq!(std::fs::read_dir(&out_dir).unwrap().count(), 0, "nothing installed");
    cmd("fetch-latest")
        .env("UKREPO_URL", &s.url)
        .args(["--job", "web", "--output"])
        .arg(&dest)
        .arg("--verify-key")
        .arg(&pk)
        .assert()
        .code(0);
    assert_eq!(std::fs::read(&dest).unwrap(), b"a unikernel image");
    assert_eq!(std::fs::read(format!("{}.minisig", dest.display())).unwrap(), sig);

    // An unsigned build is refused by a host that requires signatures.
    std::fs::write(&img, b"unsigned image").unwrap();
    cmd("upload")
        .envs([
            ("UKREPO_URL", s.url.as_str()),
            ("UKREPO_USER", "ci"),
            ("UKREPO_PASSWORD", "pw"),
        ])
        .args(["--job", "web", "--platform", "p"])
        .arg(&img)
        .assert()
        .code(0);
    cmd("fetch-latest")
        .env("UKREPO_URL", &s.url)
        .args(["--job", "web", "--output"])
        .arg(&dest)
        .arg("--verify-key")
        .arg(&pk)
        .assert()
        .code(2)
        .stderr(predicates::str::contains("not signed"));
    assert_eq!(std::fs::read(&dest).unwrap(), b"a unikernel image", "untouched");
}

#[test]
fn deploy_requires_a_good_signature_and_refuses_downgrades() {
    let d = tempfile::tempdir().unwrap();
    let (pk, sk) = keypair(d.path(), "ci");
    let (_, other_sk) = keypair(d.path(), "other");
    let host = Host::new("spt", "");
    let cfg = std::fs::read_to_string(&host.config)
        .unwrap()
        .replace("[health]", &format!("verify_key = \"{}\"\n[health]", pk.display()));
    std::fs::write(&host.config, cfg).unwrap();
    let now = uk_signatures::now();
    let img = |name: &str| d.path().join(format!("{name}.spt"));

    // Signed by hand with the minisign program (its default trusted comment): deploys.
    std::fs::copy(host.image("ticker-v1"), img("v1")).unwrap();
    minisign(&[
        "-S".as_ref(),
        "-s".as_ref(),
        sk.as_os_str(),
        "-m".as_ref(),
        img("v1").as_os_str(),
    ]);
    host.deploy_hvt("deploy").arg(img("v1")).assert().code(0);
    let running = host.the_tender();

    // Unsigned, foreign key, swapped signature, another job: refused, nothing touched.
    std::fs::copy(host.image("ticker-v2"), img("unsigned")).unwrap();
    signed_copy(&host.image("ticker-v2"), &img("foreign"), &other_sk, "web", now);
    signed_copy(&host.image("ticker-v3"), &img("v3"), &sk, "web", now);
    std::fs::copy(host.image("ticker-v2"), img("swapped")).unwrap();
    std::fs::copy(
        format!("{}.minisig", img("v3").display()),
        format!("{}.minisig", img("swapped").display()),
    )
    .unwrap();
    signed_copy(&host.image("ticker-v2"), &img("otherjob"), &sk, "db", now);
    for (name, why) in [
        ("unsigned", "not signed"),
        ("foreign", "does not verify with the public key"),
        ("swapped", "does not verify with the public key"),
        ("otherjob", "job \"db\""),
    ] {
        host.deploy_hvt("deploy")
            .arg(img(name))
            .assert()
            .code(2)
            .stderr(predicates::str::contains(why));
    }
    assert_eq!(host.the_tender(), running);

    // Newer signature: deploys. Then an image signed earlier: a downgrade, refused.
    signed_copy(&host.image("ticker-v2"), &img("v2"), &sk, "web", now + 10);
    host.deploy_hvt("deploy").arg(img("v2")).assert().code(0);
    let v2_tender = host.the_tender();
    signed_copy(&host.image("ticker-v3"), &img("old"), &sk, "web", now - 1000);
    host.deploy_hvt("deploy")
        .arg(img("old"))
        .assert()
        .code(2)
        .stderr(predicates::str::contains("downgrade"));
    assert_eq!(host.the_tender(), v2_tender);

    // rollback may go back to the older v1.
    host.deploy_hvt("rollback").assert().code(0);
    assert!(host.the_tender().image.to_string_lossy().contains(&sha_of(&img("v1"))));
    assert!(host.console().contains("version: v1"));
}

/// The cron job on a host that requires signatures: a build signed by
/// another key is a decision (refused, reported once, exit 2 once), not an
/// error every minute; the running image stays.
#[test]
fn the_cron_job_refuses_a_badly_signed_build_once() {
    let d = tempfile::tempdir().unwrap();
    let (pk, sk) = keypair(d.path(), "ci");
    let (_, other_sk) = keypair(d.path(), "other");
    let s = start();
    s.add_user("ci", "pw", true);
    let host = Host::new("spt", "");
    let env = [
        ("UKREPO_URL", s.url.as_str()),
        ("UKREPO_USER", "ci"),
        ("UKREPO_PASSWORD", "pw"),
        ("UKREPO_HOST_NAME", "host-a"),
        ("UKREPO_VERIFY_KEY", pk.to_str().unwrap()),
    ];
    let upload = |image: &str, key: &Path| -> String {
        let out = cmd("upload")
            .envs(env)
            .args([
                "--job",
                "web",
                "--platform",
                "p",
                "--name",
                "web.spt",
                "--json",
                "--sign-key",
            ])
            .arg(key)
            .arg(host.image(image))
            .assert()
            .code(0)
            .get_output()
            .stdout
            .clone();
        serde_json::from_slice::<serde_json::Value>(&out).unwrap()["uuid"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    upload("ticker-v1", &sk);
    deploy_latest(&host, "web", &env, 0);
    assert!(host.runs("ticker-v1"));
    let bad = upload("ticker-v2", &other_sk);
    let said = deploy_latest(&host, "web", &env, 2);
    assert!(said.contains("does not verify with the public key"), "{said}");
    assert_eq!(deploy_latest(&host, "web", &env, 0), "", "refused once, then silent");
    assert!(host.runs("ticker-v1"));
    let r = reports(&s.url, "web", &bad);
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(r[0]["result"], "refused");
}
