use async_graphql::{Context, ID, InputObject, Object, Result, SimpleObject, dataloader::DataLoader};
use chrono::{DateTime, Utc};

use super::{
    SubscriptionStatus, admin,
    entity::{event, subscription},
    loader::{InstancesOf, SubscriptionLoader, TransactionsOf, UserId},
    service::{self, SubscribeInput as Subscribe},
};
use crate::{
    billing::graphql::Transaction,
    catalog::{
        graphql::{Service, ServicePlan},
        loader::{CatalogLoader, PlanId, ServiceId},
    },
    error::AppError,
    graphql::ContextExt,
    instances::graphql::ServiceInstance,
    pagination::{Conn, PageArgs, connection, parse_id},
    users::graphql::User,
};

fn loader<'a>(ctx: &'a Context<'_>) -> &'a DataLoader<SubscriptionLoader> {
    // Inserted per request by the GraphQL handlers.
    ctx.data_unchecked::<DataLoader<SubscriptionLoader>>()
}

fn catalog<'a>(ctx: &'a Context<'_>) -> &'a DataLoader<CatalogLoader> {
    ctx.data_unchecked::<DataLoader<CatalogLoader>>()
}

/// A subscription, with the relations its list fetched for every row at once (`with_relations`).
pub struct Subscription(pub subscription::Model, Preloaded);

impl From<subscription::Model> for Subscription {
    fn from(model: subscription::Model) -> Self {
        Self(model, Preloaded::default())
    }
}

#[derive(Default)]
pub struct Preloaded {
    user: Option<crate::users::entity::Model>,
    plan: Option<crate::catalog::entity::plan::Model>,
    instances: Option<Vec<crate::instances::entity::Model>>,
    transactions: Option<Vec<crate::billing::entity::Model>>,
}

/// `load`'s result when `wanted`; the future is not polled otherwise, so nothing is queried.
async fn when<T, E>(wanted: bool, load: impl Future<Output = Result<T, E>>) -> Result<Option<T>, E> {
    if wanted { load.await.map(Some) } else { Ok(None) }
}

/// A list of subscriptions with the relations `selected` names fetched for all rows at once: one
/// statement per relation. Left to each row, the loads of one level reach the loader across
/// several polls under load, and its batch may leave before the last row asked (seen: 6
/// statements for a 100-row page alone, 50 with 64 such requests at once).
pub async fn with_relations(
    ctx: &Context<'_>,
    rows: Vec<subscription::Model>,
    selected: impl Fn(&str) -> bool,
) -> Result<Vec<Subscription>> {
    let (users, plans, instances, transactions) = futures::try_join!(
        when(selected("user"), loader(ctx).load_many(rows.iter().map(|r| UserId(r.user_id)))),
        when(selected("plan"), catalog(ctx).load_many(rows.iter().map(|r| PlanId(r.plan_id)))),
        when(selected("instances"), loader(ctx).load_many(rows.iter().map(|r| InstancesOf(r.id)))),
        when(selected("transactions"), loader(ctx).load_many(rows.iter().map(|r| TransactionsOf(r.id)))),
    )
    .map_err(AppError::from)?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let preloaded = Preloaded {
                user: users.as_ref().and_then(|m| m.get(&UserId(r.user_id)).cloned()),
                plan: plans.as_ref().and_then(|m| m.get(&PlanId(r.plan_id)).cloned()),
                instances: instances.as_ref().and_then(|m| m.get(&InstancesOf(r.id)).cloned()),
                transactions: transactions.as_ref().and_then(|m| m.get(&TransactionsOf(r.id)).cloned()),
            };
            Subscription(r, preloaded)
        })
        .collect())
}

