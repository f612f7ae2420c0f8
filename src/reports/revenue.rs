//! Revenue per calendar bucket and per service, from COMPLETED ledger rows by `completed_at`
//! (the moment the money moved). Each figure is a SQL `SUM`; Rust only places them.
//!
//! The whole UTC hours of a range come from `ledger_hourly` (the ledger summed per hour, kept by
//! triggers); only the partial hours at a bucket's ends (a range's own ends, and day boundaries
//! of half-hour zones) are summed from the ledger rows. One user's figures (their wallet's
//! statistics) come from the ledger alone: the hourly sums do not say whose money it was.
use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sea_orm::ConnectionTrait;

use super::{
    hourly::{self, Split},
    period::{self, Bucket, Span},
    sql::{CHARGES, Query, completed, int, list, sums_per_range},
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
    fn add(&mut self, kind: TransactionType, amount: i64) {
        let slot = match kind {
            TransactionType::Subscription => &mut self.subscription_charges,
            TransactionType::Upgrade => &mut self.upgrades,
            TransactionType::Renewal => &mut self.renewals,
            TransactionType::Refund => &mut self.refunds,
            TransactionType::TopUp => &mut self.top_ups,
            TransactionType::Reversal => &mut self.reversals,
            // Credit given, not money received: counted by the coupon statistics instead.
            TransactionType::AdminAdjustment | TransactionType::CouponRedemption => return,
        };
        *slot += amount;
    }

    fn add_all(&mut self, other: &Totals) {
        for kind in SERIES {
            self.add(kind, other.get(kind));
        }
    }

    fn get(&self, kind: TransactionType) -> i64 {
        match kind {
            TransactionType::Subscription => self.subscription_charges,
            TransactionType::Upgrade => self.upgrades,
            TransactionType::Renewal => self.renewals,
            TransactionType::Refund => self.refunds,
            TransactionType::TopUp => self.top_ups,
            TransactionType::Reversal => self.reversals,
            TransactionType::AdminAdjustment | TransactionType::CouponRedemption => 0,
        }
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

#[tracing::instrument(skip_all, err)]
pub async fn revenue(
    db: &impl ConnectionTrait,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    bucket: Bucket,
    tz: chrono_tz::Tz,
    owner: Option<i64>,
) -> AppResult<Revenue> {
    let spans = period::spans(from, to, bucket, tz)?;
    let (series, by_service) = match owner {
        Some(_) => {
            let ranges: Vec<_> = spans.iter().map(|s| (s.start, s.end)).collect();
            futures::try_join!(ledger_series(db, &ranges, owner), ledger_by_service(db, from, to, owner))?
        }
        None => futures::try_join!(series(db, &spans), by_service(db, from, to))?,
    };
    let series = spans.into_iter().zip(series).map(|(span, totals)| Point { span, totals }).collect();
    Ok(Revenue { series, by_service })
}

/// The kinds of a series, in `Totals` order.
const SERIES: [TransactionType; 6] = [
    TransactionType::Subscription,
    TransactionType::Upgrade,
    TransactionType::Renewal,
    TransactionType::Refund,
    TransactionType::TopUp,
    TransactionType::Reversal,
];

/// One correlated `SUM` per bucket and kind: each is one contiguous range of
/// `idx_transactions_completed_cover` (status, type, completed_at, amount, …), read without
/// touching the table, and the correlation makes both databases run them as nested lookups
/// (a join on a range condition may otherwise be planned as a scan of the whole ledger).
async fn ledger_series(
    db: &impl ConnectionTrait,
    ranges: &[(DateTime<Utc>, DateTime<Utc>)],
    owner: Option<i64>,
) -> AppResult<Vec<Totals>> {
    let mut q = Query::default();
    let of_owner = owner_clause(&mut q, owner);
    let sum_of = |kind: &str| {
        format!(
            "SELECT CAST(COALESCE(SUM(t.amount), 0) AS BIGINT) FROM transactions t WHERE t.status = {} \
             AND t.type = {kind} AND t.completed_at >= b.lo AND t.completed_at < b.hi{of_owner}",
            completed()
        )
    };
    let sums = sums_per_range(db, q, ranges.iter().copied(), &SERIES, sum_of).await?;
    Ok(place(sums, ranges.len()))
}

/// `(range index, kind, sum)` rows as one `Totals` per range.
fn place(sums: Vec<(usize, TransactionType, i64)>, ranges: usize) -> Vec<Totals> {
    let mut out = vec![Totals::default(); ranges];
    for (i, kind, total) in sums {
        if let Some(t) = out.get_mut(i) {
            t.add(kind, total);
        }
    }
    out
}

/// Each bucket: its whole hours from `ledger_hourly`, its partial hours from the ledger.
async fn series(db: &impl ConnectionTrait, spans: &[Span]) -> AppResult<Vec<Totals>> {
    let splits: Vec<Split> = spans.iter().map(|s| hourly::split(s.start, s.end)).collect();
    // The partial hours of all buckets in one statement, each remembering its bucket.
    let (owners, edges): (Vec<usize>, Vec<_>) =
        splits.iter().enumerate().flat_map(|(i, s)| s.edges.iter().map(move |e| (i, *e))).unzip();
    let hours: Vec<_> = splits.iter().map(|s| s.hours.clone()).collect();
    let (whole, partial) = futures::try_join!(hourly::series(db, &hours, &SERIES), ledger_series(db, &edges, None))?;
    let mut out = place(whole, spans.len());
    for (bucket, totals) in owners.into_iter().zip(partial) {
        if let Some(t) = out.get_mut(bucket) {
            t.add_all(&totals);
        }
    }
    Ok(out)
}

/// `AND t.user_id = $n` for one user's figures (their wallet's statistics), else nothing.
fn owner_clause(q: &mut Query, owner: Option<i64>) -> String {
    owner.map(|u| format!(" AND t.user_id = {}", q.bind(u))).unwrap_or_default()
}

/// Charges and refunds per service over `[from, to)`: whole hours from `ledger_hourly`, the
/// partial hours at either end from the ledger.
async fn by_service(
    db: &impl ConnectionTrait,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> AppResult<Vec<ServiceRevenue>> {
    let split = hourly::split(from, to);
    let kinds = service_kinds();
    let whole = hourly::by_service(db, split.hours.clone(), &kinds);
    let (head, tail) = match split.edges.as_slice() {
        [] => (None, None),
        [one] => (Some(*one), None),
        [first, .., last] => (Some(*first), Some(*last)),
    };
    let edge = |e: Option<(DateTime<Utc>, DateTime<Utc>)>| async move {
        match e {
            Some((lo, hi)) => ledger_by_service(db, lo, hi, None).await,
            None => Ok(Vec::new()),
        }
    };
    let (whole, head, tail) = futures::try_join!(whole, edge(head), edge(tail))?;
    // Merged by service, in the order of the names (then ids, for equal names).
    let mut merged: BTreeMap<(String, i64), Totals> = BTreeMap::new();
    for (service_id, name, kind, total) in whole {
        merged.entry((name, service_id)).or_default().add(kind, total);
    }
    for s in head.into_iter().chain(tail) {
        merged.entry((s.name, s.service_id)).or_default().add_all(&s.totals);
    }
    Ok(merged.into_iter().map(|((name, service_id), totals)| ServiceRevenue { service_id, name, totals }).collect())
}

/// The kinds a service earns or gives back.
fn service_kinds() -> Vec<TransactionType> {
    CHARGES.into_iter().chain([TransactionType::Refund]).collect()
}

/// Charges and refunds per service: ledger row → its subscription → the subscription's service
/// (a subscription's plan always belongs to that service, so the plan adds nothing).
async fn ledger_by_service(
    db: &impl ConnectionTrait,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    owner: Option<i64>,
) -> AppResult<Vec<ServiceRevenue>> {
    let mut q = Query::default();
    let (lo, hi) = (q.bind(from), q.bind(to));
    let of_owner = owner_clause(&mut q, owner);
    // Summed per subscription first (an index-only scan), so the join meets thousands of groups
    // rather than every ledger row of the range.
    let sql = format!(
        "WITH per_sub AS (SELECT t.subscription_id AS sid, t.type AS kind, SUM(t.amount) AS total FROM transactions t \
           WHERE t.status = {completed} AND t.type IN ({kinds}) AND t.completed_at >= {lo} AND t.completed_at < {hi} \
           AND t.subscription_id IS NOT NULL{of_owner} GROUP BY t.subscription_id, t.type) \
         SELECT sv.id AS service_id, sv.name AS name, p.kind AS kind, CAST(SUM(p.total) AS BIGINT) AS total \
         FROM per_sub p JOIN subscriptions s ON s.id = p.sid JOIN services sv ON sv.id = s.service_id \
         GROUP BY sv.id, sv.name, p.kind ORDER BY sv.name, sv.id",
        completed = completed(),
        kinds = list(service_kinds()),
    );
    let mut out: Vec<ServiceRevenue> = Vec::new();
    for row in q.all(db, &sql).await? {
        let service_id = int(&row, "service_id")?;
        let kind: TransactionType = row.try_get("", "kind")?;
        let total = int(&row, "total")?;
        match out.last_mut() {
            Some(last) if last.service_id == service_id => last.totals.add(kind, total),
            _ => {
                let mut totals = Totals::default();
                totals.add(kind, total);
                out.push(ServiceRevenue { service_id, name: row.try_get("", "name")?, totals });
            }
        }
    }
    Ok(out)
}
