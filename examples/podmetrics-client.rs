//! A small client: signs in as an administrator and streams live pod metrics over
//! graphql-transport-ws.
//!
//! ```sh
//! MINISPOD_EMAIL=admin@minispod.local MINISPOD_PASSWORD=… \
//!   cargo run --example podmetrics-client -- http://127.0.0.1:8080 [namespace] [samples]
//! ```
//! Without `samples` it streams until interrupted. Each sample prints one line per pod.
#![allow(clippy::expect_used)]

use anyhow::{Context, anyhow, bail};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest, http::HeaderValue};

const LOGIN: &str = "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { accessToken } }";
const POD_METRICS: &str = "subscription($ns: String) { podMetrics(namespace: $ns, intervalSeconds: 1) {
  timestamp pods { namespace name usage { cpuMillicores memoryBytes } } } }";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    minispod_gateway::app::init_crypto(); // the TLS provider reqwest needs (ring)
    let mut args = std::env::args().skip(1);
    let base = args.next().unwrap_or_else(|| "http://127.0.0.1:8080".into());
    let namespace = args.next().filter(|n| !n.is_empty());
    let samples: Option<usize> = args.next().map(|n| n.parse()).transpose().context("samples must be a number")?;
    let email = std::env::var("MINISPOD_EMAIL").context("set MINISPOD_EMAIL")?;
    let password = std::env::var("MINISPOD_PASSWORD").context("set MINISPOD_PASSWORD")?;

    // 1. Sign in over HTTP.
    let answer: Value = reqwest::Client::new()
        .post(format!("{base}/graphql"))
        .json(&json!({ "query": LOGIN, "variables": { "e": email, "p": password } }))
        .send()
        .await?
        .json()
        .await?;
    let token = answer["data"]["login"]["accessToken"]
        .as_str()
        .ok_or_else(|| anyhow!("login refused: {}", answer["errors"]))?
        .to_string();

    // 2. Open the WebSocket; the token goes into connection_init.
    let ws_url = format!("{}/graphql", base.replacen("http", "ws", 1));
    let mut req = ws_url.into_client_request()?;
    req.headers_mut().insert("Sec-WebSocket-Protocol", HeaderValue::from_static("graphql-transport-ws"));
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.context("WebSocket connect")?;
    let send = |v: Value| Message::text(v.to_string());
    ws.send(send(json!({ "type": "connection_init", "payload": { "Authorization": format!("Bearer {token}") } })))
        .await?;
    ws.send(send(json!({ "id": "1", "type": "subscribe",
        "payload": { "query": POD_METRICS, "variables": { "ns": namespace } } })))
        .await?;

    // 3. Print every sample until asked to stop.
    let mut seen = 0;
    while let Some(msg) = ws.next().await {
        let Message::Text(text) = msg? else { continue };
        let v: Value = serde_json::from_str(&text)?;
        match v["type"].as_str() {
            Some("connection_ack") | Some("pong") => {}
            Some("ping") => ws.send(send(json!({ "type": "pong" }))).await?,
            Some("next") if v["payload"]["errors"].is_array() => bail!("refused: {}", v["payload"]["errors"]),
            Some("next") => {
                let sample = &v["payload"]["data"]["podMetrics"];
                println!("sample at {}", sample["timestamp"].as_str().unwrap_or("?"));
                for p in sample["pods"].as_array().into_iter().flatten() {
                    println!(
                        "  {}/{}: {} mCPU, {} bytes",
                        p["namespace"].as_str().unwrap_or("?"),
                        p["name"].as_str().unwrap_or("?"),
                        p["usage"]["cpuMillicores"],
                        p["usage"]["memoryBytes"]
                    );
                }
                seen += 1;
                if samples.is_some_and(|n| seen >= n) {
                    ws.send(send(json!({ "id": "1", "type": "complete" }))).await?;
                    ws.close(None).await.ok();
                    return Ok(());
                }
            }
            Some("error") => bail!("refused: {}", v["payload"]),
            Some("complete") => bail!("the server ended the stream"),
            other => bail!("unexpected message {other:?}: {v}"),
        }
    }
    bail!("the connection closed")
}
