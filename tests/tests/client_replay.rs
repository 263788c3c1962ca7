//! The exchanges of builder-web's two programmatic clients, replayed
//! against the real server with their decoding rules written out in Rust
//! (quoted from their source in /work/notes/builder-web.md §7 and §8):
//! - `albatross-client update` (robur-coop/albatross
//!   `client/albatross_client.ml`): `/hash` and `/job/J/build/latest`
//!   without following redirects, each `Location` split exactly as its
//!   `job_and_build` does, uuids compared as strings, then the main binary
//!   through its redirect chain (≤ 5 hops) and its hash checked;
//! - mollymawk (robur-coop/mollymawk `builder_web.ml`, `update_flow.ml`):
//!   `/all-builds` through `jobs_of_json`/`job_of_json`/`manifest_of_json`,
//!   `/hash` and `/job/J/build/latest` (following redirects, `Accept:
//!   application/json` on every hop) through `build_of_json`, the
//!   comparison through `compare_of_json`, then the latest main binary.

use serde_json::Value;
use ukrepo_tests::bins::cmd;
use ukrepo_tests::sample::{self, Sample};
use ukrepo_tests::server::*;

type R<T> = Result<T, String>;

/// albatross's `job_and_build`:
/// `"" :: "job" :: jobname :: "build" :: uuid :: ([] | [""]) -> Ok (jobname, uuid)`.
fn job_and_build(loc: &str) -> R<(String, String)> {
    let parts: Vec<&str> = loc.split('/').collect();
    match parts.as_slice() {
        ["", "job", job, "build", uuid] | ["", "job", job, "build", uuid, ""] => {
            Ok(((*job).to_owned(), (*uuid).to_owned()))
        }
        _ => Err(format!("expected '/job/<jobname>/build/<uuid>', got: {loc}")),
    }
}

/// albatross: one request, no redirect followed; any 3xx with a Location.
fn albatross_location(url: &str) -> R<String> {
    let r = get(url, &[]);
    match r.status {
        300..=399 => r
            .header("location")
            .map(str::to_owned)
            .ok_or_else(|| "no Location header received in HTTP reply".to_owned()),
        404 => Err("couldn't find the unikernel in the repository".into()),
        s => Err(format!("unexpected HTTP reply {s}")),
    }
}

/// http-lwt-client's redirect following (default 5 hops): absolute URLs,
/// `//host/…` and `/path` are resolved, a relative path is an error.
fn follow(base: &str, path: &str, accept: Option<&str>) -> R<(Resp, usize)> {
    let mut url = format!("{base}{path}");
    for hops in 0..=5 {
        let headers: Vec<(&str, &str)> = accept.iter().map(|a| ("Accept", *a)).collect();
        let r = get(&url, &headers);
        if !(300..400).contains(&r.status) {
            return Ok((r, hops));
        }
        let loc = r.header("location").ok_or("a redirect without Location")?.to_owned();
        url = if loc.starts_with("http://") || loc.starts_with("https://") {
            loc
        } else if let Some(rest) = loc.strip_prefix("//") {
            format!("http://{rest}")
        } else if loc.starts_with('/') {
            format!("{base}{loc}")
        } else {
            return Err(format!("relative Location {loc:?}"));
        };
    }
    Err("too many redirects".into())
}

enum Update {
    UpToDate,
    Updated { image: Vec<u8>, compare: String },
}

/// `albatross-client update` for a unikernel running the image `running`.
fn albatross_update(base: &str, running: &[u8]) -> R<Update> {
    let hash = sha256_hex(running);
    let (job, old) = job_and_build(&albatross_location(&format!("{base}/hash?sha256={hash}"))?)?;
    let (job2, new) = job_and_build(&albatross_location(&format!("{base}/job/{job}/build/latest"))?)?;
    if job2 != job {
        return Err(format!("latest of {job} is a build of {job2}"));
    }
    if old == new {
        return Ok(Update::UpToDate);
    }
    let compare = format!("{base}/compare/{old}/{new}");
    let (r, _) = follow(base, &format!("/job/{job}/build/{new}/main-binary"), None)?;
    if !(200..300).contains(&r.status) || r.body.is_empty() {
        return Err(format!("main-binary answered {} with {} bytes", r.status, r.body.len()));
    }
    Ok(Update::Updated { image: r.body, compare })
}

