//! The pages in a real browser (headless Chromium through chromedriver,
//! `ukrepo_tests::browser`): each page loads without a console error
//! (CSP violations included) and shows what a person comes for; the links
//! lead from the front page to a build, to its downloads and to the
//! comparison; markup in synopses, consoles and host messages shows as
//! text. `screenshots` (ignored; `scripts/screenshots.sh` runs it) takes
//! the pictures in `docs/screenshots/`.

use fantoccini::Locator;
use fantoccini::elements::Element;
use ukrepo_tests::browser::{Browser, skipped};
use ukrepo_tests::sample::{self, Sample};
use ukrepo_tests::server::*;

fn run(f: impl AsyncFnOnce(&Browser, &Server, &Sample)) {
    if skipped() {
        return;
    }
    let s = start();
    let x = sample::fill_for_pages(&s);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let b = Browser::start().await;
        f(&b, &s, &x).await;
        b.stop().await;
    });
}

async fn texts(b: &Browser, css: &str) -> Vec<String> {
    let mut out = Vec::new();
    for e in b.client.find_all(Locator::Css(css)).await.unwrap() {
        out.push(e.text().await.unwrap());
    }
    out
}

async fn one(b: &Browser, css: &str) -> Element {
    match b.client.find(Locator::Css(css)).await {
        Ok(e) => e,
        Err(e) => panic!("no element {css:?} on {}: {e}", b.client.current_url().await.unwrap()),
    }
}

async fn body(b: &Browser) -> String {
    one(b, "body").await.text().await.unwrap()
}

async fn href(e: &Element) -> String {
    e.attr("href").await.unwrap().expect("a link")
}

/// Markup that came from users must not have become elements.
async fn assert_no_injected_elements(b: &Browser) {
    for tag in ["script", "iframe", "img", "b"] {
        let found = b.client.find_all(Locator::Css(tag)).await.unwrap();
        assert!(
            found.is_empty(),
            "{} has {} <{tag}> elements: user text was not escaped",
            b.client.current_url().await.unwrap(),
            found.len()
        );
    }
}

#[test]
fn front_page_lists_jobs_with_latest_build_size_age_and_hosts() {
    run(async |b, s, x| {
        b.visit(&format!("{}/", s.url)).await;
        assert_eq!(b.client.title().await.unwrap(), "Jobs · unikernel repository");
        assert_eq!(texts(b, "a.job-name").await, ["many", "net", "notes", "web"]);
        let rows = texts(b, "table.jobs tbody tr").await;
        let web = rows.iter().find(|r| r.starts_with("web")).unwrap();
        // The hostile synopsis is text, shown as written.
        assert!(web.contains(sample::HOSTILE_SYNOPSIS), "{web}");
        assert!(
            web.contains("KiB") && web.contains("ubuntu-24.04"),
            "size and platform: {web}"
        );
        assert!(web.contains(" ago") || web.contains("just now"), "age: {web}");
        assert_eq!(texts(b, "td.hosts a.host-latest").await, ["host-a"]);
        assert_eq!(texts(b, "td.hosts a.host-behind").await, ["host-b"]);
        assert!(web.contains("host-b (older build)"), "{web}");
        let _ = x;
        assert_no_injected_elements(b).await;
        // `/all-builds` is the same page.
        b.visit(&format!("{}/all-builds", s.url)).await;
        assert_eq!(texts(b, "a.job-name").await.len(), 4);
    });
}

#[test]
fn job_page_groups_by_digest_filters_by_platform_and_pages() {
    run(async |b, s, x| {
        b.visit(&format!("{}/job/web", s.url)).await;
        let groups = texts(b, "section.group h3").await;
        assert_eq!(groups.len(), 2, "{groups:?}");
        assert!(
            groups[0].contains("web.hvt") && groups[0].contains("built 2 times"),
            "{groups:?}"
        );
        let builds = texts(b, "section.group li").await;
        assert_eq!(builds.len(), 3, "{builds:?}");
        assert!(
            builds[2].starts_with(&x.left[..8]),
            "the oldest build is last: {builds:?}"
        );
        assert_eq!(texts(b, "nav.filter a").await, ["all", "debian-12", "ubuntu-24.04"]);
        assert!(body(b).await.contains(sample::HOSTILE_SYNOPSIS));
        assert_no_injected_elements(b).await;

        // The platform filter.
        one(b, "nav.filter a[href$='platform=ubuntu-24.04']")
            .await
            .click()
            .await
            .unwrap();
        b.assert_no_console_errors("the platform filter").await;
        assert!(
            b.client
                .current_url()
                .await
                .unwrap()
                .as_str()
                .ends_with("/job/web?platform=ubuntu-24.04")
        );
        assert_eq!(texts(b, "section.group li").await.len(), 1);
        assert_eq!(texts(b, "nav.filter a.current").await, ["ubuntu-24.04"]);

        // Pages of 20 groups.
        b.visit(&format!("{}/job/many", s.url)).await;
        assert_eq!(texts(b, "section.group").await.len(), 20);
        assert_eq!(texts(b, "nav.pages span").await, ["page 1 of 2"]);
        one(b, "nav.pages a[rel=next]").await.click().await.unwrap();
        b.assert_no_console_errors("page 2").await;
        assert_eq!(texts(b, "section.group").await.len(), 5);
        assert_eq!(texts(b, "nav.pages span").await, ["page 2 of 2"]);
        assert!(
            b.client
                .find_all(Locator::Css("nav.pages a[rel=next]"))
                .await
                .unwrap()
                .is_empty()
        );
    });
}

