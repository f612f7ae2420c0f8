//! Around every HTTP request: a request id (the client's `x-request-id` when it is sane, else a
//! new UUID), echoed in the response and carried by a span, so every log line of the request
//! names it; the request's metrics by matched route. Also the `/metrics` endpoint.
use std::{future::Future, sync::Arc, time::Instant};

use axum::{
    Json,
    extract::{MatchedPath, Request, State},
    http::{HeaderName, HeaderValue, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use tracing::Instrument as _;

use crate::state::AppState;

pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");
const MAX_REQUEST_ID_LEN: usize = 128;

/// The id of the request (or WebSocket connection) being served.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestId(Arc<str>);

tokio::task_local! {
    static CURRENT: RequestId;
}

impl RequestId {
    fn generate() -> Self {
        Self(uuid::Uuid::new_v4().to_string().into())
    }

    /// A client-supplied id, if it is short and made of characters that are safe in logs and
    /// headers: letters, digits and `-_.:/+=@`.
    pub fn from_client(value: &HeaderValue) -> Option<Self> {
        let s = value.to_str().ok()?;
        let safe = |c: char| c.is_ascii_alphanumeric() || "-_.:/+=@".contains(c);
        (!s.is_empty() && s.len() <= MAX_REQUEST_ID_LEN && s.chars().all(safe)).then(|| Self(s.into()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The id of the request this task is serving, if any.
    pub fn current() -> Option<Self> {
        CURRENT.try_with(Clone::clone).ok()
    }

    /// Taken while upgrading: a WebSocket connection outlives its upgrade request and runs in
    /// a task of its own, under the same request id and in a `ws` span below the request's.
    pub fn connection_scope() -> ConnectionScope {
        ConnectionScope { id: Self::current().unwrap_or_else(Self::generate), span: tracing::info_span!("ws") }
    }
}

pub struct ConnectionScope {
    id: RequestId,
    span: tracing::Span,
}

impl ConnectionScope {
    pub fn run<F: Future>(self, fut: F) -> impl Future<Output = F::Output> {
        CURRENT.scope(self.id, fut.instrument(self.span))
    }
}

fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        _ => "other",
    }
}

/// The middleware (added with `Router::layer`, so it runs after routing and sees the route).
pub async fn observe(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let id = req.headers().get(REQUEST_ID_HEADER).and_then(RequestId::from_client).unwrap_or_else(RequestId::generate);
    let route = req.extensions().get::<MatchedPath>().map_or("unmatched", |p| p.as_str()).to_string();
    let method = method_label(req.method());
    req.extensions_mut().insert(id.clone());
    let span = tracing::info_span!("http", request_id = %id.as_str(), method, route);
    let started = Instant::now();
    let mut resp = CURRENT.scope(id.clone(), next.run(req).instrument(span.clone())).await;
    let elapsed = started.elapsed();
    let status = resp.status().as_u16();
    state.metrics.http_request(method, &route, status, elapsed);
    // The access log is DEBUG: each failure is logged once, where it happens, at its level.
    span.in_scope(|| tracing::debug!(status, elapsed_ms = elapsed.as_secs_f64() * 1e3, "request finished"));
    if let Ok(v) = HeaderValue::from_str(id.as_str()) {
        resp.headers_mut().insert(REQUEST_ID_HEADER, v);
    }
    resp
}

/// `GET /metrics`: the Prometheus text format; behind `MINISPOD_METRICS_TOKEN` when it is set.
pub async fn metrics(State(state): State<AppState>, headers: axum::http::HeaderMap) -> Response {
    if let Some(token) = state.config.metrics_token.as_ref() {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")));
        if !given.is_some_and(|g| same_secret(g.trim(), token.expose())) {
            let body = serde_json::json!({ "error": { "code": "UNAUTHENTICATED", "message": "a valid metrics bearer token is required" } });
            let mut resp = (StatusCode::UNAUTHORIZED, Json(body)).into_response();
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return resp;
        }
    }
    let body = state.metrics.render(&state);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], body).into_response()
}

/// Compares digests, so the time taken says nothing about where (or whether the length) differs.
fn same_secret(given: &str, expected: &str) -> bool {
    use sha2::{Digest, Sha256};
    let (a, b) = (Sha256::digest(given.as_bytes()), Sha256::digest(expected.as_bytes()));
    a.iter().zip(b.iter()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_request_ids_must_be_sane() {
        let ok = |s: &str| RequestId::from_client(&HeaderValue::from_str(s).unwrap()).map(|r| r.as_str().to_string());
        assert_eq!(ok("abc-123_x.y:z").as_deref(), Some("abc-123_x.y:z"));
        assert_eq!(ok("3f1e0b0c-1c1a-4d0e-9f0e-0e0e0e0e0e0e").as_deref(), Some("3f1e0b0c-1c1a-4d0e-9f0e-0e0e0e0e0e0e"));
        assert_eq!(ok(""), None);
        assert_eq!(ok("has space"), None);
        assert_eq!(ok("quote\"d"), None);
        assert_eq!(ok(&"a".repeat(129)), None);
        assert!(ok(&"a".repeat(128)).is_some());
    }
}
