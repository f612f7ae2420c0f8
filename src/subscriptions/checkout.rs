//! `checkoutPreview`: what `subscribe` would do now, without writing anything. The checks run
//! in the order `subscribe` meets them (plan, one per service, credit, quota), so the first
//! reason given is the error `subscribe` would answer. A coupon is judged by the same rules
//! `subscribe` applies (`coupons::service::check`), and its discount is in the cost.
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter};

use super::{SubscriptionStatus, entity::subscription};
use crate::{
    auth::rate_limit::RateLimiter,
    catalog::entity::{plan, service as catalog_service},
    coupons::{
        CouponRejection,
        service::{self as coupons, Use},
    },
    error::{AppError, AppResult},
};

/// Why a checkout would be refused; each matches the error code `subscribe` answers.
#[derive(Copy, Clone, Debug, PartialEq, Eq, async_graphql::Enum)]
pub enum CheckoutBlock {
    /// The plan or its service is not offered (NOT_FOUND).
    PlanUnavailable,
    /// The user already has a live subscription to this service (CONFLICT).
    AlreadySubscribed,
    /// The balance does not cover the first period (INSUFFICIENT_CREDIT).
    InsufficientCredit,
    /// Every slot of the plan is taken (QUOTA_EXHAUSTED).
    QuotaExhausted,
    /// The coupon would be refused (BAD_USER_INPUT); `couponRejection` says why.
    CouponInvalid,
}

pub struct Preview {
    pub plan: plan::Model,
    /// The first period's price after the coupon's discount.
    pub cost: i64,
    pub discount: i64,
    pub coupon_rejection: Option<CouponRejection>,
    pub balance: i64,
    pub block: Option<CheckoutBlock>,
}

impl Preview {
    pub fn balance_after(&self) -> i64 {
        self.balance - self.cost
    }

    pub fn shortfall(&self) -> i64 {
        Ord::max(self.cost - self.balance, 0)
    }
}

pub async fn preview(
    db: &impl ConnectionTrait,
    guesses: &RateLimiter,
    user_id: i64,
    plan_id: i64,
    coupon: Option<&str>,
    now: chrono::DateTime<chrono::Utc>,
) -> AppResult<Preview> {
    let plan = plan::Entity::find_by_id(plan_id).one(db).await?.ok_or(AppError::NotFound("plan"))?;
    let offered = plan.is_active
        && catalog_service::Entity::find_by_id(plan.service_id).one(db).await?.is_some_and(|s| s.is_visible());
    let live = subscription::owned_by(user_id)
        .filter(subscription::Column::ServiceId.eq(plan.service_id))
        .filter(subscription::Column::Status.is_in(SubscriptionStatus::live()))
        .count(db)
        .await?;
    let balance = crate::users::service::get(db, user_id).await?.balance;
    let judged = match coupon.filter(|c| !c.trim().is_empty()) {
        Some(code) => Some(coupons::evaluate(db, guesses, user_id, code, Use::Checkout(&plan), now).await?),
        None => None,
    };
    let coupon_rejection = judged.as_ref().and_then(|j| j.as_ref().err().copied());
    let discount = judged.as_ref().and_then(|j| j.as_ref().ok()).and_then(|o| o.discount).unwrap_or(0);
    let cost = plan.monthly_price - discount;
    let block = if !offered {
        Some(CheckoutBlock::PlanUnavailable)
    } else if coupon_rejection.is_some() {
        Some(CheckoutBlock::CouponInvalid)
    } else if live > 0 {
        Some(CheckoutBlock::AlreadySubscribed)
    } else if balance < cost {
        Some(CheckoutBlock::InsufficientCredit)
    } else if plan.available_quota() == 0 {
        Some(CheckoutBlock::QuotaExhausted)
    } else {
        None
    };
    Ok(Preview { plan, cost, discount, coupon_rejection, balance, block })
}
