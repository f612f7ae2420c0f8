//! What the billing jobs face now: renewals coming up, subscriptions in grace or suspended,
//! charges that failed this month, and each job's last pass.
use chrono::{DateTime, Duration, Utc};
use sea_orm::{ConnectionTrait, QueryResult};

use super::{
    period,
    sql::{Query, int, lit},
};
use crate::{billing::TransactionStatus, error::AppResult, jobs::runs, subscriptions::SubscriptionStatus};

/// Listed per group (soonest first); the counts and sums cover all of them.
pub const LISTED: i64 = 100;
/// How far ahead `renewals_due` looks.
pub const RENEWAL_WINDOW_DAYS: i64 = 7;

pub struct Item {
    pub subscription_id: i64,
    pub user_id: i64,
    pub email: String,
    pub service: String,
    pub status: SubscriptionStatus,
    pub monthly_price: i64,
    pub balance: i64,
    pub next_billing_at: Option<DateTime<Utc>>,
    pub grace_period_end: Option<DateTime<Utc>>,
    /// What the balance lacks to pay this subscription's price: `max(price − balance, 0)`.
    /// Per subscription: a user with several due at once needs the sum.
    pub shortfall: i64,
}

pub struct Group {
    pub count: i64,
    /// Sum of the monthly prices.
    pub amount: i64,
    /// Sum of the shortfalls.
    pub shortfall: i64,
    pub items: Vec<Item>,
}

pub struct BillingStatus {
    /// ACTIVE, auto-renewing subscriptions whose next billing time is before now + 7 days
    /// (overdue ones that a job has not charged yet included).
    pub renewals_due: Group,
    /// ACTIVE subscriptions whose renewal failed and whose grace period runs.
    pub in_grace: Group,
    pub suspended: Group,
    /// Renewals refused for want of credit this month (one per grace period started).
    pub failed_renewals: i64,
    /// Ledger rows (top-ups) that ended FAILED this month.
    pub failed_payments: i64,
    pub month_start: DateTime<Utc>,
    pub last_runs: Vec<runs::entity::Model>,
}

const SHORTFALL: &str = "CASE WHEN s.monthly_price > u.balance THEN s.monthly_price - u.balance ELSE 0 END";

/// The count and sums of the subscriptions matching `filter` (whose placeholders `q` binds),
/// and the first `LISTED` of them by `order`.
async fn group(db: &impl ConnectionTrait, filter: &str, q: Query, order: &str) -> AppResult<Group> {
    let from = "FROM subscriptions s JOIN users u ON u.id = s.user_id JOIN services sv ON sv.id = s.service_id";
    let totals = q
        .clone()
        .one(
            db,
            &format!(
                "SELECT COUNT(*) AS n, CAST(COALESCE(SUM(s.monthly_price), 0) AS BIGINT) AS amount, \
                 CAST(COALESCE(SUM({SHORTFALL}), 0) AS BIGINT) AS shortfall {from} WHERE {filter}"
            ),
        )
        .await?;
    let sql = format!(
        "SELECT s.id AS id, s.user_id AS user_id, u.email AS email, sv.name AS service, s.status AS status, \
         s.monthly_price AS monthly_price, u.balance AS balance, s.next_billing_at AS next_billing_at, \
         s.grace_period_end AS grace_period_end, {SHORTFALL} AS shortfall \
         {from} WHERE {filter} ORDER BY {order}, s.id LIMIT {LISTED}"
    );
    let items = q.all(db, &sql).await?.iter().map(item).collect::<AppResult<Vec<_>>>()?;
    let get = |c: &str| totals.as_ref().map_or(Ok(0), |r| int(r, c));
    Ok(Group { count: get("n")?, amount: get("amount")?, shortfall: get("shortfall")?, items })
}

fn item(r: &QueryResult) -> AppResult<Item> {
    Ok(Item {
        subscription_id: int(r, "id")?,
        user_id: int(r, "user_id")?,
        email: r.try_get("", "email")?,
        service: r.try_get("", "service")?,
        status: r.try_get("", "status")?,
        monthly_price: int(r, "monthly_price")?,
        balance: int(r, "balance")?,
        next_billing_at: r.try_get("", "next_billing_at")?,
        grace_period_end: r.try_get("", "grace_period_end")?,
        shortfall: int(r, "shortfall")?,
    })
}

#[tracing::instrument(skip_all, err)]
pub async fn billing_status(
    db: &impl ConnectionTrait,
    now: DateTime<Utc>,
    tz: chrono_tz::Tz,
) -> AppResult<BillingStatus> {
    let active = lit(SubscriptionStatus::Active);
    let mut due = Query::default();
    let until = due.bind(now + Duration::days(RENEWAL_WINDOW_DAYS));
    // TRUE is 1 on SQLite (3.23+), a boolean on PostgreSQL.
    let due_filter = format!(
        "s.status = {active} AND s.auto_renew = TRUE AND s.next_billing_at IS NOT NULL AND s.next_billing_at < {until}"
    );
    let grace_filter = format!("s.status = {active} AND s.grace_period_end IS NOT NULL");
    let suspended_filter = format!("s.status = {}", lit(SubscriptionStatus::Suspended));
    let (month_start, month_end) = period::month_of(now, tz);
    let mut failures = Query::default();
    let (lo, hi) = (failures.bind(month_start), failures.bind(month_end));
    let failures_sql = format!(
        "SELECT (SELECT COUNT(*) FROM subscription_events ev WHERE ev.kind = 'RENEWAL_FAILED' \
           AND ev.created_at >= {lo} AND ev.created_at < {hi}) AS renewals, \
         (SELECT COUNT(*) FROM transactions t WHERE t.status = {failed} \
           AND t.updated_at >= {lo} AND t.updated_at < {hi}) AS payments",
        failed = lit(TransactionStatus::Failed),
    );
    let (renewals_due, in_grace, suspended, failures, last_runs) = futures::try_join!(
        group(db, &due_filter, due, "s.next_billing_at"),
        group(db, &grace_filter, Query::default(), "s.grace_period_end"),
        group(db, &suspended_filter, Query::default(), "s.updated_at"),
        failures.one(db, &failures_sql),
        runs::last_runs(db),
    )?;
    let get = |c: &str| failures.as_ref().map_or(Ok(0), |r| int(r, c));
    Ok(BillingStatus {
        renewals_due,
        in_grace,
        suspended,
        failed_renewals: get("renewals")?,
        failed_payments: get("payments")?,
        month_start,
        last_runs,
    })
}
