//! Authentication: passwords, access tokens, rotating refresh tokens, throttling, and the guards
//! resolvers use to learn who is asking.
pub mod client_ip;
pub mod entity;
pub mod graphql;
pub mod jwt;
pub mod password;
pub mod rate_limit;
pub mod revocations;
pub mod service;

use sea_orm::EntityTrait;

use crate::{
    config::Config,
    error::{AppError, AppResult, TokenProblem},
    state::AppState,
    users::{Role, entity as users},
};

/// Long-lived auth machinery, built once at start-up.
pub struct AuthCore {
    pub keys: jwt::JwtKeys,
    pub hasher: password::PasswordHasherPool,
    /// Per (email, client address): what one address may try against one account.
    pub email_ip_limiter: rate_limit::RateLimiter,
    /// Per email, all addresses together: slower, so one address alone never reaches it.
    pub email_limiter: rate_limit::RateLimiter,
    pub ip_limiter: rate_limit::RateLimiter,
    /// Per user: guesses of the current password in changePassword.
    pub password_change_limiter: rate_limit::RateLimiter,
    /// Per user: unknown coupon codes, so codes cannot be found by trying them.
    pub coupon_guess_limiter: rate_limit::RateLimiter,
}

impl AuthCore {
    pub fn new(config: &Config, jwt_secret: &[u8]) -> AppResult<Self> {
        Ok(Self {
            keys: jwt::JwtKeys::new(jwt_secret),
            hasher: password::PasswordHasherPool::new(config.password_hash_concurrency)?,
            email_ip_limiter: rate_limit::RateLimiter::per_minute(config.rate_limit.per_email_per_minute),
            email_limiter: rate_limit::RateLimiter::per_hour(config.rate_limit.per_email_per_hour),
            ip_limiter: rate_limit::RateLimiter::per_minute(config.rate_limit.per_ip_per_minute),
            password_change_limiter: rate_limit::RateLimiter::per_hour(config.rate_limit.password_change_per_hour),
            coupon_guess_limiter: rate_limit::RateLimiter::per_hour(config.rate_limit.coupon_guesses_per_hour),
        })
    }
}

/// The signed-in user of a request, as checked against the database (active, current token).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Viewer {
    pub id: i64,
    pub role: Role,
}

impl Viewer {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Administrator
    }
}

/// What the request's credentials amount to.
#[derive(Clone, Debug)]
pub enum Auth {
    Anonymous,
    /// A token was sent but is expired, forged, revoked or belongs to a deactivated user.
    Invalid(TokenProblem),
    User(Viewer),
}

impl Auth {
    pub fn viewer(&self) -> AppResult<Viewer> {
        match self {
            Auth::User(v) => Ok(*v),
            Auth::Anonymous => Err(AppError::Unauthenticated("sign in required".into())),
            Auth::Invalid(problem) => Err(AppError::InvalidToken(*problem)),
        }
    }

    pub fn admin(&self) -> AppResult<Viewer> {
        let v = self.viewer()?;
        if !v.is_admin() {
            return Err(AppError::Forbidden("administrator role required".into()));
        }
        Ok(v)
    }
}

/// Turns an `Authorization` header value (or the WebSocket init payload's) into `Auth`. One
/// primary-key read per authenticated request keeps deactivation and revocation immediate.
pub async fn authenticate(state: &AppState, header: Option<&str>) -> AppResult<Auth> {
    Ok(authenticate_until(state, header).await?.0)
}

/// `authenticate`, plus the token's expiry (unix seconds) for a signed-in viewer: a WebSocket
/// connection must end by then.
pub async fn authenticate_until(state: &AppState, header: Option<&str>) -> AppResult<(Auth, Option<i64>)> {
    let Some(header) = header else {
        return Ok((Auth::Anonymous, None));
    };
    let invalid = |problem| Ok((Auth::Invalid(problem), None));
    let Some(token) = header.strip_prefix("Bearer ").or_else(|| header.strip_prefix("bearer ")) else {
        return invalid(TokenProblem::Invalid);
    };
    let claims = match state.auth.keys.verify(token.trim()) {
        Ok(claims) => claims,
        // The signature is checked before the expiry: only our own tokens are "expired".
        Err(e) if matches!(e.kind(), jsonwebtoken::errors::ErrorKind::ExpiredSignature) => {
            return invalid(TokenProblem::Expired);
        }
        Err(_) => return invalid(TokenProblem::Invalid),
    };
    let Ok(user_id) = claims.sub.parse::<i64>() else {
        return invalid(TokenProblem::Invalid);
    };
    let user = users::Entity::find_by_id(user_id).one(&state.db.conn).await?;
    Ok(match user {
        Some(u) if u.is_active && u.token_version == claims.ver => {
            (Auth::User(Viewer { id: u.id, role: u.role }), Some(claims.exp))
        }
        _ => (Auth::Invalid(TokenProblem::Revoked), None),
    })
}
