//! The token matrix against the real server: `unikernel-repo token keygen`
//! and `token mint` make real tokens; `serve --token-public-key` accepts them
//! for their job and action only, within their lifetime, and only while
//! their key is configured.

use std::path::Path;

use ukrepo_tests::bins::{cmd, keygen};
use ukrepo_tests::server::*;

fn mint(key: &Path, job: &str, scope: &str, ttl: &str) -> String {
    let a = cmd("unikernel-repo")
        .args(["token", "mint", "--key"])
        .arg(key)
        .args(["--job", job, "--scope", scope, "--ttl", ttl])
        .assert()
        .code(0);
    String::from_utf8(a.get_output().stdout.clone())
        .unwrap()
        .trim()
        .to_owned()
}

fn bearer(t: &str) -> String {
    format!("Bearer {t}")
}

#[test]
fn token_matrix() {
    let d = tempfile::tempdir().unwrap();
    let (k1, p1) = keygen(d.path(), "one");
    let (k2, p2) = keygen(d.path(), "two");
    let (k3, _) = keygen(d.path(), "three");
    let s = start_with(|c| {
        c.token_public_keys = vec![p1.clone(), p2.clone()];
        c.max_failed_logins = 1000;
    });
    // Tokens upload to jobs that exist (made by `job add`).
    s.add_job("web");
    s.add_job("other");
    let n = std::cell::Cell::new(0);
    let up = |job: &str, token: &str| {
        n.set(n.get() + 1);
        upload_raw(
            &s.url,
            job,
            "x.hvt",
            format!("{job} {}", n.get()).as_bytes(),
            Some(&bearer(token)),
            &[],
        )
    };

    let t = mint(&k1, "web", "upload", "15m");
    assert_eq!(up("web", &t).status, 201, "valid token uploads to its job");
    let r = up("other", &t);
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(r.json()["error"].as_str().unwrap().contains("\"web\""));
    assert_eq!(
        up("web", &mint(&k2, "web", "upload", "1m")).status,
        201,
        "the second (rotated-in) key works too"
    );
    let report = up("web", &mint(&k1, "web", "report", "15m"));
    assert_eq!(report.status, 403, "a report token cannot upload: {}", report.text());
    let wrong_key = up("web", &mint(&k3, "web", "upload", "15m"));
    assert_eq!(wrong_key.status, 401);
    assert!(wrong_key.header("www-authenticate").is_some());

    // Expired: minted by the same format with an exp in the past.
    let sk = uk_tokens::SecretKey::from_text(&std::fs::read_to_string(&k1).unwrap()).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = |exp| uk_tokens::Claims {
        job: "web".parse().unwrap(),
        scope: uk_tokens::Scope::Upload,
        iat: now - 3600,
        exp,
    };
    let expired = up("web", &sk.mint(&claims(now - 600)));
    assert_eq!(expired.status, 401);
    assert!(
        expired.json()["error"].as_str().unwrap().contains("expired"),
        "{}",
        expired.text()
    );
    assert_eq!(
        up("web", &sk.mint(&claims(now - 10))).status,
        201,
        "within the clock-skew allowance"
    );

    // Validly signed, but a lifetime no minting would give, or issued after
    // it expires: both 401 (the unit tests of uk-tokens name the reasons).
    let forever = uk_tokens::Claims {
        iat: now - 10,
        exp: u64::MAX,
        ..claims(0)
    };
    assert_eq!(up("web", &sk.mint(&forever)).status, 401, "exp = 2^64-1");
    let backwards = uk_tokens::Claims {
        iat: now + 30,
        exp: now + 20,
        ..claims(0)
    };
    assert_eq!(up("web", &sk.mint(&backwards)).status, 401, "iat > exp");

    // Tampered payload: another job under the original signature.
    let parts: Vec<&str> = t.split('.').collect();
    use base64::Engine;
    let forged = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!(
        r#"{{"job":"other","scope":"upload","iat":{now},"exp":{}}}"#,
        now + 900
    ));
    assert_eq!(up("other", &format!("ukrepo.v1.{forged}.{}", parts[3])).status, 401);
    assert_eq!(up("web", "not-a-token").status, 401);

    // Rotation: once key one is removed from serve, its tokens are refused.
    let data = s.stop();
    let s = start_in(data, "127.0.0.1:0", |c| c.token_public_keys = vec![p2.clone()]);
    let r = upload_raw(&s.url, "web", "x.hvt", b"after rotation", Some(&bearer(&t)), &[]);
    assert_eq!(r.status, 401, "a rotated-out key is refused");
    let t2 = mint(&k2, "web", "upload", "5m");
    assert_eq!(
        upload_raw(&s.url, "web", "x.hvt", b"after rotation", Some(&bearer(&t2)), &[]).status,
        201
    );
}

