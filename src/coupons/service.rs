//! Coupon use cases for users: validate, redeem for credit, apply at checkout, history.
//!
//! Exactly once: `claim` takes a use with two conditional updates in the caller's transaction
//! (`used_count < max_uses` on the coupon, `uses < max_uses_per_user` on the user's counter),
//! and the caller writes the redemption and its ledger entry in the same transaction. A request
//! that loses a race changes nothing and is told the first reason that now fails.
use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set,
    sea_query::{Expr, ExprTrait, OnConflict, Query},
};

use super::{
    Code, CouponRejection, CouponType, RedemptionContext, discount,
    entity::{coupon, redemption, user_use},
    status_at,
};
use crate::{
    auth::{Viewer, rate_limit::RateLimiter},
    billing::{
        TransactionType, entity as transactions,
        service::{self as ledger, Entry},
    },
    catalog::entity::plan,
    error::{AppError, AppResult},
    pagination::{Page, PageArgs},
    state::AppState,
};

/// What the coupon is being used for; decides which types and restrictions apply.
#[derive(Clone, Copy)]
pub enum Use<'a> {
    /// `validateCoupon` without a plan: any type, restrictions unchecked.
    Any,
    /// `redeemCoupon`: credit types only.
    Wallet,
    /// `subscribe` (and `validateCoupon` with a plan): checkout types, for this plan.
    Checkout(&'a plan::Model),
}

/// A coupon that would be accepted, and what it would give.
#[derive(Clone, Debug)]
pub struct Offer {
    pub coupon: coupon::Model,
    /// Credit to the wallet (credit types).
    pub credit: Option<i64>,
    /// Taken off the plan's first period (checkout types, with a plan).
    pub discount: Option<i64>,
    /// The plan's price after the discount.
    pub final_price: Option<i64>,
}

pub async fn find_by_code(db: &impl ConnectionTrait, code: &Code) -> AppResult<Option<coupon::Model>> {
    Ok(coupon::Entity::find().filter(coupon::Column::Code.eq(code.as_str())).one(db).await?)
}

/// A user's lookup of a code: unknown codes count against `guesses`, and once a user has
/// spent them every lookup is RATE_LIMITED, so codes cannot be found by trying them.
pub async fn look_up(
    db: &impl ConnectionTrait,
    guesses: &RateLimiter,
    user_id: i64,
    code: &Code,
) -> AppResult<Option<coupon::Model>> {
    let key = user_id.to_string();
    guesses.check(&key)?;
    let found = find_by_code(db, code).await?;
    if found.is_none() {
        // This miss may be the one that reaches the limit; it is still told UNKNOWN_CODE.
        let _ = guesses.hit(&key);
    }
    Ok(found)
}

async fn uses_of(db: &impl ConnectionTrait, coupon_id: i64, user_id: i64) -> AppResult<i32> {
    let row = user_use::Entity::find_by_id((coupon_id, user_id)).one(db).await?;
    Ok(row.map_or(0, |r| r.uses))
}

/// The rules in their order; the first that fails is the answer.
pub fn check(c: &coupon::Model, user_uses: i32, usage: Use<'_>, now: DateTime<Utc>) -> Result<(), CouponRejection> {
    use super::CouponStatus as S;
    match status_at(c, now) {
        S::Disabled => return Err(CouponRejection::Disabled),
        S::Expired => return Err(CouponRejection::Expired),
        S::Scheduled => return Err(CouponRejection::NotYetValid),
        S::UsedUp => return Err(CouponRejection::UsedUp),
        S::Active => {}
    }
    if user_uses >= c.max_uses_per_user {
        return Err(CouponRejection::PerUserLimitReached);
    }
    match usage {
        Use::Any => Ok(()),
        Use::Wallet if c.kind.gives_credit() => Ok(()),
        Use::Wallet => Err(CouponRejection::CheckoutOnly),
        Use::Checkout(plan) => {
            if c.service_id.is_some_and(|s| s != plan.service_id) {
                Err(CouponRejection::WrongService)
            } else if c.plan_type.is_some_and(|t| t != plan.plan_type) {
                Err(CouponRejection::WrongPlanType)
            } else if c.kind.gives_credit() {
                Err(CouponRejection::NotForCheckout)
            } else {
                Ok(())
            }
        }
    }
}

fn offer(c: coupon::Model, usage: Use<'_>) -> Offer {
    let credit = c.kind.gives_credit().then(|| c.credit_amount.unwrap_or(0));
    let (discount, final_price) = match usage {
        Use::Checkout(plan) if !c.kind.gives_credit() => {
            let off = discount(c.kind, c.discount_type, c.credit_amount, c.discount_percent, plan.monthly_price);
            (Some(off), Some(plan.monthly_price - off))
        }
        _ => (None, None),
    };
    Offer { coupon: c, credit, discount, final_price }
}

