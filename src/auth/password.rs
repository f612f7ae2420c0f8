//! Password hashing with argon2id (OWASP parameters). Hashing is CPU-heavy, so it runs on the
//! blocking pool behind a semaphore: a login flood queues instead of starving the runtime.
use std::sync::Arc;

use argon2::{
    Algorithm, Argon2, Params, Version,
    password_hash::{PasswordHasher, PasswordVerifier},
};
use tokio::sync::Semaphore;

use crate::error::{AppError, AppResult};

/// Stored instead of a hash for accounts without a password (invited, not yet accepted;
/// anonymized): not a PHC string, so no password verifies against it.
pub const NO_PASSWORD: &str = "!no-password";

#[derive(Clone)]
pub struct PasswordHasherPool {
    permits: Arc<Semaphore>,
    /// A real hash of a random password, verified against when the email is unknown so that
    /// unknown accounts cost the same time as wrong passwords.
    dummy_hash: Arc<String>,
}

fn argon2() -> AppResult<Argon2<'static>> {
    let params = Params::new(19_456, 2, 1, None).map_err(|e| AppError::internal(anyhow::anyhow!("{e}")))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

fn hash_blocking(password: &str) -> AppResult<String> {
    argon2()?
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| AppError::internal(anyhow::anyhow!("argon2 hash failed: {e}")))
}

fn verify_blocking(password: &str, hash: &str) -> AppResult<bool> {
    Ok(argon2()?.verify_password(password.as_bytes(), hash).is_ok())
}

impl PasswordHasherPool {
    pub fn new(concurrency: usize) -> AppResult<Self> {
        let random: [u8; 16] = rand::random();
        Ok(Self {
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            dummy_hash: Arc::new(hash_blocking(&hex::encode(random))?),
        })
    }

    pub async fn hash(&self, password: &str) -> AppResult<String> {
        let _permit = self.permits.acquire().await.map_err(AppError::internal)?;
        let password = password.to_string();
        tokio::task::spawn_blocking(move || hash_blocking(&password)).await.map_err(AppError::internal)?
    }

    /// Verifies against `hash`, or against the dummy hash when there is none (unknown user, or an
    /// account without a password).
    pub async fn verify(&self, password: &str, hash: Option<&str>) -> AppResult<bool> {
        let _permit = self.permits.acquire().await.map_err(AppError::internal)?;
        let password = password.to_string();
        // An account without a password costs a real verification too, so the time of a
        // failed login does not tell invited or anonymized accounts from others.
        let (hash, real) = match hash {
            Some(h) if h != NO_PASSWORD => (h.to_string(), true),
            _ => (self.dummy_hash.as_ref().clone(), false),
        };
        let ok = tokio::task::spawn_blocking(move || verify_blocking(&password, &hash))
            .await
            .map_err(AppError::internal)??;
        Ok(ok && real)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_are_argon2id_with_owasp_parameters() {
        let pool = PasswordHasherPool::new(1).unwrap();
        let h = pool.hash("correct horse").await.unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(pool.verify("correct horse", Some(&h)).await.unwrap());
        assert!(!pool.verify("wrong horse", Some(&h)).await.unwrap());
        assert!(!pool.verify("anything", None).await.unwrap());
        assert!(!pool.verify("", Some(NO_PASSWORD)).await.unwrap());
        assert!(!pool.verify(NO_PASSWORD, Some(NO_PASSWORD)).await.unwrap());
    }
}
