//! The JSON twins of the pages (`Accept: application/json` on the page's
//! URL): the fields each page adds to builder-web's, with the same facts
//! the browser tests check on the HTML.

use serde_json::{Value, json};
use ukrepo_tests::sample;
use ukrepo_tests::server::*;

fn strs(v: &Value, key: &str) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|e| e[key].as_str().unwrap_or("null").to_owned())
        .collect()
}

#[test]
fn front_page_twin_lists_each_jobs_hosts() {
    let s = start();
    let x = sample::fill_for_pages(&s);
    let j = get_json(&format!("{}/", s.url)).json();
    let web = j["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["name"] == "web")
        .unwrap();
    assert_eq!(
        web["hosts"],
        json!([
            {"host": "host-a", "uuid": x.right, "result": "deployed", "latest": true},
            {"host": "host-b", "uuid": x.left, "result": "rolled-back", "latest": false},
        ]),
        "host-a runs the latest image (built again on ubuntu-24.04), host-b went back"
    );
    assert_eq!(j["jobs_by_section"]["Uncategorized"][3]["hosts"], web["hosts"]);
    let net = &j["jobs"][1];
    assert_eq!((net["name"].as_str(), &net["hosts"]), (Some("net"), &json!([])));
}

#[test]
fn job_page_twin_groups_filters_and_pages() {
    let s = start();
    let x = sample::fill_for_pages(&s);
    let j = get_json(&format!("{}/job/web", s.url)).json();
    assert_eq!(j["builds"].as_array().unwrap().len(), 3, "every build, as before");
    assert_eq!(j["platforms"], json!(["debian-12", "ubuntu-24.04"]));
    assert_eq!((j["page"].as_u64(), j["pages"].as_u64()), (Some(1), Some(1)));
    let groups = j["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 2);
    assert_eq!(
        groups[0]["builds"].as_array().unwrap().len(),
        2,
        "the same image on two platforms"
    );
    assert_eq!(
        groups[0]["main_binary"]["sha256"],
        groups[0]["builds"][1]["main_binary"]["sha256"]
    );
    assert_eq!(strs(&groups[1]["builds"], "uuid"), [x.left.as_str()]);
    assert_eq!(j["synopsis"], sample::HOSTILE_SYNOPSIS);

    let f = get_json(&format!("{}/job/web?platform=debian-12", s.url)).json();
    assert_eq!(f["platform"], "debian-12");
    assert_eq!(strs(&f["builds"], "uuid"), [x.right.clone(), x.left.clone()]);
    assert_eq!(f["platforms"], j["platforms"], "the filter offers every platform");

    let p1 = get_json(&format!("{}/job/many", s.url)).json();
    assert_eq!(
        (p1["groups"].as_array().unwrap().len(), p1["pages"].as_u64()),
        (20, Some(2))
    );
    let p2 = get_json(&format!("{}/job/many?page=2", s.url)).json();
    assert_eq!(
        (p2["groups"].as_array().unwrap().len(), p2["page"].as_u64()),
        (5, Some(2))
    );
    assert_eq!(p2["builds"].as_array().unwrap().len(), 25);
    let beyond = get_json(&format!("{}/job/many?page=9", s.url)).json();
    assert_eq!(beyond["page"], 2, "clamped to the last page");
    let bad = get_json(&format!("{}/job/many?page=x", s.url));
    assert_eq!(bad.status, 400);
    assert!(
        bad.json()["error"].as_str().unwrap().contains("\"x\""),
        "{}",
        bad.text()
    );
}

#[test]
fn build_page_twin_adds_previous_and_console() {
    let s = start();
    let x = sample::fill_for_pages(&s);
    let b = get_json(&format!("{}/job/web/build/{}", s.url, x.right)).json();
    assert_eq!(b["previous"], x.left.as_str());
    assert_eq!(b["console_excerpt"], sample::HOSTILE_CONSOLE.trim_end());
    assert_eq!(b["console_truncated"], false);
    assert_eq!(strs(&b["deployments"], "host"), ["host-a", "host-b"]);
    let first = get_json(&format!("{}/job/web/build/{}", s.url, x.left)).json();
    assert_eq!(
        (&first["previous"], &first["console_excerpt"]),
        (&Value::Null, &json!("booting\nready"))
    );

    // A long console: its last lines only.
    let long: String = (0..5000).map(|i| format!("line {i}\n")).collect();
    let u = sample::upload(&s, &x.auth, "chatty", "c.bin", b"c", &[("console", long.as_bytes())]);
    let c = get_json(&format!("{}/job/chatty/build/{u}", s.url)).json();
    let excerpt = c["console_excerpt"].as_str().unwrap();
    assert_eq!(excerpt.lines().count(), 40);
    assert!(excerpt.ends_with("line 4999"), "{excerpt}");
    assert_eq!(c["console_truncated"], true);
}

#[test]
fn deployments_page_twin_has_each_hosts_current_build() {
    let s = start();
    let x = sample::fill_for_pages(&s);
    let d = get_json(&format!("{}/job/web/deployments", s.url)).json();
    assert_eq!(strs(&d["deployments"], "result"), ["deployed", "rolled-back"]);
    assert_eq!(d["history"].as_array().unwrap().len(), 4);
    let hosts = d["hosts"].as_array().unwrap();
    assert_eq!(hosts[0]["current"]["uuid"], x.right.as_str());
    assert_eq!(
        hosts[1]["current"]["uuid"],
        x.left.as_str(),
        "host-b rolled back to the first build"
    );
    assert_eq!(hosts[1]["last"]["message"], sample::HOSTILE_MESSAGE);
    assert!(d["latest"].is_string() && d["latest_sha256"].is_string(), "{d}");
}
