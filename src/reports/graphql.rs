use async_graphql::{Context, Object, Result, SimpleObject};

use super::service;
use crate::{catalog::graphql::ServicePlan, graphql::ContextExt};

/// Amounts are whole IDR; the sketch types them as Float.
#[derive(SimpleObject)]
pub struct PlatformStats {
    users: u64,
    active_subscriptions: u64,
    monthly_recurring_revenue: f64,
    revenue_this_month: f64,
    top_ups_this_month: f64,
    /// Coupon redemptions this calendar month (wallet, checkout and welcome bonus).
    coupon_redemptions_this_month: u64,
    /// Credit given away by coupons this calendar month (IDR).
    coupon_credit_this_month: i64,
    plan_utilization: Vec<PlanUtilization>,
}

#[derive(SimpleObject)]
pub struct PlanUtilization {
    plan: ServicePlan,
    used_quota: i32,
    total_quota: i32,
    /// Live subscriptions on the plan; equals usedQuota unless something is wrong.
    active_subscriptions: u64,
}

#[derive(Default)]
pub struct ReportQuery;

#[Object]
impl ReportQuery {
    /// Admin: users, subscriptions, recurring revenue, this month's revenue and top-ups (UTC
    /// calendar month), and quota use per plan.
    async fn platform_stats(&self, ctx: &Context<'_>) -> Result<PlatformStats> {
        ctx.auth().admin()?;
        let s = service::platform_stats(&ctx.state().db.conn, ctx.state().now()).await?;
        Ok(PlatformStats {
            users: s.users,
            active_subscriptions: s.active_subscriptions,
            monthly_recurring_revenue: s.monthly_recurring_revenue as f64,
            revenue_this_month: s.revenue_this_month as f64,
            top_ups_this_month: s.top_ups_this_month as f64,
            coupon_redemptions_this_month: s.coupon_redemptions_this_month,
            coupon_credit_this_month: s.coupon_credit_this_month,
            plan_utilization: s
                .plans
                .into_iter()
                .map(|(p, n)| PlanUtilization {
                    used_quota: p.used_quota,
                    total_quota: p.total_quota,
                    active_subscriptions: n,
                    plan: ServicePlan::from(p),
                })
                .collect(),
        })
    }
}
