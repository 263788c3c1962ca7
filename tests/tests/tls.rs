//! TLS: `serve --tls-cert/--tls-key` with certificates generated at test
//! time; the clients trust the system roots plus `--cacert`, and refuse a
//! server they cannot verify.

use ukrepo_tests::bins::cmd;
use ukrepo_tests::server::*;

struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(rcgen::DnType::CommonName, "test CA");
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
        let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
        std::fs::write(dir.path().join("cert.pem"), cert.pem()).unwrap();
        std::fs::write(dir.path().join("key.pem"), key.serialize_pem()).unwrap();
        Pki { dir }
    }

    fn path(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(name)
    }
}

#[test]
fn upload_and_fetch_over_tls_with_cacert() {
    let pki = Pki::new();
    let s = start_tls(&pki.path("cert.pem"), &pki.path("key.pem"));
    // The port speaks TLS: a plain HTTP request gets no HTTP answer.
    {
        use std::io::{Read, Write};
        let mut c = std::net::TcpStream::connect(s.addr()).unwrap();
        c.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
        c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut head = [0u8; 8];
        let n = c.read(&mut head).unwrap_or(0);
        assert!(
            !head[..n].starts_with(b"HTTP/1.1"),
            "plain HTTP answered on the TLS port"
        );
    }
    s.add_user("ci", "pw", true);
    let d = tempfile::tempdir().unwrap();
    let img = d.path().join("web.hvt");
    std::fs::write(&img, b"over tls").unwrap();
    let env = [
        ("UKREPO_URL", s.url.as_str()),
        ("UKREPO_USER", "ci"),
        ("UKREPO_PASSWORD", "pw"),
    ];

    // Without the CA the server cannot be verified: refused, nothing sent.
    cmd("upload")
        .envs(env)
        .args(["--job", "web", "--platform", "p", "--retries", "0"])
        .arg(&img)
        .assert()
        .code(2)
        .stderr(predicates::str::contains("certificate is not trusted"));
    assert_eq!(count_files(&s.artifacts_dir()), 0, "nothing was sent");
    cmd("upload")
        .envs(env)
        .env("UKREPO_CACERT", pki.path("ca.pem"))
        .args(["--job", "web", "--platform", "p"])
        .arg(&img)
        .assert()
        .code(0);
    let out = d.path().join("fetched.hvt");
    cmd("fetch-latest")
        .envs(env)
        .arg("--cacert")
        .arg(pki.path("ca.pem"))
        .args(["--job", "web", "--output"])
        .arg(&out)
        .assert()
        .code(0);
    assert_eq!(std::fs::read(&out).unwrap(), b"over tls");
    // Plain HTTP to the TLS port gets no answer.
    let plain = s.url.replace("https://", "http://");
    cmd("fetch-latest")
        .env("UKREPO_URL", plain)
        .args(["--job", "web", "--print-sha256", "--retries", "0"])
        .assert()
        .code(2);
}

#[test]
fn serve_refuses_a_key_that_does_not_fit_the_certificate() {
    let (a, b) = (Pki::new(), Pki::new());
    let err = match unikernel_repo::listen::tls_acceptor(&a.path("cert.pem"), &b.path("key.pem")) {
        Ok(_) => panic!("a mismatched key was accepted"),
        Err(e) => format!("{e:#}"),
    };
    assert!(err.contains("do not fit"), "{err}");
    cmd("unikernel-repo")
        .args(["serve", "--listen", "127.0.0.1:0", "--tls-cert"])
        .arg(a.path("cert.pem"))
        .assert()
        .code(2)
        .stderr(predicates::str::contains("--tls-key"));
}

