//! A minimal graphql-transport-ws client, as a browser client speaks it.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream, connect_async,
    tungstenite::{Message, client::IntoClientRequest, http::HeaderValue},
};

pub struct WsClient {
    stream: WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>,
}

#[derive(Debug)]
pub enum Init {
    Acked(Box<WsClient>),
    /// The server closed the connection (code, reason) instead of acknowledging.
    Refused(u16, String),
}

/// One thing the server did: sent a message, or closed the connection.
#[derive(Debug)]
pub enum Event {
    Msg(Value),
    Closed(u16, String),
}

impl WsClient {
    /// Opens a connection with the given subprotocol and sends nothing.
    pub async fn open(url: &str, protocol: &str) -> WsClient {
        let mut req = url.into_client_request().unwrap();
        req.headers_mut().insert("Sec-WebSocket-Protocol", HeaderValue::from_str(protocol).unwrap());
        let (stream, _) = connect_async(req).await.expect("websocket connects");
        WsClient { stream }
    }

    pub async fn send_json(&mut self, v: Value) {
        self.stream.send(Message::text(v.to_string())).await.unwrap();
    }

    /// The next message (keep-alives and pongs included) or the close; None on timeout.
    pub async fn next_event(&mut self, timeout: Duration) -> Option<Event> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, self.stream.next()).await.ok()? {
                Some(Ok(Message::Text(t))) => return Some(Event::Msg(serde_json::from_str(&t).unwrap())),
                Some(Ok(Message::Close(frame))) => {
                    let (code, reason) =
                        frame.map(|f| (u16::from(f.code), f.reason.to_string())).unwrap_or((1005, String::new()));
                    return Some(Event::Closed(code, reason));
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Some(Event::Closed(0, e.to_string())),
                None => return Some(Event::Closed(1006, "closed".into())),
            }
        }
    }

    /// graphql-transport-ws ping/pong round trip: every message sent before it has been handled.
    /// Returns the messages that arrived meanwhile.
    pub async fn sync(&mut self) -> Vec<Value> {
        self.send_json(json!({ "type": "ping" })).await;
        let mut seen = Vec::new();
        loop {
            match self.next_event(Duration::from_secs(10)).await.expect("pong in time") {
                Event::Msg(v) if v["type"] == "pong" => return seen,
                Event::Msg(v) => seen.push(v),
                Event::Closed(code, reason) => panic!("closed while syncing: {code} {reason}"),
            }
        }
    }

    /// Messages until the server closes; panics if it does not within `timeout`.
    pub async fn until_closed(&mut self, timeout: Duration) -> (u16, String, Vec<Value>) {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next_event(left).await.expect("the server closes in time") {
                Event::Msg(v) => seen.push(v),
                Event::Closed(code, reason) => return (code, reason, seen),
            }
        }
    }

    /// Connects with the given subprotocol and sends `connection_init` with `payload`.
    pub async fn connect(url: &str, protocol: &str, payload: Value) -> Init {
        let mut req = url.into_client_request().unwrap();
        req.headers_mut().insert("Sec-WebSocket-Protocol", HeaderValue::from_str(protocol).unwrap());
        let (mut stream, _) = connect_async(req).await.expect("websocket connects");
        stream.send(Message::text(json!({ "type": "connection_init", "payload": payload }).to_string())).await.unwrap();
        loop {
            match tokio::time::timeout(Duration::from_secs(10), stream.next()).await.expect("init answer in time") {
                Some(Ok(Message::Text(t))) => {
                    let v: Value = serde_json::from_str(&t).unwrap();
                    match v["type"].as_str() {
                        Some("connection_ack") => return Init::Acked(Box::new(WsClient { stream })),
                        // The legacy protocol explains a refusal before the close.
                        Some("ka") | Some("ping") | Some("connection_error") => continue,
                        other => panic!("unexpected init answer {other:?}: {v}"),
                    }
                }
                Some(Ok(Message::Close(frame))) => {
                    let (code, reason) =
                        frame.map(|f| (u16::from(f.code), f.reason.to_string())).unwrap_or((0, String::new()));
                    return Init::Refused(code, reason);
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Init::Refused(0, e.to_string()),
                None => return Init::Refused(0, "closed".into()),
            }
        }
    }

    pub async fn connect_ok(url: &str, token: Option<&str>) -> WsClient {
        let payload = match token {
            Some(t) => json!({ "Authorization": format!("Bearer {t}") }),
            None => json!({}),
        };
        match Self::connect(url, "graphql-transport-ws", payload).await {
            Init::Acked(c) => *c,
            Init::Refused(code, reason) => panic!("connection refused: {code} {reason}"),
        }
    }

    pub async fn subscribe(&mut self, id: &str, query: &str, variables: Value) {
        let msg = json!({ "id": id, "type": "subscribe", "payload": { "query": query, "variables": variables } });
        self.stream.send(Message::text(msg.to_string())).await.unwrap();
    }

    pub async fn complete(&mut self, id: &str) {
        self.stream.send(Message::text(json!({ "id": id, "type": "complete" }).to_string())).await.unwrap();
    }

    /// The next `next`/`error`/`complete` message, skipping keep-alives; None on close or timeout.
    pub async fn next_message(&mut self, timeout: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let msg = tokio::time::timeout_at(deadline, self.stream.next()).await.ok()??;
            match msg {
                Ok(Message::Text(t)) => {
                    let v: Value = serde_json::from_str(&t).unwrap();
                    match v["type"].as_str() {
                        Some("ping") => {
                            self.stream.send(Message::text(json!({"type": "pong"}).to_string())).await.ok();
                        }
                        Some("pong") | Some("ka") => {}
                        _ => return Some(v),
                    }
                }
                Ok(Message::Close(_)) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    pub async fn close(mut self) {
        let _ = self.stream.close(None).await;
    }
}

impl std::fmt::Debug for WsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WsClient")
    }
}