#[test]
fn albatross_update_sequence() {
    let s = start();
    let x = sample::fill(&s);
    let images = ukrepo_tests::solo5::solo5_images();
    let v1 = std::fs::read(images.join("ticker-v1.hvt")).unwrap();
    let v2 = std::fs::read(images.join("ticker-v2.hvt")).unwrap();

    // Running v1: the repository has v2, albatross downloads exactly v2.
    match albatross_update(&s.url, &v1).unwrap() {
        Update::Updated { image, compare } => {
            assert_eq!(
                sha256_hex(&image),
                sha256_hex(&v2),
                "the downloaded image is the latest build's"
            );
            assert_eq!(compare, format!("{}/compare/{}/{}", s.url, x.left, x.right));
            // The comparison it logs answers (albatross does not fetch it; people do).
            assert_eq!(get(&compare, &[]).status, 200);
        }
        Update::UpToDate => panic!("v1 is not the latest"),
    }
    // Running v2: up to date (the uuids compare equal as strings).
    assert!(matches!(albatross_update(&s.url, &v2).unwrap(), Update::UpToDate));
    // Running an image the repository never saw.
    let e = albatross_update(&s.url, b"unknown image").err().unwrap();
    assert_eq!(e, "couldn't find the unikernel in the repository");
    // The parser itself: what it accepts and refuses.
    assert!(job_and_build("/job/web/build/u/").is_ok());
    assert!(job_and_build("http://h/job/web/build/u").is_err());
    assert!(job_and_build("/job/web/build/u?x").is_ok_and(|(_, u)| u == "u?x"));
}

// ---- mollymawk's decoders ------------------------------------------------

/// `Utils.Json.get`: the first matching key of an assoc list.
fn field<'a>(v: &'a Value, k: &str) -> Option<&'a Value> {
    v.as_object()?.get(k)
}

fn is_int(v: &Value) -> bool {
    v.as_i64().is_some() && !v.is_f64()
}

#[derive(Debug)]
struct Manifest {
    uuid: String,
    devices: Vec<(String, String)>,
}

/// `manifest_of_json`.
fn manifest_of_json(latest: &Value) -> R<Manifest> {
    match (field(latest, "uuid"), field(latest, "solo5_manifest")) {
        (Some(Value::String(uuid)), Some(m @ Value::Object(_))) => match field(m, "devices") {
            Some(Value::Array(devs)) => {
                let mut devices = Vec::new();
                for d in devs {
                    match (field(d, "name"), field(d, "type")) {
                        (Some(Value::String(n)), Some(Value::String(t))) if t == "NET_BASIC" || t == "BLOCK_BASIC" => {
                            devices.push((n.clone(), t.clone()))
                        }
                        _ => return Err(format!("bad device {d}")),
                    }
                }
                Ok(Manifest {
                    uuid: uuid.clone(),
                    devices,
                })
            }
            Some(_) => Err("solo5_manifest.devices is not a list".into()),
            None => Ok(Manifest {
                uuid: uuid.clone(),
                devices: vec![],
            }),
        },
        (Some(Value::String(uuid)), None) => Ok(Manifest {
            uuid: uuid.clone(),
            devices: vec![],
        }),
        _ => Err("Missing uuid or solo5_manifest".into()),
    }
}

#[derive(Debug)]
struct Job {
    name: String,
    synopsis: String,
    target: String,
    abi_version: i64,
    manifest: Manifest,
}

/// `job_of_json`: `Ok None` for jobs mollymawk cannot deploy.
fn job_of_json(j: &Value) -> R<Option<Job>> {
    let Some(Value::String(name)) = field(j, "name") else {
        return Err("no name in the job json".into());
    };
    let Some(Value::String(synopsis)) = field(j, "synopsis") else {
        return Err("no synopsis in the job json or synopsis is not a string".into());
    };
    let Some(latest @ Value::Object(_)) = field(j, "latest") else {
        return Ok(None);
    };
    let Some(abi @ Value::Object(_)) = field(latest, "solo5_abi") else {
        return Ok(None);
    };
    match (field(abi, "target"), field(abi, "version")) {
        (Some(Value::String(t)), Some(v)) if (t == "hvt" || t == "spt") && is_int(v) => Ok(Some(Job {
            name: name.clone(),
            synopsis: synopsis.clone(),
            target: t.clone(),
            abi_version: v.as_i64().unwrap(),
            manifest: manifest_of_json(latest)?,
        })),
        _ => Ok(None),
    }
}

