//! ARPU and churn of one calendar month.
use sea_orm::ConnectionTrait;

use super::{
    period,
    sql::{CHARGES, Query, completed, int, lifetimes, list, lit},
};
use crate::{billing::TransactionType, error::AppResult};

#[derive(Clone, Debug, PartialEq)]
pub struct MonthlyRates {
    pub start: chrono::DateTime<chrono::Utc>,
    pub end: chrono::DateTime<chrono::Utc>,
    /// Charges (first periods, upgrades, renewals) minus refunds completed in the month.
    pub revenue: i64,
    /// Distinct users with at least one completed charge in the month.
    pub paying_users: i64,
    /// Average revenue per paying user: `revenue / paying_users`, rounded to the nearest whole
    /// IDR (halves away from zero); null without paying users.
    pub arpu: Option<i64>,
    /// Subscriptions alive at the first instant of the month (created at or before it, not yet
    /// ended).
    pub live_at_start: i64,
    /// Subscriptions that ended (CANCELLED or EXPIRED) during the month, including ones created
    /// during it.
    pub churned: i64,
    /// `churned / live_at_start`; null when nothing was alive at the start.
    pub churn_rate: Option<f64>,
}

fn rounded_div(a: i64, b: i64) -> Option<i64> {
    if b == 0 {
        return None;
    }
    let (a, b) = (i128::from(a), i128::from(b));
    let q = (2 * a.abs() + b) / (2 * b);
    i64::try_from(if a < 0 { -q } else { q }).ok()
}

#[tracing::instrument(skip_all, err)]
pub async fn monthly_rates(db: &impl ConnectionTrait, month: &str, tz: chrono_tz::Tz) -> AppResult<MonthlyRates> {
    let (start, end) = period::month(month, tz)?;
    let mut q = Query::default();
    let (lo, hi) = (q.bind(start), q.bind(end));
    let refund = lit(TransactionType::Refund);
    let sql = format!(
        "WITH {life}, \
         money AS (SELECT CAST(COALESCE(SUM(CASE WHEN t.type = {refund} THEN -t.amount ELSE t.amount END), 0) AS BIGINT) AS revenue, \
           COUNT(DISTINCT CASE WHEN t.type <> {refund} THEN t.user_id END) AS paying \
           FROM transactions t WHERE t.status = {completed} AND t.completed_at >= {lo} AND t.completed_at < {hi} \
           AND t.type IN ({kinds})), \
         subs AS (SELECT COUNT(CASE WHEN l.started <= {lo} AND (l.ended IS NULL OR l.ended > {lo}) THEN 1 END) AS live, \
           COUNT(CASE WHEN l.ended >= {lo} AND l.ended < {hi} THEN 1 END) AS churned FROM life l) \
         SELECT money.revenue AS revenue, money.paying AS paying, subs.live AS live, subs.churned AS churned \
         FROM money CROSS JOIN subs",
        life = lifetimes(),
        completed = completed(),
        kinds = list(CHARGES.into_iter().chain([TransactionType::Refund])),
    );
    let row = q.one(db, &sql).await?;
    let get = |c: &str| row.as_ref().map_or(Ok(0), |r| int(r, c));
    let (revenue, paying_users, live_at_start, churned) =
        (get("revenue")?, get("paying")?, get("live")?, get("churned")?);
    Ok(MonthlyRates {
        start,
        end,
        revenue,
        paying_users,
        arpu: rounded_div(revenue, paying_users),
        live_at_start,
        churned,
        churn_rate: (live_at_start > 0).then(|| churned as f64 / live_at_start as f64),
    })
}

#[cfg(test)]
mod tests {
    use super::rounded_div;

    #[test]
    fn arpu_rounds_to_the_nearest_idr() {
        assert_eq!(rounded_div(100, 3), Some(33));
        assert_eq!(rounded_div(200, 3), Some(67));
        assert_eq!(rounded_div(5, 2), Some(3));
        assert_eq!(rounded_div(-5, 2), Some(-3));
        assert_eq!(rounded_div(1, 0), None);
    }
}
