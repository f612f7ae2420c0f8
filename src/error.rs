//! The one error type. Every failure a client can see is an `AppError`, and this file is the only
//! place that decides its `extensions.code`, its HTTP status and what is safe to say.
use async_graphql::ErrorExtensions;
use axum::http::StatusCode;
use axum::response::IntoResponse as _;
use sea_orm::{DbErr, SqlErr};

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{message}")]
    BadInput { message: String, field: Option<std::borrow::Cow<'static, str>> },
    /// BAD_USER_INPUT with a machine-readable `extensions.reason` (a coupon refused, …).
    #[error("{message}")]
    Rejected { field: &'static str, reason: &'static str, message: String },
    #[error("{0}")]
    Conflict(String),
    #[error("insufficient credit: balance {balance} IDR, required {required} IDR")]
    InsufficientCredit { balance: i64, required: i64 },
    #[error("{0}")]
    QuotaExhausted(String),
    #[error("the Kubernetes cluster is unavailable: {0}")]
    ClusterUnavailable(String),
    #[error("the payment provider could not be reached or refused the request")]
    PaymentProvider(String),
    /// This gateway has no payment provider configured (no Midtrans server key): nothing was
    /// attempted or recorded.
    #[error("top-ups are not available: this server has no payment provider configured")]
    PaymentsUnavailable,
    #[error("too many attempts; try again in {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    /// A bearer token was sent but cannot be used; `reason` tells a client whether refreshing helps.
    #[error("{}", .0.message())]
    InvalidToken(TokenProblem),
    /// Refused by the transport before any GraphQL ran: malformed body, unknown route, wrong
    /// method or media type, too large, too many operations in a batch.
    #[error("{message}")]
    Transport { status: StatusCode, code: &'static str, message: String },
    /// Automatic persisted queries and the persisted-only mode (`graphql::persisted`). The codes
    /// and messages are the ones Apollo's and urql's persisted-query links act on.
    #[error("{message}")]
    PersistedQuery { code: &'static str, message: &'static str },
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

/// Why a bearer token was refused (`extensions.reason`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenProblem {
    /// Past its expiry: refresh it.
    Expired,
    /// Not a token of ours (malformed, forged, wrong algorithm or key): sign in again.
    Invalid,
    /// Genuine but withdrawn (logout everywhere, password change, deactivated or deleted user).
    Revoked,
}

impl TokenProblem {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Expired => "expired",
            Self::Invalid => "invalid",
            Self::Revoked => "revoked",
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            Self::Expired => "access token expired; refresh it",
            Self::Invalid => "invalid access token",
            Self::Revoked => "access token revoked; sign in again",
        }
    }
}

pub type AppResult<T> = Result<T, AppError>;

impl AppError {
    pub fn bad_input(field: &'static str, message: impl Into<String>) -> Self {
        Self::BadInput { message: message.into(), field: Some(field.into()) }
    }

    /// For fields named by the request itself (argument and input field names).
    pub fn bad_input_named(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::BadInput { message: message.into(), field: Some(std::borrow::Cow::Owned(field.into())) }
    }