#[Object]
impl Subscription {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn status(&self) -> SubscriptionStatus {
        self.0.status
    }
    async fn user(&self, ctx: &Context<'_>) -> Result<User> {
        let u = match &self.1.user {
            Some(u) => Some(u.clone()),
            None => loader(ctx).load_one(UserId(self.0.user_id)).await.map_err(AppError::from)?,
        };
        Ok(User(u.ok_or(AppError::NotFound("user"))?))
    }
    async fn service(&self, ctx: &Context<'_>) -> Result<Service> {
        let s = catalog(ctx).load_one(ServiceId(self.0.service_id)).await.map_err(AppError::from)?;
        Ok(Service::from(s.ok_or(AppError::NotFound("service"))?))
    }
    async fn plan(&self, ctx: &Context<'_>) -> Result<ServicePlan> {
        let p = match &self.1.plan {
            Some(p) => Some(p.clone()),
            None => catalog(ctx).load_one(PlanId(self.0.plan_id)).await.map_err(AppError::from)?,
        };
        Ok(ServicePlan::from(p.ok_or(AppError::NotFound("plan"))?))
    }
    /// The price charged at the next renewal (IDR).
    async fn monthly_price(&self) -> i64 {
        self.0.monthly_price
    }
    /// Start of the current billing period.
    async fn start_date(&self) -> DateTime<Utc> {
        self.0.period_start
    }
    /// End of the current billing period.
    async fn end_date(&self) -> DateTime<Utc> {
        self.0.period_end
    }
    async fn next_billing_at(&self) -> Option<DateTime<Utc>> {
        self.0.next_billing_at
    }
    async fn auto_renew(&self) -> bool {
        self.0.auto_renew
    }
    async fn grace_period_end(&self) -> Option<DateTime<Utc>> {
        self.0.grace_period_end
    }
    async fn last_charge_amount(&self) -> Option<i64> {
        self.0.last_charge_amount
    }
    /// What a checkout coupon took off the first period (IDR; 0 without one).
    async fn discount_amount(&self) -> i64 {
        self.0.discount_amount
    }
    /// The checkout coupon's code, if one was used.
    async fn coupon_code(&self, ctx: &Context<'_>) -> Result<Option<String>> {
        let Some(id) = self.0.coupon_id else {
            return Ok(None);
        };
        Ok(loader(ctx).load_one(super::loader::CouponCode(id)).await.map_err(AppError::from)?)
    }
    async fn cancelled_at(&self) -> Option<DateTime<Utc>> {
        self.0.cancelled_at
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn instances(&self, ctx: &Context<'_>) -> Result<Vec<ServiceInstance>> {
        let rows = match &self.1.instances {
            Some(rows) => rows.clone(),
            None => loader(ctx).load_one(InstancesOf(self.0.id)).await.map_err(AppError::from)?.unwrap_or_default(),
        };
        Ok(rows.into_iter().map(ServiceInstance).collect())
    }
    /// Every ledger entry of this subscription (charges, upgrades, renewals, refunds).
    async fn transactions(&self, ctx: &Context<'_>) -> Result<Vec<Transaction>> {
        let rows = match &self.1.transactions {
            Some(rows) => rows.clone(),
            None => loader(ctx).load_one(TransactionsOf(self.0.id)).await.map_err(AppError::from)?.unwrap_or_default(),
        };
        Ok(rows.into_iter().map(Transaction).collect())
    }
    /// Higher plans of the same service with the prorated cost of switching now.
    async fn upgrade_options(&self, ctx: &Context<'_>) -> Result<Vec<UpgradeOption>> {
        let quotes = service::upgrade_options(ctx.state(), &self.0).await?;
        Ok(quotes
            .into_iter()
            .map(|q| UpgradeOption {
                can_upgrade: q.reason.is_none(),
                cost: q.cost,
                reason: q.reason,
                plan: ServicePlan::from(q.plan),
            })
            .collect())
    }
    /// The billing tab: days left in the period, the next charge, and each upgrade's price now.
    async fn billing(&self, ctx: &Context<'_>) -> Result<SubscriptionBilling> {
        let now = ctx.state().now();
        let s = &self.0;
        let renews = s.status.is_live() && s.auto_renew;
        Ok(SubscriptionBilling {
            // Whole days, rounded up: a period ending in 2 hours has 1 day left.
            days_remaining: (Ord::max((s.period_end - now).num_seconds(), 0) as u64).div_ceil(86_400) as i64,
            next_charge_at: if renews { s.next_billing_at } else { None },
            next_charge_amount: renews.then_some(s.monthly_price),
            upgrades: self.upgrade_options(ctx).await?,
        })
    }
    /// Every state change: who, when, why.
    async fn history(&self, ctx: &Context<'_>) -> Result<Vec<SubscriptionEvent>> {
        Ok(service::history(&ctx.state().db.conn, self.0.id).await?.into_iter().map(SubscriptionEvent).collect())
    }
}

#[derive(SimpleObject)]
pub struct SubscriptionBilling {
    /// Days until the current period ends, rounded up; 0 once it has ended.
    days_remaining: i64,
    /// When the next renewal is charged; null when the subscription will not renew.
    next_charge_at: Option<DateTime<Utc>>,
    /// What that renewal charges (IDR); null when it will not renew.
    next_charge_amount: Option<i64>,
    /// Higher plans with the prorated cost of switching now (as `upgradeOptions`).
    upgrades: Vec<UpgradeOption>,
}

#[derive(SimpleObject)]
pub struct UpgradeOption {
    plan: ServicePlan,
    /// Charged now: the price difference prorated over the rest of the current period.
    cost: i64,
    can_upgrade: bool,
    reason: Option<String>,
}

pub struct SubscriptionEvent(event::Model);

#[Object]
impl SubscriptionEvent {
    async fn kind(&self) -> &str {
        &self.0.kind
    }
    async fn from_status(&self) -> Option<&str> {
        self.0.from_status.as_deref()
    }
    async fn to_status(&self) -> &str {
        &self.0.to_status
    }
    /// The user or administrator who caused it; null for the system.
    async fn actor_id(&self) -> Option<ID> {
        self.0.actor_id.map(|a| ID(a.to_string()))
    }
    async fn reason(&self) -> Option<&str> {
        self.0.reason.as_deref()
    }
    async fn details(&self) -> Option<async_graphql::Json<serde_json::Value>> {
        self.0.details.clone().map(async_graphql::Json)
    }
    async fn at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

#[derive(InputObject)]
pub struct SubscribeInput {
    plan_id: ID,
    /// DNS-safe, 1-40 characters; derived from the service when absent.
    instance_name: Option<String>,
    /// 1-100 printable ASCII characters, taken verbatim. Retrying with the same key and the
    /// same parameters returns the same subscription and never charges twice; the same key
    /// with other parameters answers CONFLICT.
    idempotency_key: Option<String>,
    /// A SUBSCRIPTION_DISCOUNT or FREE_SERVICE coupon for the first period. Refusals are
    /// BAD_USER_INPUT with `extensions.field` "couponCode" and `extensions.reason`.
    coupon_code: Option<String>,
}

#[derive(Default)]
pub struct SubscriptionQuery;

#[Object]
impl SubscriptionQuery {
    /// The viewer's own subscriptions, newest first.
    async fn subscriptions(&self, ctx: &Context<'_>, status: Option<SubscriptionStatus>) -> Result<Vec<Subscription>> {
        let viewer = ctx.auth().viewer()?;
        let rows = service::list_own(&ctx.state().db.conn, viewer.id, status).await?;
        let look = ctx.look_ahead();
        with_relations(ctx, rows, |f| look.field(f).exists()).await
    }

