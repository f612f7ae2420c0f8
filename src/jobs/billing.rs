//! The billing jobs: automatic renewals, grace periods (suspension and expiry), low-credit
//! warnings. Each job selects ids, then hands every subscription to one use case in
//! `crate::subscriptions::renewal`, one transaction each: a failure of one does not stop the
//! others, and concurrent runs (replicas, a manual `runBillingJob`) cannot act twice.
use std::{collections::BTreeMap, time::Duration};

use chrono::Duration as Days;
use tokio::task::JoinHandle;

use super::{payments, runs};
use crate::{
    error::AppResult,
    state::AppState,
    subscriptions::renewal::{self, Outcome},
};

#[derive(Copy, Clone, Debug, PartialEq, Eq, async_graphql::Enum)]
pub enum BillingJob {
    Renewals,
    GracePeriod,
    LowCreditWarnings,
    ReconcileInstances,
    ReconcilePayments,
}

/// What a pass did: `processed` items looked at, `succeeded` acted on, `failed` refused or in
/// error; the rest needed nothing (or another runner got there first). `details` has one short
/// line per success or failure.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct JobReport {
    pub processed: usize,
    pub succeeded: usize,
    pub failed: usize,
    pub details: Vec<String>,
}

impl JobReport {
    fn add(&mut self, id: i64, result: AppResult<Outcome>) {
        self.processed += 1;
        match result {
            Ok(Outcome::Done(d)) => {
                self.succeeded += 1;
                self.details.push(d);
            }
            Ok(Outcome::Skipped) => {}
            Ok(Outcome::Failed(d)) => {
                self.failed += 1;
                self.details.push(d);
            }
            Err(e) => {
                e.log();
                self.failed += 1;
                self.details.push(format!("subscription {id}: {e}"));
            }
        }
    }
}

impl BillingJob {
    /// The `job` label of the job metrics.
    pub fn label(self) -> &'static str {
        match self {
            Self::Renewals => "renewals",
            Self::GracePeriod => "grace_period",
            Self::LowCreditWarnings => "low_credit_warnings",
            Self::ReconcileInstances => "reconcile_instances",
            Self::ReconcilePayments => "reconcile_payments",
        }
    }
}

/// Runs one job now (the periodic runners and `runBillingJob` alike), recording the pass in the
/// job metrics and as the job's last run in `job_runs` (read by the admin's `billingStatus`).
pub async fn run(state: &AppState, job: BillingJob) -> AppResult<JobReport> {
    let started = std::time::Instant::now();
    let started_at = state.now();
    let result = run_pass(state, job).await;
    let items = result.as_ref().ok().map(|r| (r.succeeded, r.failed));
    let finished_at = state.now();
    state.metrics.job_run(job.label(), items, started.elapsed(), finished_at.timestamp());
    let outcome = match &result {
        Ok(r) => Ok((r.processed, r.succeeded, r.failed)),
        Err(e) => Err(format!("{}: {e}", e.code())),
    };
    let recorded = runs::Run { job: job.label(), started_at, finished_at, result: outcome };
    // The pass is done either way; failing to note it must not turn it into an error.
    if let Err(e) = runs::record(&state.db.conn, recorded).await {
        tracing::warn!(job = job.label(), error = %e, "could not record the job run");
    }
    result
}

async fn run_pass(state: &AppState, job: BillingJob) -> AppResult<JobReport> {
    match job {
        BillingJob::Renewals => renewals(state).await,
        BillingJob::GracePeriod => grace_period(state).await,
        BillingJob::LowCreditWarnings => low_credit_warnings(state).await,
        BillingJob::ReconcilePayments => {
            let r = payments::reconcile(state).await?;
            Ok(JobReport { processed: r.processed, succeeded: r.changed, failed: r.failed, details: r.details })
        }
        BillingJob::ReconcileInstances => {
            let r = crate::instances::reconcile::run_once(state).await?;
            let mut details = r.details;
            if r.skipped {
                details.push("another reconcile pass is running; nothing done".into());
            }
            Ok(JobReport {
                processed: r.processed,
                succeeded: r.changed + r.orphans_deleted,
                failed: r.failed,
                details,
            })
        }
    }
}