/// Whether `raw` would be accepted for `usage` now, and what it would give. Nothing is written.
pub async fn evaluate(
    db: &impl ConnectionTrait,
    guesses: &RateLimiter,
    user_id: i64,
    raw: &str,
    usage: Use<'_>,
    now: DateTime<Utc>,
) -> AppResult<Result<Offer, CouponRejection>> {
    let Some(code) = Code::parse(raw) else {
        return Ok(Err(CouponRejection::UnknownCode));
    };
    let Some(c) = look_up(db, guesses, user_id, &code).await? else {
        return Ok(Err(CouponRejection::UnknownCode));
    };
    let uses = uses_of(db, c.id, user_id).await?;
    Ok(check(&c, uses, usage, now).map(|()| offer(c, usage)))
}

/// Takes one use of `c` for `user_id`: both counters move or neither (the caller's transaction
/// rolls back on an error). Conditional updates, so concurrent claims cannot pass a limit.
async fn claim(db: &impl ConnectionTrait, c: &coupon::Model, user_id: i64, now: DateTime<Utc>) -> AppResult<()> {
    let taken = coupon::Entity::update_many()
        .col_expr(coupon::Column::UsedCount, Expr::col(coupon::Column::UsedCount).add(1))
        .col_expr(coupon::Column::UpdatedAt, Expr::value(now))
        .filter(coupon::Column::Id.eq(c.id))
        .filter(coupon::Column::Enabled.eq(true))
        .filter(coupon::Column::ValidFrom.lte(now))
        .filter(coupon::Column::ValidUntil.is_null().or(coupon::Column::ValidUntil.gt(now)))
        .filter(Expr::col(coupon::Column::UsedCount).lt(Expr::col(coupon::Column::MaxUses)))
        .exec(db)
        .await?;
    if taken.rows_affected != 1 {
        // Changed since it was read (disabled, used up, …): say what fails now.
        let now_reads = coupon::Entity::find_by_id(c.id).one(db).await?;
        let reason =
            now_reads.and_then(|fresh| check(&fresh, 0, Use::Any, now).err()).unwrap_or(CouponRejection::UsedUp);
        return Err(reason.into_error(FIELD_OF_CLAIM));
    }
    // The upsert waits for a concurrent first insert of the pair and then re-checks the limit.
    let counted = per_user_statement(db, c, user_id).await?;
    if !counted {
        return Err(CouponRejection::PerUserLimitReached.into_error(FIELD_OF_CLAIM));
    }
    Ok(())
}

/// `claim` errors name this field; callers re-map it to their own argument.
const FIELD_OF_CLAIM: &str = "code";

/// The per-user upsert: insert (coupon, user, 1), or add one while `uses < max_uses_per_user`.
async fn per_user_statement(db: &impl ConnectionTrait, c: &coupon::Model, user_id: i64) -> AppResult<bool> {
    let mut stmt = Query::insert();
    stmt.into_table(user_use::Entity)
        .columns([user_use::Column::CouponId, user_use::Column::UserId, user_use::Column::Uses])
        .values([c.id.into(), user_id.into(), 1.into()])
        .map_err(AppError::internal)?
        .on_conflict(
            OnConflict::columns([user_use::Column::CouponId, user_use::Column::UserId])
                .value(user_use::Column::Uses, Expr::col((user_use::Entity, user_use::Column::Uses)).add(1))
                .action_and_where(Expr::col((user_use::Entity, user_use::Column::Uses)).lt(c.max_uses_per_user))
                .to_owned(),
        );
    Ok(db.execute(&stmt).await?.rows_affected() == 1)
}

/// Re-labels a claim refusal with the caller's argument name.
fn in_field(e: AppError, field: &'static str) -> AppError {
    match e {
        AppError::Rejected { reason, message, .. } => AppError::Rejected { field, reason, message },
        other => other,
    }
}

#[allow(clippy::too_many_arguments)]
async fn record(
    db: &impl ConnectionTrait,
    c: &coupon::Model,
    user_id: i64,
    context: RedemptionContext,
    credit: Option<i64>,
    discount: Option<i64>,
    transaction_id: Option<i64>,
    subscription_id: Option<i64>,
    now: DateTime<Utc>,
) -> AppResult<redemption::Model> {
    Ok(redemption::ActiveModel {
        coupon_id: Set(c.id),
        user_id: Set(user_id),
        context: Set(context),
        credit_amount: Set(credit),
        discount_amount: Set(discount),
        transaction_id: Set(transaction_id),
        subscription_id: Set(subscription_id),
        redeemed_at: Set(now),
        ..Default::default()
    }
    .insert(db)
    .await?)
}

pub struct Redeemed {
    pub redemption: redemption::Model,
    pub coupon: coupon::Model,
    pub transaction: transactions::Model,
}

