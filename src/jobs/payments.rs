//! The payment reconciler: catches top-ups whose webhook never arrived, and expires abandoned ones.
use std::time::Duration;

use tokio::task::JoinHandle;

use crate::{payments::topup, state::AppState};

/// Runs `topup::reconcile` every `interval` until the task is aborted.
pub fn spawn_reconciler(state: AppState, interval: Duration) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await; // the first tick is immediate; let start-up finish first
        loop {
            tick.tick().await;
            match topup::reconcile(&state).await {
                Ok(r) if r.processed > 0 => {
                    tracing::info!(
                        processed = r.processed,
                        changed = r.changed,
                        failed = r.failed,
                        "payments reconciled"
                    )
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "payment reconciler pass failed"),
            }
        }
    })
}
