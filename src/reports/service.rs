//! Platform statistics for the admin dashboard.
use chrono::{DateTime, Datelike, TimeZone, Utc};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, sea_query::Expr,
};

use crate::{
    billing::{TransactionStatus, TransactionType, entity as transactions},
    catalog::entity::plan,
    error::AppResult,
    subscriptions::{SubscriptionStatus, entity::subscription},
    users::entity as users,
};

pub struct PlatformStats {
    pub users: u64,
    pub active_subscriptions: u64,
    /// Sum of the monthly prices of ACTIVE subscriptions that renew.
    pub monthly_recurring_revenue: i64,
    /// Charges (subscriptions, upgrades, renewals) minus refunds completed this calendar month.
    pub revenue_this_month: i64,
    /// Top-ups minus reversals completed this calendar month.
    pub top_ups_this_month: i64,
    /// Coupon redemptions (wallet, checkout, welcome bonus) this calendar month.
    pub coupon_redemptions_this_month: u64,
    /// Credit given away by coupons (COUPON_REDEMPTION ledger rows) this calendar month.
    pub coupon_credit_this_month: i64,
    pub plans: Vec<(plan::Model, u64)>,
}

/// The first instant of `now`'s calendar month (UTC).
pub fn month_start(now: DateTime<Utc>) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(now.year(), now.month(), 1, 0, 0, 0).single().unwrap_or(now)
}

/// `SUM(amount)` of completed ledger rows of `kinds` since `from`, as BIGINT on both databases.
async fn completed_sum(db: &impl ConnectionTrait, kinds: &[TransactionType], from: DateTime<Utc>) -> AppResult<i64> {
    let sum: Option<i64> = transactions::Entity::find()
        .select_only()
        .column_as(Expr::cust("CAST(COALESCE(SUM(amount), 0) AS BIGINT)"), "total")
        .filter(transactions::Column::Kind.is_in(kinds.iter().copied()))
        .filter(transactions::Column::Status.eq(TransactionStatus::Completed))
        .filter(transactions::Column::CompletedAt.gte(from))
        .into_tuple()
        .one(db)
        .await?;
    Ok(sum.unwrap_or_default())
}

pub async fn platform_stats(db: &impl ConnectionTrait, now: DateTime<Utc>) -> AppResult<PlatformStats> {
    let from = month_start(now);
    let active = subscription::Entity::find().filter(subscription::Column::Status.eq(SubscriptionStatus::Active));
    let mrr: Option<i64> = active
        .clone()
        .filter(subscription::Column::AutoRenew.eq(true))
        .select_only()
        .column_as(Expr::cust("CAST(COALESCE(SUM(monthly_price), 0) AS BIGINT)"), "total")
        .into_tuple()
        .one(db)
        .await?;
    let charges = [TransactionType::Subscription, TransactionType::Upgrade, TransactionType::Renewal];
    let revenue =
        completed_sum(db, &charges, from).await? - completed_sum(db, &[TransactionType::Refund], from).await?;
    let top_ups = completed_sum(db, &[TransactionType::TopUp], from).await?
        - completed_sum(db, &[TransactionType::Reversal], from).await?;
    // Live subscriptions per plan, next to each plan's quota counter: the two must agree.
    let live: Vec<(i64, i64)> = subscription::Entity::find()
        .select_only()
        .column(subscription::Column::PlanId)
        .column_as(Expr::cust("CAST(COUNT(*) AS BIGINT)"), "n")
        .filter(subscription::Column::Status.is_in([
            SubscriptionStatus::Active,
            SubscriptionStatus::Suspended,
            SubscriptionStatus::PendingUpgrade,
            SubscriptionStatus::PendingPayment,
        ]))
        .group_by(subscription::Column::PlanId)
        .into_tuple()
        .all(db)
        .await?;
    let plans = plan::Entity::find()
        .order_by_asc(plan::Column::ServiceId)
        .order_by_asc(plan::Column::MonthlyPrice)
        .all(db)
        .await?;
    let plans = plans
        .into_iter()
        .map(|p| {
            let n = live.iter().find(|(id, _)| *id == p.id).map_or(0, |(_, n)| *n as u64);
            (p, n)
        })
        .collect();
    Ok(PlatformStats {
        users: users::Entity::find().count(db).await?,
        active_subscriptions: active.count(db).await?,
        monthly_recurring_revenue: mrr.unwrap_or_default(),
        revenue_this_month: revenue,
        top_ups_this_month: top_ups,
        coupon_redemptions_this_month: crate::coupons::entity::redemption::Entity::find()
            .filter(crate::coupons::entity::redemption::Column::RedeemedAt.gte(from))
            .count(db)
            .await?,
        coupon_credit_this_month: completed_sum(db, &[TransactionType::CouponRedemption], from).await?,
        plans,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn month_start_is_the_first_instant() {
        let t = Utc.with_ymd_and_hms(2026, 11, 24, 13, 5, 7).unwrap();
        assert_eq!(month_start(t), Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap());
    }
}
