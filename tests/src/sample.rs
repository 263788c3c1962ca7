//! A small repository as builder-web's users know one: two builds of a
//! Solo5 unikernel with the artifacts builder-web compares (`opam-switch`,
//! `build-environment`, `system-packages`), a console and a synopsis, a
//! Solo5 image with a network device, and a job that is not a Solo5 image.
//! Shared by the conformance, client-replay and browser tests.

use crate::server::{Server, basic, upload_multipart};
use crate::solo5::solo5_images;

/// `opam switch export --full --freeze` of the first build (abridged).
pub const OPAM_LEFT: &str = r#"opam-version: "2.0"
roots: ["web.dev"]
installed: [
  "cstruct-lwt.6.2.0"
  "mirage.4.5.0"
  "ocaml.4.14.1"
  "tls.0.17.3"
  "web.dev"
]
package "mirage" {
  opam-version: "2.0"
  synopsis: "The MirageOS library operating system"
  build: ["dune" "build" "-p" name]
}
package "web" {
  opam-version: "2.0"
  x-opam-monorepo-duniverse-dirs: [
    ["https://example.org/tls-0.17.3.tbz" "tls" ["sha256=1111"]]
    ["https://example.org/gone-1.0.tbz" "gone" ["sha256=2222"]]
  ]
}
"#;

/// The second build: tls upgraded, cstruct-lwt dropped, digestif added,
/// mirage's opam file changed at the same version.
pub const OPAM_RIGHT: &str = r#"opam-version: "2.0"
roots: ["web.dev"]
installed: [
  "digestif.1.2.0"
  "mirage.4.5.0"
  "ocaml.4.14.1"
  "tls.1.0.0"
  "web.dev"
]
package "mirage" {
  opam-version: "2.0"
  synopsis: "The MirageOS library operating system"
  build: ["dune" "build" "-p" name "-j" jobs]
}
package "web" {
  opam-version: "2.0"
  x-opam-monorepo-duniverse-dirs: [
    ["https://example.org/tls-1.0.0.tbz" "tls" ["sha256=3333"]]
    ["https://example.org/x509-1.0.tbz" "x509" ["sha256=4444"]]
  ]
}
"#;

pub const ENV_LEFT: &str = "PATH=/a\nONLY_IN_LEFT=x\nOS=debian";
pub const ENV_RIGHT: &str = "PATH=/b\nONLY_IN_RIGHT=1\nOS=debian";
pub const PKGS_LEFT: &str = "libgmp-dev=2:6.2.0\nlibev-dev=1:4.33-1\n";
pub const PKGS_RIGHT: &str = "libgmp-dev=2:6.3.0\nm4=1.4.19-3\n";

/// Console text with markup in it: pages must show it as text.
pub const HOSTILE_CONSOLE: &str = "booting\n<script>alert('console')</script>\n<img src=x onerror=alert(1)>\nready\n";
/// A synopsis with markup in it.
pub const HOSTILE_SYNOPSIS: &str = "Web server <b>bold</b> <script>alert('synopsis')</script>";

pub struct Sample {
    /// Job `web`, `ticker-v1.hvt`: the first build.
    pub left: String,
    /// Job `web`, `ticker-v2.hvt`: the second (latest) build.
    pub right: String,
    /// Job `net`: `needsnet.hvt` (one network device) and a signature, no
    /// compare inputs.
    pub net: String,
    /// Job `notes`: a file that is not a Solo5 image, no synopsis.
    pub plain: String,
    pub auth: String,
}

/// Uploads a build with the given extra parts; returns its uuid.
pub fn upload(s: &Server, auth: &str, job: &str, name: &str, image: &[u8], extra: &[(&str, &[u8])]) -> String {
    let mut parts: Vec<(&str, Option<&str>, &[u8])> = vec![("binary", Some(name), image)];
    parts.extend(extra.iter().map(|(n, b)| (*n, None, *b)));
    let r = upload_multipart(&s.url, job, &format!("?binary_name={name}"), &parts, auth);
    assert!(r.status == 201, "uploading {name} to {job}: {} {}", r.status, r.text());
    r.json()["uuid"].as_str().unwrap().to_owned()
}

