//! Administrator use cases: create, edit, enable or disable, delete (only unused), list,
//! statistics, and the recorded welcome-bonus failures.
use chrono::{DateTime, Datelike, Duration, TimeZone, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect, RelationTrait, Set,
    sea_query::{Expr, ExprTrait, Func},
};

use super::{
    Code, CouponStatus, CouponType, DiscountType,
    entity::{coupon, failure, redemption},
};
use crate::{
    auth::Viewer,
    catalog::PlanType,
    error::{AppError, AppResult, DbResultExt, is_foreign_key_violation},
    pagination::{Page, PageArgs},
    state::AppState,
};

pub const MIN_CREDIT: i64 = 1_000;
pub const MAX_CREDIT: i64 = 10_000_000;

pub struct NewCoupon {
    pub code: String,
    pub name: String,
    pub description: Option<String>,
    pub kind: CouponType,
    pub discount_type: Option<DiscountType>,
    pub credit_amount: Option<i64>,
    pub discount_percent: Option<i32>,
    pub max_uses: Option<i32>,
    pub max_uses_per_user: Option<i32>,
    pub service_id: Option<i64>,
    pub plan_type: Option<PlanType>,
    pub valid_from: Option<DateTime<Utc>>,
    pub valid_until: Option<DateTime<Utc>>,
}

fn parse_name(raw: &str) -> AppResult<String> {
    let s = raw.trim();
    if s.is_empty() || s.chars().count() > 100 {
        return Err(AppError::bad_input("name", "name must be 1 to 100 characters"));
    }
    Ok(s.to_string())
}

fn parse_description(raw: Option<&str>) -> AppResult<Option<String>> {
    match raw.map(str::trim).filter(|s| !s.is_empty()) {
        Some(d) if d.chars().count() > 500 => {
            Err(AppError::bad_input("description", "description must be at most 500 characters"))
        }
        d => Ok(d.map(str::to_string)),
    }
}

fn check_limits(max_uses: i32, per_user: i32) -> AppResult<()> {
    if !(1..=1_000_000).contains(&max_uses) {
        return Err(AppError::bad_input("maxUses", "maxUses must be between 1 and 1,000,000"));
    }
    if !(1..=100).contains(&per_user) {
        return Err(AppError::bad_input("maxUsesPerUser", "maxUsesPerUser must be between 1 and 100"));
    }
    if per_user > max_uses {
        return Err(AppError::bad_input("maxUsesPerUser", "maxUsesPerUser cannot be more than maxUses"));
    }
    Ok(())
}

fn check_window(from: DateTime<Utc>, until: Option<DateTime<Utc>>, now: DateTime<Utc>) -> AppResult<()> {
    match until {
        Some(u) if u <= from => Err(AppError::bad_input("validUntil", "validUntil must be after validFrom")),
        Some(u) if u <= now => Err(AppError::bad_input("validUntil", "validUntil must be in the future")),
        _ => Ok(()),
    }
}

fn check_credit(amount: Option<i64>, what: &str) -> AppResult<i64> {
    match amount {
        None => Err(AppError::bad_input("creditAmount", format!("creditAmount is required for {what}"))),
        Some(a) if !(MIN_CREDIT..=MAX_CREDIT).contains(&a) => {
            Err(AppError::bad_input("creditAmount", "creditAmount must be between 1,000 and 10,000,000 IDR"))
        }
        Some(a) => Ok(a),
    }
}

fn absent<T>(v: &Option<T>, field: &'static str, why: &str) -> AppResult<()> {
    match v {
        Some(_) => Err(AppError::bad_input(field, format!("{field} does not apply {why}"))),
        None => Ok(()),
    }
}

