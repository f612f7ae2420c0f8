//! Administrator coupon API: thin resolvers over `coupons::admin`. Every root field checks
//! the administrator role; `Coupon` is only built by them.
use async_graphql::{Context, ID, InputObject, MaybeUndefined, Object, Result, SimpleObject, dataloader::DataLoader};
use chrono::{DateTime, Utc};

use super::{
    CouponStatus, CouponType, DiscountType,
    admin::{self, CouponChanges, ListFilter, NewCoupon, StatsPeriod},
    entity::{coupon, failure},
    graphql::{CouponRedemption, CouponTerms, with_coupons},
    status_at,
};
use crate::{
    catalog::{
        PlanType,
        graphql::Service,
        loader::{CatalogLoader, ServiceId},
    },
    error::AppError,
    graphql::ContextExt,
    pagination::{Conn, PageArgs, connection, parse_id},
};

/// A coupon with its counters, as administrators see it: its terms (what users see) and the rest.
#[derive(async_graphql::MergedObject)]
pub struct Coupon(CouponTerms, CouponAdmin);

impl Coupon {
    fn new(c: coupon::Model) -> Self {
        Self(CouponTerms(c.clone()), CouponAdmin(c))
    }
}

/// What only administrators see of a coupon.
pub struct CouponAdmin(coupon::Model);

#[Object]
impl CouponAdmin {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// How it reads now: EXPIRED once validUntil has passed, USED_UP once every use is taken.
    async fn status(&self, ctx: &Context<'_>) -> CouponStatus {
        status_at(&self.0, ctx.state().now())
    }
    /// False once an administrator disabled it.
    async fn enabled(&self) -> bool {
        self.0.enabled
    }
    async fn max_uses(&self) -> i32 {
        self.0.max_uses
    }
    async fn used_count(&self) -> i32 {
        self.0.used_count
    }
    async fn max_uses_per_user(&self) -> i32 {
        self.0.max_uses_per_user
    }
    /// Only subscriptions to this service (checkout coupons).
    async fn service(&self, ctx: &Context<'_>) -> Result<Option<Service>> {
        let Some(id) = self.0.service_id else {
            return Ok(None);
        };
        let loader = ctx.data_unchecked::<DataLoader<CatalogLoader>>();
        Ok(loader.load_one(ServiceId(id)).await.map_err(AppError::from)?.map(Service::from))
    }
    /// Only plans of this type (checkout coupons).
    async fn plan_type(&self) -> Option<PlanType> {
        self.0.plan_type
    }
    async fn valid_from(&self) -> DateTime<Utc> {
        self.0.valid_from
    }
    /// The administrator who created it; null for seeded coupons.
    async fn created_by(&self) -> Option<ID> {
        self.0.created_by.map(|id| ID(id.to_string()))
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
    /// Who used it, newest first.
    async fn redemptions(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 20)] first: Option<i32>,
        after: Option<String>,
    ) -> Result<Conn<CouponRedemption>> {
        let args = PageArgs::parse(first, after.as_deref())?;
        let db = &ctx.state().db.conn;
        let page = admin::redemptions(db, self.0.id, args).await?;
        Ok(with_coupons(db, page).await?)
    }
}

#[derive(InputObject)]
pub struct CreateCouponInput {
    /// 3-50 of A-Z, 0-9, '_' and '-'; any case (stored upper-case, matched case-insensitively).
    code: String,
    /// 1-100 characters.
    name: String,
    /// At most 500 characters.
    description: Option<String>,
    #[graphql(name = "type")]
    kind: CouponType,
    /// SUBSCRIPTION_DISCOUNT only (required there).
    discount_type: Option<DiscountType>,
    /// 1,000-10,000,000 IDR: the credit (CREDIT_TOPUP, WELCOME_BONUS) or the amount off
    /// (FIXED_AMOUNT discounts).
    credit_amount: Option<i64>,
    /// 1-100: PERCENTAGE discounts only.
    discount_percent: Option<i32>,
    /// 1-1,000,000; 1 when absent.
    max_uses: Option<i32>,
    /// 1-100 and at most maxUses; 1 when absent.
    max_uses_per_user: Option<i32>,
    /// Checkout coupons: only this service (required for FREE_SERVICE).
    service_id: Option<ID>,
    /// Checkout coupons: only plans of this type.
    plan_type: Option<PlanType>,
    /// Now when absent.
    valid_from: Option<DateTime<Utc>>,
    /// After validFrom and in the future; no end when absent.
    valid_until: Option<DateTime<Utc>>,
}