#[test]
fn build_page_shows_artifacts_signature_solo5_console_and_deployments() {
    run(async |b, s, x| {
        b.visit(&format!("{}/job/web/build/{}", s.url, x.right)).await;
        let facts = one(b, "dl.facts").await.text().await.unwrap();
        for want in [
            "debian-12",
            "hvt, version 1",
            "not signed",
            "with the previous build on debian-12",
        ] {
            assert!(facts.contains(want), "{want:?} not in {facts}");
        }
        let artifacts = texts(b, "table.artifacts tbody tr").await;
        assert_eq!(artifacts.len(), 6, "{artifacts:?}");
        let shas = texts(b, "table.artifacts code.sha").await;
        assert!(
            shas.iter()
                .all(|h| h.len() == 64 && h.bytes().all(|c| c.is_ascii_hexdigit())),
            "{shas:?}"
        );
        let console = one(b, "pre.console").await.text().await.unwrap();
        assert_eq!(console, sample::HOSTILE_CONSOLE.trim_end());
        let deployments = texts(b, "table.deployments tbody tr").await;
        assert_eq!(deployments.len(), 2, "{deployments:?}");
        assert!(deployments[0].contains("host-a") && deployments[0].contains("deployed"));
        assert!(deployments[1].contains(sample::HOSTILE_MESSAGE), "{deployments:?}");
        assert_eq!(
            href(&one(b, "a.compare").await).await,
            format!("/compare/{}/{}", x.left, x.right)
        );
        assert_no_injected_elements(b).await;

        // A Solo5 image with a device and a signature.
        b.visit(&format!("{}/job/net/build/{}", s.url, x.net)).await;
        assert_eq!(texts(b, "ul.devices li").await, ["service (network)"]);
        assert_eq!(texts(b, "a.signature").await, ["bin/net.hvt.minisig"]);
        assert!(
            one(b, "dl.facts")
                .await
                .text()
                .await
                .unwrap()
                .contains("first build on debian-12")
        );
        // Not a Solo5 image, no console.
        b.visit(&format!("{}/job/notes/build/{}", s.url, x.plain)).await;
        let page = body(b).await;
        assert!(
            page.contains("not a Solo5 image") && page.contains("No console was uploaded"),
            "{page}"
        );
    });
}

#[test]
fn deployments_page_shows_each_hosts_current_build_and_history() {
    run(async |b, s, x| {
        b.visit(&format!("{}/job/web/deployments", s.url)).await;
        let hosts = texts(b, "table.hosts tbody tr").await;
        assert_eq!(hosts.len(), 2, "{hosts:?}");
        assert!(
            hosts[0].starts_with("host-a") && hosts[0].contains("latest"),
            "{hosts:?}"
        );
        assert!(
            hosts[1].contains(&x.left[..8]) && hosts[1].contains("not the latest"),
            "{hosts:?}"
        );
        assert!(hosts[1].contains(sample::HOSTILE_MESSAGE), "{hosts:?}");
        assert_eq!(texts(b, "table.history tbody tr").await.len(), 4);
        assert_no_injected_elements(b).await;
    });
}