/// `jobs_of_json`: an error in any job is an error of the whole list
/// (which `fetch_unikernel_jobs` turns into an empty list).
fn jobs_of_json(v: &Value) -> R<Vec<Job>> {
    let Some(Value::Array(jobs)) = field(v, "jobs") else {
        return Err("no jobs".into());
    };
    let mut out = Vec::new();
    for j in jobs {
        out.extend(job_of_json(j)?);
    }
    Ok(out)
}

#[derive(Debug)]
struct Build {
    job: String,
    uuid: String,
    main_binary: bool,
    main_binary_size: Option<i64>,
}

/// `Ptime.of_rfc3339` accepts these (with `Z`, an offset, or `-00:00`).
fn ptime_of_string(s: &str) -> R<()> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map(|_| ())
        .map_err(|e| format!("bad time {s:?}: {e}"))
}

/// `build_of_json`.
fn build_of_json(b: &Value) -> R<Build> {
    let s = |k: &str| match field(b, k) {
        Some(Value::String(v)) => Ok(v.clone()),
        _ => Err(format!("{k} missing or not a string in {b}")),
    };
    let (job, uuid, _platform) = (s("job")?, s("uuid")?, s("platform")?);
    ptime_of_string(&s("start_time")?)?;
    ptime_of_string(&s("finish_time")?)?;
    let Some(Value::Bool(main_binary)) = field(b, "main_binary") else {
        return Err("main_binary is not a bool".into());
    };
    let main_binary_size = match field(b, "main_binary_size") {
        None | Some(Value::Null) => None,
        Some(v) if is_int(v) => v.as_i64(),
        Some(v) => return Err(format!("main_binary_size {v} is not an int")),
    };
    Ok(Build {
        job,
        uuid,
        main_binary: *main_binary,
        main_binary_size,
    })
}

/// `compare_of_json` with `diff_of_json`, `opam_diff_of_json`, … : the
/// structure it needs (duniverse_diff must be an object).
fn compare_of_json(c: &Value) -> R<()> {
    let obj = |v: &Value, k: &str| match field(v, k) {
        Some(o @ Value::Object(_)) => Ok(o.clone()),
        other => Err(format!("{k} is not an object: {other:?}")),
    };
    let list = |v: &Value, k: &str| match field(v, k) {
        Some(Value::Array(l)) => Ok(l.clone()),
        other => Err(format!("{k} is not a list: {other:?}")),
    };
    let strings = |v: &Value, keys: &[&str]| -> R<()> {
        for k in keys {
            if !matches!(field(v, k), Some(Value::String(_))) {
                return Err(format!("{k} is not a string in {v}"));
            }
        }
        Ok(())
    };
    build_of_json(&obj(c, "left")?)?;
    build_of_json(&obj(c, "right")?)?;
    for d in ["env_diff", "package_diff"] {
        let d = obj(c, d)?;
        for p in list(&d, "left_packages")?.iter().chain(&list(&d, "right_packages")?) {
            strings(p, &["name", "version"])?;
        }
        for p in list(&d, "different_versions")? {
            strings(&p, &["name", "version_left", "version_right"])?;
        }
    }
    let o = obj(c, "opam_diff")?;
    for d in list(&o, "opam_diff")? {
        strings(&d, &["package_version", "diff"])?;
        if !matches!(field(&d, "effectively_equal"), Some(Value::Bool(_))) {
            return Err("effectively_equal is not a bool".into());
        }
    }
    for p in list(&o, "version_diff")? {
        strings(&p, &["name", "version_left", "version_right"])?;
    }
    for p in list(&o, "only_in_left")?.iter().chain(&list(&o, "only_in_right")?) {
        strings(p, &["name", "version"])?;
    }
    let du = obj(&o, "duniverse_diff")?;
    for p in list(&du, "left")?.iter().chain(&list(&du, "right")?) {
        strings(p, &["name", "value"])?;
    }
    for p in list(&du, "detailed_diff")? {
        strings(&p, &["name"])?;
    }
    Ok(())
}

/// `Utils.Http.send_http_request`: follows redirects, `Accept:
/// application/json` on every hop, success = 2xx, body parsed as JSON.
fn molly_get(base: &str, path: &str) -> R<Value> {
    let (r, _) = follow(base, path, Some("application/json"))?;
    if !(200..300).contains(&r.status) {
        return Err(format!("{path}: {} {}", r.status, r.text()));
    }
    serde_json::from_slice(&r.body).map_err(|e| format!("{path}: {e}"))
}

