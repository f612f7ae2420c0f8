//! The admin's analytics: `analytics { … }`. The object can only be made by the root field,
//! after the admin check, so its fields need none of their own. All figures are whole IDR;
//! buckets are calendar days, ISO weeks or months in `timeZone` (default Asia/Jakarta).
use async_graphql::{Context, ID, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};

use super::{
    billing_status as bs, counts, growth,
    period::{self, Bucket, Span},
    rates, revenue, spenders,
};
use crate::{
    auth::Viewer, graphql::ContextExt, instances::InstanceStatus, jobs::billing::BillingJob,
    subscriptions::SubscriptionStatus,
};

/// Proof of the admin check, held by `Analytics`.
pub struct Analytics {
    _admin: Viewer,
}

#[derive(Default)]
pub struct AnalyticsQuery;

#[Object]
impl AnalyticsQuery {
    /// Admin: revenue, growth, spenders, counts, rates and billing health. FORBIDDEN for others.
    async fn analytics(&self, ctx: &Context<'_>) -> Result<Analytics> {
        Ok(Analytics { _admin: ctx.auth().admin()? })
    }
}

/// The calendar bucket a point stands for.
#[derive(SimpleObject)]
pub struct BucketSpan {
    /// Local midnight starting the calendar bucket, as a UTC instant.
    bucket_start: DateTime<Utc>,
    /// The local date of `bucketStart` (YYYY-MM-DD).
    label: String,
    /// What was counted: the bucket clipped to the requested range, `[from, to)`.
    from: DateTime<Utc>,
    to: DateTime<Utc>,
}

impl From<Span> for BucketSpan {
    fn from(s: Span) -> Self {
        Self { bucket_start: s.calendar_start, label: s.label, from: s.start, to: s.end }
    }
}

/// COMPLETED ledger rows by `completedAt`, summed per kind (whole IDR, all positive).
#[derive(SimpleObject)]
pub struct LedgerTotals {
    /// SUBSCRIPTION rows (first periods).
    subscription_charges: i64,
    /// UPGRADE rows (prorated plan differences).
    upgrades: i64,
    /// RENEWAL rows.
    renewals: i64,
    /// REFUND rows.
    refunds: i64,
    /// `subscriptionCharges + upgrades + renewals - refunds`.
    net_revenue: i64,
    /// TOP_UP rows, gross.
    top_ups: i64,
    /// REVERSAL rows: top-ups taken back.
    reversals: i64,
    /// `topUps - reversals`.
    net_top_ups: i64,
}

impl From<revenue::Totals> for LedgerTotals {
    fn from(t: revenue::Totals) -> Self {
        Self {
            net_revenue: t.subscription_charges + t.upgrades + t.renewals - t.refunds,
            net_top_ups: t.top_ups - t.reversals,
            subscription_charges: t.subscription_charges,
            upgrades: t.upgrades,
            renewals: t.renewals,
            refunds: t.refunds,
            top_ups: t.top_ups,
            reversals: t.reversals,
        }
    }
}

#[derive(SimpleObject)]
pub struct RevenuePoint {
    #[graphql(flatten)]
    span: BucketSpan,
    #[graphql(flatten)]
    totals: LedgerTotals,
}

/// Charges and refunds of one service's subscriptions over the whole range (top-ups belong to
/// no service: they are zero here).
#[derive(SimpleObject)]
pub struct ServiceRevenue {
    service_id: ID,
    name: String,
    #[graphql(flatten)]
    totals: LedgerTotals,
}

#[derive(SimpleObject)]
pub struct RevenueReport {
    series: Vec<RevenuePoint>,
    by_service: Vec<ServiceRevenue>,
}

impl From<revenue::Revenue> for RevenueReport {
    fn from(r: revenue::Revenue) -> Self {
        Self {
            series: r
                .series
                .into_iter()
                .map(|p| RevenuePoint { span: p.span.into(), totals: p.totals.into() })
                .collect(),
            by_service: r
                .by_service
                .into_iter()
                .map(|s| ServiceRevenue {
                    service_id: ID(s.service_id.to_string()),
                    name: s.name,
                    totals: s.totals.into(),
                })
                .collect(),
        }
    }
}

#[derive(SimpleObject)]
pub struct GrowthPoint {
    #[graphql(flatten)]
    span: BucketSpan,
    /// Accounts with the USER role registered in the bucket.
    new_users: i64,
    /// Distinct users with at least one subscription alive at some instant of the bucket:
    /// created before the bucket ends and not ended (CANCELLED or EXPIRED) when it starts.
    /// Suspended and free subscriptions count.
    active_subscribers: i64,
    /// Subscriptions that became CANCELLED or EXPIRED in the bucket.
    churned_subscriptions: i64,
}

