//! The email sender: every replica runs one. A pass claims due rows of the outbox with a lease
//! (a short transaction, committed before any SMTP), sends them one by one and records each
//! outcome only while it still holds the lease, so a sender that stalled past its lease cannot
//! overwrite the result of the one that took over.
use std::time::Duration;

use chrono::{DateTime, DurationRound, Utc};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseBackend, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    QueryTrait, Set,
    sea_query::{Expr, ExprTrait, LockBehavior, LockType},
};
use tokio::task::JoinHandle;

use super::{
    EmailStatus,
    entity::outbox,
    mailer::{Mailer, Outgoing, SendError},
};
use crate::{
    config::MailSettings,
    error::{AppError, AppResult},
    pagination::{Page, PageArgs},
    state::AppState,
};

/// The longest wait between two attempts of one email.
const MAX_BACKOFF: Duration = Duration::from_secs(3_600);
/// Longest `last_error` kept: SMTP replies can be long, and only the gist helps an operator.
const MAX_ERROR_CHARS: usize = 500;

/// Starts this replica's sender, or nothing when mail is off (MINISPOD_SMTP_URL unset).
pub fn spawn_sender(state: AppState) -> Option<JoinHandle<()>> {
    let settings = state.config.notifications.mail.clone()?;
    let mailer = match Mailer::new(&settings) {
        Ok(m) => m,
        Err(e) => {
            // Config validated the URL; this only happens with settings built in code.
            tracing::error!(error = %e, "email sender not started");
            return None;
        }
    };
    Some(tokio::spawn(run(state, mailer, settings)))
}

