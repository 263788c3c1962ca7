//! builder-web conformance: each route builder-web's clients and users rely
//! on, against the real server, with JSON compared to the fixtures of
//! `tests/fixtures/builder-web/` (builder-web's documented shapes; see the
//! README there) and redirects, headers and bodies compared to what
//! builder-web answers (notes: /work/notes/builder-web.md §1-§4).

use base64::Engine;
use serde_json::Value;
use ukrepo_tests::sample::{self, Sample};
use ukrepo_tests::server::*;
use ukrepo_tests::shape::{assert_conforms, fixture};

fn sample_server() -> (Server, Sample) {
    let s = start();
    let sample = sample::fill(&s);
    (s, sample)
}

/// builder-web sends `"synopsis": null` for a job without one; we send ""
/// on purpose (CONTRACT.md §2: a null empties mollymawk's list).
fn synopsis_as_string(mut v: Value) -> Value {
    fn walk(v: &mut Value) {
        match v {
            Value::Object(o) => {
                if o.get("synopsis") == Some(&Value::Null) {
                    o.insert("synopsis".into(), Value::String(String::new()));
                }
                o.values_mut().for_each(walk);
            }
            Value::Array(a) => a.iter_mut().for_each(walk),
            _ => {}
        }
    }
    walk(&mut v);
    v
}