/// `redeemCoupon`: credit to the wallet, once per available use. The redemption, both
/// counters and the COUPON_REDEMPTION ledger entry commit together or not at all.
#[tracing::instrument(skip_all, fields(user_id = viewer.id))]
pub async fn redeem(state: &AppState, viewer: Viewer, raw: &str) -> AppResult<Redeemed> {
    const FIELD: &str = "code";
    let code = Code::parse(raw).ok_or(CouponRejection::UnknownCode.into_error(FIELD))?;
    let now = state.now();
    let tx = state.db.begin().await?;
    let c = look_up(&*tx, &state.auth.coupon_guess_limiter, viewer.id, &code)
        .await?
        .ok_or(CouponRejection::UnknownCode.into_error(FIELD))?;
    let uses = uses_of(&*tx, c.id, viewer.id).await?;
    check(&c, uses, Use::Wallet, now).map_err(|r| r.into_error(FIELD))?;
    claim(&*tx, &c, viewer.id, now).await.map_err(|e| in_field(e, FIELD))?;
    let amount = c.credit_amount.unwrap_or(0);
    let mut entry = Entry::new(viewer.id, TransactionType::CouponRedemption, amount, credit_description(&c));
    entry.metadata = Some(serde_json::json!({ "couponId": c.id, "couponCode": c.code }));
    let row = ledger::credit(&*tx, entry, now).await?;
    let r = record(&*tx, &c, viewer.id, RedemptionContext::Wallet, Some(amount), None, Some(row.id), None, now).await?;
    tx.commit().await?;
    state.wallet_hub.announce(&state.db, viewer.id, row.id).await;
    tracing::info!(coupon_id = c.id, redemption_id = r.id, amount, "coupon redeemed");
    Ok(Redeemed { redemption: r, coupon: c, transaction: row })
}

pub(super) fn credit_description(c: &coupon::Model) -> String {
    match c.kind {
        CouponType::WelcomeBonus => format!("Welcome bonus: {} ({})", c.name, c.code),
        _ => format!("Coupon {}: {}", c.code, c.name),
    }
}

/// A checkout coupon taken for `plan` inside `subscribe`'s transaction; `finish` records it
/// once the subscription and its charge exist.
pub struct CheckoutClaim {
    pub coupon: coupon::Model,
    pub discount: i64,
}

/// Validates and takes a use of a checkout coupon, in the subscription's transaction.
pub async fn claim_for_checkout(
    db: &impl ConnectionTrait,
    guesses: &RateLimiter,
    user_id: i64,
    raw: &str,
    plan: &plan::Model,
    now: DateTime<Utc>,
) -> AppResult<CheckoutClaim> {
    const FIELD: &str = "couponCode";
    let code = Code::parse(raw).ok_or(CouponRejection::UnknownCode.into_error(FIELD))?;
    let c = look_up(db, guesses, user_id, &code).await?.ok_or(CouponRejection::UnknownCode.into_error(FIELD))?;
    let uses = uses_of(db, c.id, user_id).await?;
    check(&c, uses, Use::Checkout(plan), now).map_err(|r| r.into_error(FIELD))?;
    claim(db, &c, user_id, now).await.map_err(|e| in_field(e, FIELD))?;
    let off = discount(c.kind, c.discount_type, c.credit_amount, c.discount_percent, plan.monthly_price);
    Ok(CheckoutClaim { coupon: c, discount: off })
}

impl CheckoutClaim {
    /// The redemption row, linked to the subscription and its (discounted) charge, if any.
    pub async fn finish(
        &self,
        db: &impl ConnectionTrait,
        user_id: i64,
        subscription_id: i64,
        transaction_id: Option<i64>,
        now: DateTime<Utc>,
    ) -> AppResult<redemption::Model> {
        let c = &self.coupon;
        let ctx = RedemptionContext::Checkout;
        record(db, c, user_id, ctx, None, Some(self.discount), transaction_id, Some(subscription_id), now).await
    }
}

/// The viewer's redemptions, newest first.
pub async fn history(
    db: &impl ConnectionTrait,
    user_id: i64,
    kind: Option<CouponType>,
    args: PageArgs,
) -> AppResult<Page<redemption::Model>> {
    let mut q = redemption::owned_by(user_id);
    if let Some(k) = kind {
        let of_kind = Query::select()
            .column(coupon::Column::Id)
            .from(coupon::Entity)
            .and_where(Expr::col(coupon::Column::Kind).eq(k))
            .to_owned();
        q = q.filter(redemption::Column::CouponId.in_subquery(of_kind));
    }
    crate::pagination::newest_first(db, q, redemption::Column::Id, args).await
}

pub async fn get(db: &impl ConnectionTrait, id: i64) -> AppResult<coupon::Model> {
    coupon::Entity::find_by_id(id).one(db).await?.ok_or(AppError::NotFound("coupon"))
}