    /// Owner or admin; anyone else gets NOT_FOUND, as for ids that do not exist.
    async fn subscription(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Subscription>> {
        let viewer = ctx.auth().viewer()?;
        let id = parse_id(&id, "subscription")?;
        Ok(Some(Subscription::from(service::visible(&ctx.state().db.conn, viewer, id).await?)))
    }

    /// Admin: every subscription, newest first unless `sort` says otherwise, narrowed by
    /// `filter` (and the older `status` and `userId` arguments).
    #[allow(clippy::too_many_arguments)]
    async fn all_subscriptions(
        &self,
        ctx: &Context<'_>,
        status: Option<SubscriptionStatus>,
        user_id: Option<ID>,
        filter: Option<SubscriptionFilter>,
        sort: Option<SubscriptionSort>,
        #[graphql(default = 20)] first: Option<i32>,
        after: Option<String>,
    ) -> Result<Conn<Subscription>> {
        ctx.auth().admin()?;
        let args = PageArgs::parse(first, after.as_deref())?;
        let f = filter.unwrap_or_default();
        let id = |v: Option<ID>, what| v.map(|v| parse_id(&v, what)).transpose();
        if let (Some(from), Some(to)) = (f.created_from, f.created_to)
            && from >= to
        {
            return Err(AppError::bad_input("createdTo", "createdTo must be after createdFrom").into());
        }
        let list = service::ListFilter {
            status: f.status.or(status),
            user_id: id(user_id, "user")?,
            service_id: id(f.service_id, "service")?,
            plan_id: id(f.plan_id, "plan")?,
            user_search: f.search,
            created_from: f.created_from,
            created_to: f.created_to,
        };
        let sort = sort.map(|s| (s.field, s.direction));
        let page = service::list_all(&ctx.state().db.conn, list, sort, args).await?;
        let look = ctx.look_ahead();
        let (nodes, edges) = (look.field("nodes"), look.field("edges").field("node"));
        let rows = with_relations(ctx, page.rows, |f| nodes.field(f).exists() || edges.field(f).exists()).await?;
        let page = crate::pagination::Page { rows, has_next: page.has_next, total: page.total };
        Ok(match sort {
            None => connection(page, |s| s.0.id, |s| s),
            Some(_) => crate::pagination::connection_by_offset(page, args, |s| s),
        })
    }
}

/// What `subscribe` would do now; nothing is written.
#[derive(SimpleObject)]
pub struct CheckoutPreview {
    plan: ServicePlan,
    /// The first period's price (IDR), after the coupon's discount.
    cost: i64,
    /// What the coupon takes off (IDR; 0 without one).
    discount: i64,
    /// Why the coupon would be refused (with reason COUPON_INVALID).
    coupon_rejection: Option<crate::coupons::CouponRejection>,
    balance: i64,
    balance_after: i64,
    /// How much credit is missing (0 when the balance covers the cost).
    shortfall: i64,
    /// Whether `subscribe` would succeed now.
    ok: bool,
    /// Why not: the first reason `subscribe` would meet.
    reason: Option<super::checkout::CheckoutBlock>,
}

#[derive(Default)]
pub struct CheckoutQuery;

#[Object]
impl CheckoutQuery {
    /// Would subscribing to `planId` succeed now? Cost, balance after, shortfall, and the reason
    /// it would fail. Nothing is written.
    async fn checkout_preview(
        &self,
        ctx: &Context<'_>,
        plan_id: ID,
        coupon_code: Option<String>,
    ) -> Result<CheckoutPreview> {
        let viewer = ctx.auth().viewer()?;
        let plan_id = parse_id(&plan_id, "plan")?;
        let (db, now) = (&ctx.state().db.conn, ctx.state().now());
        let p = super::checkout::preview(
            db,
            &ctx.state().auth.coupon_guess_limiter,
            viewer.id,
            plan_id,
            coupon_code.as_deref(),
            now,
        )
        .await?;
        Ok(CheckoutPreview {
            cost: p.cost,
            discount: p.discount,
            coupon_rejection: p.coupon_rejection,
            balance: p.balance,
            balance_after: p.balance_after(),
            shortfall: p.shortfall(),
            ok: p.block.is_none(),
            reason: p.block,
            plan: ServicePlan::from(p.plan),
        })
    }
}

#[derive(InputObject, Default)]
pub struct SubscriptionFilter {
    service_id: Option<ID>,
    plan_id: Option<ID>,
    status: Option<SubscriptionStatus>,
    /// Part of the owner's name or email, any case.
    search: Option<String>,
    /// Created at or after.
    created_from: Option<DateTime<Utc>>,
    /// Created before.
    created_to: Option<DateTime<Utc>>,
}

#[derive(InputObject)]
pub struct SubscriptionSort {
    field: service::SubscriptionSortField,
    #[graphql(default_with = "crate::pagination::SortDirection::Desc")]
    direction: crate::pagination::SortDirection,
}

#[derive(Default)]
pub struct SubscriptionMutation;

#[Object]
impl SubscriptionMutation {
    async fn subscribe(&self, ctx: &Context<'_>, input: SubscribeInput) -> Result<Subscription> {
        let viewer = ctx.auth().viewer()?;
        let input = Subscribe {
            plan_id: parse_id(&input.plan_id, "plan")?,
            instance_name: input.instance_name,
            idempotency_key: input.idempotency_key,
            coupon_code: input.coupon_code,
        };
        Ok(Subscription::from(service::subscribe(ctx.state(), viewer, input).await?))
    }

