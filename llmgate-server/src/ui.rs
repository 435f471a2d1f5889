//! The LLM Hub: a small single-page web UI served at `/ui`, its files compiled into the binary.
//!
//! Plain HTML, CSS and JavaScript modules with no build step and no third-party code, so the
//! page works offline and every byte it runs is in this repository. Every answer carries a
//! strict Content-Security-Policy (no inline script or style, no other origin) and is
//! revalidated with an ETag, so an upgraded binary never serves a stale mix of modules.
//!
//! Contract: docs/http-api.md#the-llm-hub

use std::sync::LazyLock;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode, header};
use llmgate_core::{Error, ErrorKind};
use sha2::{Digest, Sha256};

use crate::response_body::{Body, full as body};

/// Where the UI lives.
pub(crate) const PREFIX: &str = "/ui";

/// The policy sent with every UI answer: only this origin, no inline code, no framing.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; \
     base-uri 'none'; form-action 'none'";

/// One file of the UI.
struct Asset {
    /// Path below `/ui/`; the page itself is `index.html`.
    path: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

const HTML: &str = "text/html; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const SVG: &str = "image/svg+xml";

macro_rules! asset {
    ($path:literal, $type:expr) => {
        Asset {
            path: $path,
            content_type: $type,
            bytes: include_bytes!(concat!("../ui/", $path)),
        }
    };
}

const ASSETS: &[Asset] = &[
    asset!("index.html", HTML),
    asset!("hub.css", CSS),
    asset!("icon.svg", SVG),
    asset!("js/app.js", JS),
    asset!("js/api.js", JS),
    asset!("js/dom.js", JS),
    asset!("js/format.js", JS),
    asset!("js/session.js", JS),
    asset!("js/sse.js", JS),
    asset!("js/chart.js", JS),
    asset!("js/catalog.js", JS),
    asset!("js/providers.js", JS),
    asset!("js/lab.js", JS),
    asset!("js/analytics.js", JS),
    asset!("js/users.js", JS),
    asset!("js/reveal.js", JS),
    asset!("js/keys.js", JS),
    asset!("js/teams.js", JS),
    asset!("js/requests.js", JS),
];

/// Strong ETags, computed once from the compiled-in bytes.
static ETAGS: LazyLock<Vec<String>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|asset| {
            let digest = Sha256::digest(asset.bytes);
            let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
            format!("\"{hex}\"")
        })
        .collect()
});

/// Whether `path` (with any trailing slash already trimmed) belongs to the UI.
pub(crate) fn owns(path: &str) -> bool {
    path == PREFIX || path.starts_with("/ui/")
}

/// Answer `GET`/`HEAD` for a UI path: the file, `304` when the client's copy is current, or a
/// `404` in OpenAI's error shape. Every answer carries the security headers.
pub(crate) fn serve(method: &Method, path: &str, headers: &HeaderMap) -> Response<Body> {
    let name = match path.strip_prefix(PREFIX) {
        None | Some("") | Some("/") => "index.html",
        Some(rest) => rest.trim_start_matches('/'),
    };
    let mut response = match ASSETS.iter().position(|asset| asset.path == name) {
        Some(index) => file(method, &ASSETS[index], &ETAGS[index], headers),
        None => not_found(path),
    };
    secure(response.headers_mut());
    response
}

/// OpenAI's error shape, like every other miss of this server.
fn not_found(path: &str) -> Response<Body> {
    let error =
        Error::new(ErrorKind::NotFound, format!("No UI file at {path}.")).with_code("unknown_path");
    let bytes = serde_json::to_vec(&error.to_json()).unwrap_or_default();
    let mut response = Response::new(body(Bytes::from(bytes)));
    *response.status_mut() = StatusCode::NOT_FOUND;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn file(method: &Method, asset: &Asset, etag: &str, request: &HeaderMap) -> Response<Body> {
    let current = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|tags| tags.split(',').any(|tag| tag.trim() == etag));
    let (status, bytes) = if current {
        (StatusCode::NOT_MODIFIED, Bytes::new())
    } else if method == Method::HEAD {
        (StatusCode::OK, Bytes::new())
    } else {
        (StatusCode::OK, Bytes::from_static(asset.bytes))
    };
    let mut response = Response::new(body(bytes));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    if status == StatusCode::OK && method == Method::HEAD {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(asset.bytes.len()));
    }
    // Revalidate every time: file names carry no version, and a 304 costs one round trip.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(value) = HeaderValue::from_str(etag) {
        headers.insert(header::ETAG, value);
    }
    response
}

