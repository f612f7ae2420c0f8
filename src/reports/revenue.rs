//! Revenue per calendar bucket and per service, from COMPLETED ledger rows by `completed_at`
//! (the moment the money moved). Each figure is a SQL `SUM`; Rust only places them.
use chrono::{DateTime, Utc};
use sea_orm::ConnectionTrait;

use super::{
    period::{self, Bucket, Span},
    sql::{CHARGES, Query, completed, int, list},
};
use crate::{billing::TransactionType, error::AppResult};

/// One bucket's ledger totals (whole IDR, all positive).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    /// SUBSCRIPTION rows: first periods.
    pub subscription_charges: i64,
    /// UPGRADE rows: prorated plan differences.
    pub upgrades: i64,
    /// RENEWAL rows: automatic and manual renewals.
    pub renewals: i64,
    /// REFUND rows: credit given back on cancellation.
    pub refunds: i64,
    /// TOP_UP rows: money paid in (gross).
    pub top_ups: i64,
    /// REVERSAL rows: top-ups taken back after the payment was reversed.
    pub reversals: i64,
}

impl Totals {
    fn set(&mut self, kind: TransactionType, amount: i64) {
        let slot = match kind {
            TransactionType::Subscription => &mut self.subscription_charges,
            TransactionType::Upgrade => &mut self.upgrades,
            TransactionType::Renewal => &mut self.renewals,
            TransactionType::Refund => &mut self.refunds,
            TransactionType::TopUp => &mut self.top_ups,
            TransactionType::Reversal => &mut self.reversals,
            TransactionType::AdminAdjustment => return,
        };
        *slot = amount;
    }
}

pub struct Point {
    pub span: Span,
    pub totals: Totals,
}

/// Charges and refunds of one service over the whole range.
pub struct ServiceRevenue {
    pub service_id: i64,
    pub name: String,
    pub totals: Totals,
}

pub struct Revenue {
    pub series: Vec<Point>,
    pub by_service: Vec<ServiceRevenue>,
}

/// The kinds a revenue series reports (ADMIN_ADJUSTMENT is neither revenue nor payment).
fn kinds() -> String {
    list([
        TransactionType::Subscription,
        TransactionType::Upgrade,
        TransactionType::Renewal,
        TransactionType::Refund,
        TransactionType::TopUp,
        TransactionType::Reversal,
    ])
}

#[tracing::instrument(skip_all, err)]
pub async fn revenue(
    db: &impl ConnectionTrait,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    bucket: Bucket,
    tz: chrono_tz::Tz,
) -> AppResult<Revenue> {
    let spans = period::spans(from, to, bucket, tz)?;
    let (series, by_service) = futures::try_join!(series(db, &spans), by_service(db, from, to))?;
    let series = spans.into_iter().zip(series).map(|(span, totals)| Point { span, totals }).collect();
    Ok(Revenue { series, by_service })
}

/// One `SUM` per (bucket, kind). `CROSS JOIN` fixes the join order on SQLite (the bucket list
/// drives one range scan of `idx_transactions_completed_cover` per bucket); PostgreSQL plans it
/// as an inner join and picks the same nested loop.
async fn series(db: &impl ConnectionTrait, spans: &[Span]) -> AppResult<Vec<Totals>> {
    let mut q = Query::default();
    let buckets = q.buckets(spans);
    let sql = format!(
        "WITH {buckets} SELECT b.idx AS idx, t.type AS kind, CAST(SUM(t.amount) AS BIGINT) AS total \
         FROM b CROSS JOIN transactions t \
         WHERE t.status = {completed} AND t.completed_at >= b.lo AND t.completed_at < b.hi AND t.type IN ({kinds}) \
         GROUP BY b.idx, t.type",
        completed = completed(),
        kinds = kinds(),
    );
    let mut out = vec![Totals::default(); spans.len()];
    for row in q.all(db, &sql).await? {
        let idx = int(&row, "idx")?;
        let kind: TransactionType = row.try_get("", "kind")?;
        if let Some(t) = usize::try_from(idx).ok().and_then(|i| out.get_mut(i)) {
            t.set(kind, int(&row, "total")?);
        }
    }
    Ok(out)
}

/// Charges and refunds per service: ledger row → its subscription → the subscription's service
/// (a subscription's plan always belongs to that service, so the plan adds nothing).
async fn by_service(
    db: &impl ConnectionTrait,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> AppResult<Vec<ServiceRevenue>> {
    let mut q = Query::default();
    let (lo, hi) = (q.bind(from), q.bind(to));
    let sql = format!(
        "SELECT sv.id AS service_id, sv.name AS name, t.type AS kind, CAST(SUM(t.amount) AS BIGINT) AS total \
         FROM transactions t JOIN subscriptions s ON s.id = t.subscription_id JOIN services sv ON sv.id = s.service_id \
         WHERE t.status = {completed} AND t.completed_at >= {lo} AND t.completed_at < {hi} AND t.type IN ({kinds}) \
         GROUP BY sv.id, sv.name, t.type ORDER BY sv.name, sv.id",
        completed = completed(),
        kinds = list(CHARGES.into_iter().chain([TransactionType::Refund])),
    );
    let mut out: Vec<ServiceRevenue> = Vec::new();
    for row in q.all(db, &sql).await? {
        let service_id = int(&row, "service_id")?;
        let kind: TransactionType = row.try_get("", "kind")?;
        let total = int(&row, "total")?;
        match out.last_mut() {
            Some(last) if last.service_id == service_id => last.totals.set(kind, total),
            _ => {
                let mut totals = Totals::default();
                totals.set(kind, total);
                out.push(ServiceRevenue { service_id, name: row.try_get("", "name")?, totals });
            }
        }
    }
    Ok(out)
}
