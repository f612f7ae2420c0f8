//! The payment reconciler: catches top-ups whose webhook never arrived, and expires abandoned ones.
use std::time::Duration;

use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use tokio::task::JoinHandle;

use crate::{
    billing::{TransactionStatus, TransactionType, entity as transactions},
    error::{AppError, AppResult},
    payments::topup,
    state::AppState,
};

/// Runs `topup::reconcile` every `interval` until the task is aborted.
pub fn spawn_reconciler(state: AppState, interval: Duration) -> JoinHandle<()> {
    super::every(interval, move || {
        let state = state.clone();
        async move {
            match super::billing::run(&state, super::billing::BillingJob::ReconcilePayments).await {
                Ok(r) if r.processed > 0 => {
                    tracing::info!(
                        processed = r.processed,
                        changed = r.succeeded,
                        failed = r.failed,
                        "payments reconciled"
                    )
                }
                Ok(_) => {}
                Err(e) => tracing::error!(error = ?e, "payment reconciler pass failed"),
            }
        }
    })
}

#[derive(Debug, Default, Clone)]
pub struct ReconcileReport {
    pub processed: usize,
    pub changed: usize,
    pub failed: usize,
    pub details: Vec<String>,
}

/// One reconciler pass: PENDING top-ups older than `payment_reconcile_after` are checked with
/// the status API (a lost webhook), and unknown ones past their expiry are EXPIRED. Safe to
/// run on every replica at once: everything it does is idempotent.
#[tracing::instrument(skip_all)]
pub async fn reconcile(state: &AppState) -> AppResult<ReconcileReport> {
    let cutoff =
        state.now() - chrono::Duration::from_std(state.config.payment_reconcile_after).map_err(AppError::internal)?;
    let rows = transactions::Entity::find()
        .filter(transactions::Column::Kind.eq(TransactionType::TopUp))
        .filter(transactions::Column::Status.eq(TransactionStatus::Pending))
        .filter(transactions::Column::CreatedAt.lte(cutoff))
        .order_by_asc(transactions::Column::Id)
        .limit(200)
        .all(&state.db.conn)
        .await?;
    let mut report = ReconcileReport::default();
    for row in rows {
        report.processed += 1;
        let (id, before) = (row.id, row.status);
        match topup::sync_row(state, row).await {
            Ok(after) if after.status != before => {
                report.changed += 1;
                report.details.push(format!("{}: {:?}", crate::billing::reference(id), after.status));
            }
            Ok(_) => {}
            Err(e) => {
                e.log();
                report.failed += 1;
                report.details.push(format!("{}: {}", crate::billing::reference(id), e));
            }
        }
    }
    Ok(report)
}