async fn run(state: AppState, mailer: Mailer, settings: MailSettings) {
    loop {
        let more = match pass(&state, &mailer, &settings).await {
            Ok(p) => p.more,
            Err(e) => {
                e.log();
                false
            }
        };
        if more {
            continue;
        }
        // `notify_one` leaves a permit when nobody waits, so mail queued during the pass is
        // not missed.
        tokio::select! {
            () = state.notices.mail_queued.notified() => {}
            () = tokio::time::sleep(settings.poll_interval) => {}
        }
    }
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PassReport {
    pub claimed: usize,
    pub sent: usize,
    pub retried: usize,
    pub failed: usize,
    /// Claimed but handed back unsent because the lease would not cover another send.
    pub released: usize,
    /// Due mail may be left: pass again at once.
    pub more: bool,
}

/// Emails one sender has in flight at once, each on its own pooled SMTP connection. lettre
/// writes a message's end marker in a second small write, which Nagle holds until the server's
/// delayed ACK (up to 40 ms): one connection alone manages about 25 emails a second.
pub const PARALLEL_SENDS: usize = 8;

enum Step {
    Recorded(Recorded),
    Released(u64),
}

/// One pass: claim up to `batch` due emails, send them, record each outcome.
pub async fn pass(state: &AppState, mailer: &Mailer, settings: &MailSettings) -> AppResult<PassReport> {
    use futures::StreamExt;
    let now = state.now();
    let lease_until = micros(now + chrono::Duration::from_std(lease(mailer)).map_err(AppError::internal)?);
    let send_timeout = chrono::Duration::from_std(mailer.send_timeout).map_err(AppError::internal)?;
    let rows = claim(state, now, lease_until, settings.batch).await?;
    let mut report =
        PassReport { claimed: rows.len(), more: rows.len() as u64 >= u64::from(settings.batch), ..Default::default() };
    // Collected first: a lazy `map` would put its closure in this future's type, which then
    // fails the `Send` check of `tokio::spawn` (a known higher-ranked lifetime limitation).
    let mut sends = Vec::with_capacity(rows.len());
    for row in &rows {
        sends.push(send_one(state, mailer, settings, row, lease_until, send_timeout));
    }
    let steps: Vec<AppResult<Step>> = futures::stream::iter(sends).buffer_unordered(PARALLEL_SENDS).collect().await;
    for step in steps {
        match step? {
            Step::Recorded(Recorded::Sent) => report.sent += 1,
            Step::Recorded(Recorded::Retried) => report.retried += 1,
            Step::Recorded(Recorded::Failed) => report.failed += 1,
            Step::Released(n) => {
                report.released += n as usize;
                report.more = true;
            }
        }
    }
    if report.claimed > 0 {
        tracing::debug!(?report, "email pass");
    }
    Ok(report)
}

async fn send_one(
    state: &AppState,
    mailer: &Mailer,
    settings: &MailSettings,
    row: &outbox::Model,
    lease_until: DateTime<Utc>,
    send_timeout: chrono::Duration,
) -> AppResult<Step> {
    // A send that might outlast the lease is handed back instead of started.
    if state.now() + send_timeout > lease_until {
        return Ok(Step::Released(release(state, &[row.id], lease_until).await?));
    }
    let email = Outgoing {
        outbox_id: row.id,
        to: &row.recipient,
        subject: &row.subject,
        text: &row.text_body,
        html: &row.html_body,
    };
    let outcome = mailer.send(&email).await;
    Ok(Step::Recorded(record(state, settings, row, lease_until, outcome).await?))
}

/// How long a claim lasts: a few sends' worth. Before each send the sender checks that one
/// more fits, so a crashed replica's emails wait at most this long for another.
fn lease(mailer: &Mailer) -> Duration {
    mailer.send_timeout * 5
}

/// PostgreSQL keeps microseconds; a lease compared for equality later must round-trip exactly.
fn micros(t: DateTime<Utc>) -> DateTime<Utc> {
    t.duration_trunc(chrono::Duration::microseconds(1)).unwrap_or(t)
}

/// Takes due, unleased QUEUED rows: sets their lease and counts the attempt, in one statement.
/// PostgreSQL skips rows another replica is claiming at the same moment; SQLite's writer lock
/// (`Db::begin`) serialises claims.
async fn claim(
    state: &AppState,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    batch: u32,
) -> AppResult<Vec<outbox::Model>> {
    let mut due = outbox::Entity::find()
        .select_only()
        .column(outbox::Column::Id)
        .filter(outbox::Column::Status.eq(EmailStatus::Queued))
        .filter(outbox::Column::NextAttemptAt.lte(now))
        .filter(Condition::any().add(outbox::Column::LeaseUntil.is_null()).add(outbox::Column::LeaseUntil.lte(now)))
        .order_by_asc(outbox::Column::Id)
        .limit(u64::from(batch));
    if state.db.backend() == DatabaseBackend::Postgres {
        due = due.lock_with_behavior(LockType::Update, LockBehavior::SkipLocked);
    }
    let tx = state.db.begin().await?;
    let mut rows = outbox::Entity::update_many()
        .col_expr(outbox::Column::LeaseUntil, Expr::val(lease_until))
        .col_expr(outbox::Column::Attempts, Expr::col(outbox::Column::Attempts).add(1))
        .filter(outbox::Column::Id.in_subquery(due.into_query()))
        .exec_with_returning(&*tx)
        .await?;
    tx.commit().await?;
    rows.sort_by_key(|r| r.id);
    Ok(rows)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Recorded {
    Sent,
    Retried,
    Failed,
}

impl Recorded {
    fn label(self) -> &'static str {
        match self {
            Self::Sent => "sent",
            Self::Retried => "retried",
            Self::Failed => "failed",
        }
    }
}

/// Writes the outcome of one attempt, if this sender still holds the row's lease.
async fn record(
    state: &AppState,
    settings: &MailSettings,
    row: &outbox::Model,
    lease_until: DateTime<Utc>,
    outcome: Result<(), SendError>,
) -> AppResult<Recorded> {
    let now = state.now();
    let mut change = outbox::ActiveModel { lease_until: Set(None), ..Default::default() };
    let recorded = match &outcome {
        Ok(()) => {
            change.status = Set(EmailStatus::Sent);
            change.sent_at = Set(Some(now));
            change.last_error = Set(None);
            Recorded::Sent
        }
        Err(SendError::Transient(e)) if row.attempts < settings.max_attempts as i32 => {
            let wait = backoff(settings.retry_base, row.attempts);
            change.next_attempt_at = Set(now + chrono::Duration::from_std(wait).map_err(AppError::internal)?);
            change.last_error = Set(Some(truncate(e)));
            tracing::info!(outbox_id = row.id, attempts = row.attempts, retry_in_secs = wait.as_secs(), error = %e, "email not sent; will retry");
            Recorded::Retried
        }
        Err(e) => {
            change.status = Set(EmailStatus::Failed);
            change.last_error = Set(Some(truncate(e.message())));
            let permanent = matches!(e, SendError::Permanent(_));
            tracing::warn!(outbox_id = row.id, attempts = row.attempts, permanent, error = %e.message(), "email given up");
            Recorded::Failed
        }
    };
    // Counted before the write, so whoever sees the row also sees the count.
    state.metrics.email(recorded.label());
    let updated = update_leased(state, &[row.id], lease_until, outbox::Entity::update_many().set(change)).await?;
    if updated == 0 {
        tracing::warn!(
            outbox_id = row.id,
            outcome = recorded.label(),
            "email lease ran out before its outcome was recorded"
        );
    }
    Ok(recorded)
}

/// Hands unsent rows back: not an attempt, and due again at once.
async fn release(state: &AppState, ids: &[i64], lease_until: DateTime<Utc>) -> AppResult<u64> {
    let back = outbox::Entity::update_many()
        .col_expr(outbox::Column::LeaseUntil, Expr::val(None::<DateTime<Utc>>))
        .col_expr(outbox::Column::Attempts, Expr::col(outbox::Column::Attempts).sub(1));
    update_leased(state, ids, lease_until, back).await
}

/// Applies `update` to those of `ids` that are still QUEUED under this sender's lease; returns
/// how many were.
async fn update_leased(
    state: &AppState,
    ids: &[i64],
    lease_until: DateTime<Utc>,
    update: sea_orm::UpdateMany<outbox::Entity>,
) -> AppResult<u64> {
    let tx = state.db.begin().await?;
    let n = update
        .filter(outbox::Column::Id.is_in(ids.iter().copied()))
        .filter(outbox::Column::Status.eq(EmailStatus::Queued))
        .filter(outbox::Column::LeaseUntil.eq(lease_until))
        .exec(&*tx)
        .await?
        .rows_affected;
    tx.commit().await?;
    Ok(n)
}

/// The wait after the `attempts`-th failure: base, 2×base, 4×base, … up to an hour.
pub fn backoff(base: Duration, attempts: i32) -> Duration {
    let doublings = Ord::min(u32::try_from(attempts.saturating_sub(1)).unwrap_or(0), 31);
    Ord::min(base.saturating_mul(1u32 << doublings), MAX_BACKOFF)
}

fn truncate(e: &str) -> String {
    e.chars().take(MAX_ERROR_CHARS).collect()
}

/// Admin: the outbox, newest first, optionally of one status.
pub async fn list(
    db: &impl ConnectionTrait,
    status: Option<EmailStatus>,
    args: PageArgs,
) -> AppResult<Page<outbox::Model>> {
    let mut q = outbox::Entity::find();
    if let Some(status) = status {
        q = q.filter(outbox::Column::Status.eq(status));
    }
    crate::pagination::newest_first(db, q, outbox::Column::Id, args).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_an_hour() {
        let base = Duration::from_secs(30);
        assert_eq!(backoff(base, 1), base);
        assert_eq!(backoff(base, 2), Duration::from_secs(60));
        assert_eq!(backoff(base, 4), Duration::from_secs(240));
        assert_eq!(backoff(base, 8), MAX_BACKOFF);
        assert_eq!(backoff(base, 100), MAX_BACKOFF);
        assert_eq!(backoff(base, 0), base);
    }
}
