//! GraphQL over WebSocket (graphql-transport-ws and the legacy graphql-ws), with the limits
//! async-graphql's protocol handler does not have.
//!
//! async-graphql's `WebSocket` stays in charge of the protocol (init, ids, pings, execution).
//! The connection loop here sits between it and the socket and, per client message:
//! - closes a connection that sends no `connection_init` in time (4408);
//! - refuses a duplicate subscription id (4409, which the handler would silently replace) and
//!   the subscription over the per-connection cap (an error for that id);
//! - re-checks the viewer on every `subscribe` with the same rules as HTTP (token, version,
//!   active, role) and hands the fresh viewer to the executor.
//!
//! Rights are fixed per connection: when a user's rights change (announced by
//! `auth::revocations`) or the access token expires, live operations get an error and the
//! connection closes with 4403. The client reconnects with a fresh token.
use std::{
    collections::{HashMap, HashSet},
    str::FromStr,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use async_graphql::{
    Data, Executor,
    http::{ALL_WEBSOCKET_PROTOCOLS, WebSocketProtocols, WsMessage},
};
use axum::{
    extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use futures::{SinkExt, StreamExt, stream::BoxStream};
use serde_json::json;
use tokio::sync::{broadcast, mpsc};

use crate::auth::revocations::Revocation;
use crate::{
    auth::{self, Auth},
    cluster::fanout::ConnectionFanout,
    graphql::{AppSchema, ClientIp, check_nesting, resolve_persisted},
    state::AppState,
};

const WS_BUFFER_BYTES: usize = 4 * 1024;

/// How often a signed-in connection compares its token's expiry with the gateway clock (which
/// tests move, so a timer set for the expiry itself would not do).
const EXPIRY_CHECK_EVERY: Duration = Duration::from_secs(1);

/// The subprotocol the client asked for, or `None` (400).
pub fn protocol(headers: &HeaderMap) -> Option<WebSocketProtocols> {
    headers
        .get(header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').find_map(|p| WebSocketProtocols::from_str(p.trim()).ok()))
}

pub fn upgrade(
    state: AppState,
    schema: AppSchema,
    protocol: Option<WebSocketProtocols>,
    ws: WebSocketUpgrade,
    ip: ClientIp,
) -> Response {
    let Some(protocol) = protocol else {
        return (StatusCode::BAD_REQUEST, "unsupported WebSocket subprotocol").into_response();
    };
    // Per-connection buffers dominate the memory of idle subscribers: the 128 KiB defaults
    // cost ~130 KiB each, while client messages are tiny and samples go out one by one.
    let scope = crate::telemetry::RequestId::connection_scope();
    ws.read_buffer_size(WS_BUFFER_BYTES)
        .write_buffer_size(WS_BUFFER_BYTES)
        .max_message_size(state.config.graphql.max_body_bytes)
        .protocols(ALL_WEBSOCKET_PROTOCOLS)
        .on_upgrade(move |socket| scope.run(serve(socket, state, schema, protocol, ip)))
        .into_response()
}

/// Open connections per user, and the slot one connection holds until it ends.
#[derive(Default)]
pub struct ConnectionCounts(Mutex<HashMap<i64, usize>>);

pub struct ConnectionSlot {
    counts: Arc<ConnectionCounts>,
    user_id: i64,
}

impl ConnectionCounts {
    fn acquire(self: &Arc<Self>, user_id: i64, max: usize) -> Option<ConnectionSlot> {
        let mut counts = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let n = counts.entry(user_id).or_default();
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(ConnectionSlot { counts: self.clone(), user_id })
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut counts = self.counts.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = counts.get_mut(&self.user_id) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.remove(&self.user_id);
            }
        }
    }
}

/// Who the connection speaks for, shared by the loop, the init callback and the executor.
#[derive(Default)]
struct Session(Mutex<SessionState>);

#[derive(Default)]
struct SessionState {
    /// The `Authorization` value of `connection_init`, re-checked on every `subscribe`.
    header: Option<String>,
    /// The signed-in viewer's id and role at init, and the token's expiry (unix seconds).
    user: Option<(auth::Viewer, i64)>,
    /// The viewer as last checked; the executor gives it to each operation.
    current: Option<Auth>,
    /// `connection_init` carried a token that cannot be used.
    refused: Option<crate::error::TokenProblem>,
    _slot: Option<ConnectionSlot>,
}

impl Session {
    fn with<T>(&self, f: impl FnOnce(&mut SessionState) -> T) -> T {
        f(&mut self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// Why a connection loses its rights.
struct Revoked {
    code: &'static str,
    message: String,
}

impl Revoked {
    fn unauthenticated(message: &str) -> Self {
        Self { code: "UNAUTHENTICATED", message: message.into() }
    }
}

enum Check {
    /// Still valid (or anonymous); the fresh viewer is stored for the next operation.
    Valid,
    Revoked(Revoked),
    /// The database could not answer: nothing is decided.
    Unknown,
}

/// Re-checks the session's token like an HTTP request would.
async fn recheck(state: &AppState, session: &Session) -> Check {
    let (header, user) = session.with(|s| (s.header.clone(), s.user));
    let Some((viewer, expires_at)) = user else {
        return Check::Valid;
    };
    if expires_at <= state.now().timestamp() {
        return Check::Revoked(Revoked::unauthenticated("access token expired; reconnect with a fresh token"));
    }
    let fresh = match auth::authenticate(state, header.as_deref()).await {
        Ok(a) => a,
        Err(e) => {
            tracing::warn!(error = %e, "cannot re-check a WebSocket viewer");
            return Check::Unknown;
        }
    };
    match fresh.viewer() {
        Ok(v) if v.role != viewer.role => {
            Check::Revoked(Revoked { code: "FORBIDDEN", message: "role changed; reconnect to continue".into() })
        }
        Ok(_) => {
            session.with(|s| s.current = Some(fresh));
            Check::Valid
        }
        Err(_) => Check::Revoked(Revoked::unauthenticated("access revoked; sign in again")),
    }
}

/// What to do with one client message.
enum Verdict {
    Forward,
    Reply(String),
    Close(u16, String),
    Revoke(Revoked, String),
}

#[derive(serde::Deserialize)]
struct Peek {
    #[serde(rename = "type")]
    ty: String,
    id: Option<String>,
}

struct Conn {
    protocol: WebSocketProtocols,
    /// Ids of live operations (subscribed and not yet completed by either side).
    ids: HashSet<String>,
    init_received: bool,
    max_subscriptions: usize,
}

impl Conn {
    async fn inspect(&mut self, data: &[u8], state: &AppState, session: &Session) -> Verdict {
        // Malformed messages are the protocol handler's to refuse.
        let Ok(msg) = serde_json::from_slice::<Peek>(data) else {
            return Verdict::Forward;
        };
        match (msg.ty.as_str(), msg.id) {
            ("connection_init", _) => {
                self.init_received = true;
                Verdict::Forward
            }
            ("subscribe" | "start", Some(id)) => {
                if self.ids.contains(&id) {
                    return match self.protocol {
                        WebSocketProtocols::GraphQLWS => {
                            Verdict::Close(4409, format!("Subscriber for {id} already exists"))
                        }
                        WebSocketProtocols::SubscriptionsTransportWS => Verdict::Reply(self.error(
                            &id,
                            "BAD_USER_INPUT",
                            &format!("Subscriber for {id} already exists"),
                        )),
                    };
                }
                if self.ids.len() >= self.max_subscriptions {
                    let message = format!("at most {} operations per connection", self.max_subscriptions);
                    return Verdict::Reply(self.error(&id, "RATE_LIMITED", &message));
                }
                match recheck(state, session).await {
                    Check::Valid => {
                        self.ids.insert(id);
                        Verdict::Forward
                    }
                    Check::Revoked(revoked) => Verdict::Revoke(revoked, id),
                    Check::Unknown => Verdict::Reply(self.error(&id, "INTERNAL", "cannot check the access token")),
                }
            }
            ("complete" | "stop", Some(id)) => {
                self.ids.remove(&id);
                Verdict::Forward
            }
            _ => Verdict::Forward,
        }
    }

    /// Notes operations the server completed (their ids may be reused).
    fn observe_outgoing(&mut self, text: &str) {
        if text.starts_with(r#"{"type":"complete""#)
            && let Ok(Peek { id: Some(id), .. }) = serde_json::from_str::<Peek>(text)
        {
            self.ids.remove(&id);
        }
    }

    /// An error for one operation that never started.
    fn error(&self, id: &str, code: &str, message: &str) -> String {
        let error = json!({ "message": message, "extensions": { "code": code } });
        match self.protocol {
            WebSocketProtocols::GraphQLWS => json!({ "type": "error", "id": id, "payload": [error] }),
            WebSocketProtocols::SubscriptionsTransportWS => json!({ "type": "error", "id": id, "payload": error }),
        }
        .to_string()
    }

    /// The last result of a live operation: the error that ended it.
    fn final_error(&self, id: &str, revoked: &Revoked) -> String {
        let payload = json!({ "errors": [{ "message": revoked.message, "extensions": { "code": revoked.code } }] });
        let ty = match self.protocol {
            WebSocketProtocols::GraphQLWS => "next",
            WebSocketProtocols::SubscriptionsTransportWS => "data",
        };
        json!({ "type": ty, "id": id, "payload": payload }).to_string()
    }
}

async fn serve(socket: WebSocket, state: AppState, schema: AppSchema, protocol: WebSocketProtocols, ip: ClientIp) {
    let _open = state.metrics.ws_connection();
    let limits = state.config.websocket.clone();
    // Metric samples are serialised once for all subscribers (`cluster::fanout`); the sink puts
    // each connection's copy in place.
    let fanout = ConnectionFanout::default();
    let session = Arc::new(Session::default());
    let (mut sink, mut client) = socket.split();
    // Capacity 1, and the client is read only when it is free: the handler pulls messages at
    // its own pace, so a fast client is back-pressured instead of buffered.
    let (forward, forwarded) = mpsc::channel::<Vec<u8>>(1);
    let executor = WsExecutor { schema, state: state.clone(), fanout: fanout.clone(), session: session.clone() };
    let init = {
        let (state, session) = (state.clone(), session.clone());
        move |payload| ws_init(state, session, ip, payload)
    };
    let handler =
        async_graphql::http::WebSocket::new(executor, tokio_stream::wrappers::ReceiverStream::new(forwarded), protocol)
            .on_connection_init(init);
    tokio::pin!(handler);
    let mut conn =
        Conn { protocol, ids: HashSet::new(), init_received: false, max_subscriptions: limits.max_subscriptions };
    let mut revocations = Some(state.revocations.subscribe());
    let init_deadline = tokio::time::sleep(limits.init_timeout);
    tokio::pin!(init_deadline);
    let mut expiry_check = tokio::time::interval(EXPIRY_CHECK_EVERY);
    expiry_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

    let close: Option<(u16, String)> = loop {
        let revoked = tokio::select! {
            msg = client.next(), if forward.capacity() > 0 => {
                let data = match msg {
                    Some(Ok(Message::Text(t))) => Vec::from(t.as_bytes()),
                    Some(Ok(Message::Binary(b))) => b.to_vec(),
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    Some(Ok(Message::Close(_)) | Err(_)) | None => break None,
                };
                match conn.inspect(&data, &state, &session).await {
                    Verdict::Forward => {
                        if forward.try_send(data).is_err() {
                            break None;
                        }
                        continue;
                    }
                    Verdict::Reply(text) => {
                        if sink.send(Message::Text(text.into())).await.is_err() {
                            break None;
                        }
                        continue;
                    }
                    Verdict::Close(code, reason) => break Some((code, reason)),
                    Verdict::Revoke(revoked, id) => {
                        let _ = sink.send(Message::Text(conn.error(&id, revoked.code, &revoked.message).into())).await;
                        revoked
                    }
                }
            }
            out = handler.next() => match out {
                Some(WsMessage::Text(text)) => {
                    conn.observe_outgoing(&text);
                    let text = fanout.resolve(&text).unwrap_or(text);
                    if sink.send(Message::Text(text.into())).await.is_err() {
                        break None;
                    }
                    continue;
                }
                Some(WsMessage::Close(code, reason)) => break Some((code, reason)),
                None => break None,
            },
            _ = &mut init_deadline, if !conn.init_received => {
                break Some((4408, "Connection initialisation timeout".into()));
            }
            ev = recv(&mut revocations), if session.with(|s| s.user.is_some()) => {
                let user_id = session.with(|s| s.user.map(|(v, _)| v.id));
                let relevant = match ev {
                    Ok(Revocation(id)) => Some(id) == user_id,
                    Err(broadcast::error::RecvError::Lagged(_)) => true,
                    Err(broadcast::error::RecvError::Closed) => {
                        revocations = None;
                        false
                    }
                };
                match relevant {
                    // Unknown: the next subscribe or the token's expiry decides.
                    true => match recheck(&state, &session).await {
                        Check::Revoked(revoked) => revoked,
                        Check::Valid | Check::Unknown => continue,
                    },
                    false => continue,
                }
            }
            _ = expiry_check.tick(), if session.with(|s| s.user.is_some()) => {
                let now = state.now().timestamp();
                match session.with(|s| s.user.is_some_and(|(_, exp)| exp <= now)) {
                    true => Revoked::unauthenticated("access token expired; reconnect with a fresh token"),
                    false => continue,
                }
            }
        };
        // Rights lost: every live operation ends with the reason, then the connection.
        for id in std::mem::take(&mut conn.ids) {
            if sink.send(Message::Text(conn.final_error(&id, &revoked).into())).await.is_err() {
                break;
            }
        }
        break Some((4403, format!("Forbidden: {}", revoked.message)));
    };
    // A refused token closes with 4403 on both protocols (graphql-transport-ws would get
    // async-graphql's 1002, the legacy protocol a `connection_error` and no close code).
    let close = match session.with(|s| s.refused) {
        Some(problem) => Some((4403, format!("Forbidden: {}", problem.message()))),
        None => close,
    };
    if let Some((code, reason)) = close {
        let _ = sink.send(Message::Close(Some(CloseFrame { code, reason: reason.into() }))).await;
    }
    let _ = sink.close().await;
}

async fn recv(rx: &mut Option<broadcast::Receiver<Revocation>>) -> Result<Revocation, broadcast::error::RecvError> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// The schema, with admin metric subscriptions shared across subscribers (`cluster::fanout`),
/// run as the viewer last checked by the connection loop.
#[derive(Clone)]
struct WsExecutor {
    schema: AppSchema,
    state: AppState,
    fanout: ConnectionFanout,
    session: Arc<Session>,
}

impl Executor for WsExecutor {
    fn execute(&self, request: async_graphql::Request) -> impl Future<Output = async_graphql::Response> + Send {
        let is_admin = self.session.with(|s| s.current.as_ref().is_some_and(|a| a.admin().is_ok()));
        let resolved = resolve_persisted(&self.state, request, is_admin);
        let schema = self.schema.clone();
        async move {
            match resolved {
                Ok(request) => Executor::execute(&schema, request).await,
                Err(e) => async_graphql::Response::from_errors(vec![e]),
            }
        }
    }

    fn execute_stream(
        &self,
        request: async_graphql::Request,
        session_data: Option<Arc<Data>>,
    ) -> BoxStream<'static, async_graphql::Response> {
        let auth = self.session.with(|s| s.current.clone()).unwrap_or(Auth::Anonymous);
        let is_admin = auth.admin().is_ok();
        let request = match resolve_persisted(&self.state, request, is_admin) {
            Ok(request) => request.data(auth),
            Err(e) => {
                return futures::stream::once(async move { async_graphql::Response::from_errors(vec![e]) }).boxed();
            }
        };
        // Sharing parses the document first: never one the parser must not see.
        let shareable = is_admin && check_nesting(&request.query, self.state.config.graphql.max_depth).is_ok();
        let schema = self.schema.clone();
        self.fanout.execute_stream(&self.state.cluster.shared, request, shareable, move |r| {
            Executor::execute_stream(&schema, r, session_data)
        })
    }
}

/// graphql-transport-ws `connection_init`: `{ "Authorization": "Bearer <token>" }`. A bad token
/// refuses the connection; no token gives an anonymous connection.
async fn ws_init(
    state: AppState,
    session: Arc<Session>,
    ip: ClientIp,
    payload: serde_json::Value,
) -> async_graphql::Result<Data> {
    let header = ["Authorization", "authorization"]
        .iter()
        .find_map(|k| payload.get(*k).and_then(|v| v.as_str()))
        .map(str::to_string);
    let (auth, expires_at) = auth::authenticate_until(&state, header.as_deref()).await?;
    if let Auth::Invalid(problem) = auth {
        // The handler would close with 1002 (protocol error); the loop closes with 4403.
        session.with(|s| s.refused = Some(problem));
        return Err(crate::error::AppError::InvalidToken(problem).into());
    }
    let mut slot = None;
    if let (Auth::User(viewer), Some(expires_at)) = (&auth, expires_at) {
        let max = state.config.websocket.max_connections_per_user;
        slot = Some(
            state
                .ws_connections
                .acquire(viewer.id, max)
                .ok_or_else(|| async_graphql::Error::new(format!("at most {max} connections per user")))?,
        );
        session.with(|s| s.user = Some((*viewer, expires_at)));
    }
    session.with(|s| {
        s.header = header;
        s.current = Some(auth.clone());
        s._slot = slot;
    });
    let mut data = Data::default();
    data.insert(auth);
    data.insert(ip);
    data.insert(crate::catalog::loader::new(&state.db));
    data.insert(crate::subscriptions::loader::new(&state.db));
    Ok(data)
}
