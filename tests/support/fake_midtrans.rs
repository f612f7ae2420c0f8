//! A fake Midtrans on loopback: Snap create, Core status and cancel, with answers the test
//! controls (per-order statuses, failures, delays) and every request recorded. Like the real one
//! it wants Basic auth with the server key (401 otherwise), and it can report Core API errors
//! the way Midtrans also does: HTTP 200 with the error in the body's `status_code`.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    Json, Router,
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use minispod_gateway::{
    config::{Config, SecretString},
    payments::midtrans::signature::signature,
};
use serde_json::{Value, json};

pub const SERVER_KEY: &str = "SB-Mid-server-fake-key-123";

#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: &'static str,
    pub path: String,
    pub authorization: Option<String>,
    pub idempotency_key: Option<String>,
    pub body: Value,
}

#[derive(Clone, Debug)]
pub enum SnapMode {
    Ok,
    /// Answer with this HTTP status and an error body.
    Fail(u16),
    /// Wait this long before answering (longer than the client timeout: a timeout).
    Delay(Duration),
}

pub struct FakeState {
    pub requests: Vec<Recorded>,
    pub snap: SnapMode,
    /// order_id -> status API body; absent orders answer 404.
    pub statuses: HashMap<String, Value>,
    pub status_fails: bool,
    /// The server key requests must carry (`Basic base64(key + ":")`); a test may rotate it.
    pub server_key: String,
    /// Core API errors (401, 404) answer HTTP 200 with the error in the body.
    pub errors_in_body: bool,
}

#[derive(Clone)]
pub struct FakeMidtrans {
    pub url: String,
    pub state: Arc<Mutex<FakeState>>,
}

fn header(h: &HeaderMap, name: &str) -> Option<String> {
    h.get(name).and_then(|v| v.to_str().ok()).map(str::to_string)
}

impl FakeMidtrans {
    pub async fn start() -> Self {
        let state = Arc::new(Mutex::new(FakeState {
            requests: vec![],
            snap: SnapMode::Ok,
            statuses: HashMap::new(),
            status_fails: false,
            server_key: SERVER_KEY.into(),
            errors_in_body: false,
        }));
        let app = Router::new()
            .route("/snap/v1/transactions", post(snap))
            .route("/v2/{order}/status", get(status))
            .route("/v2/{order}/cancel", post(cancel))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { url, state }
    }

    /// Points a gateway config at this fake.
    pub fn configure(&self, c: &mut Config) {
        c.midtrans.server_key = Some(SecretString::new(SERVER_KEY));
        c.midtrans.snap_url = format!("{}/snap/v1", self.url);
        c.midtrans.api_url = self.url.clone();
        c.midtrans.finish_url = Some("https://app.example.test/wallet".into());
    }

    pub fn set_snap(&self, mode: SnapMode) {
        self.state.lock().unwrap().snap = mode;
    }

    /// What the status API answers for `order` from now on.
    pub fn set_status(&self, order: &str, gross: i64, transaction_status: &str, fraud: Option<&str>) {
        let body = status_body(order, gross, transaction_status, fraud);
        self.state.lock().unwrap().statuses.insert(order.to_string(), body);
    }

    /// Rotates the key Midtrans accepts (the gateway keeps the one it was configured with).
    pub fn set_server_key(&self, key: &str) {
        self.state.lock().unwrap().server_key = key.into();
    }

    /// From now on, Core API errors answer HTTP 200 with the error in the body's `status_code`.
    pub fn set_errors_in_body(&self, on: bool) {
        self.state.lock().unwrap().errors_in_body = on;
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.state.lock().unwrap().requests.clone()
    }

    fn record(&self, method: &'static str, path: String, headers: &HeaderMap, body: Value) {
        self.state.lock().unwrap().requests.push(Recorded {
            method,
            path,
            authorization: header(headers, "authorization"),
            idempotency_key: header(headers, "idempotency-key"),
            body,
        });
    }
}

type S = State<Arc<Mutex<FakeState>>>;

fn authorized(st: &FakeState, headers: &HeaderMap) -> bool {
    use base64::Engine;
    let expected = base64::engine::general_purpose::STANDARD.encode(format!("{}:", st.server_key));
    header(headers, "authorization").is_some_and(|h| h == format!("Basic {expected}"))
}

/// A Core API error: its HTTP status, or 200 with the status in the body when so configured.
fn core_error(st: &FakeState, code: u16, message: &str) -> Response {
    let http = if st.errors_in_body { StatusCode::OK } else { StatusCode::from_u16(code).unwrap() };
    (http, Json(json!({ "status_code": code.to_string(), "status_message": message }))).into_response()
}

