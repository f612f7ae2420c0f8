//! Revoked sockets: a user with live walletUpdates subscriptions on several connections is
//! deactivated. Before issue 9 the streams went on; now each connection gets an error per
//! operation and closes with 4403. Measures the time from the mutation to each close.
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::{
    connect_async,
    tungstenite::{Message, client::IntoClientRequest, http::HeaderValue},
};

use crate::Gateway;

const CONNECTIONS: usize = 20;
const SUBSCRIPTIONS: usize = 10;

pub async fn run(bin: &str) {
    let gw = Gateway::start(bin, &[]).await;
    let admin = gw.admin_token().await;
    let (token, user_id) = gw.register("victim").await;
    let rss_before = gw.rss_mib();
    let mut sockets = Vec::with_capacity(CONNECTIONS);
    for _ in 0..CONNECTIONS {
        let mut req = gw.ws_url().into_client_request().unwrap();
        req.headers_mut().insert("Sec-WebSocket-Protocol", HeaderValue::from_static("graphql-transport-ws"));
        let (mut ws, _) = connect_async(req).await.expect("websocket connects");
        let init = json!({ "type": "connection_init", "payload": { "Authorization": format!("Bearer {token}") } });
        ws.send(Message::text(init.to_string())).await.unwrap();
        for i in 0..SUBSCRIPTIONS {
            let sub = json!({ "id": i.to_string(), "type": "subscribe", "payload": { "query": "subscription { walletUpdates { id } }" } });
            ws.send(Message::text(sub.to_string())).await.unwrap();
        }
        // A ping answered means every subscribe before it was handled.
        ws.send(Message::text(json!({ "type": "ping" }).to_string())).await.unwrap();
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) if serde_json::from_str::<Value>(&t).unwrap()["type"] == "pong" => break,
                Some(Ok(_)) => {}
                other => panic!("connection failed before the attack: {other:?}"),
            }
        }
        sockets.push(ws);
    }
    let rss_live = gw.rss_mib();
    println!("{CONNECTIONS} connections x {SUBSCRIPTIONS} walletUpdates subscriptions live; deactivating the user");

    let started = Instant::now();
    let q = "mutation($u: ID!) { setUserActive(userId: $u, active: false) { id } }";
    gw.gql(Some(&admin), q, json!({ "u": user_id })).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let ends = futures::future::join_all(sockets.into_iter().map(|mut ws| async move {
        let mut errors = 0;
        loop {
            match tokio::time::timeout_at(deadline, ws.next()).await {
                Err(_) => return (None, errors, started.elapsed()),
                Ok(Some(Ok(Message::Text(t)))) => {
                    let v: Value = serde_json::from_str(&t).unwrap();
                    errors += usize::from(v["payload"]["errors"].is_array());
                }
                Ok(Some(Ok(Message::Close(f)))) => {
                    return (Some(f.map(|f| u16::from(f.code)).unwrap_or(1005)), errors, started.elapsed());
                }
                Ok(Some(Ok(_))) => {}
                Ok(Some(Err(_)) | None) => return (Some(1006), errors, started.elapsed()),
            }
        }
    }))
    .await;
    let mut times: Vec<Duration> = ends.iter().filter(|e| e.0.is_some()).map(|e| e.2).collect();
    times.sort();
    let still_open = ends.iter().filter(|e| e.0.is_none()).count();
    let closed_4403 = ends.iter().filter(|e| e.0 == Some(4403)).count();
    let errors: usize = ends.iter().map(|e| e.1).sum();
    println!(
        "{closed_4403} of {CONNECTIONS} closed with 4403, {still_open} still open after 30 s; {errors} of {} streams ended with an error",
        CONNECTIONS * SUBSCRIPTIONS
    );
    if let (Some(first), Some(last)) = (times.first(), times.last()) {
        println!(
            "time from setUserActive(false) to close: first {first:?}, median {:?}, last {last:?}",
            times[times.len() / 2]
        );
    }
    println!("gateway RSS MiB: before {rss_before:.1}, with streams live {rss_live:.1}, after {:.1}", gw.rss_mib());
}