fn secure(headers: &mut HeaderMap) {
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(path: &str) -> Response<Body> {
        serve(&Method::GET, path, &HeaderMap::new())
    }

    #[test]
    fn page_is_served_at_the_prefix_with_and_without_slash() {
        for path in ["/ui", "/ui/", "/ui/index.html"] {
            let response = get(path);
            assert_eq!(response.status(), StatusCode::OK, "{path}");
            assert_eq!(response.headers()[header::CONTENT_TYPE], HTML, "{path}");
        }
    }

    #[test]
    fn every_answer_carries_the_security_headers() {
        for path in ["/ui", "/ui/js/app.js", "/ui/hub.css", "/ui/nope.js"] {
            let response = get(path);
            let headers = response.headers();
            assert_eq!(
                headers[header::CONTENT_SECURITY_POLICY],
                CONTENT_SECURITY_POLICY
            );
            assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
            assert_eq!(headers[header::REFERRER_POLICY], "no-referrer");
            assert_eq!(headers[header::X_FRAME_OPTIONS], "DENY");
        }
    }

    #[test]
    fn unknown_files_and_traversal_are_not_found() {
        for path in ["/ui/nope.js", "/ui/../Cargo.toml", "/ui/js/../../src/ui.rs"] {
            assert_eq!(get(path).status(), StatusCode::NOT_FOUND, "{path}");
        }
    }

    #[test]
    fn matching_etag_gets_not_modified_and_others_the_file() {
        let first = get("/ui/js/app.js");
        assert_eq!(first.headers()[header::CONTENT_TYPE], JS);
        assert_eq!(first.headers()[header::CACHE_CONTROL], "no-cache");
        let etag = first.headers()[header::ETAG].clone();
        let mut headers = HeaderMap::new();
        headers.insert(header::IF_NONE_MATCH, etag);
        let again = serve(&Method::GET, "/ui/js/app.js", &headers);
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
        headers.insert(header::IF_NONE_MATCH, HeaderValue::from_static("\"old\""));
        let changed = serve(&Method::GET, "/ui/js/app.js", &headers);
        assert_eq!(changed.status(), StatusCode::OK);
    }

    #[test]
    fn html_has_no_inline_script_or_style() {
        let html = std::str::from_utf8(ASSETS[0].bytes).unwrap();
        assert!(!html.contains("style="), "inline style attribute");
        assert!(!html.contains("<style"), "inline style element");
        let handler = html
            .split(|c: char| c.is_whitespace())
            .any(|word| word.starts_with("on") && word.contains('='));
        assert!(!handler, "inline event handler");
        for script in html.split("<script").skip(1) {
            let open = &script[..script.find('>').unwrap()];
            assert!(open.contains("src="), "inline script: <script{open}>");
        }
    }

    #[test]
    fn every_module_import_names_a_served_file() {
        for asset in ASSETS.iter().filter(|a| a.content_type == JS) {
            let text = std::str::from_utf8(asset.bytes).unwrap();
            for line in text.lines().filter(|l| l.starts_with("import ")) {
                let target = line.split('\'').nth(1).unwrap();
                let name = target.trim_start_matches("./");
                let full = format!("js/{name}");
                assert!(
                    ASSETS.iter().any(|a| a.path == full),
                    "{} imports {target}, which is not served",
                    asset.path
                );
            }
        }
    }
}
