//! Background jobs. Each runs on every replica; each is idempotent, so no leader is needed.
pub mod billing;
pub mod graphql;
pub mod payments;
pub mod runs;

use std::{future::Future, time::Duration};

use tokio::task::JoinHandle;

/// Runs `pass` every `interval` until the task is aborted. The first pass waits one interval so
/// start-up finishes first; a slow pass delays the next instead of bunching them up.
pub fn every<F, Fut>(interval: Duration, mut pass: F) -> JoinHandle<()>
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await; // immediate
        loop {
            tick.tick().await;
            pass().await;
        }
    })
}