    pub fn internal(e: impl Into<anyhow::Error>) -> Self {
        Self::Internal(e.into())
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::Unauthenticated(_) | Self::InvalidToken(_) => "UNAUTHENTICATED",
            Self::Forbidden(_) => "FORBIDDEN",
            Self::NotFound(_) => "NOT_FOUND",
            Self::BadInput { .. } | Self::Rejected { .. } => "BAD_USER_INPUT",
            Self::Conflict(_) => "CONFLICT",
            Self::InsufficientCredit { .. } => "INSUFFICIENT_CREDIT",
            Self::QuotaExhausted(_) => "QUOTA_EXHAUSTED",
            Self::ClusterUnavailable(_) => "CLUSTER_UNAVAILABLE",
            Self::PaymentProvider(_) => "PAYMENT_PROVIDER_ERROR",
            Self::PaymentsUnavailable => "PAYMENTS_UNAVAILABLE",
            Self::RateLimited { .. } => "RATE_LIMITED",
            Self::Transport { code, .. } | Self::PersistedQuery { code, .. } => code,
            Self::Internal(_) => "INTERNAL",
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::Unauthenticated(_) | Self::InvalidToken(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::BadInput { .. } | Self::Rejected { .. } => StatusCode::BAD_REQUEST,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::InsufficientCredit { .. } | Self::QuotaExhausted(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::ClusterUnavailable(_) | Self::PaymentProvider(_) | Self::PaymentsUnavailable => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Transport { status, .. } => *status,
            // A GraphQL answer (Apollo's links read it from the body of a 200).
            Self::PersistedQuery { .. } => StatusCode::OK,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Logs the error once, where it leaves for a client (or ends a job item), in the current
    /// span, which carries the request id. ERROR is for what an operator must look at: internal
    /// causes and the payment provider failing (the failing call itself was logged by the
    /// client that made it). The client's own mistakes are INFO; throttling and an absent
    /// cluster are WARN.
    pub fn log(&self) {
        let code = self.code();
        match self {
            Self::Internal(e) => tracing::error!(code, error = ?e, "internal error"),
            Self::PaymentProvider(detail) => tracing::error!(code, %detail, "payment provider error"),
            Self::ClusterUnavailable(detail) => tracing::warn!(code, %detail, "cluster unavailable"),
            Self::RateLimited { retry_after_secs } => tracing::warn!(code, retry_after_secs, "rate limited"),
            _ => tracing::info!(code, message = %self, "request refused"),
        }
    }
}

impl From<AppError> for async_graphql::Error {
    fn from(e: AppError) -> Self {
        e.log();
        let code = e.code();
        async_graphql::Error::new(e.to_string()).extend_with(|_, ext| {
            ext.set("code", code);
            match &e {
                AppError::BadInput { field: Some(f), .. } => ext.set("field", f.as_ref()),
                AppError::Rejected { field, reason, .. } => {
                    ext.set("field", *field);
                    ext.set("reason", *reason);
                }
                AppError::InsufficientCredit { balance, required } => {
                    ext.set("balance", *balance);
                    ext.set("required", *required);
                    ext.set("shortfall", (*required - *balance).max(0));
                }
                AppError::RateLimited { retry_after_secs } => ext.set("retryAfter", *retry_after_secs),
                AppError::InvalidToken(problem) => ext.set("reason", problem.as_str()),
                _ => {}
            }
        })
    }
}

impl axum::response::IntoResponse for AppError {
    fn into_response(self) -> axum::response::Response {
        self.log();
        let status = self.status();
        let body = serde_json::json!({ "error": { "code": self.code(), "message": self.to_string() } });
        (status, axum::Json(body)).into_response()
    }
}

impl AppError {
    /// The error as a GraphQL response body (`{"errors": [...]}`) with its HTTP status: how the
    /// GraphQL endpoint and every transport refusal answer, so clients parse one format.
    pub fn into_graphql_response(self) -> axum::response::Response {
        let status = self.status();
        let body = async_graphql::Response::from_errors(vec![self.into_server_error()]);
        (status, axum::Json(body)).into_response()
    }

    /// A request-level GraphQL error: no locations or path (nothing in the document caused it).
    pub fn into_server_error(self) -> async_graphql::ServerError {
        let err: async_graphql::Error = self.into();
        let mut err = err.into_server_error(Default::default());
        err.locations.clear();
        err
    }

    pub fn transport(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self::Transport { status, code, message: message.into() }
    }
}

impl From<DbErr> for AppError {
    fn from(e: DbErr) -> Self {
        Self::Internal(e.into())
    }
}

/// Dataloaders share one error value between all waiting resolvers.
impl From<std::sync::Arc<DbErr>> for AppError {
    fn from(e: std::sync::Arc<DbErr>) -> Self {
        Self::Internal(anyhow::anyhow!("{e}"))
    }
}

/// SQLite reports foreign-key failures without the extended code sea-orm looks for.
pub fn is_foreign_key_violation(e: &DbErr) -> bool {
    matches!(e.sql_err(), Some(SqlErr::ForeignKeyConstraintViolation(_)))
        || e.to_string().contains("FOREIGN KEY constraint failed")
}

/// Translate constraint violations into domain errors: insert first, let the database decide.
pub trait DbResultExt<T> {
    fn on_unique_violation(self, f: impl FnOnce(&str) -> AppError) -> AppResult<T>;
}

impl<T> DbResultExt<T> for Result<T, DbErr> {
    fn on_unique_violation(self, f: impl FnOnce(&str) -> AppError) -> AppResult<T> {
        self.map_err(|e| match e.sql_err() {
            Some(SqlErr::UniqueConstraintViolation(detail)) => f(&detail),
            _ => AppError::from(e),
        })
    }
}
