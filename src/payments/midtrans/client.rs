//! The few Midtrans calls we make, with reqwest: Snap create, status, cancel. Basic auth with
//! the server key, a timeout per call, and the same Idempotency-Key on a retried Snap request.
use std::time::Duration;

use base64::Engine;
use serde::Deserialize;
use serde_json::Value;

use crate::{
    config::MidtransConfig,
    error::{AppError, AppResult},
};

pub struct MidtransClient {
    http: reqwest::Client,
    config: MidtransConfig,
    metrics: crate::telemetry::Metrics,
}

#[derive(Debug, Deserialize)]
pub struct SnapResponse {
    pub token: String,
    pub redirect_url: String,
}

/// The status API answer (and the cancel answer). Only what we use; the rest is ignored.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct StatusResponse {
    pub order_id: Option<String>,
    pub status_code: Option<String>,
    pub transaction_status: Option<String>,
    pub fraud_status: Option<String>,
    pub gross_amount: Option<String>,
    pub transaction_id: Option<String>,
    pub payment_type: Option<String>,
    pub status_message: Option<String>,
}

const SNAP_ATTEMPTS: usize = 2;

impl MidtransClient {
    pub fn new(http: reqwest::Client, config: MidtransConfig, metrics: crate::telemetry::Metrics) -> Self {
        Self { http, config, metrics }
    }

    /// Sends one request, recording its latency (until headers) and outcome. Failures are WARN
    /// here (a Snap request is retried); the PAYMENT_PROVIDER_ERROR they end in is the ERROR.
    async fn send(&self, operation: &str, req: reqwest::RequestBuilder) -> reqwest::Result<reqwest::Response> {
        let started = std::time::Instant::now();
        let result = req.send().await;
        let outcome = match &result {
            Ok(resp) => crate::telemetry::upstream::status_class(resp.status().as_u16()),
            Err(e) => {
                tracing::warn!(operation, error = %e, "Midtrans request failed");
                "error"
            }
        };
        if let Ok(resp) = &result
            && resp.status().is_server_error()
        {
            tracing::warn!(operation, status = resp.status().as_u16(), "Midtrans answered with a server error");
        }
        self.metrics.upstream("midtrans", operation, outcome, started.elapsed());
        result
    }

    pub fn config(&self) -> &MidtransConfig {
        &self.config
    }

    /// Whether a server key is set; without one no Midtrans call can be made.
    pub fn is_configured(&self) -> bool {
        self.config.server_key.as_ref().is_some_and(|k| !k.is_empty())
    }

    fn auth(&self) -> AppResult<String> {
        let key = self.config.server_key.as_ref().filter(|k| !k.is_empty()).ok_or(AppError::PaymentsUnavailable)?;
        let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{}:", key.expose()));
        Ok(format!("Basic {encoded}"))
    }

    fn request(&self, method: reqwest::Method, url: String) -> AppResult<reqwest::RequestBuilder> {
        Ok(self
            .http
            .request(method, url)
            .header(reqwest::header::AUTHORIZATION, self.auth()?)
            .header(reqwest::header::ACCEPT, "application/json")
            .timeout(self.config.timeout))
    }

    /// `POST {snap}/transactions`. Timeouts, connection errors and 5xx are retried once with the
    /// same `Idempotency-Key`, so Midtrans creates at most one transaction.
    #[tracing::instrument(skip_all)]
    pub async fn create_snap(&self, body: &Value, idempotency_key: &str) -> AppResult<SnapResponse> {
        let url = format!("{}/transactions", self.config.snap_url);
        let mut last = String::new();
        for attempt in 0..SNAP_ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            let req = self.request(reqwest::Method::POST, url.clone())?.header("Idempotency-Key", idempotency_key);
            let resp = match self.send("snap_create", req.json(body)).await {
                Ok(r) => r,
                Err(e) => {
                    last = format!("snap request failed: {e}");
                    continue;
                }
            };
            let status = resp.status();
            let text = resp.text().await.unwrap_or_default();
            if status.is_server_error() {
                last = format!("snap answered {status}: {}", truncate(&text));
                continue;
            }
            if !status.is_success() {
                return Err(AppError::PaymentProvider(format!("snap answered {status}: {}", truncate(&text))));
            }
            return serde_json::from_str(&text)
                .map_err(|e| AppError::PaymentProvider(format!("unexpected snap answer ({e}): {}", truncate(&text))));
        }
        Err(AppError::PaymentProvider(last))
    }

    /// `GET {api}/v2/{order}/status`; `None` when Midtrans does not know the order (a Snap
    /// payment whose customer has not chosen a method yet).
    #[tracing::instrument(skip_all, fields(order_id))]
    pub async fn status(&self, order_id: &str) -> AppResult<Option<StatusResponse>> {
        let url = format!("{}/v2/{}/status", self.config.api_url, order_id);
        self.core_call("status", self.request(reqwest::Method::GET, url)?).await
    }

    /// `POST {api}/v2/{order}/cancel`; `None` when Midtrans does not know the order.
    #[tracing::instrument(skip_all, fields(order_id))]
    pub async fn cancel(&self, order_id: &str) -> AppResult<Option<StatusResponse>> {
        let url = format!("{}/v2/{}/cancel", self.config.api_url, order_id);
        self.core_call("cancel", self.request(reqwest::Method::POST, url)?).await
    }

    async fn core_call(&self, operation: &str, req: reqwest::RequestBuilder) -> AppResult<Option<StatusResponse>> {
        let resp = self
            .send(operation, req)
            .await
            .map_err(|e| AppError::PaymentProvider(format!("core API request failed: {e}")))?;
        let http_status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        if http_status == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !http_status.is_success() {
            return Err(AppError::PaymentProvider(format!("core API answered {http_status}: {}", truncate(&text))));
        }
        let body: StatusResponse = serde_json::from_str(&text)
            .map_err(|e| AppError::PaymentProvider(format!("unexpected core API answer ({e}): {}", truncate(&text))))?;
        // Midtrans reports errors in the body with HTTP 200; 407 is the normal answer for an
        // expired transaction, and 404 means "not found".
        match body.status_code.as_deref().and_then(|c| c.parse::<u16>().ok()) {
            Some(404) => Ok(None),
            Some(c) if c >= 400 && c != 407 => {
                Err(AppError::PaymentProvider(format!("core API status_code {c}: {}", truncate(&text))))
            }
            _ => Ok(Some(body)),
        }
    }
}

fn truncate(s: &str) -> &str {
    match s.char_indices().nth(300) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}