/// The type and value of a coupon cannot change (redemptions refer to them).
#[derive(InputObject)]
pub struct UpdateCouponInput {
    name: Option<String>,
    /// null clears it.
    description: MaybeUndefined<String>,
    /// Not below the uses already taken.
    max_uses: Option<i32>,
    max_uses_per_user: Option<i32>,
    valid_from: Option<DateTime<Utc>>,
    /// null removes the end.
    valid_until: MaybeUndefined<DateTime<Utc>>,
}

#[derive(InputObject, Default)]
pub struct CouponFilter {
    /// As the coupons read now (EXPIRED, USED_UP, … follow from the clock and the counters).
    status: Option<CouponStatus>,
    #[graphql(name = "type")]
    kind: Option<CouponType>,
    service_id: Option<ID>,
    /// Part of the code or the name, any case.
    search: Option<String>,
}

#[derive(SimpleObject)]
pub struct CouponStatusCount {
    status: CouponStatus,
    count: u64,
}

#[derive(SimpleObject)]
pub struct CouponTypeCount {
    #[graphql(name = "type")]
    kind: CouponType,
    count: u64,
}

#[derive(SimpleObject)]
pub struct CouponStatistics {
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    total_coupons: u64,
    /// Coupons per status as they read now.
    by_status: Vec<CouponStatusCount>,
    /// All redemptions ever.
    total_redemptions: u64,
    /// Redemptions in the period.
    period_redemptions: u64,
    /// Credit given to wallets in the period (IDR).
    period_credit: i64,
    /// Taken off first periods at checkout in the period (IDR).
    period_discount: i64,
    /// Redemptions in the period per coupon type.
    redemptions_by_type: Vec<CouponTypeCount>,
    /// The ten most used coupons.
    top_coupons: Vec<Coupon>,
}

/// A welcome bonus that could not be given at registration (the account was created without it).
pub struct CouponFailure(failure::Model);

#[Object]
impl CouponFailure {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn user_id(&self) -> Option<ID> {
        self.0.user_id.map(|id| ID(id.to_string()))
    }
    async fn context(&self) -> &str {
        &self.0.context
    }
    async fn message(&self) -> &str {
        &self.0.message
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

#[derive(Default)]
pub struct CouponAdminQuery;

#[Object]
impl CouponAdminQuery {
    /// Admin: coupons, newest first, narrowed by `filter`.
    async fn coupons(
        &self,
        ctx: &Context<'_>,
        filter: Option<CouponFilter>,
        #[graphql(default = 20)] first: Option<i32>,
        after: Option<String>,
    ) -> Result<Conn<Coupon>> {
        ctx.auth().admin()?;
        let args = PageArgs::parse(first, after.as_deref())?;
        let f = filter.unwrap_or_default();
        let filter = ListFilter {
            status: f.status,
            kind: f.kind,
            service_id: f.service_id.map(|id| parse_id(&id, "service")).transpose()?,
            search: f.search,
        };
        let page = admin::list(&ctx.state().db.conn, filter, ctx.state().now(), args).await?;
        Ok(connection(page, |c| c.id, Coupon::new))
    }

    /// Admin: one coupon, with its redemptions.
    async fn coupon(&self, ctx: &Context<'_>, id: ID) -> Result<Coupon> {
        ctx.auth().admin()?;
        let id = parse_id(&id, "coupon")?;
        Ok(Coupon::new(super::service::get(&ctx.state().db.conn, id).await?))
    }

    /// Admin: coupons per status, redemptions, credit and discounts given in the period.
    async fn coupon_statistics(
        &self,
        ctx: &Context<'_>,
        #[graphql(default_with = "StatsPeriod::Month")] period: StatsPeriod,
    ) -> Result<CouponStatistics> {
        ctx.auth().admin()?;
        let s = admin::statistics(&ctx.state().db.conn, period, ctx.state().now()).await?;
        Ok(CouponStatistics {
            from: s.from,
            to: s.to,
            total_coupons: s.total_coupons,
            by_status: s.by_status.into_iter().map(|(status, count)| CouponStatusCount { status, count }).collect(),
            total_redemptions: s.total_redemptions,
            period_redemptions: s.period_redemptions,
            period_credit: s.period_credit,
            period_discount: s.period_discount,
            redemptions_by_type: s.by_type.into_iter().map(|(kind, count)| CouponTypeCount { kind, count }).collect(),
            top_coupons: s.top.into_iter().map(Coupon::new).collect(),
        })
    }

    /// Admin: welcome bonuses that failed at registration, newest first.
    async fn welcome_bonus_failures(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 20)] first: Option<i32>,
        after: Option<String>,
    ) -> Result<Conn<CouponFailure>> {
        ctx.auth().admin()?;
        let args = PageArgs::parse(first, after.as_deref())?;
        let page = admin::failures(&ctx.state().db.conn, args).await?;
        Ok(connection(page, |f| f.id, CouponFailure))
    }
}