/// Charges every due auto-renewing subscription (see `renewal::renew_due`).
#[tracing::instrument(skip_all)]
pub async fn renewals(state: &AppState) -> AppResult<JobReport> {
    let mut report = JobReport::default();
    for id in renewal::due_for_renewal(state, state.now()).await? {
        report.add(id, renewal::renew_due(state, id).await);
    }
    Ok(report)
}

/// Reminds owners whose grace ends within `MINISPOD_GRACE_REMINDER_HOURS`, suspends
/// subscriptions whose grace is over, expires those suspended past the retention and those
/// that reached the period end with auto-renew off.
#[tracing::instrument(skip_all)]
pub async fn grace_period(state: &AppState) -> AppResult<JobReport> {
    let mut report = JobReport::default();
    let now = state.now();
    let until = now + Days::hours(state.config.notifications.grace_reminder_hours);
    for id in renewal::grace_ending(state, now, until).await? {
        report.add(id, renewal::remind_grace(state, id, until).await);
    }
    for id in renewal::grace_over(state, now).await? {
        report.add(id, renewal::suspend_unpaid(state, id).await);
    }
    let mut expiring = renewal::suspension_over(state, now).await?;
    expiring.extend(renewal::ended_without_renewal(state, now).await?);
    for id in expiring {
        report.add(id, renewal::expire(state, id).await);
    }
    Ok(report)
}

/// Warns owners whose balance does not cover their paid renewals due within
/// `MINISPOD_LOW_CREDIT_DAYS`: one notice per renewal that the balance cannot reach, taking the
/// renewals in the order they fall due, once per period.
#[tracing::instrument(skip_all)]
pub async fn low_credit_warnings(state: &AppState) -> AppResult<JobReport> {
    let days = state.config.notifications.low_credit_days;
    let upcoming = renewal::upcoming_renewals(state, state.now() + Days::days(days)).await?;
    let mut by_user: BTreeMap<i64, Vec<renewal::UpcomingRenewal>> = BTreeMap::new();
    for r in upcoming {
        by_user.entry(r.user_id).or_default().push(r);
    }
    let mut report = JobReport::default();
    for (user_id, renewals) in by_user {
        report.processed += 1;
        let balance = match crate::users::service::get(&state.db.conn, user_id).await {
            Ok(u) => u.balance,
            Err(e) => {
                report.failed += 1;
                report.details.push(format!("user {user_id}: {e}"));
                continue;
            }
        };
        let mut due = 0;
        for r in renewals {
            due += r.amount;
            if due <= balance {
                continue;
            }
            match renewal::warn_low_credit(state, &r, balance).await {
                Ok(Outcome::Done(d)) => {
                    report.succeeded += 1;
                    report.details.push(format!("user {user_id}: {d}"));
                }
                Ok(_) => {}
                Err(e) => {
                    e.log();
                    report.failed += 1;
                    report.details.push(format!("user {user_id}: subscription {}: {e}", r.subscription_id));
                }
            }
        }
    }
    Ok(report)
}

/// Runs RENEWALS, GRACE_PERIOD and LOW_CREDIT_WARNINGS every `interval` until the task is
/// aborted. Every replica
/// may run it: each change is a conditional update, so concurrent passes cannot act twice.
pub fn spawn_runner(state: AppState, interval: Duration) -> JoinHandle<()> {
    super::every(interval, move || {
        let state = state.clone();
        async move {
            for job in [BillingJob::Renewals, BillingJob::GracePeriod, BillingJob::LowCreditWarnings] {
                match run(&state, job).await {
                    Ok(r) if r.succeeded + r.failed > 0 => tracing::info!(
                        ?job,
                        processed = r.processed,
                        succeeded = r.succeeded,
                        failed = r.failed,
                        "billing job ran"
                    ),
                    Ok(_) => {}
                    Err(e) => tracing::error!(?job, error = ?e, "billing job pass failed"),
                }
            }
        }
    })
}
