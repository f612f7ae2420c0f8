//! A raw statement that reads the same on SQLite and PostgreSQL: `$n` placeholders (both accept
//! them), UTC instants bound as parameters (stored and compared as RFC 3339 text on SQLite, as
//! `timestamptz` on PostgreSQL), sums cast to BIGINT (PostgreSQL's SUM of BIGINT is NUMERIC).
use sea_orm::{ConnectionTrait, QueryResult, Statement, Value};

use crate::{
    billing::{TransactionStatus, TransactionType},
    error::AppResult,
    subscriptions::SubscriptionStatus,
};

#[derive(Clone, Default)]
pub struct Query {
    values: Vec<Value>,
}

impl Query {
    /// Binds `v` and returns its placeholder.
    pub fn bind(&mut self, v: impl Into<Value>) -> String {
        self.values.push(v.into());
        format!("${}", self.values.len())
    }

    /// `b(idx, lo, hi) AS (VALUES …)`: one row per range (bucket), numbered from 0, to be joined
    /// by range (`t.at >= b.lo AND t.at < b.hi`).
    pub fn buckets<V: Into<Value>>(&mut self, ranges: impl IntoIterator<Item = (V, V)>) -> String {
        let rows: Vec<String> = ranges
            .into_iter()
            .enumerate()
            .map(|(i, (lo, hi))| {
                let (idx, lo, hi) = (self.bind(i as i64), self.bind(lo), self.bind(hi));
                format!("({idx}, {lo}, {hi})")
            })
            .collect();
        format!("b(idx, lo, hi) AS (VALUES {})", rows.join(", "))
    }

    pub async fn all(self, db: &impl ConnectionTrait, sql: &str) -> AppResult<Vec<QueryResult>> {
        let stmt = Statement::from_sql_and_values(db.get_database_backend(), sql, self.values);
        Ok(db.query_all_raw(stmt).await?)
    }

    pub async fn one(self, db: &impl ConnectionTrait, sql: &str) -> AppResult<Option<QueryResult>> {
        let stmt = Statement::from_sql_and_values(db.get_database_backend(), sql, self.values);
        Ok(db.query_one_raw(stmt).await?)
    }
}

/// `(range index, kind, sum)` for every range and kind: one correlated `SUM` each, so both
/// databases run each as a short range of an index (a join on a range condition may be planned
/// as a scan of the whole table). `sum_of(kind literal)` is the `SELECT SUM(…)` over the range
/// `b.lo`..`b.hi`; `q` holds any parameters it already uses.
pub async fn sums_per_range<V: Into<Value>>(
    db: &impl ConnectionTrait,
    mut q: Query,
    ranges: impl IntoIterator<Item = (V, V)>,
    kinds: &[TransactionType],
    sum_of: impl Fn(&str) -> String,
) -> AppResult<Vec<(usize, TransactionType, i64)>> {
    let ranges: Vec<(V, V)> = ranges.into_iter().collect();
    if ranges.is_empty() {
        return Ok(Vec::new());
    }
    let buckets = q.buckets(ranges);
    let sums: Vec<String> =
        kinds.iter().enumerate().map(|(k, kind)| format!("({}) AS k{k}", sum_of(&lit(*kind)))).collect();
    let sql = format!("WITH {buckets} SELECT b.idx AS idx, {} FROM b", sums.join(", "));
    let mut out = Vec::new();
    for row in q.all(db, &sql).await? {
        let idx = usize::try_from(int(&row, "idx")?).unwrap_or(usize::MAX);
        for (k, kind) in kinds.iter().enumerate() {
            out.push((idx, *kind, int(&row, &format!("k{k}"))?));
        }
    }
    Ok(out)
}

/// The stored names, written into statements as literals (they are our constants): a literal
/// lets the planners use the column statistics and the indexes on `status`.
pub fn lit<T: sea_orm::ActiveEnum<Value = String>>(v: T) -> String {
    format!("'{}'", v.to_value())
}

pub fn list<T: sea_orm::ActiveEnum<Value = String>>(vs: impl IntoIterator<Item = T>) -> String {
    vs.into_iter().map(lit).collect::<Vec<_>>().join(", ")
}

pub fn completed() -> String {
    lit(TransactionStatus::Completed)
}

/// Debits for a plan: the first period, an upgrade's difference, a renewal.
pub const CHARGES: [TransactionType; 3] =
    [TransactionType::Subscription, TransactionType::Upgrade, TransactionType::Renewal];

/// Statuses a subscription never leaves.
pub const ENDED: [SubscriptionStatus; 2] = [SubscriptionStatus::Cancelled, SubscriptionStatus::Expired];

/// `life(id, user_id, started, ended)`: each subscription's lifetime. It starts when the row was
/// created and, once CANCELLED or EXPIRED, ends at its first event into one of those statuses
/// (falling back to `cancelled_at`, then `updated_at`, for rows without history); `ended` is
/// NULL while it lives.
pub fn lifetimes() -> String {
    let ended = list(ENDED);
    format!(
        "life(id, user_id, started, ended) AS (SELECT s.id, s.user_id, s.created_at, \
         CASE WHEN s.status IN ({ended}) THEN COALESCE((SELECT MIN(ev.created_at) FROM subscription_events ev \
         WHERE ev.subscription_id = s.id AND ev.to_status IN ({ended})), s.cancelled_at, s.updated_at) END \
         FROM subscriptions s)"
    )
}

pub fn int(row: &QueryResult, col: &str) -> AppResult<i64> {
    Ok(row.try_get::<Option<i64>>("", col)?.unwrap_or_default())
}