#[derive(Default)]
pub struct CouponAdminMutation;

#[Object]
impl CouponAdminMutation {
    /// Admin: a new coupon. Each type's value fields are checked together (BAD_USER_INPUT
    /// naming the field); a taken code is CONFLICT.
    async fn create_coupon(&self, ctx: &Context<'_>, input: CreateCouponInput) -> Result<Coupon> {
        let admin = ctx.auth().admin()?;
        let new = NewCoupon {
            code: input.code,
            name: input.name,
            description: input.description,
            kind: input.kind,
            discount_type: input.discount_type,
            credit_amount: input.credit_amount,
            discount_percent: input.discount_percent,
            max_uses: input.max_uses,
            max_uses_per_user: input.max_uses_per_user,
            service_id: input.service_id.map(|id| parse_id(&id, "service")).transpose()?,
            plan_type: input.plan_type,
            valid_from: input.valid_from,
            valid_until: input.valid_until,
        };
        Ok(Coupon::new(admin::create(ctx.state(), Some(admin.id), new).await?))
    }

    /// Admin: edit the name, description, limits and validity window.
    async fn update_coupon(&self, ctx: &Context<'_>, id: ID, input: UpdateCouponInput) -> Result<Coupon> {
        let admin = ctx.auth().admin()?;
        let id = parse_id(&id, "coupon")?;
        let clear = |v: MaybeUndefined<_>| match v {
            MaybeUndefined::Undefined => None,
            MaybeUndefined::Null => Some(None),
            MaybeUndefined::Value(v) => Some(Some(v)),
        };
        let changes = CouponChanges {
            name: input.name,
            description: clear(input.description),
            max_uses: input.max_uses,
            max_uses_per_user: input.max_uses_per_user,
            valid_from: input.valid_from,
            valid_until: match input.valid_until {
                MaybeUndefined::Undefined => None,
                MaybeUndefined::Null => Some(None),
                MaybeUndefined::Value(v) => Some(Some(v)),
            },
        };
        Ok(Coupon::new(admin::update(ctx.state(), admin, id, changes).await?))
    }

    /// Admin: enable or disable; a disabled coupon is refused everywhere (DISABLED).
    async fn set_coupon_enabled(&self, ctx: &Context<'_>, id: ID, enabled: bool) -> Result<Coupon> {
        let admin = ctx.auth().admin()?;
        let id = parse_id(&id, "coupon")?;
        Ok(Coupon::new(admin::set_enabled(ctx.state(), admin, id, enabled).await?))
    }

    /// Admin: delete a coupon nobody has used; one with redemptions is CONFLICT (disable it).
    async fn delete_coupon(&self, ctx: &Context<'_>, id: ID) -> Result<bool> {
        let admin = ctx.auth().admin()?;
        let id = parse_id(&id, "coupon")?;
        admin::delete(ctx.state(), admin, id).await?;
        Ok(true)
    }
}