#[test]
fn all_builds_and_front_page_json() {
    let (s, x) = sample_server();
    let f = synopsis_as_string(fixture("all-builds.json"));
    for path in ["/all-builds", "/", "/all-builds/"] {
        let r = get_json(&format!("{}{path}", s.url));
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.header("content-type"), Some("application/json"), "{path}");
        let j = r.json();
        assert_conforms(&f, &j, &["$.jobs_by_section"]);
        let jobs = j["jobs"].as_array().unwrap();
        let names: Vec<&str> = jobs.iter().map(|j| j["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["net", "notes", "web"], "{path}");
        // Every synopsis is a string; the one never set is "".
        assert_eq!(jobs[1]["synopsis"], "", "{path}");
        assert_eq!(jobs[2]["synopsis"], sample::HOSTILE_SYNOPSIS, "{path}");
        assert_eq!(jobs[2]["latest"]["uuid"], x.right.as_str());
        assert_eq!(jobs[2]["latest"]["solo5_abi"]["target"], "hvt");
        assert_eq!(
            jobs[0]["latest"]["solo5_manifest"]["devices"],
            serde_json::json!([{"name": "service", "type": "NET_BASIC"}])
        );
        // Each job once in `jobs` and once under its section.
        let sections = j["jobs_by_section"].as_object().unwrap();
        let in_sections: usize = sections.values().map(|v| v.as_array().unwrap().len()).sum();
        assert_eq!(in_sections, jobs.len());
    }
    // An empty repository.
    let empty = start();
    assert_eq!(
        get_json(&format!("{}/all-builds", empty.url)).json(),
        serde_json::json!({"jobs": [], "jobs_by_section": {}})
    );
}

#[test]
fn job_json() {
    let (s, x) = sample_server();
    let j = get_json(&format!("{}/job/web", s.url)).json();
    assert_conforms(&fixture("job.json"), &j, &[]);
    let builds = j["builds"].as_array().unwrap();
    assert_eq!(builds[0]["uuid"], x.right.as_str(), "newest first");
    assert_eq!(
        builds[0]["main_binary"]["filename"], "web.hvt",
        "the basename, not bin/…"
    );
    assert_eq!(get_json(&format!("{}/job/web/", s.url)).json(), j, "trailing slash");
    assert_eq!(get_json(&format!("{}/job/nope", s.url)).status, 404);
}

#[test]
fn build_json() {
    let (s, x) = sample_server();
    let net = get_json(&format!("{}/job/net/build/{}", s.url, x.net)).json();
    assert_conforms(&fixture("build.json"), &net, &[]);
    assert_eq!(net["main_binary_file"]["signature"], "bin/net.hvt.minisig", "{net}");
    let b = get_json(&format!("{}/job/web/build/{}", s.url, x.right)).json();
    assert_conforms(&fixture("build-plain.json"), &b, &[]);
    assert_eq!(
        (&b["main_binary"], &b["solo5_abi"]["target"]),
        (&Value::Bool(true), &Value::from("hvt"))
    );
    let plain = get_json(&format!("{}/job/notes/build/{}", s.url, x.plain)).json();
    assert_conforms(&fixture("build-plain.json"), &plain, &[]);
    for t in ["start_time", "finish_time"] {
        let v = b[t].as_str().unwrap();
        let parsed = time::OffsetDateTime::parse(v, &time::format_description::well_known::Rfc3339)
            .unwrap_or_else(|e| panic!("{t} {v}: {e}"));
        assert_eq!(parsed.nanosecond(), 0, "{t} {v} is in whole seconds");
        assert_eq!(v.len(), "2026-01-01T00:00:00Z".len(), "{t} {v} has no fraction");
    }
    let trailing = get_json(&format!("{}/job/web/build/{}/", s.url, x.right)).json();
    assert_eq!(trailing["uuid"], x.right.as_str());
}

#[test]
fn compare_json() {
    let (s, x) = sample_server();
    let r = get_json(&format!("{}/compare/{}/{}", s.url, x.left, x.right));
    assert_eq!(r.status, 200, "{}", r.text());
    let c = r.json();
    assert_conforms(&fixture("compare.json"), &c, &[]);
    let names = |v: &Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(c["left"]["uuid"], x.left.as_str());
    assert_eq!(c["right"]["job"], "web");
    // builder-web's quirk: left_packages are those only in the RIGHT build.
    assert_eq!(names(&c["env_diff"]["left_packages"]), ["ONLY_IN_RIGHT"]);
    assert_eq!(names(&c["env_diff"]["right_packages"]), ["ONLY_IN_LEFT"]);
    assert_eq!(
        c["env_diff"]["different_versions"],
        serde_json::json!([{"name": "PATH", "version_left": "/a", "version_right": "/b"}])
    );
    assert_eq!(names(&c["package_diff"]["left_packages"]), ["m4"]);
    assert_eq!(names(&c["package_diff"]["right_packages"]), ["libev-dev"]);
    assert_eq!(names(&c["package_diff"]["different_versions"]), ["libgmp-dev"]);
    let o = &c["opam_diff"];
    assert_eq!(
        o["version_diff"],
        serde_json::json!([{"name": "tls", "version_left": "0.17.3", "version_right": "1.0.0"}])
    );
    assert_eq!(
        o["only_in_left"],
        serde_json::json!([{"name": "cstruct-lwt", "version": "6.2.0"}])
    );
    assert_eq!(
        o["only_in_right"],
        serde_json::json!([{"name": "digestif", "version": "1.2.0"}])
    );
    assert_eq!(o["opam_diff"][0]["package_version"], "mirage.4.5.0");
    let diff = o["opam_diff"][0]["diff"].as_str().unwrap();
    assert!(
        diff.starts_with("--- left/mirage/opam\n+++ right/mirage/opam\n@@"),
        "{diff}"
    );
    assert!(
        diff.contains("\n+build: [\"dune\" \"build\" \"-p\" name \"-j\" jobs]\n"),
        "{diff}"
    );
    assert_eq!(
        o["duniverse_diff"]["left"],
        serde_json::json!([{"name": "gone", "value": "https://example.org/gone-1.0.tbz"}])
    );
    assert_eq!(names(&o["duniverse_diff"]["right"]), ["x509"]);
    assert_eq!(names(&o["duniverse_diff"]["detailed_diff"]), ["tls"]);

    // Swapped: the same facts from the other side.
    let back = get_json(&format!("{}/compare/{}/{}", s.url, x.right, x.left)).json();
    assert_eq!(names(&back["env_diff"]["left_packages"]), ["ONLY_IN_LEFT"]);
    assert_eq!(names(&back["opam_diff"]["only_in_left"]), ["digestif"]);
}

#[test]
fn compare_without_inputs_gives_empty_lists_and_unknown_builds_404() {
    let (s, x) = sample_server();
    // Different jobs, neither with compare inputs: builder-web answers 404,
    // we compare empty inputs.
    let c = get_json(&format!("{}/compare/{}/{}", s.url, x.net, x.plain));
    assert_eq!(c.status, 200, "{}", c.text());
    let c = c.json();
    for d in ["env_diff", "package_diff"] {
        for l in ["left_packages", "right_packages", "different_versions"] {
            assert_eq!(c[d][l], serde_json::json!([]), "{d}.{l}");
        }
    }
    assert_eq!(
        c["opam_diff"],
        serde_json::json!({"opam_diff": [], "version_diff": [], "only_in_left": [], "only_in_right": [],
                           "duniverse_diff": {"left": [], "right": [], "detailed_diff": []}})
    );
    assert_eq!(
        (c["left"]["job"].as_str(), c["right"]["job"].as_str()),
        (Some("net"), Some("notes"))
    );
    // One side with inputs, one without: everything is on one side.
    let half = get_json(&format!("{}/compare/{}/{}", s.url, x.left, x.net)).json();
    assert_eq!(half["opam_diff"]["only_in_left"].as_array().unwrap().len(), 5);
    assert!(half["duniverse_diff"].is_null(), "duniverse_diff sits inside opam_diff");
    assert!(half["opam_diff"]["duniverse_diff"].is_object());

    let unknown = "3f0e1b52-8a4c-4d7e-9b1a-2c3d4e5f6a7b";
    let r = get_json(&format!("{}/compare/{}/{unknown}", s.url, x.left));
    assert_eq!(r.status, 404);
    assert!(r.json()["error"].as_str().unwrap().contains(unknown), "{}", r.text());
    assert_eq!(
        get_json(&format!("{}/compare/{}/not-a-uuid", s.url, x.left)).status,
        400
    );
    // HTML for browsers, trailing slash tolerated.
    let h = get(
        &format!("{}/compare/{}/{}/", s.url, x.left, x.right),
        &[("Accept", "text/html")],
    );
    assert_eq!(h.status, 200);
    assert!(h.header("content-type").unwrap().starts_with("text/html"));
    assert!(h.text().contains("cstruct-lwt"), "{}", h.text());
}

#[test]
fn redirects_as_builder_web() {
    let (s, x) = sample_server();
    let u = &x.right;
    let loc = |path: &str| {
        let r = get(&format!("{}{path}", s.url), &[]);
        (r.status, r.header("location").map(str::to_owned))
    };
    let want = |status: u16, l: String| (status, Some(l));
    assert_eq!(loc("/job/web/build/latest"), want(307, format!("/job/web/build/{u}")));
    assert_eq!(loc("/job/web/build/latest/"), want(307, format!("/job/web/build/{u}")));
    assert_eq!(
        loc("/job/web/build/latest/main-binary"),
        want(307, format!("/job/web/build/{u}/main-binary"))
    );
    assert_eq!(
        loc("/job/web/build/latest/f/bin/web.hvt"),
        want(307, format!("/job/web/build/{u}/f/bin/web.hvt"))
    );
    assert_eq!(
        loc(&format!("/job/web/build/{u}/main-binary")),
        want(302, format!("/job/web/build/{u}/f/bin/web.hvt"))
    );
    let sha = get_json(&format!("{}/job/web/build/{u}", s.url)).json()["main_binary_file"]["sha256"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        loc(&format!("/hash?sha256={sha}")),
        want(302, format!("/job/web/build/{u}"))
    );
    // Any artifact's digest, not only main binaries.
    let env_sha = sha256_hex(sample::ENV_RIGHT.as_bytes());
    assert_eq!(
        loc(&format!("/hash?sha256={env_sha}")),
        want(302, format!("/job/web/build/{u}"))
    );
    assert_eq!(loc(&format!("/hash?sha256={}", "0".repeat(64))).0, 404);
    assert_eq!(loc("/job/nope/build/latest").0, 404);
}

#[test]
fn downloads_etags_and_content_types() {
    let (s, x) = sample_server();
    let base = format!("{}/job/web/build/{}", s.url, x.right);
    let f = get(&format!("{base}/f/bin/web.hvt"), &[]);
    assert_eq!(f.status, 200);
    assert_eq!(f.header("content-type"), Some("application/octet-stream"));
    let raw = uk_digest::hash_reader(&f.body[..]).unwrap().0;
    // builder-web's ETag form: the unquoted standard base64 of the digest.
    let b64 = base64::engine::general_purpose::STANDARD.encode(raw.as_bytes());
    let nm = get(&format!("{base}/f/bin/web.hvt"), &[("If-None-Match", &b64)]);
    assert_eq!((nm.status, nm.body.len()), (304, 0));
    for (path, ctype) in [
        ("opam-switch", "text/plain; charset=utf-8"),
        ("build-environment", "text/plain; charset=utf-8"),
        ("system-packages", "text/plain; charset=utf-8"),
    ] {
        let r = get(&format!("{base}/f/{path}"), &[]);
        assert_eq!((r.status, r.header("content-type")), (200, Some(ctype)), "{path}");
    }
    assert_eq!(get(&format!("{base}/f/opam-switch"), &[]).text(), sample::OPAM_RIGHT);

    // console and script: text/plain; a build without a console answers 200, empty.
    let c = get(&format!("{base}/console"), &[]);
    assert_eq!((c.status, c.text().as_str()), (200, sample::HOSTILE_CONSOLE));
    assert_eq!(c.header("content-type"), Some("text/plain; charset=utf-8"));
    let sc = get(&format!("{base}/script"), &[]);
    assert_eq!(sc.status, 200);
    assert!(sc.text().starts_with("#!/bin/sh"), "{}", sc.text());
    let none = get(&format!("{}/job/net/build/{}/console", s.url, x.net), &[]);
    assert_eq!((none.status, none.body.len()), (200, 0));
    assert_eq!(none.header("content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(get(&format!("{base}/console/"), &[]).status, 200, "trailing slash");
}

#[test]
fn robots_healthz_and_errors_on_every_404() {
    let s = start();
    let r = get(&format!("{}/robots.txt", s.url), &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(
        r.text(),
        "User-agent: *\nDisallow: /job/*/build/*/f/\nDisallow: /job/*/build/*/main-binary\n\
         Disallow: /job/*/build/*/script\nDisallow: /job/*/build/*/console\n\
         Disallow: /job/*/build/*/all.tar.gz\nDisallow: /job/*/build/*/exec\nDisallow: /compare/\n"
    );
    let h = get(&format!("{}/healthz", s.url), &[]);
    assert_eq!((h.status, h.text().trim()), (200, "ok"));
    for path in ["/no/such/page", "/job/x/build/y/z/w", "/img/robur-logo.png"] {
        let r = get_json(&format!("{}{path}", s.url));
        assert_eq!(r.status, 404, "{path}");
        assert!(
            r.json()["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{path}: {}",
            r.text()
        );
        let h = get(&format!("{}{path}", s.url), &[("Accept", "text/html")]);
        assert_eq!(h.status, 404, "{path}");
        assert!(h.header("content-type").unwrap().starts_with("text/html"), "{path}");
        assert!(h.text().contains("404"), "{path}: {}", h.text());
    }
}

#[test]
fn uploads_as_builder_web_default_name_and_debian_names() {
    let s = start();
    s.add_user("ci", "pw", true);
    let auth = basic("ci", "pw");
    // No binary_name: stored as bin/<job>.bin.
    let url = format!("{}/job/web/platform/debian-12/upload", s.url);
    let r = agent()
        .post(&url)
        .header("Authorization", &auth)
        .send(&b"image"[..])
        .unwrap();
    assert_eq!(r.status(), 201);
    let b = get_json(&format!("{}/job/web/build/latest", s.url));
    let loc = b.header("location").unwrap().to_owned();
    let b = get_json(&format!("{}{loc}", s.url)).json();
    assert_eq!(b["main_binary_file"]["filepath"], "bin/web.bin");
    // Debian package names: + and ~, long job names.
    let job = format!("libfoo+bar~1-{}", "x".repeat(100));
    // In a query `+` is a space: the name travels as %2B (as `upload` sends it).
    let r = upload_raw(&s.url, &job, "libfoo%2Bbar_1.0~rc1_amd64.deb", b"deb", Some(&auth), &[]);
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(
        r.json()["main_binary_file"]["filepath"],
        "bin/libfoo+bar_1.0~rc1_amd64.deb"
    );
    let uuid = r.json()["uuid"].as_str().unwrap().to_owned();
    let f = get(
        &format!("{}/job/{job}/build/{uuid}/f/bin/libfoo+bar_1.0~rc1_amd64.deb", s.url),
        &[],
    );
    assert_eq!((f.status, f.body.as_slice()), (200, &b"deb"[..]));
}

#[test]
fn vacuumed_builds_keep_their_json_and_their_files_answer_410() {
    let (s, x) = sample_server();
    let data = s.data.path().to_owned();
    // `unikernel-repo vacuum --keep 1 --job web` drops the first build's files.
    let out = std::process::Command::new(ukrepo_tests::bins::bin("unikernel-repo"))
        .arg("--data-dir")
        .arg(&data)
        .args(["vacuum", "--keep", "1", "--job", "web"])
        .envs(ukrepo_tests::backend::env(&data))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let b = get_json(&format!("{}/job/web/build/{}", s.url, x.left)).json();
    assert!(b["vacuumed"].is_string(), "{b}");
    assert_conforms(&fixture("build-plain.json"), &b, &[]);
    let f = get(&format!("{}/job/web/build/{}/f/bin/web.hvt", s.url, x.left), &[]);
    assert_eq!(f.status, 410);
    // Compare still answers: a vacuumed build compares as empty inputs.
    let c = get_json(&format!("{}/compare/{}/{}", s.url, x.left, x.right));
    assert_eq!(c.status, 200, "{}", c.text());
    assert_eq!(c.json()["opam_diff"]["only_in_right"].as_array().unwrap().len(), 5);
}

#[test]
fn compare_reads_at_most_8_mib_of_each_input() {
    let (s, x) = sample_server();
    let huge = vec![b'x'; (8 << 20) + 1];
    let u = sample::upload(&s, &x.auth, "web", "big.hvt", b"big", &[("opam-switch", &huge)]);
    let r = get_json(&format!("{}/compare/{}/{u}", s.url, x.left));
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(
        r.json()["error"].as_str().unwrap().contains("opam-switch"),
        "{}",
        r.text()
    );
}