/// The cross-field rules of each type: which value fields it needs and which it must not have.
fn check_shape(c: &NewCoupon) -> AppResult<()> {
    match c.kind {
        CouponType::CreditTopup | CouponType::WelcomeBonus => {
            check_credit(c.credit_amount, "credit coupons")?;
            absent(&c.discount_type, "discountType", "to credit coupons")?;
            absent(&c.discount_percent, "discountPercent", "to credit coupons")?;
            // Restrictions are checked at checkout, which credit coupons never see.
            absent(&c.service_id, "serviceId", "to credit coupons")?;
            absent(&c.plan_type, "planType", "to credit coupons")
        }
        CouponType::SubscriptionDiscount => match c.discount_type {
            None => Err(AppError::bad_input("discountType", "discountType is required for SUBSCRIPTION_DISCOUNT")),
            Some(DiscountType::FixedAmount) => {
                check_credit(c.credit_amount, "a FIXED_AMOUNT discount")?;
                absent(&c.discount_percent, "discountPercent", "to a FIXED_AMOUNT discount")
            }
            Some(DiscountType::Percentage) => {
                absent(&c.credit_amount, "creditAmount", "to a PERCENTAGE discount")?;
                match c.discount_percent {
                    Some(p) if (1..=100).contains(&p) => Ok(()),
                    Some(_) => Err(AppError::bad_input("discountPercent", "discountPercent must be between 1 and 100")),
                    None => Err(AppError::bad_input("discountPercent", "discountPercent is required for PERCENTAGE")),
                }
            }
        },
        CouponType::FreeService => {
            absent(&c.credit_amount, "creditAmount", "to FREE_SERVICE")?;
            absent(&c.discount_type, "discountType", "to FREE_SERVICE")?;
            absent(&c.discount_percent, "discountPercent", "to FREE_SERVICE")?;
            match c.service_id {
                Some(_) => Ok(()),
                None => Err(AppError::bad_input("serviceId", "serviceId is required for FREE_SERVICE")),
            }
        }
    }
}

fn service_violation(e: sea_orm::DbErr) -> AppError {
    if is_foreign_key_violation(&e) {
        AppError::bad_input("serviceId", "no service has this id")
    } else {
        AppError::from(e)
    }
}

