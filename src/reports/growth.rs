//! Users and subscribers per calendar bucket.
use chrono::{DateTime, Utc};
use sea_orm::ConnectionTrait;

use super::{
    period::{self, Bucket, Span},
    sql::{Query, int, lifetimes, lit},
};
use crate::{error::AppResult, users::Role};

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Growth {
    /// Accounts with the USER role registered in the bucket (administrators are not customers).
    pub new_users: i64,
    /// Distinct users with at least one subscription alive at some instant of the bucket: created
    /// before the bucket ends and not yet ended (cancelled or expired) when it starts. Suspended
    /// and free subscriptions count; a subscription ending exactly at the bucket start does not.
    pub active_subscribers: i64,
    /// Subscriptions that ended (became CANCELLED or EXPIRED) in the bucket.
    pub churned_subscriptions: i64,
}

pub struct Point {
    pub span: Span,
    pub growth: Growth,
}

#[tracing::instrument(skip_all, err)]
pub async fn user_growth(
    db: &impl ConnectionTrait,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    bucket: Bucket,
    tz: chrono_tz::Tz,
) -> AppResult<Vec<Point>> {
    let spans = period::spans(from, to, bucket, tz)?;
    let (users, subs) = futures::try_join!(new_users(db, &spans), subscribers(db, &spans))?;
    Ok(spans
        .into_iter()
        .enumerate()
        .map(|(i, span)| {
            let (active, churned) = subs.get(i).copied().unwrap_or_default();
            let growth = Growth {
                new_users: users.get(i).copied().unwrap_or_default(),
                active_subscribers: active,
                churned_subscriptions: churned,
            };
            Point { span, growth }
        })
        .collect())
}

fn place<T: Default + Clone>(n: usize, rows: impl IntoIterator<Item = (i64, T)>) -> Vec<T> {
    let mut out = vec![T::default(); n];
    for (idx, v) in rows {
        if let Some(slot) = usize::try_from(idx).ok().and_then(|i| out.get_mut(i)) {
            *slot = v;
        }
    }
    out
}

async fn new_users(db: &impl ConnectionTrait, spans: &[Span]) -> AppResult<Vec<i64>> {
    let mut q = Query::default();
    let buckets = q.buckets(spans.iter().map(|s| (s.start, s.end)));
    let sql = format!(
        "WITH {buckets} SELECT b.idx AS idx, COUNT(*) AS n FROM b CROSS JOIN users u \
         WHERE u.role = {user} AND u.created_at >= b.lo AND u.created_at < b.hi GROUP BY b.idx",
        user = lit(Role::User),
    );
    let rows = q.all(db, &sql).await?;
    let rows = rows.iter().map(|r| Ok((int(r, "idx")?, int(r, "n")?))).collect::<AppResult<Vec<_>>>()?;
    Ok(place(spans.len(), rows))
}

/// (active subscribers, churned subscriptions) per bucket, from one pass over the lifetimes.
async fn subscribers(db: &impl ConnectionTrait, spans: &[Span]) -> AppResult<Vec<(i64, i64)>> {
    let mut q = Query::default();
    let buckets = q.buckets(spans.iter().map(|s| (s.start, s.end)));
    let sql = format!(
        "WITH {buckets}, {life} SELECT b.idx AS idx, \
         COUNT(DISTINCT CASE WHEN l.started < b.hi AND (l.ended IS NULL OR l.ended > b.lo) THEN l.user_id END) AS active, \
         COUNT(CASE WHEN l.ended >= b.lo AND l.ended < b.hi THEN 1 END) AS churned \
         FROM b CROSS JOIN life l WHERE l.started < b.hi GROUP BY b.idx",
        life = lifetimes(),
    );
    let rows = q.all(db, &sql).await?;
    let rows = rows
        .iter()
        .map(|r| Ok((int(r, "idx")?, (int(r, "active")?, int(r, "churned")?))))
        .collect::<AppResult<Vec<_>>>()?;
    Ok(place(spans.len(), rows))
}