    /// To a strictly higher tier of the same service; the prorated difference is charged now and
    /// the period end stays.
    async fn upgrade_subscription(&self, ctx: &Context<'_>, id: ID, plan_id: ID) -> Result<Subscription> {
        let viewer = ctx.auth().viewer()?;
        let id = parse_id(&id, "subscription")?;
        let plan_id = parse_id(&plan_id, "plan")?;
        Ok(Subscription::from(service::upgrade(ctx.state(), viewer, id, plan_id).await?))
    }

    /// Cancels now; the remaining period is not refunded.
    async fn cancel_subscription(&self, ctx: &Context<'_>, id: ID, reason: Option<String>) -> Result<Subscription> {
        let viewer = ctx.auth().viewer()?;
        let id = parse_id(&id, "subscription")?;
        Ok(Subscription::from(service::cancel(ctx.state(), viewer, id, reason.as_deref(), None).await?))
    }

    async fn set_auto_renew(&self, ctx: &Context<'_>, id: ID, enabled: bool) -> Result<Subscription> {
        let viewer = ctx.auth().viewer()?;
        let id = parse_id(&id, "subscription")?;
        Ok(Subscription::from(service::set_auto_renew(ctx.state(), viewer, id, enabled).await?))
    }

    /// Pays the next period now (in a grace period, or within 7 days of the end).
    async fn renew_subscription(&self, ctx: &Context<'_>, id: ID) -> Result<Subscription> {
        let viewer = ctx.auth().viewer()?;
        let id = parse_id(&id, "subscription")?;
        Ok(Subscription::from(service::renew(ctx.state(), viewer, id).await?))
    }