/// `created_by` None: the seed.
#[tracing::instrument(skip_all, fields(admin_id = created_by))]
pub async fn create(state: &AppState, created_by: Option<i64>, input: NewCoupon) -> AppResult<coupon::Model> {
    let code = Code::parse_input(&input.code, "code")?;
    let name = parse_name(&input.name)?;
    let description = parse_description(input.description.as_deref())?;
    check_shape(&input)?;
    let (max_uses, per_user) = (input.max_uses.unwrap_or(1), input.max_uses_per_user.unwrap_or(1));
    check_limits(max_uses, per_user)?;
    let now = state.now();
    let valid_from = input.valid_from.unwrap_or(now);
    check_window(valid_from, input.valid_until, now)?;
    let tx = state.db.begin().await?;
    let created = coupon::ActiveModel {
        code: Set(code.as_str().to_string()),
        name: Set(name),
        description: Set(description),
        kind: Set(input.kind),
        discount_type: Set(input.discount_type),
        credit_amount: Set(input.credit_amount),
        discount_percent: Set(input.discount_percent),
        max_uses: Set(max_uses),
        used_count: Set(0),
        max_uses_per_user: Set(per_user),
        service_id: Set(input.service_id),
        plan_type: Set(input.plan_type),
        valid_from: Set(valid_from),
        valid_until: Set(input.valid_until),
        enabled: Set(true),
        created_by: Set(created_by),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
    .insert(&*tx)
    .await;
    let created = match created {
        Err(e) if is_foreign_key_violation(&e) => return Err(service_violation(e)),
        other => {
            other.on_unique_violation(|_| AppError::Conflict(format!("a coupon {} already exists", code.as_str())))?
        }
    };
    tx.commit().await?;
    Ok(created)
}

/// What an administrator may change; the type and the value stay (redemptions refer to them).
#[derive(Default)]
pub struct CouponChanges {
    pub name: Option<String>,
    /// `Some(None)` clears it.
    pub description: Option<Option<String>>,
    pub max_uses: Option<i32>,
    pub max_uses_per_user: Option<i32>,
    pub valid_from: Option<DateTime<Utc>>,
    /// `Some(None)` removes the end.
    pub valid_until: Option<Option<DateTime<Utc>>>,
}

#[tracing::instrument(skip_all, fields(admin_id = admin.id, coupon_id = id))]
pub async fn update(state: &AppState, admin: Viewer, id: i64, changes: CouponChanges) -> AppResult<coupon::Model> {
    let now = state.now();
    let tx = state.db.begin().await?;
    let current = super::service::get(&*tx, id).await?;
    let max_uses = changes.max_uses.unwrap_or(current.max_uses);
    let per_user = changes.max_uses_per_user.unwrap_or(current.max_uses_per_user);
    check_limits(max_uses, per_user)?;
    let valid_from = changes.valid_from.unwrap_or(current.valid_from);
    let valid_until = changes.valid_until.unwrap_or(current.valid_until);
    if changes.valid_from.is_some() || changes.valid_until.is_some() {
        check_window(valid_from, valid_until, now)?;
    }
    let mut active = coupon::ActiveModel { updated_at: Set(now), ..Default::default() };
    if let Some(n) = changes.name.as_deref() {
        active.name = Set(parse_name(n)?);
    }
    if let Some(d) = changes.description {
        active.description = Set(parse_description(d.as_deref())?);
    }
    active.max_uses = Set(max_uses);
    active.max_uses_per_user = Set(per_user);
    active.valid_from = Set(valid_from);
    active.valid_until = Set(valid_until);
    // Conditional on the counter, which redemptions move concurrently: maxUses never goes
    // below the uses already taken.
    let res = coupon::Entity::update_many()
        .set(active)
        .filter(coupon::Column::Id.eq(id))
        .filter(coupon::Column::UsedCount.lte(max_uses))
        .exec(&*tx)
        .await?;
    if res.rows_affected != 1 {
        return Err(AppError::bad_input("maxUses", "maxUses cannot be below the number of uses already taken"));
    }
    let updated = super::service::get(&*tx, id).await?;
    tx.commit().await?;
    Ok(updated)
}

pub async fn set_enabled(state: &AppState, admin: Viewer, id: i64, enabled: bool) -> AppResult<coupon::Model> {
    let now = state.now();
    let tx = state.db.begin().await?;
    let res = coupon::Entity::update_many()
        .col_expr(coupon::Column::Enabled, Expr::value(enabled))
        .col_expr(coupon::Column::UpdatedAt, Expr::value(now))
        .filter(coupon::Column::Id.eq(id))
        .exec(&*tx)
        .await?;
    if res.rows_affected != 1 {
        return Err(AppError::NotFound("coupon"));
    }
    let updated = super::service::get(&*tx, id).await?;
    tx.commit().await?;
    tracing::info!(admin_id = admin.id, coupon_id = id, enabled, "coupon enabled changed");
    Ok(updated)
}

/// Only a coupon nobody used: the redemptions' foreign key refuses the rest (CONFLICT).
#[tracing::instrument(skip_all, fields(admin_id = admin.id, coupon_id = id))]
pub async fn delete(state: &AppState, admin: Viewer, id: i64) -> AppResult<()> {
    let tx = state.db.begin().await?;
    let res = coupon::Entity::delete_by_id(id).exec(&*tx).await;
    match res {
        Ok(r) if r.rows_affected == 1 => {
            tx.commit().await?;
            Ok(())
        }
        Ok(_) => Err(AppError::NotFound("coupon")),
        Err(e) if is_foreign_key_violation(&e) => {
            Err(AppError::Conflict("the coupon has redemptions and cannot be deleted; disable it instead".into()))
        }
        Err(e) => Err(e.into()),
    }
}

/// The coupons that read as `status` at `now` (see `coupons::status_at`).
pub fn status_condition(status: CouponStatus, now: DateTime<Utc>) -> Condition {
    let enabled = coupon::Column::Enabled.eq(true);
    let not_expired = coupon::Column::ValidUntil.is_null().or(coupon::Column::ValidUntil.gt(now));
    let started = coupon::Column::ValidFrom.lte(now);
    let left = Expr::col(coupon::Column::UsedCount).lt(Expr::col(coupon::Column::MaxUses));
    match status {
        CouponStatus::Disabled => Condition::all().add(coupon::Column::Enabled.eq(false)),
        CouponStatus::Expired => Condition::all().add(enabled).add(coupon::Column::ValidUntil.lte(now)),
        CouponStatus::Scheduled => {
            Condition::all().add(enabled).add(not_expired).add(coupon::Column::ValidFrom.gt(now))
        }
        CouponStatus::UsedUp => Condition::all().add(enabled).add(not_expired).add(started).add(left.not()),
        CouponStatus::Active => Condition::all().add(enabled).add(not_expired).add(started).add(left),
    }
}

#[derive(Default)]
pub struct ListFilter {
    pub status: Option<CouponStatus>,
    pub kind: Option<CouponType>,
    pub service_id: Option<i64>,
    /// Part of the code or the name, any case.
    pub search: Option<String>,
}

/// Newest first.
pub async fn list(
    db: &impl ConnectionTrait,
    filter: ListFilter,
    now: DateTime<Utc>,
    args: PageArgs,
) -> AppResult<Page<coupon::Model>> {
    let mut q = coupon::Entity::find();
    if let Some(s) = filter.status {
        q = q.filter(status_condition(s, now));
    }
    if let Some(k) = filter.kind {
        q = q.filter(coupon::Column::Kind.eq(k));
    }
    if let Some(s) = filter.service_id {
        q = q.filter(coupon::Column::ServiceId.eq(s));
    }
    if let Some(pattern) = crate::text::search_pattern(filter.search.as_deref())? {
        q = q.filter(
            Expr::expr(Func::lower(Expr::col(coupon::Column::Code)))
                .like(pattern.clone())
                .or(Expr::expr(Func::lower(Expr::col(coupon::Column::Name))).like(pattern)),
        );
    }
    crate::pagination::newest_first(db, q, coupon::Column::Id, args).await
}

/// One coupon's redemptions, newest first.
pub async fn redemptions(
    db: &impl ConnectionTrait,
    coupon_id: i64,
    args: PageArgs,
) -> AppResult<Page<redemption::Model>> {
    let q = redemption::Entity::find().filter(redemption::Column::CouponId.eq(coupon_id));
    crate::pagination::newest_first(db, q, redemption::Column::Id, args).await
}

pub async fn failures(db: &impl ConnectionTrait, args: PageArgs) -> AppResult<Page<failure::Model>> {
    let q = failure::Entity::find();
    crate::pagination::newest_first(db, q, failure::Column::Id, args).await
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, async_graphql::Enum)]
pub enum StatsPeriod {
    /// The last 7 days.
    Week,
    /// Since the first of this month (UTC).
    Month,
    /// Since January 1 (UTC).
    Year,
}