#[test]
fn links_lead_from_the_front_page_to_a_build_its_downloads_and_the_comparison() {
    run(async |b, s, x| {
        b.visit(&format!("{}/", s.url)).await;
        one(b, "a.job-name[href='/job/web']").await.click().await.unwrap();
        b.assert_no_console_errors("the job page").await;
        assert_eq!(b.client.current_url().await.unwrap().path(), "/job/web");
        // The debian-12 build of the newest group.
        one(b, &format!("a[href='/job/web/build/{}']", x.right))
            .await
            .click()
            .await
            .unwrap();
        b.assert_no_console_errors("the build page").await;
        assert_eq!(
            b.client.current_url().await.unwrap().path(),
            format!("/job/web/build/{}", x.right)
        );

        // The main binary's link downloads the bytes whose digest the page shows.
        let shown = one(b, "dl.facts code.sha").await.text().await.unwrap();
        let link = href(&one(b, "a.main-binary").await).await;
        let got = get(&format!("{}{link}", s.url), &[]);
        assert_eq!((got.status, sha256_hex(&got.body)), (200, shown));

        // A text artifact and the console open in the browser.
        one(b, "table.artifacts a[href$='/f/opam-switch']")
            .await
            .click()
            .await
            .unwrap();
        b.assert_no_console_errors("opam-switch").await;
        assert_eq!(body(b).await, sample::OPAM_RIGHT.trim_end());
        b.client.back().await.unwrap();
        one(b, "p.links a[href$='/console']").await.click().await.unwrap();
        assert_eq!(body(b).await, sample::HOSTILE_CONSOLE.trim_end());
        b.assert_no_console_errors("the console").await;
        b.client.back().await.unwrap();

        // The comparison with the previous build.
        one(b, "a.compare").await.click().await.unwrap();
        b.assert_no_console_errors("the comparison").await;
        assert_eq!(
            b.client.current_url().await.unwrap().path(),
            format!("/compare/{}/{}", x.left, x.right)
        );
        let versions = texts(b, "table.opam-versions tbody tr").await;
        assert_eq!(versions, ["tls 0.17.3 1.0.0"]);
        assert_eq!(
            texts(b, "h2 + ul.only-left li, h3 + ul.only-left li").await,
            ["cstruct-lwt 6.2.0"]
        );
        let diff = one(b, "pre.diff").await.text().await.unwrap();
        assert!(
            diff.starts_with("--- left/mirage/opam\n+++ right/mirage/opam"),
            "{diff}"
        );
        assert_eq!(texts(b, "pre.diff span.diff-add").await.len(), 1);
        let page = body(b).await;
        for want in ["ONLY_IN_LEFT", "ONLY_IN_RIGHT", "libgmp-dev", "x509", "gone"] {
            assert!(page.contains(want), "{want} not on the comparison:\n{page}");
        }
        // And back to either build.
        one(b, "a.left-build").await.click().await.unwrap();
        assert_eq!(
            b.client.current_url().await.unwrap().path(),
            format!("/job/web/build/{}", x.left)
        );
    });
}

#[test]
fn error_pages_are_pages_and_the_console_check_can_fail() {
    run(async |b, s, _x| {
        b.client.goto(&format!("{}/job/nope", s.url)).await.unwrap();
        assert!(body(b).await.contains("no job \"nope\""));
        assert!(b.client.title().await.unwrap().starts_with("404"));
        // A 404 is logged as an error: the check that every other page passes
        // does see errors.
        let log = b.log().await;
        assert!(log.iter().any(|e| e.level == "SEVERE"), "{log:?}");
    });
}

/// Pictures of each page for the README (`scripts/screenshots.sh`); into
/// `UKREPO_SCREENSHOTS` or `docs/screenshots/`.
#[test]
#[ignore = "takes the README's screenshots; run by scripts/screenshots.sh"]
fn screenshots() {
    let dir = std::env::var_os("UKREPO_SCREENSHOTS").map_or_else(
        || std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/screenshots"),
        std::path::PathBuf::from,
    );
    std::fs::create_dir_all(&dir).unwrap();
    run(async |b, s, x| {
        let pages = [
            ("front", "/".to_owned()),
            ("job", "/job/web".to_owned()),
            ("build", format!("/job/web/build/{}", x.right)),
            ("deployments", "/job/web/deployments".to_owned()),
            ("compare", format!("/compare/{}/{}", x.left, x.right)),
            ("error", "/job/nope".to_owned()),
        ];
        b.client.set_window_size(1280, 1200).await.unwrap();
        for (name, path) in pages {
            b.client.goto(&format!("{}{path}", s.url)).await.unwrap();
            let png = b.client.screenshot().await.unwrap();
            let file = dir.join(format!("{name}.png"));
            std::fs::write(&file, png).unwrap();
            eprintln!("wrote {}", file.display());
        }
    });
}
