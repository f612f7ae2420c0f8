//! Coupons for users: validateCoupon, redeemCoupon, couponRedemptions. Thin resolvers over
//! `coupons::service`.
use async_graphql::{Context, ID, Object, Result, SimpleObject, dataloader::DataLoader};
use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};

use super::{
    CouponRejection, CouponType, DiscountType, RedemptionContext,
    entity::{coupon, redemption},
    service::{self, Use},
};
use crate::{
    billing::graphql::Transaction,
    error::{AppError, AppResult},
    graphql::ContextExt,
    pagination::{Conn, Page, PageArgs, connection, parse_id},
    subscriptions::loader::{SubscriptionLoader, TransactionId},
};

/// What a user may see of a coupon: its terms, not its counters or audit.
pub struct CouponTerms(pub(super) coupon::Model);

#[Object]
impl CouponTerms {
    async fn code(&self) -> &str {
        &self.0.code
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    async fn description(&self) -> Option<&str> {
        self.0.description.as_deref()
    }
    #[graphql(name = "type")]
    async fn kind(&self) -> CouponType {
        self.0.kind
    }
    async fn discount_type(&self) -> Option<DiscountType> {
        self.0.discount_type
    }
    /// PERCENTAGE discounts: the percentage off.
    async fn discount_percent(&self) -> Option<i32> {
        self.0.discount_percent
    }
    /// Credit coupons: the credit; FIXED_AMOUNT discounts: the amount off (IDR).
    async fn credit_amount(&self) -> Option<i64> {
        self.0.credit_amount
    }
    async fn valid_until(&self) -> Option<DateTime<Utc>> {
        self.0.valid_until
    }
}

/// The answer of validateCoupon: what the coupon would give, or the first reason it would not.
#[derive(SimpleObject)]
pub struct CouponValidation {
    valid: bool,
    /// Null when valid.
    reason: Option<CouponRejection>,
    message: Option<String>,
    /// Only when valid.
    coupon: Option<CouponTerms>,
    /// Credit coupons: what redeemCoupon would add to the wallet (IDR).
    credit_amount: Option<i64>,
    /// Checkout coupons with a plan: what would come off the first period (IDR).
    discount_amount: Option<i64>,
    /// Checkout coupons with a plan: the first period's price after the discount (IDR).
    final_price: Option<i64>,
}

/// One use of a coupon. Built only from owner-scoped reads (the viewer's own history) or from
/// an administrator's coupon detail.
pub struct CouponRedemption(pub(super) redemption::Model, pub(super) Option<coupon::Model>);

#[Object]
impl CouponRedemption {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn coupon(&self, ctx: &Context<'_>) -> Result<CouponTerms> {
        let c = match &self.1 {
            Some(c) => c.clone(),
            None => service::get(&ctx.state().db.conn, self.0.coupon_id).await?,
        };
        Ok(CouponTerms(c))
    }
    async fn user_id(&self) -> ID {
        ID(self.0.user_id.to_string())
    }
    async fn context(&self) -> RedemptionContext {
        self.0.context
    }
    /// Credit given to the wallet (IDR).
    async fn credit_amount(&self) -> Option<i64> {
        self.0.credit_amount
    }
    /// Taken off a first period at checkout (IDR).
    async fn discount_amount(&self) -> Option<i64> {
        self.0.discount_amount
    }
    /// The COUPON_REDEMPTION credit, or the discounted SUBSCRIPTION charge.
    async fn transaction(&self, ctx: &Context<'_>) -> Result<Option<Transaction>> {
        let Some(id) = self.0.transaction_id else {
            return Ok(None);
        };
        // The redemption's own ledger row: the same owner as the redemption the caller may see.
        let loader = ctx.data_unchecked::<DataLoader<SubscriptionLoader>>();
        Ok(loader.load_one(TransactionId(id)).await.map_err(AppError::from)?.map(Transaction))
    }
    async fn subscription_id(&self) -> Option<ID> {
        self.0.subscription_id.map(|id| ID(id.to_string()))
    }
    async fn redeemed_at(&self) -> DateTime<Utc> {
        self.0.redeemed_at
    }
}

/// Redemptions with their coupons, fetched in one statement for the whole page.
pub(super) async fn with_coupons(
    db: &impl ConnectionTrait,
    page: Page<redemption::Model>,
) -> AppResult<Conn<CouponRedemption>> {
    let ids: Vec<i64> = page.rows.iter().map(|r| r.coupon_id).collect();
    let coupons = coupon::Entity::find().filter(coupon::Column::Id.is_in(ids)).all(db).await?;
    Ok(connection(
        page,
        |r| r.id,
        |r| {
            let c = coupons.iter().find(|c| c.id == r.coupon_id).cloned();
            CouponRedemption(r, c)
        },
    ))
}

#[derive(SimpleObject)]
pub struct RedeemCouponPayload {
    redemption: CouponRedemption,
    /// The COUPON_REDEMPTION ledger entry.
    transaction: Transaction,
    /// The wallet balance after the credit (IDR).
    balance: i64,
}

#[derive(Default)]
pub struct CouponQuery;

#[Object]
impl CouponQuery {
    /// Would this coupon be accepted now? With `planId`, as at checkout for that plan (and with
    /// the discount and price it would give); without, as for redeemCoupon or any checkout.
    /// Nothing is written.
    async fn validate_coupon(&self, ctx: &Context<'_>, code: String, plan_id: Option<ID>) -> Result<CouponValidation> {
        let viewer = ctx.auth().viewer()?;
        let db = &ctx.state().db.conn;
        let plan = match plan_id {
            Some(id) => {
                let id = parse_id(&id, "plan")?;
                Some(crate::catalog::service::plan_by_id(db, id, true).await?.ok_or(AppError::NotFound("plan"))?)
            }
            None => None,
        };
        let usage = plan.as_ref().map_or(Use::Any, Use::Checkout);
        let answer =
            service::evaluate(db, &ctx.state().auth.coupon_guess_limiter, viewer.id, &code, usage, ctx.state().now())
                .await?;
        Ok(match answer {
            Ok(o) => CouponValidation {
                valid: true,
                reason: None,
                message: None,
                credit_amount: o.credit,
                discount_amount: o.discount,
                final_price: o.final_price,
                coupon: Some(CouponTerms(o.coupon)),
            },
            Err(r) => CouponValidation {
                valid: false,
                reason: Some(r),
                message: Some(r.message().to_string()),
                coupon: None,
                credit_amount: None,
                discount_amount: None,
                final_price: None,
            },
        })
    }

