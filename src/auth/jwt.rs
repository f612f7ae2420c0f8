//! Access tokens: JWT HS256, short-lived. Only HS256 with our key is accepted; `alg: none`,
//! other algorithms and other keys are rejected by the validation below.
use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, encode};
use serde::{Deserialize, Serialize};

use crate::{
    error::{AppError, AppResult},
    users::Role,
};

#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub role: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
    /// The user's token version at issue time; bumping it revokes every older access token.
    pub ver: i32,
}

#[derive(Clone)]
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

pub struct IssuedToken {
    pub token: String,
    pub expires_at: DateTime<Utc>,
}

impl JwtKeys {
    pub fn new(secret: &[u8]) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 5;
        validation.set_required_spec_claims(&["exp", "iat", "sub"]);
        Self { encoding: EncodingKey::from_secret(secret), decoding: DecodingKey::from_secret(secret), validation }
    }

    pub fn issue(
        &self,
        user_id: i64,
        role: Role,
        token_version: i32,
        now: DateTime<Utc>,
        ttl: std::time::Duration,
    ) -> AppResult<IssuedToken> {
        let ttl = chrono::Duration::from_std(ttl).map_err(AppError::internal)?;
        let expires_at = now + ttl;
        let claims = Claims {
            sub: user_id.to_string(),
            role: role.as_str().to_string(),
            iat: now.timestamp(),
            exp: expires_at.timestamp(),
            jti: uuid::Uuid::new_v4().to_string(),
            ver: token_version,
        };
        let token = encode(&Header::new(Algorithm::HS256), &claims, &self.encoding).map_err(AppError::internal)?;
        Ok(IssuedToken { token, expires_at })
    }

    /// Validates signature, algorithm and expiry against the real clock.
    pub fn verify(&self, token: &str) -> Result<Claims, jsonwebtoken::errors::Error> {
        decode::<Claims>(token, &self.decoding, &self.validation).map(|d| d.claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    fn b64url(data: &[u8]) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(data)
    }

    fn keys() -> JwtKeys {
        JwtKeys::new(b"0123456789abcdef0123456789abcdef")
    }

    #[test]
    fn round_trip() {
        let t = keys().issue(7, Role::Administrator, 3, Utc::now(), std::time::Duration::from_secs(900)).unwrap();
        let c = keys().verify(&t.token).unwrap();
        assert_eq!((c.sub.as_str(), c.role.as_str(), c.ver), ("7", "ADMINISTRATOR", 3));
    }

    #[test]
    fn rejects_other_keys_expired_and_alg_none() {
        let t = keys().issue(7, Role::User, 0, Utc::now(), std::time::Duration::from_secs(900)).unwrap();
        assert!(JwtKeys::new(b"another-key-another-key-another-key").verify(&t.token).is_err());

        let old = keys()
            .issue(7, Role::User, 0, Utc::now() - chrono::Duration::hours(2), std::time::Duration::from_secs(900))
            .unwrap();
        assert!(keys().verify(&old.token).is_err());

        let payload = t.token.split('.').nth(1).unwrap();
        let none = format!("{}.{}.", b64url(br#"{"alg":"none","typ":"JWT"}"#), payload);
        assert!(keys().verify(&none).is_err());
        let hs512 = format!("{}.{}.{}", b64url(br#"{"alg":"HS512","typ":"JWT"}"#), payload, "c2ln");
        assert!(keys().verify(&hs512).is_err());
    }
}
