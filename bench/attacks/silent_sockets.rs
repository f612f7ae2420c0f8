//! Silent sockets: many WebSocket connections that never send `connection_init`. Before issue 9
//! they stayed open forever; now each is closed with 4408 after MINISPOD_WS_INIT_TIMEOUT_SECS.
use std::time::{Duration, Instant};

use futures::StreamExt;
use tokio_tungstenite::{
    connect_async,
    tungstenite::{Message, client::IntoClientRequest, http::HeaderValue},
};

use crate::Gateway;

const SOCKETS: usize = 200;
const INIT_TIMEOUT_SECS: u64 = 2;

pub async fn run(bin: &str) {
    let timeout = INIT_TIMEOUT_SECS.to_string();
    let gw = Gateway::start(bin, &[("MINISPOD_WS_INIT_TIMEOUT_SECS", &timeout)]).await;
    let rss_before = gw.rss_mib();
    let started = Instant::now();
    let mut sockets = Vec::with_capacity(SOCKETS);
    for _ in 0..SOCKETS {
        let mut req = gw.ws_url().into_client_request().unwrap();
        req.headers_mut().insert("Sec-WebSocket-Protocol", HeaderValue::from_static("graphql-transport-ws"));
        let (ws, _) = connect_async(req).await.expect("websocket connects");
        sockets.push(ws);
    }
    let rss_open = gw.rss_mib();
    println!("opened {SOCKETS} silent sockets in {:?}; init timeout {INIT_TIMEOUT_SECS} s", started.elapsed());
    // Each socket: wait for the server's close (or give up a few seconds after the timeout).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(INIT_TIMEOUT_SECS + 3);
    let results = futures::future::join_all(sockets.into_iter().map(|mut ws| async move {
        loop {
            match tokio::time::timeout_at(deadline, ws.next()).await {
                Err(_) => return None,
                Ok(Some(Ok(Message::Close(frame)))) => return Some(frame.map(|f| u16::from(f.code)).unwrap_or(1005)),
                Ok(Some(Ok(_))) => continue,
                Ok(Some(Err(_)) | None) => return Some(1006),
            }
        }
    }))
    .await;
    let still_open = results.iter().filter(|r| r.is_none()).count();
    let closed_4408 = results.iter().filter(|r| **r == Some(4408)).count();
    let rss_after = gw.rss_mib();
    println!("after {:?}: {still_open} still open, {closed_4408} closed with 4408", started.elapsed());
    println!("gateway RSS MiB: before {rss_before:.1}, with sockets open {rss_open:.1}, after {rss_after:.1}");
}