#[derive(SimpleObject)]
pub struct TopSpender {
    user_id: ID,
    name: String,
    email: String,
    /// `charges - refunds`.
    spent: i64,
    /// Completed SUBSCRIPTION, UPGRADE and RENEWAL rows.
    charges: i64,
    /// Completed REFUND rows.
    refunds: i64,
}

#[derive(SimpleObject)]
pub struct SubscriptionStatusCount {
    status: SubscriptionStatus,
    count: i64,
}

#[derive(SimpleObject)]
pub struct InstanceStatusCount {
    status: InstanceStatus,
    /// The last reported health; null when none was reported.
    health_status: Option<String>,
    count: i64,
}

#[derive(SimpleObject)]
pub struct MonthlyRates {
    /// The month's first instant in the time zone.
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    /// Charges (SUBSCRIPTION, UPGRADE, RENEWAL) minus refunds completed in the month.
    revenue: i64,
    /// Distinct users with at least one completed charge in the month.
    paying_users: i64,
    /// Average revenue per paying user: `revenue / payingUsers`, rounded to the nearest IDR;
    /// null without paying users.
    arpu: Option<i64>,
    /// Subscriptions alive at the month's first instant (created at or before it, not ended).
    live_at_start: i64,
    /// Subscriptions that became CANCELLED or EXPIRED during the month (including ones
    /// created during it).
    churned: i64,
    /// `churned / liveAtStart` (0.05 = 5 %); null when nothing was alive at the start.
    churn_rate: Option<f64>,
}

#[derive(SimpleObject)]
pub struct BillingItem {
    subscription_id: ID,
    user_id: ID,
    email: String,
    service_name: String,
    status: SubscriptionStatus,
    monthly_price: i64,
    balance: i64,
    next_billing_at: Option<DateTime<Utc>>,
    grace_period_end: Option<DateTime<Utc>>,
    /// `max(monthlyPrice - balance, 0)`, per subscription.
    shortfall: i64,
}

#[derive(SimpleObject)]
pub struct BillingGroup {
    count: i64,
    /// Sum of the monthly prices.
    amount: i64,
    /// Sum of the shortfalls.
    shortfall: i64,
    /// The first 100, soonest first.
    items: Vec<BillingItem>,
}

/// A job's last pass, whichever replica ran it.
#[derive(SimpleObject)]
pub struct JobRun {
    job: BillingJob,
    started_at: DateTime<Utc>,
    finished_at: DateTime<Utc>,
    /// False when the pass failed as a whole (`error` says why).
    ok: bool,
    processed: i32,
    succeeded: i32,
    failed: i32,
    error: Option<String>,
}

#[derive(SimpleObject)]
pub struct BillingStatus {
    /// ACTIVE, auto-renewing subscriptions whose next billing time is less than 7 days away
    /// (overdue ones that no job has charged yet included).
    renewals_due: BillingGroup,
    /// ACTIVE subscriptions whose renewal failed, in their grace period.
    in_grace: BillingGroup,
    suspended: BillingGroup,
    /// Start of the current month in the time zone (what "this month" means below).
    month_start: DateTime<Utc>,
    /// Renewals refused for want of credit this month (one per grace period started).
    failed_renewals_this_month: i64,
    /// Ledger rows (top-ups) that became FAILED this month.
    failed_payments_this_month: i64,
    /// Each job's last recorded pass; jobs that never ran are absent.
    last_runs: Vec<JobRun>,
}

fn group(g: bs::Group) -> BillingGroup {
    BillingGroup {
        count: g.count,
        amount: g.amount,
        shortfall: g.shortfall,
        items: g
            .items
            .into_iter()
            .map(|i| BillingItem {
                subscription_id: ID(i.subscription_id.to_string()),
                user_id: ID(i.user_id.to_string()),
                email: i.email,
                service_name: i.service,
                status: i.status,
                monthly_price: i.monthly_price,
                balance: i.balance,
                next_billing_at: i.next_billing_at,
                grace_period_end: i.grace_period_end,
                shortfall: i.shortfall,
            })
            .collect(),
    }
}

fn job(label: &str) -> Option<BillingJob> {
    [
        BillingJob::Renewals,
        BillingJob::GracePeriod,
        BillingJob::LowCreditWarnings,
        BillingJob::ReconcileInstances,
        BillingJob::ReconcilePayments,
    ]
    .into_iter()
    .find(|j| j.label() == label)
}