/// The usual first-run recipe: `openssl req -x509` makes a self-signed
/// certificate that says it is a CA; `--cacert` with it must work.
#[test]
fn fetch_latest_trusts_an_openssl_self_signed_certificate_given_with_cacert() {
    let d = tempfile::tempdir().unwrap();
    let (cert, key) = (d.path().join("cert.pem"), d.path().join("key.pem"));
    let st = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "30",
        ])
        .args(["-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl (Debian package openssl)");
    assert!(st.status.success(), "{}", String::from_utf8_lossy(&st.stderr));
    let text = std::process::Command::new("openssl")
        .args(["x509", "-noout", "-text", "-in"])
        .arg(&cert)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&text.stdout).contains("CA:TRUE"),
        "the recipe's certificate is marked CA (what made clients refuse it)"
    );
    let s = start_tls(&cert, &key);
    s.add_user("ci", "pw", true);
    let img = d.path().join("web.hvt");
    std::fs::write(&img, b"self-signed").unwrap();
    // The certificate names localhost only.
    let url = s.url.replace("127.0.0.1", "localhost");
    let env = [
        ("UKREPO_URL", url.as_str()),
        ("UKREPO_USER", "ci"),
        ("UKREPO_PASSWORD", "pw"),
    ];
    cmd("upload")
        .envs(env)
        .env("UKREPO_CACERT", &cert)
        .args(["--job", "web", "--platform", "p"])
        .arg(&img)
        .assert()
        .code(0);
    let out = d.path().join("fetched.hvt");
    cmd("fetch-latest")
        .envs(env)
        .arg("--cacert")
        .arg(&cert)
        .args(["--job", "web", "--output"])
        .arg(&out)
        .assert()
        .code(0);
    assert_eq!(std::fs::read(&out).unwrap(), b"self-signed");
    // Pinned for its own names only: the same server under another name is refused.
    cmd("fetch-latest")
        .env("UKREPO_URL", &s.url)
        .arg("--cacert")
        .arg(&cert)
        .args(["--job", "web", "--print-sha256", "--retries", "0"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("not valid for name"));
}

/// http:// against the TLS port and https:// against a plain port: one
/// line that says which mistake it is.
#[test]
fn a_scheme_mismatch_is_named_once() {
    let pki = Pki::new();
    let tls = start_tls(&pki.path("cert.pem"), &pki.path("key.pem"));
    let plain = start();
    for (url, says) in [
        (tls.url.replace("https://", "http://"), "use an https:// URL"),
        (plain.url.replace("http://", "https://"), "http:// rather than https://"),
    ] {
        let out = cmd("fetch-latest")
            .env("UKREPO_URL", &url)
            .arg("--cacert")
            .arg(pki.path("ca.pem"))
            .args(["--job", "web", "--print-sha256", "--retries", "0"])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains(says), "{url}: {err}");
        assert_eq!(err.lines().count(), 1, "one line: {err}");
        assert_eq!(err.matches(&url).count(), 1, "the URL once: {err}");
    }
}

/// `deploy-hvt`'s HTTP health check reaches an `https://` URL through the
/// tools' own TLS connector, trusting the system roots (here the standard
/// `SSL_CERT_FILE` override); an untrusted certificate is a failed check
/// with its reason, never a crash.
#[test]
fn deploy_hvt_checks_an_https_health_url_with_the_system_roots() {
    let pki = Pki::new();
    let s = start_tls(&pki.path("cert.pem"), &pki.path("key.pem"));
    let url = format!("{}/healthz", s.url);
    let h = ukrepo_tests::host::Host::new("spt", &format!("http = \"{url}\"\n"));
    h.deploy_hvt("deploy")
        .arg(h.image("ticker-v1"))
        .env("SSL_CERT_FILE", pki.path("ca.pem"))
        .env_remove("SSL_CERT_DIR")
        .assert()
        .code(0);
    let stranger = Pki::new();
    h.deploy_hvt("deploy")
        .arg(h.image("ticker-v2"))
        .env("SSL_CERT_FILE", stranger.path("ca.pem"))
        .env_remove("SSL_CERT_DIR")
        .assert()
        .code(4)
        .stderr(predicates::str::contains(format!("no good HTTP answer from {url}")));
}