    /// The viewer's coupon redemptions, newest first.
    async fn coupon_redemptions(
        &self,
        ctx: &Context<'_>,
        #[graphql(name = "type")] kind: Option<CouponType>,
        #[graphql(default = 20)] first: Option<i32>,
        after: Option<String>,
    ) -> Result<Conn<CouponRedemption>> {
        let viewer = ctx.auth().viewer()?;
        let args = PageArgs::parse(first, after.as_deref())?;
        let db = &ctx.state().db.conn;
        let page = service::history(db, viewer.id, kind, args).await?;
        Ok(with_coupons(db, page).await?)
    }
}

#[derive(Default)]
pub struct CouponMutation;

#[Object]
impl CouponMutation {
    /// Redeems a credit coupon (CREDIT_TOPUP or WELCOME_BONUS) into the wallet. Refusals are
    /// BAD_USER_INPUT with `extensions.field` "code" and `extensions.reason` (CouponRejection).
    async fn redeem_coupon(&self, ctx: &Context<'_>, code: String) -> Result<RedeemCouponPayload> {
        let viewer = ctx.auth().viewer()?;
        let r = service::redeem(ctx.state(), viewer, &code).await?;
        Ok(RedeemCouponPayload {
            balance: r.transaction.balance_after,
            transaction: Transaction(r.transaction),
            redemption: CouponRedemption(r.redemption, Some(r.coupon)),
        })
    }
}
