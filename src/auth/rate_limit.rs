//! Fixed-window attempt counters: login and registration per client IP, per (email, client IP)
//! and per email (a slower ceiling); password changes per user.
use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use crate::error::{AppError, AppResult};

pub struct RateLimiter {
    limit: u32,
    window: Duration,
    buckets: Mutex<HashMap<String, (Instant, u32)>>,
}

impl RateLimiter {
    pub fn per_minute(limit: u32) -> Self {
        Self::new(limit, Duration::from_secs(60))
    }

    pub fn per_hour(limit: u32) -> Self {
        Self::new(limit, Duration::from_secs(3600))
    }

    fn new(limit: u32, window: Duration) -> Self {
        Self { limit, window, buckets: Mutex::new(HashMap::new()) }
    }

    /// RATE_LIMITED while `key` has used up its window, without counting an attempt (for limits
    /// that count only failures, checked before each try).
    pub fn check(&self, key: &str) -> AppResult<()> {
        let now = Instant::now();
        let buckets = self.buckets.lock().map_err(|_| AppError::internal(anyhow::anyhow!("rate limiter poisoned")))?;
        match buckets.get(key) {
            Some((start, n)) if *n >= self.limit && now.duration_since(*start) < self.window => {
                Err(self.limited(*start, now))
            }
            _ => Ok(()),
        }
    }

    /// Counts one attempt for `key`; RATE_LIMITED (with the seconds until the window resets)
    /// once the limit is passed.
    pub fn hit(&self, key: &str) -> AppResult<()> {
        let now = Instant::now();
        let mut buckets =
            self.buckets.lock().map_err(|_| AppError::internal(anyhow::anyhow!("rate limiter poisoned")))?;
        if buckets.len() > 100_000 {
            // Bound memory under a spray of distinct keys: forget finished windows.
            buckets.retain(|_, (start, _)| now.duration_since(*start) < self.window);
        }
        let entry = buckets.entry(key.to_string()).or_insert((now, 0));
        if now.duration_since(entry.0) >= self.window {
            *entry = (now, 0);
        }
        entry.1 += 1;
        if entry.1 > self.limit {
            return Err(self.limited(entry.0, now));
        }
        Ok(())
    }

    /// RATE_LIMITED with the seconds until the window that began at `start` resets.
    fn limited(&self, start: Instant, now: Instant) -> AppError {
        AppError::RateLimited {
            retry_after_secs: self.window.saturating_sub(now.duration_since(start)).as_secs().max(1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_per_key() {
        let rl = RateLimiter::per_minute(2);
        assert!(rl.hit("a").is_ok());
        assert!(rl.hit("a").is_ok());
        assert!(matches!(rl.hit("a"), Err(AppError::RateLimited { retry_after_secs }) if retry_after_secs <= 60));
        assert!(rl.hit("b").is_ok());
    }

    #[test]
    fn check_counts_nothing_and_refuses_a_used_up_window() {
        let rl = RateLimiter::per_minute(2);
        assert!(rl.check("a").is_ok());
        assert!(rl.hit("a").is_ok());
        assert!(rl.check("a").is_ok());
        assert!(rl.hit("a").is_ok());
        assert!(matches!(rl.check("a"), Err(AppError::RateLimited { .. })));
        assert!(rl.check("b").is_ok());
    }
}