#[test]
fn mint_refuses_long_ttls_and_keygen_never_overwrites() {
    let d = tempfile::tempdir().unwrap();
    let (k, p) = keygen(d.path(), "k");
    let (secret_before, public_before) = (std::fs::read(&k).unwrap(), std::fs::read(&p).unwrap());
    cmd("unikernel-repo")
        .args(["token", "mint", "--key"])
        .arg(&k)
        .args(["--job", "web", "--scope", "upload", "--ttl", "2h"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("longer than the allowed 1h"));
    cmd("unikernel-repo")
        .args(["token", "mint", "--key"])
        .arg(&k)
        .args(["--job", "../x", "--scope", "upload"])
        .assert()
        .code(2);
    cmd("unikernel-repo")
        .args(["token", "mint", "--key"])
        .arg(&k)
        .args(["--job", "web", "--scope", "admin"])
        .assert()
        .code(2);
    cmd("unikernel-repo")
        .args(["token", "keygen", "--secret-key"])
        .arg(&k)
        .arg("--public-key")
        .arg(d.path().join("new.pub"))
        .assert()
        .code(2)
        .stderr(predicates::str::contains("never overwritten"));
    assert_eq!(
        std::fs::read(&k).unwrap(),
        secret_before,
        "the secret key was overwritten"
    );
    assert_eq!(std::fs::read(&p).unwrap(), public_before);
    assert!(
        !d.path().join("new.pub").exists(),
        "a refused keygen wrote a public key"
    );
}

#[test]
fn upload_tool_sends_tokens_from_the_environment_or_a_file() {
    let d = tempfile::tempdir().unwrap();
    let (k, p) = keygen(d.path(), "ci");
    let s = start_with(|c| c.token_public_keys = vec![p.clone()]);
    s.add_job("web");
    let img = d.path().join("web.hvt");
    std::fs::write(&img, b"image").unwrap();
    let t = mint(&k, "web", "upload", "5m");
    cmd("upload")
        .env("UKREPO_URL", &s.url)
        .env("UKREPO_TOKEN", &t)
        .args(["--job", "web", "--platform", "p"])
        .arg(&img)
        .assert()
        .code(0);
    let tf = d.path().join("token");
    std::fs::write(&tf, format!("{}\n", mint(&k, "web", "upload", "5m"))).unwrap();
    std::fs::write(&img, b"image 2").unwrap();
    cmd("upload")
        .env("UKREPO_URL", &s.url)
        .arg("--token-file")
        .arg(&tf)
        .args(["--job", "web", "--platform", "p"])
        .arg(&img)
        .assert()
        .code(0);
    let a = cmd("upload")
        .env("UKREPO_URL", &s.url)
        .env("UKREPO_TOKEN", &t)
        .args(["--job", "other", "--platform", "p"])
        .arg(&img)
        .assert()
        .code(2);
    let err = String::from_utf8_lossy(&a.get_output().stderr).into_owned();
    assert!(err.contains("the server answered 403") && !err.contains(&t), "{err}");
}
