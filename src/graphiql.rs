//! GraphiQL served from the binary: the page, React, GraphiQL and the bootstrap script are
//! embedded (`assets/graphiql/`, fetched by its `fetch.sh`), so the IDE works offline and under a
//! Content-Security-Policy that names no other origin.
//!
//! Each asset is served under a content-hashed name (`graphiql.min.<hash>.js`) with a year-long
//! immutable cache lifetime; the page itself is revalidated on every load, so a new binary's
//! assets are picked up at once. The page references every script with Subresource Integrity.
use std::sync::Arc;

use axum::{
    Router,
    extract::{Path, State},
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use base64::Engine;
use sha2::{Digest, Sha256, Sha384};

/// The page's policy: scripts only from this origin (no inline script, no eval), no framing.
/// Styles need 'unsafe-inline' (GraphiQL sets style attributes); its fonts and icons are data:
/// URLs in its stylesheet. `connect-src 'self'` covers the same-origin WebSocket too.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; connect-src 'self'; \
     base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Hashed asset names never change content, so browsers and proxies may keep them for a year.
pub const IMMUTABLE: &str = "public, max-age=31536000, immutable";

const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

struct File {
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

/// In the order the page loads them: React before ReactDOM before GraphiQL before the bootstrap.
const FILES: [File; 6] = [
    File { name: "page.css", content_type: CSS, bytes: include_bytes!("../assets/graphiql/page.css") },
    File { name: "graphiql.min.css", content_type: CSS, bytes: include_bytes!("../assets/graphiql/graphiql.min.css") },
    File {
        name: "react.production.min.js",
        content_type: JS,
        bytes: include_bytes!("../assets/graphiql/react.production.min.js"),
    },
    File {
        name: "react-dom.production.min.js",
        content_type: JS,
        bytes: include_bytes!("../assets/graphiql/react-dom.production.min.js"),
    },
    File { name: "graphiql.min.js", content_type: JS, bytes: include_bytes!("../assets/graphiql/graphiql.min.js") },
    File { name: "bootstrap.js", content_type: JS, bytes: include_bytes!("../assets/graphiql/bootstrap.js") },
];

/// One embedded file under its content-hashed name, with its SRI value.
struct Asset {
    hashed_name: String,
    integrity: String,
    file: &'static File,
}

/// The assets and the page that references them, built once when the router is.
pub struct Embedded {
    assets: Vec<Asset>,
    page: String,
}

/// `graphiql.min.js` → `graphiql.min.<first 16 hex digits of SHA-256>.js`.
fn hashed_name(name: &str, bytes: &[u8]) -> String {
    let hash = hex::encode(Sha256::digest(bytes));
    match name.rsplit_once('.') {
        Some((stem, ext)) => format!("{stem}.{}.{ext}", &hash[..16]),
        None => format!("{name}.{}", &hash[..16]),
    }
}

fn integrity(bytes: &[u8]) -> String {
    format!("sha384-{}", base64::engine::general_purpose::STANDARD.encode(Sha384::digest(bytes)))
}

impl Embedded {
    pub fn new() -> Self {
        let assets: Vec<Asset> = FILES
            .iter()
            .map(|file| Asset {
                hashed_name: hashed_name(file.name, file.bytes),
                integrity: integrity(file.bytes),
                file,
            })
            .collect();
        // Relative URLs: the page works under a path prefix added by a reverse proxy too.
        let mut head = String::new();
        let mut body = String::new();
        for a in &assets {
            let href = format!("graphiql/assets/{}", a.hashed_name);
            if a.file.content_type == CSS {
                head.push_str(&format!(
                    "    <link rel=\"stylesheet\" href=\"{href}\" integrity=\"{}\">\n",
                    a.integrity
                ));
            } else {
                body.push_str(&format!("    <script src=\"{href}\" integrity=\"{}\"></script>\n", a.integrity));
            }
        }
        let page = format!(
            "<!DOCTYPE html>\n<html lang=\"en\">\n  <head>\n    <meta charset=\"utf-8\">\n    \
             <meta name=\"robots\" content=\"noindex\">\n    \
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n    \
             <title>MinisPod Gateway · GraphiQL</title>\n    <link rel=\"icon\" href=\"data:,\">\n{head}  </head>\n  \
             <body>\n    <div id=\"graphiql\" data-endpoint=\"graphql\">Loading…</div>\n    \
             <noscript>GraphiQL needs JavaScript. The GraphQL endpoint is POST /graphql.</noscript>\n{body}  </body>\n</html>\n"
        );
        Self { assets, page }
    }

    fn find(&self, hashed_name: &str) -> Option<&Asset> {
        self.assets.iter().find(|a| a.hashed_name == hashed_name)
    }
}

impl Default for Embedded {
    fn default() -> Self {
        Self::new()
    }
}

/// `/graphiql` and `/graphiql/assets/{hashed name}`.
pub fn routes() -> Router {
    Router::new()
        .route("/graphiql", get(page))
        .route("/graphiql/assets/{file}", get(asset))
        .with_state(Arc::new(Embedded::new()))
}

async fn page(State(embedded): State<Arc<Embedded>>) -> Response {
    let headers = [
        (header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8")),
        // Revalidated on every load, so a new release's asset names are seen at once.
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        (header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY)),
        (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
        (header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
    ];
    (headers, embedded.page.clone()).into_response()
}

async fn asset(State(embedded): State<Arc<Embedded>>, Path(file): Path<String>) -> Response {
    let Some(asset) = embedded.find(&file) else {
        return (StatusCode::NOT_FOUND, "not found").into_response();
    };
    let headers = [
        (header::CONTENT_TYPE, HeaderValue::from_static(asset.file.content_type)),
        (header::CACHE_CONTROL, HeaderValue::from_static(IMMUTABLE)),
        (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
    ];
    (headers, asset.file.bytes).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_the_content_hash() {
        assert_eq!(hashed_name("a.min.js", b"x"), "a.min.2d711642b726b044.js");
        assert_ne!(hashed_name("a.min.js", b"x"), hashed_name("a.min.js", b"y"));
    }

    #[test]
    fn the_page_loads_every_asset_in_order_with_its_integrity() {
        let e = Embedded::new();
        let mut at = 0;
        for a in &e.assets {
            let tag = format!("href=\"graphiql/assets/{0}\" integrity=\"{1}\"", a.hashed_name, a.integrity);
            let script = format!("src=\"graphiql/assets/{0}\" integrity=\"{1}\"", a.hashed_name, a.integrity);
            let found = e.page.find(&tag).or_else(|| e.page.find(&script));
            let found = found.unwrap_or_else(|| panic!("{} not referenced", a.file.name));
            assert!(found > at, "{} out of order", a.file.name);
            at = found;
        }
        // No inline script: the policy allows none.
        assert_eq!(e.page.matches("<script").count(), e.page.matches("<script src=").count());
    }
}