    /// Admin: cancel now, optionally refunding the unused part of the period.
    async fn admin_cancel_subscription(
        &self,
        ctx: &Context<'_>,
        id: ID,
        reason: String,
        refund: bool,
    ) -> Result<Subscription> {
        let admin = ctx.auth().admin()?;
        let id = parse_id(&id, "subscription")?;
        Ok(Subscription::from(service::cancel(ctx.state(), admin, id, Some(&reason), Some(refund)).await?))
    }

    /// Admin: extend the current period by 1-365 days.
    async fn extend_subscription(&self, ctx: &Context<'_>, id: ID, days: i32, reason: String) -> Result<Subscription> {
        let admin = ctx.auth().admin()?;
        let id = parse_id(&id, "subscription")?;
        Ok(Subscription::from(service::extend(ctx.state(), admin, id, days, &reason).await?))
    }

    /// Admin: subscribe a user to a plan, as checkout does (quota, one per service). With
    /// `chargeCredit` the user pays the first period; without, it is granted free of charge.
    async fn admin_create_subscription(
        &self,
        ctx: &Context<'_>,
        user_id: ID,
        plan_id: ID,
        charge_credit: bool,
        reason: String,
    ) -> Result<Subscription> {
        let admin = ctx.auth().admin()?;
        let user_id = parse_id(&user_id, "user")?;
        let plan_id = parse_id(&plan_id, "plan")?;
        Ok(Subscription::from(admin::create_for(ctx.state(), admin, user_id, plan_id, charge_credit, &reason).await?))
    }

    /// Admin: move to any other plan of the service for the rest of the period. Up: the
    /// prorated difference is charged. Down: it is refunded.
    async fn admin_change_plan(&self, ctx: &Context<'_>, id: ID, plan_id: ID, reason: String) -> Result<Subscription> {
        let admin = ctx.auth().admin()?;
        let id = parse_id(&id, "subscription")?;
        let plan_id = parse_id(&plan_id, "plan")?;
        Ok(Subscription::from(admin::change_plan(ctx.state(), admin, id, plan_id, &reason).await?))
    }

    /// Admin: end the subscription now (EXPIRED): slot released, app removed, no refund.
    async fn admin_expire_subscription(&self, ctx: &Context<'_>, id: ID, reason: String) -> Result<Subscription> {
        let admin = ctx.auth().admin()?;
        let id = parse_id(&id, "subscription")?;
        Ok(Subscription::from(admin::expire(ctx.state(), admin, id, &reason).await?))
    }

    /// Admin: give back part of a charge (subscription, upgrade or renewal) as a REFUND credit.
    /// All refunds of one charge together never exceed it.
    async fn admin_refund(
        &self,
        ctx: &Context<'_>,
        transaction_id: ID,
        amount: i64,
        reason: String,
    ) -> Result<Transaction> {
        let admin = ctx.auth().admin()?;
        let id = parse_id(&transaction_id, "transaction")?;
        Ok(Transaction(admin::refund(ctx.state(), admin, id, amount, &reason).await?))
    }
}