const UNKNOWN_MERCHANT: &str = "Unknown Merchant server_key/id";

fn rec(s: &Arc<Mutex<FakeState>>, method: &'static str, path: String, headers: &HeaderMap, body: Value) {
    FakeMidtrans { url: String::new(), state: s.clone() }.record(method, path, headers, body);
}

async fn snap(State(s): S, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    rec(&s, "POST", "/snap/v1/transactions".into(), &headers, body.clone());
    if !authorized(&s.lock().unwrap(), &headers) {
        let message = "Access denied due to unauthorized transaction, please check client or server key";
        return (StatusCode::UNAUTHORIZED, Json(json!({ "error_messages": [message] }))).into_response();
    }
    let mode = s.lock().unwrap().snap.clone();
    match mode {
        SnapMode::Ok => {}
        SnapMode::Fail(code) => {
            let status = StatusCode::from_u16(code).unwrap();
            return (status, Json(json!({ "error_messages": ["fake failure"] }))).into_response();
        }
        SnapMode::Delay(d) => tokio::time::sleep(d).await,
    }
    let order = body["transaction_details"]["order_id"].as_str().unwrap_or_default().to_string();
    let token = format!("tok-{order}");
    (
        StatusCode::CREATED,
        Json(json!({ "token": token, "redirect_url": format!("https://app.sandbox.midtrans.com/snap/v2/vtweb/{token}") })),
    )
        .into_response()
}

async fn status(State(s): S, Path(order): Path<String>, headers: HeaderMap) -> Response {
    rec(&s, "GET", format!("/v2/{order}/status"), &headers, Value::Null);
    let st = s.lock().unwrap();
    if !authorized(&st, &headers) {
        return core_error(&st, 401, UNKNOWN_MERCHANT);
    }
    if st.status_fails {
        return (StatusCode::INTERNAL_SERVER_ERROR, "boom").into_response();
    }
    match st.statuses.get(&order) {
        Some(b) => Json(b.clone()).into_response(),
        None => core_error(&st, 404, "Transaction doesn't exist."),
    }
}

async fn cancel(State(s): S, Path(order): Path<String>, headers: HeaderMap) -> Response {
    rec(&s, "POST", format!("/v2/{order}/cancel"), &headers, Value::Null);
    let mut st = s.lock().unwrap();
    if !authorized(&st, &headers) {
        return core_error(&st, 401, UNKNOWN_MERCHANT);
    }
    match st.statuses.get_mut(&order) {
        Some(b) if b["transaction_status"] == "settlement" => Json(json!({
            "status_code": "412", "status_message": "Merchant cannot modify the status of the transaction"
        }))
        .into_response(),
        Some(b) => {
            b["transaction_status"] = json!("cancel");
            b["status_code"] = json!("200");
            Json(b.clone()).into_response()
        }
        None => core_error(&st, 404, "Transaction doesn't exist."),
    }
}

/// The status code Midtrans sends with each transaction_status.
pub fn status_code_for(transaction_status: &str, fraud: Option<&str>) -> &'static str {
    match (transaction_status, fraud) {
        ("capture", Some("challenge")) => "201",
        ("settlement" | "capture" | "refund" | "chargeback", _) => "200",
        ("pending", _) => "201",
        ("expire", _) => "407",
        _ => "202",
    }
}

pub fn status_body(order: &str, gross: i64, transaction_status: &str, fraud: Option<&str>) -> Value {
    let code = status_code_for(transaction_status, fraud);
    let gross = format!("{gross}.00");
    let mut v = json!({
        "order_id": order, "status_code": code, "gross_amount": gross,
        "transaction_status": transaction_status, "transaction_id": format!("mt-{order}"),
        "payment_type": "bank_transfer", "currency": "IDR",
        "signature_key": signature(order, code, &gross, SERVER_KEY),
    });
    if let Some(f) = fraud {
        v["fraud_status"] = json!(f);
    }
    v
}

/// A correctly signed HTTP notification (with a few fields we do not use).
pub fn notification(order: &str, gross: i64, transaction_status: &str, fraud: Option<&str>) -> Value {
    let mut v = status_body(order, gross, transaction_status, fraud);
    v["status_message"] = json!("midtrans payment notification");
    v["transaction_time"] = json!("2026-11-24 10:00:00");
    v["va_numbers"] = json!([{ "bank": "bca", "va_number": "12345678901" }]);
    v
}
