//! The clients people use, against the real gateway: Apollo Client (persisted-query link,
//! BatchHttpLink) and graphql-ws, run by node from tests/clients (`npm ci` on first use).
//! Node 20+ and npm are required; the test fails, naming them, when they are missing.
use std::{path::Path, process::Stdio, time::Duration};

use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::{helpers::subscribed, support::TestApp};

fn clients_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients")
}

/// Installs the locked client packages once.
fn ensure_node_modules(dir: &Path) {
    let version = std::process::Command::new("node").arg("--version").output();
    let version = match version {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).trim().to_string(),
        _ => panic!("node (20 or newer) is required for tests/clients; install Node.js and npm"),
    };
    let major: u32 = version.trim_start_matches('v').split('.').next().and_then(|m| m.parse().ok()).unwrap_or(0);
    assert!(major >= 20, "node {version} is too old for tests/clients; 20 or newer is required");
    if dir.join("node_modules/@apollo/client").exists() {
        return;
    }
    let out = std::process::Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("npm is required for tests/clients: {e}"));
    assert!(out.status.success(), "npm ci failed:\n{}", String::from_utf8_lossy(&out.stderr));
}

#[tokio::test]
async fn apollo_client_and_graphql_ws_work_against_the_gateway() {
    let dir = clients_dir();
    tokio::task::spawn_blocking({
        let dir = dir.clone();
        move || ensure_node_modules(&dir)
    })
    .await
    .unwrap();
    let app = TestApp::spawn().await;
    minispod_gateway::seed::seed_catalog(&app.state).await.unwrap();
    let s = app.register("Budi").await;
    let admin = app.login_admin().await;

    let mut child = tokio::process::Command::new("node")
        .arg("run.cjs")
        .current_dir(&dir)
        .env("GATEWAY_URL", format!("{}/graphql", app.url))
        .env("GATEWAY_WS_URL", app.ws_url())
        .env("TOKEN", &s.token)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node starts");
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut stderr = child.stderr.take().unwrap();
    let stderr_text = tokio::spawn(async move {
        let mut text = String::new();
        let _ = tokio::io::AsyncReadExt::read_to_string(&mut stderr, &mut text).await;
        text
    });

    let run = async {
        let mut ok = false;
        while let Some(line) = stdout.next_line().await.unwrap() {
            match line.trim() {
                // The script's subscription is open: once the server registered it, cause the event.
                "SUBSCRIBED" => {
                    subscribed(&app, 1).await;
                    let adjust =
                        "mutation($u: ID!) { adjustCredit(userId: $u, amount: 5000, reason: \"gift\") { id } }";
                    app.gql_ok(Some(&admin.token), adjust, json!({ "u": s.user_id })).await;
                }
                "OK" => ok = true,
                _ => {}
            }
        }
        (ok, child.wait().await.unwrap())
    };
    let (ok, status) = tokio::time::timeout(Duration::from_secs(120), run).await.expect("the client script finishes");
    let stderr = stderr_text.await.unwrap();
    assert!(status.success() && ok, "client script failed ({status}):\n{stderr}");
    assert!(!stderr.contains("Missing field"), "{stderr}");
}
