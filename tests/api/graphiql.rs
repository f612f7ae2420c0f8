//! GraphiQL served from the binary: the page's headers and assets over HTTP, and the page itself
//! in headless Chromium (tests/browser/graphiql.mjs), where a query and a subscription run with
//! every request beyond the loopback address refused.
use std::{path::Path, process::Stdio, time::Duration};

use base64::Engine;
use serde_json::json;
use sha2::{Digest, Sha384};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::{helpers::subscribed, support::TestApp};

/// The `(href or src, integrity)` of every asset the page references.
fn referenced_assets(page: &str) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for attr in ["href=\"", "src=\""] {
        for (i, _) in page.match_indices(attr) {
            let rest = &page[i + attr.len()..];
            let url = &rest[..rest.find('"').unwrap()];
            if !url.starts_with("graphiql/assets/") {
                continue;
            }
            let tag_end = rest.find('>').unwrap();
            let integrity = rest[..tag_end].split("integrity=\"").nth(1).expect("an integrity attribute");
            found.push((url.to_string(), integrity[..integrity.find('"').unwrap()].to_string()));
        }
    }
    found
}

#[tokio::test]
async fn the_page_and_its_assets_are_served_from_the_binary_with_cache_and_security_headers() {
    let app = TestApp::spawn().await;
    let r = app.http.get(format!("{}/graphiql", app.url)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let h = r.headers().clone();
    assert_eq!(h["content-type"], "text/html; charset=utf-8");
    assert_eq!(h["cache-control"], "no-cache", "the page is revalidated so new asset names are seen");
    assert_eq!(h["x-content-type-options"], "nosniff");
    let csp = h["content-security-policy"].to_str().unwrap();
    let directive = |name: &str| {
        csp.split(';').map(str::trim).find(|d| d.split_whitespace().next() == Some(name)).map(str::to_string)
    };
    assert_eq!(directive("default-src").as_deref(), Some("default-src 'none'"), "{csp}");
    assert_eq!(directive("script-src").as_deref(), Some("script-src 'self'"), "no inline script, no eval: {csp}");
    assert_eq!(directive("connect-src").as_deref(), Some("connect-src 'self'"), "{csp}");
    assert_eq!(directive("frame-ancestors").as_deref(), Some("frame-ancestors 'none'"), "{csp}");
    assert!(!csp.contains("http") && !csp.contains('*'), "no other origin: {csp}");
    let page = r.text().await.unwrap();
    assert!(!page.contains("://"), "the page names no origin (no CDN): {page}");
    assert!(!page.contains("<script>") && !page.contains("<style"), "nothing inline: {page}");

    let assets = referenced_assets(&page);
    let names: Vec<&str> = assets.iter().map(|(u, _)| u.as_str()).collect();
    for prefix in ["page.", "graphiql.min.", "react.production.min.", "react-dom.production.min.", "bootstrap."] {
        assert!(names.iter().any(|n| n.starts_with(&format!("graphiql/assets/{prefix}"))), "{prefix}: {names:?}");
    }
    for (url, integrity) in &assets {
        let r = app.http.get(format!("{}/{url}", app.url)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{url}");
        let h = r.headers().clone();
        let want = if url.ends_with(".js") { "text/javascript; charset=utf-8" } else { "text/css; charset=utf-8" };
        assert_eq!(h["content-type"], want, "{url}");
        assert_eq!(h["cache-control"], "public, max-age=31536000, immutable", "{url}");
        assert_eq!(h["x-content-type-options"], "nosniff", "{url}");
        let body = r.bytes().await.unwrap();
        // Subresource Integrity: the browser refuses a body that differs from the page's hash.
        let sri = format!("sha384-{}", base64::engine::general_purpose::STANDARD.encode(Sha384::digest(&body)));
        assert_eq!(&sri, integrity, "{url}");
        // The name carries the content hash: a changed file gets a new name, never a stale cache.
        let sha = hex::encode(sha2::Sha256::digest(&body));
        assert!(url.contains(&format!(".{}.", &sha[..16])), "{url} is named by its SHA-256");
    }

    // Unknown names, unhashed names and stale hashes are not found.
    for path in [
        "graphiql/assets/graphiql.min.js",
        "graphiql/assets/graphiql.min.0000000000000000.js",
        "graphiql/assets/LICENSE-react",
        "graphiql/assets/../Cargo.toml",
        "graphiql/assets/",
    ] {
        let r = app.http.get(format!("{}/{path}", app.url)).send().await.unwrap();
        assert_eq!(r.status(), 404, "{path}");
    }
}

/// `cmd --version` succeeds, or the test fails saying what to install: a browser test that
/// cannot run must never pass.
fn require(cmd: &str, install: &str) {
    let ok = std::process::Command::new(cmd).arg("--version").output().is_ok_and(|o| o.status.success());
    assert!(ok, "`{cmd}` is needed for the GraphiQL browser test ({install}); .ci/run installs it");
}

/// Installs playwright-core from tests/browser/package-lock.json (it never downloads a browser).
async fn npm_ci(dir: &Path) {
    if dir.join("node_modules/playwright-core/package.json").exists() {
        return;
    }
    let out = tokio::process::Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(dir)
        .env("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "npm ci in tests/browser failed: {}", String::from_utf8_lossy(&out.stderr));
}

/// Runs tests/browser/graphiql.mjs against a gateway. When `screenshot` is set, the page is
/// saved there at the end (`MINISPOD_SCREENSHOT=docs/graphiql.png` refreshes the README's).
#[tokio::test]
async fn graphiql_runs_a_query_and_a_subscription_in_chromium_without_leaving_loopback() {
    require("node", "Debian package `nodejs`");
    require("npm", "Debian package `npm`");
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).exists(),
        "{chromium} is needed for the GraphiQL browser test (Debian package `chromium`)"
    );
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    npm_ci(&dir).await;

    let app = TestApp::spawn().await;
    let user = app.register("Browser").await;
    let screenshot = std::env::var("MINISPOD_SCREENSHOT").unwrap_or_else(|_| {
        std::env::temp_dir().join(format!("graphiql-{}.png", uuid::Uuid::new_v4())).display().to_string()
    });
    let mut child = tokio::process::Command::new("node")
        .arg(dir.join("graphiql.mjs"))
        .arg(&app.url)
        .env("CHROMIUM", &chromium)
        .env("MINISPOD_TOKEN", &user.token)
        .env("MINISPOD_EMAIL", &user.email)
        .env("MINISPOD_EXPECT", "4242")
        .env("MINISPOD_SCREENSHOT", &screenshot)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut stderr = child.stderr.take().unwrap();
    let errors = tokio::spawn(async move {
        let mut s = String::new();
        tokio::io::AsyncReadExt::read_to_string(&mut stderr, &mut s).await.map(|_| s).unwrap_or_default()
    });

    let run = async {
        let mut seen = Vec::new();
        while let Some(line) = lines.next_line().await.unwrap() {
            if line == "SUBSCRIBED" {
                // The page's subscription is registered: the event cannot be missed.
                subscribed(&app, 1).await;
                let admin = app.login_admin().await;
                let adjust =
                    "mutation($u: ID!) { adjustCredit(userId: $u, amount: 4242, reason: \"browser test\") { id } }";
                app.gql_ok(Some(&admin.token), adjust, json!({ "u": user.user_id })).await;
            }
            seen.push(line);
        }
        (seen, child.wait().await.unwrap())
    };
    let (seen, status) = tokio::time::timeout(Duration::from_secs(180), run).await.expect("the browser test finishes");
    let errors = errors.await.unwrap();
    assert!(status.success() && seen.last().map(String::as_str) == Some("OK"), "stdout: {seen:?}\nstderr: {errors}");
    assert!(seen.iter().any(|l| l == "SUBSCRIBED"), "{seen:?}");
    let png = std::fs::read(&screenshot).unwrap();
    assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000, "a screenshot of the page");
    if std::env::var_os("MINISPOD_SCREENSHOT").is_none() {
        let _ = std::fs::remove_file(&screenshot);
    }
}