/// Fills `s` with the sample; adds an unrestricted user `ci`.
pub fn fill(s: &Server) -> Sample {
    s.add_user("ci", "pw", true);
    let auth = basic("ci", "pw");
    let images = solo5_images();
    let read = |n: &str| std::fs::read(images.join(n)).unwrap_or_else(|e| panic!("{n}: {e}"));
    let left = upload(
        s,
        &auth,
        "web",
        "web.hvt",
        &read("ticker-v1.hvt"),
        &[
            ("opam-switch", OPAM_LEFT.as_bytes()),
            ("build-environment", ENV_LEFT.as_bytes()),
            ("system-packages", PKGS_LEFT.as_bytes()),
            ("console", b"booting\nready\n"),
            ("synopsis", b"Web server"),
        ],
    );
    let right = upload(
        s,
        &auth,
        "web",
        "web.hvt",
        &read("ticker-v2.hvt"),
        &[
            ("opam-switch", OPAM_RIGHT.as_bytes()),
            ("build-environment", ENV_RIGHT.as_bytes()),
            ("system-packages", PKGS_RIGHT.as_bytes()),
            ("console", HOSTILE_CONSOLE.as_bytes()),
            ("script", b"#!/bin/sh\nmirage configure -t hvt && make\n"),
            ("synopsis", HOSTILE_SYNOPSIS.as_bytes()),
        ],
    );
    let net = upload(
        s,
        &auth,
        "net",
        "net.hvt",
        &read("needsnet.hvt"),
        &[
            ("synopsis", b"Needs a network"),
            // Not checked by the repository; shown and linked on the build page.
            ("bin/net.hvt.minisig", b"untrusted comment: signature\nRWQ=\n"),
        ],
    );
    let plain = upload(s, &auth, "notes", "notes.txt", b"not a unikernel\n", &[]);
    Sample {
        left,
        right,
        net,
        plain,
        auth,
    }
}

/// Sends a deployment report for a build, as `deploy-hvt` does.
pub fn report(s: &Server, auth: &str, job: &str, uuid: &str, host: &str, result: &str, message: &str) {
    let b = crate::server::get_json(&format!("{}/job/{job}/build/{uuid}", s.url)).json();
    let sha = b["main_binary_file"]["sha256"].as_str().unwrap().to_owned();
    let body = serde_json::json!({
        "host": host, "sha256": sha, "result": result, "action": "deploy", "message": message,
        "started": "2026-01-01T00:00:00Z", "finished": "2026-01-01T00:00:01Z",
    });
    let r = crate::server::agent()
        .post(&format!("{}/job/{job}/build/{uuid}/deployments", s.url))
        .header("Authorization", auth)
        .header("Content-Type", "application/json")
        .send(body.to_string().as_bytes())
        .unwrap();
    assert_eq!(r.status(), 201, "report of {host} for {job}/{uuid}");
}

/// A hostile deployment message (a host's text is shown on pages too).
pub const HOSTILE_MESSAGE: &str = "health check failed: <iframe src=\"/\"></iframe>";

/// The sample plus what the pages show beyond builder-web: hosts (host-a
/// runs the latest `web` image, host-b rolled it back and runs the first
/// build), the latest image rebuilt on another platform (one group, two
/// builds), and a job with more builds than a page shows.
pub fn fill_for_pages(s: &Server) -> Sample {
    let x = fill(s);
    report(s, &x.auth, "web", &x.left, "host-a", "deployed", "");
    report(s, &x.auth, "web", &x.left, "host-b", "deployed", "");
    report(s, &x.auth, "web", &x.right, "host-a", "deployed", "healthy");
    report(s, &x.auth, "web", &x.right, "host-b", "rolled-back", HOSTILE_MESSAGE);
    rebuild_on_other_platform(s, &x);
    for i in 0..25u32 {
        let image = format!("image {i} of many\n").into_bytes();
        upload(s, &x.auth, "many", "many.bin", &image, &[]);
    }
    x
}

/// Uploads the latest `web` image again on another platform: a second
/// build in the same main-binary group.
fn rebuild_on_other_platform(s: &Server, x: &Sample) -> String {
    let image = std::fs::read(solo5_images().join("ticker-v2.hvt")).unwrap();
    let url = format!("{}/job/web/platform/ubuntu-24.04/upload?binary_name=web.hvt", s.url);
    let r = crate::server::agent()
        .post(&url)
        .header("Authorization", &x.auth)
        .send(&image[..])
        .unwrap();
    assert_eq!(r.status(), 201);
    let loc = r.headers()["location"].to_str().unwrap().to_owned();
    loc.rsplit('/').next().unwrap().to_owned()
}
