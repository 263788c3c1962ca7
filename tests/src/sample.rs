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
    /// Job `net`: `needsnet.hvt` (one network device), no compare inputs.
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
        &[("synopsis", b"Needs a network")],
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