#[test]
fn mollymawk_deploy_list_update_check_and_download() {
    let s = start();
    let x: Sample = sample::fill(&s);

    // The deploy list: every Solo5 job, with its synopsis and devices.
    let jobs = jobs_of_json(&molly_get(&s.url, "/all-builds").unwrap()).unwrap();
    let names: Vec<&str> = jobs.iter().map(|j| j.name.as_str()).collect();
    assert_eq!(
        names,
        ["net", "web"],
        "notes is not a Solo5 image: skipped, not an error"
    );
    assert_eq!(jobs[0].synopsis, "Needs a network");
    assert_eq!(
        jobs[0].manifest.devices,
        [("service".to_owned(), "NET_BASIC".to_owned())]
    );
    assert_eq!((jobs[1].target.as_str(), jobs[1].abi_version), ("hvt", 1));
    assert_eq!(jobs[1].manifest.uuid, x.right);
    assert_eq!(jobs[1].synopsis, sample::HOSTILE_SYNOPSIS);

    // The update check of a unikernel running the first build.
    let v1 = std::fs::read(ukrepo_tests::solo5::solo5_images().join("ticker-v1.hvt")).unwrap();
    let current = build_of_json(&molly_get(&s.url, &format!("/hash?sha256={}", sha256_hex(&v1))).unwrap()).unwrap();
    assert_eq!((current.job.as_str(), current.uuid.as_str()), ("web", x.left.as_str()));
    assert!(current.main_binary);
    let latest = build_of_json(&molly_get(&s.url, "/job/web/build/latest").unwrap()).unwrap();
    assert_eq!(latest.uuid, x.right);
    assert_ne!(current.uuid, latest.uuid);
    let cmp = molly_get(&s.url, &format!("/compare/{}/{}", current.uuid, latest.uuid)).unwrap();
    compare_of_json(&cmp).unwrap();
    let size = build_of_json(&cmp["right"]).unwrap().main_binary_size;
    assert_eq!(
        size,
        Some(
            std::fs::metadata(ukrepo_tests::solo5::solo5_images().join("ticker-v2.hvt"))
                .unwrap()
                .len() as i64
        )
    );
    // A comparison without inputs is still one mollymawk accepts.
    compare_of_json(&molly_get(&s.url, &format!("/compare/{}/{}", x.net, x.plain)).unwrap()).unwrap();

    // The deploy: latest main binary through 307 → 302 → 200, no Accept header.
    let (bin, hops) = follow(&s.url, "/job/web/build/latest/main-binary", None).unwrap();
    assert_eq!((bin.status, hops), (200, 2));
    assert_eq!(
        sha256_hex(&bin.body),
        sha256_hex(&std::fs::read(ukrepo_tests::solo5::solo5_images().join("ticker-v2.hvt")).unwrap())
    );
}

#[test]
fn upload_synopsis_reaches_mollymawks_list() {
    let s = start();
    s.add_user("ci", "s3cret-pw", true);
    let image = ukrepo_tests::solo5::solo5_images().join("needsnet.hvt");
    let up = |args: &[&str]| {
        cmd("upload")
            .env("UKREPO_URL", &s.url)
            .env("UKREPO_USER", "ci")
            .env("UKREPO_PASSWORD", "s3cret-pw")
            .args(["--platform", "debian-12", "--job", "net"])
            .args(args)
            .arg(&image)
            .assert()
    };
    up(&["--synopsis", "A unikernel that needs a network"]).code(0);
    let jobs = jobs_of_json(&molly_get(&s.url, "/all-builds").unwrap()).unwrap();
    assert_eq!(jobs[0].synopsis, "A unikernel that needs a network");
    // The build is the image, as without --synopsis (a retry: same build).
    let b = get_json(&format!("{}/job/net/build/latest", s.url));
    let page = get_json(&format!("{}{}", s.url, b.header("location").unwrap())).json();
    assert_eq!(page["main_binary_file"]["filepath"], "bin/needsnet.hvt");
    assert_eq!(
        page["artifacts"].as_array().unwrap().len(),
        1,
        "the synopsis is not an artifact"
    );
    // A synopsis with control characters is refused before anything is sent.
    let bad = up(&["--synopsis", "two\nlines"]).code(2);
    let err = String::from_utf8_lossy(&bad.get_output().stderr).into_owned();
    assert!(err.contains("--synopsis"), "{err}");
    // A later upload with another synopsis changes it.
    up(&["--synopsis", "Renamed", "--name", "other.hvt"]).code(0);
    assert_eq!(
        get_json(&format!("{}/all-builds", s.url)).json()["jobs"][0]["synopsis"],
        "Renamed"
    );
}
