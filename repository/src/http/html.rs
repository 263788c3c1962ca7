//! The HTML face of the views, for people with a browser: plain pages, every
//! value escaped. Also turns JSON error bodies into a page when the client
//! asked for HTML.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use html_escape::{encode_double_quoted_attribute as attr, encode_text as text};
use uk_names::JobName;
use uk_wire::{BuildJson, DeploymentJson, ErrorJson, JobBuildJson, JobSummaryJson};

fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>{t}</title>\
         <link rel=\"stylesheet\" href=\"/style.css\">\
         </head><body><h1>{t}</h1>\n{body}\n</body></html>\n",
        t = text(title)
    )
}

/// `GET /style.css`
pub async fn stylesheet() -> impl axum::response::IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("style.css"),
    )
}

/// `GET /robots.txt`: builder-web's rules (no crawling of downloads).
pub async fn robots() -> impl axum::response::IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "User-agent: *\nDisallow: /job/*/build/*/f/\nDisallow: /job/*/build/*/main-binary\n\
         Disallow: /job/*/build/*/script\nDisallow: /job/*/build/*/console\n\
         Disallow: /job/*/build/*/all.tar.gz\nDisallow: /job/*/build/*/exec\nDisallow: /compare/\n",
    )
}

/// Every route we do not have: the same error body as any 404.
pub async fn not_found(uri: axum::http::Uri) -> crate::error::ApiError {
    crate::error::ApiError::NotFound(format!("there is no page {:?} here", uri.path()))
}

pub fn jobs_page(jobs: &[JobSummaryJson]) -> String {
    let mut rows = String::new();
    for j in jobs {
        let latest = match &j.latest {
            Some(l) => format!(
                "<a href=\"/job/{job}/build/{u}\">{u}</a> {t}",
                job = attr(j.name.as_str()),
                u = l.uuid,
                t = text(&l.finish_time)
            ),
            None => "none".into(),
        };
        rows.push_str(&format!(
            "<tr><td><a href=\"/job/{a}\">{n}</a></td><td>{s}</td><td>{latest}</td></tr>\n",
            a = attr(j.name.as_str()),
            n = text(j.name.as_str()),
            s = text(&j.synopsis)
        ));
    }
    page(
        "Unikernel repository",
        &format!("<table><tr><th>job</th><th>synopsis</th><th>latest build</th></tr>\n{rows}</table>"),
    )
}

pub fn job_page(job: &JobName, builds: &[JobBuildJson]) -> String {
    let mut rows = String::new();
    for b in builds {
        let main = match &b.main_binary {
            Some(m) => format!("{} <code>{}</code> {} bytes", text(&m.filename), m.sha256, m.size),
            None => "no main binary".into(),
        };
        rows.push_str(&format!(
            "<tr><td><a href=\"/job/{j}/build/{u}\">{u}</a></td><td>{p}</td><td>{t}</td><td>{main}</td></tr>\n",
            j = attr(job.as_str()),
            u = b.uuid,
            p = text(b.platform.as_str()),
            t = text(&b.finish_time)
        ));
    }
    page(
        &format!("Job {job}"),
        &format!(
            "<table><tr><th>build</th><th>platform</th><th>finished</th><th>main binary</th></tr>\n{rows}</table>"
        ),
    )
}

pub fn build_page(b: &BuildJson) -> String {
    let base = format!("/job/{}/build/{}", attr(b.job.as_str()), b.uuid);
    let mut files = String::new();
    for a in &b.artifacts {
        files.push_str(&format!(
            "<tr><td><a href=\"{base}/f/{p}\">{t}</a></td><td><code>{}</code></td><td>{}</td></tr>\n",
            a.sha256,
            a.size,
            p = attr(a.filepath.as_str()),
            t = text(a.filepath.as_str())
        ));
    }
    let solo5 = |v: &Option<serde_json::Value>| {
        v.as_ref()
            .map(|v| text(&v.to_string()).into_owned())
            .unwrap_or_else(|| "none".into())
    };
    page(
        &format!("Build {} of {}", b.uuid, b.job),
        &format!(
            "<p>platform {p}, started {s}, finished {f}</p><p>Solo5 ABI: <code>{abi}</code><br>Solo5 manifest: <code>{mft}</code></p>\
             <table><tr><th>file</th><th>sha256</th><th>bytes</th></tr>\n{files}</table><h2>Deployments</h2>{deps}",
            p = text(b.platform.as_str()),
            s = text(&b.start_time),
            f = text(&b.finish_time),
            abi = solo5(&b.solo5_abi),
            mft = solo5(&b.solo5_manifest),
            deps = deployment_rows(&b.deployments),
        ),
    )
}

fn deployment_rows(list: &[DeploymentJson]) -> String {
    let mut rows = String::new();
    for d in list {
        rows.push_str(&format!(
            "<tr><td>{h}</td><td><a href=\"/job/{j}/build/{u}\">{u}</a></td><td>{r}</td><td>{f}</td><td>{m}</td></tr>\n",
            h = text(d.host.as_str()),
            j = attr(d.job.as_str()),
            u = d.uuid,
            r = d.result.as_str(),
            f = text(&d.finished),
            m = text(&d.message)
        ));
    }
    format!(
        "<table><tr><th>host</th><th>build</th><th>result</th><th>finished</th><th>message</th></tr>\n{rows}</table>"
    )
}

pub fn deployments_page(job: &JobName, list: &[DeploymentJson], history: &[DeploymentJson]) -> String {
    page(
        &format!("Deployments of {job}"),
        &format!(
            "<h2>Each host's last report</h2>{}<h2>History</h2>{}",
            deployment_rows(list),
            deployment_rows(history)
        ),
    )
}

/// Middleware: a JSON error answer becomes an HTML page for browsers.
pub async fn error_pages(req: Request, next: Next) -> Response {
    let wants_html = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html") && !a.contains("application/json"));
    let resp = next.run(req).await;
    if !wants_html || !(resp.status().is_client_error() || resp.status().is_server_error()) {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, 64 * 1024).await else {
        return Response::from_parts(parts, Body::empty());
    };
    let msg = serde_json::from_slice::<ErrorJson>(&bytes)
        .map(|e| e.error)
        .unwrap_or_default();
    let html = page(&format!("{}", parts.status), &format!("<p>{}</p>", text(&msg)));
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(html))
}