#[Object]
impl Analytics {
    /// Ledger totals per bucket of `[from, to)` and per service over the whole range. At most
    /// 400 buckets and 1,096 days; BAD_USER_INPUT otherwise, or for a reversed range or an
    /// unknown `timeZone` (an IANA name; default Asia/Jakarta).
    async fn revenue(
        &self,
        ctx: &Context<'_>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        bucket: Bucket,
        time_zone: Option<String>,
    ) -> Result<RevenueReport> {
        let tz = period::zone(time_zone.as_deref())?;
        Ok(revenue::revenue(&ctx.state().db.conn, from, to, bucket, tz, None).await?.into())
    }

    /// New users, active subscribers and churned subscriptions per bucket (limits as `revenue`).
    async fn user_growth(
        &self,
        ctx: &Context<'_>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        bucket: Bucket,
        time_zone: Option<String>,
    ) -> Result<Vec<GrowthPoint>> {
        let tz = period::zone(time_zone.as_deref())?;
        let points = growth::user_growth(&ctx.state().db.conn, from, to, bucket, tz).await?;
        Ok(points
            .into_iter()
            .map(|p| GrowthPoint {
                span: p.span.into(),
                new_users: p.growth.new_users,
                active_subscribers: p.growth.active_subscribers,
                churned_subscriptions: p.growth.churned_subscriptions,
            })
            .collect())
    }

    /// The `first` (1–100) users by credit spent in `[from, to)`: completed charges minus
    /// refunds, largest first; users who spent nothing net are left out.
    async fn top_spenders(
        &self,
        ctx: &Context<'_>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        #[graphql(default = 10)] first: i32,
    ) -> Result<Vec<TopSpender>> {
        let rows = spenders::top_spenders(&ctx.state().db.conn, from, to, first).await?;
        Ok(rows
            .into_iter()
            .map(|s| TopSpender {
                user_id: ID(s.user_id.to_string()),
                name: s.name,
                email: s.email,
                spent: s.spent,
                charges: s.charges,
                refunds: s.refunds,
            })
            .collect())
    }

    /// Subscriptions per status, now (every status, zeros included).
    async fn subscriptions_by_status(&self, ctx: &Context<'_>) -> Result<Vec<SubscriptionStatusCount>> {
        let rows = counts::subscriptions_by_status(&ctx.state().db.conn).await?;
        Ok(rows.into_iter().map(|(status, count)| SubscriptionStatusCount { status, count }).collect())
    }

    /// Instances per status and health, now (combinations that occur).
    async fn instances_by_status(&self, ctx: &Context<'_>) -> Result<Vec<InstanceStatusCount>> {
        let rows = counts::instances_by_status(&ctx.state().db.conn).await?;
        Ok(rows
            .into_iter()
            .map(|(status, health_status, count)| InstanceStatusCount { status, health_status, count })
            .collect())
    }

    /// ARPU and churn rate of the calendar month `month` (YYYY-MM) in `timeZone`.
    async fn monthly_rates(&self, ctx: &Context<'_>, month: String, time_zone: Option<String>) -> Result<MonthlyRates> {
        let tz = period::zone(time_zone.as_deref())?;
        let r = rates::monthly_rates(&ctx.state().db.conn, &month, tz).await?;
        Ok(MonthlyRates {
            from: r.start,
            to: r.end,
            revenue: r.revenue,
            paying_users: r.paying_users,
            arpu: r.arpu,
            live_at_start: r.live_at_start,
            churned: r.churned,
            churn_rate: r.churn_rate,
        })
    }

    /// Renewals due within 7 days, grace periods, suspensions, this month's failed charges
    /// (month in `timeZone`) and the billing jobs' last passes.
    async fn billing_status(&self, ctx: &Context<'_>, time_zone: Option<String>) -> Result<BillingStatus> {
        let tz = period::zone(time_zone.as_deref())?;
        let s = bs::billing_status(&ctx.state().db.conn, ctx.state().now(), tz).await?;
        Ok(BillingStatus {
            renewals_due: group(s.renewals_due),
            in_grace: group(s.in_grace),
            suspended: group(s.suspended),
            month_start: s.month_start,
            failed_renewals_this_month: s.failed_renewals,
            failed_payments_this_month: s.failed_payments,
            last_runs: s
                .last_runs
                .into_iter()
                .filter_map(|r| {
                    Some(JobRun {
                        job: job(&r.job)?,
                        started_at: r.started_at,
                        finished_at: r.finished_at,
                        ok: r.ok,
                        processed: r.processed,
                        succeeded: r.succeeded,
                        failed: r.failed,
                        error: r.error,
                    })
                })
                .collect(),
        })
    }
}
