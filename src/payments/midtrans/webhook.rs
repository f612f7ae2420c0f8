//! `POST /webhooks/midtrans`: the HTTP notification. Parsed leniently (unknown fields ignored),
//! authenticated by `signature_key`, then handed to the same use case as `syncTopUp`.
//! Replies: 200 handled or ignored · 400 malformed or amount mismatch · 401 bad signature ·
//! 404 unknown order · 5xx when we failed internally (so Midtrans retries).
use axum::{
    Json,
    body::Bytes,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use serde_json::json;

use super::signature;
use crate::{
    error::AppError,
    payments::topup::{self, ProviderStatus},
    state::AppState,
};

#[derive(Debug, Deserialize)]
pub struct Notification {
    pub order_id: String,
    pub status_code: String,
    pub gross_amount: String,
    pub signature_key: String,
    pub transaction_status: String,
    #[serde(default)]
    pub fraud_status: Option<String>,
    #[serde(default)]
    pub transaction_id: Option<String>,
    #[serde(default)]
    pub payment_type: Option<String>,
}

#[tracing::instrument(skip_all)]
pub async fn midtrans_webhook(State(state): State<AppState>, body: Bytes) -> Response {
    let (result, response) = handle(&state, &body).await;
    state.metrics.webhook("midtrans", result);
    response
}

/// The reply, and the result label of `minispod_webhooks_total`: `applied`, `malformed`,
/// `not_configured`, `invalid_signature`, or the lower-case error code.
async fn handle(state: &AppState, body: &[u8]) -> (&'static str, Response) {
    let n: Notification = match serde_json::from_slice(body) {
        Ok(n) => n,
        Err(e) => {
            let e = AppError::BadInput { message: format!("malformed notification: {e}"), field: None };
            return ("malformed", e.into_response());
        }
    };
    let Some(key) = state.midtrans.config().server_key.clone().filter(|k| !k.is_empty()) else {
        tracing::error!("Midtrans notification received but MIDTRANS_SERVER_KEY is not configured");
        return ("not_configured", AppError::PaymentsUnavailable.into_response());
    };
    if !signature::verify(&n.order_id, &n.status_code, &n.gross_amount, key.expose(), &n.signature_key) {
        tracing::warn!(order_id = %n.order_id, "Midtrans notification with an invalid signature");
        // Logged above at WARN (a forged notification is worth a look), not again as a refusal.
        let body = json!({ "error": { "code": "UNAUTHENTICATED", "message": "invalid signature" } });
        return ("invalid_signature", (StatusCode::UNAUTHORIZED, Json(body)).into_response());
    }
    let status = ProviderStatus {
        transaction_status: n.transaction_status,
        fraud_status: n.fraud_status,
        status_code: Some(n.status_code),
        payment_type: n.payment_type,
        transaction_id: n.transaction_id,
    };
    match topup::handle_notification(state, &n.order_id, &n.gross_amount, status).await {
        Ok(row) => (
            "applied",
            (StatusCode::OK, Json(json!({ "ok": true, "transactionId": row.id.to_string() }))).into_response(),
        ),
        Err(e) => (error_label(&e), e.into_response()),
    }
}

fn error_label(e: &AppError) -> &'static str {
    match e {
        AppError::NotFound(_) => "not_found",
        AppError::BadInput { .. } => "bad_user_input",
        AppError::Conflict(_) => "conflict",
        AppError::Internal(_) => "internal",
        AppError::PaymentProvider(_) => "payment_provider_error",
        _ => "error",
    }
}