impl StatsPeriod {
    pub fn start(self, now: DateTime<Utc>) -> DateTime<Utc> {
        match self {
            Self::Week => now - Duration::days(7),
            Self::Month => crate::reports::service::month_start(now),
            Self::Year => Utc.with_ymd_and_hms(now.year(), 1, 1, 0, 0, 0).single().unwrap_or(now),
        }
    }
}

pub struct Statistics {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub by_status: Vec<(CouponStatus, u64)>,
    pub total_coupons: u64,
    pub total_redemptions: u64,
    pub period_redemptions: u64,
    /// Credit given to wallets in the period (IDR).
    pub period_credit: i64,
    /// Taken off first periods at checkout in the period (IDR).
    pub period_discount: i64,
    /// Redemptions in the period per coupon type.
    pub by_type: Vec<(CouponType, u64)>,
    /// The ten most used coupons.
    pub top: Vec<coupon::Model>,
}

async fn sum_in(db: &impl ConnectionTrait, col: &str, from: DateTime<Utc>) -> AppResult<i64> {
    let sum: Option<i64> = redemption::Entity::find()
        .select_only()
        .column_as(Expr::cust(format!("CAST(COALESCE(SUM({col}), 0) AS BIGINT)")), "total")
        .filter(redemption::Column::RedeemedAt.gte(from))
        .into_tuple()
        .one(db)
        .await?;
    Ok(sum.unwrap_or_default())
}

pub async fn statistics(db: &impl ConnectionTrait, period: StatsPeriod, now: DateTime<Utc>) -> AppResult<Statistics> {
    let from = period.start(now);
    let mut by_status = Vec::new();
    for s in [
        CouponStatus::Active,
        CouponStatus::Scheduled,
        CouponStatus::Expired,
        CouponStatus::UsedUp,
        CouponStatus::Disabled,
    ] {
        by_status.push((s, coupon::Entity::find().filter(status_condition(s, now)).count(db).await?));
    }
    let in_period = redemption::Entity::find().filter(redemption::Column::RedeemedAt.gte(from));
    let by_type: Vec<(CouponType, i64)> = in_period
        .clone()
        .select_only()
        .column_as(Expr::col((coupon::Entity, coupon::Column::Kind)), "kind")
        .column_as(Expr::cust("CAST(COUNT(*) AS BIGINT)"), "n")
        .join(sea_orm::JoinType::InnerJoin, redemption::Relation::Coupon.def())
        .group_by(Expr::col((coupon::Entity, coupon::Column::Kind)))
        .into_tuple()
        .all(db)
        .await?;
    Ok(Statistics {
        from,
        to: now,
        total_coupons: by_status.iter().map(|(_, n)| n).sum(),
        by_status,
        total_redemptions: redemption::Entity::find().count(db).await?,
        period_redemptions: in_period.count(db).await?,
        period_credit: sum_in(db, "credit_amount", from).await?,
        period_discount: sum_in(db, "discount_amount", from).await?,
        by_type: by_type.into_iter().map(|(k, n)| (k, n as u64)).collect(),
        top: coupon::Entity::find()
            .filter(coupon::Column::UsedCount.gt(0))
            .order_by_desc(coupon::Column::UsedCount)
            .order_by_asc(coupon::Column::Id)
            .limit(10)
            .all(db)
            .await?,
    })
}
