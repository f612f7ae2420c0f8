//! The welcome bonus: on registration every live WELCOME_BONUS coupon with uses left is given,
//! in the transaction that creates the account. Set-based, so registration costs the same few
//! statements however many coupons stack: one conditional UPDATE … RETURNING takes a use of
//! every eligible coupon, then one insert each for the use counters, the ledger and the
//! redemptions (plus one balance update).
//!
//! A failure does not cost the user their account: the bonus runs under a savepoint that is
//! rolled back, the error is logged, and a `coupon_failures` row (in the same transaction as
//! the account) lets administrators see and repair it.
use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, Set, TransactionTrait,
    sea_query::{Condition, Expr, ExprTrait, LockType, Order, Query},
};

use super::{
    CouponType, RedemptionContext,
    entity::{coupon, failure, redemption, user_use},
};
use crate::{
    billing::{
        TransactionType,
        service::{self as ledger, Entry},
    },
    error::{AppError, AppResult},
};

/// Gives the new user every eligible welcome bonus; never fails the registration for it (see
/// the module comment). Returns the credit given.
#[tracing::instrument(skip_all, fields(user_id = user_id))]
pub async fn grant(tx: &DatabaseTransaction, user_id: i64, now: DateTime<Utc>) -> AppResult<i64> {
    let savepoint = tx.begin().await?;
    match apply(&savepoint, user_id, now).await {
        Ok(total) => {
            savepoint.commit().await?;
            Ok(total)
        }
        Err(e) => {
            savepoint.rollback().await?;
            tracing::error!(user_id, error = %e, detail = ?e, "welcome bonus failed; the account was created without it");
            failure::ActiveModel {
                user_id: Set(Some(user_id)),
                context: Set("WELCOME_BONUS".into()),
                message: Set(format!("{e:?}")),
                created_at: Set(now),
                ..Default::default()
            }
            .insert(tx)
            .await?;
            Ok(0)
        }
    }
}

/// (id, code, name, credit) of each coupon a use was taken from.
type Taken = (i64, String, String, Option<i64>);

async fn apply(db: &impl ConnectionTrait, user_id: i64, now: DateTime<Utc>) -> AppResult<i64> {
    let eligible = Condition::all()
        .add(Expr::col(coupon::Column::Kind).eq(CouponType::WelcomeBonus))
        .add(Expr::col(coupon::Column::Enabled).eq(true))
        .add(Expr::col(coupon::Column::ValidFrom).lte(now))
        .add(Expr::col(coupon::Column::ValidUntil).is_null().or(Expr::col(coupon::Column::ValidUntil).gt(now)))
        .add(Expr::col(coupon::Column::UsedCount).lt(Expr::col(coupon::Column::MaxUses)))
        .add(Expr::col(coupon::Column::CreditAmount).gt(0));
    // PostgreSQL locks the rows in id order first, so two registrations taking several
    // coupons at once queue rather than deadlock (SQLite has one writer and no FOR UPDATE).
    let in_order = Query::select()
        .column(coupon::Column::Id)
        .from(coupon::Entity)
        .cond_where(eligible.clone())
        .order_by(coupon::Column::Id, Order::Asc)
        .lock(LockType::Update)
        .to_owned();
    let mut take = Query::update();
    take.table(coupon::Entity)
        .value(coupon::Column::UsedCount, Expr::col(coupon::Column::UsedCount).add(1))
        .value(coupon::Column::UpdatedAt, now)
        .cond_where(eligible)
        .and_where(Expr::col(coupon::Column::Id).in_subquery(in_order))
        .returning(Query::returning().columns([
            coupon::Column::Id,
            coupon::Column::Code,
            coupon::Column::Name,
            coupon::Column::CreditAmount,
        ]));
    let mut taken: Vec<Taken> = Vec::new();
    for row in db.query_all(&take).await? {
        taken.push((
            row.try_get("", "id")?,
            row.try_get("", "code")?,
            row.try_get("", "name")?,
            row.try_get("", "credit_amount")?,
        ));
    }
    if taken.is_empty() {
        return Ok(0);
    }
    taken.sort_by_key(|t| t.0);
    // A brand-new account has no uses yet: plain inserts.
    user_use::Entity::insert_many(taken.iter().map(|(id, ..)| user_use::ActiveModel {
        coupon_id: Set(*id),
        user_id: Set(user_id),
        uses: Set(1),
    }))
    .exec(db)
    .await?;
    let entries = taken
        .iter()
        .map(|(id, code, name, credit)| {
            let mut e = Entry::new(
                user_id,
                TransactionType::CouponRedemption,
                credit.unwrap_or(0),
                format!("Welcome bonus: {name} ({code})"),
            );
            e.metadata = Some(serde_json::json!({ "couponId": id, "couponCode": code, "welcomeBonus": true }));
            // Also the key that links each credit to its redemption below.
            e.idempotency_key = Some(welcome_key(*id, user_id));
            e
        })
        .collect();
    let credited = ledger::credit_many(db, user_id, entries, now).await?;
    let mut total = 0;
    let mut redemptions = Vec::with_capacity(taken.len());
    for (id, _, _, credit) in &taken {
        let key = welcome_key(*id, user_id);
        let row = credited
            .iter()
            .find(|t| t.idempotency_key.as_deref() == Some(key.as_str()))
            .ok_or_else(|| AppError::internal(anyhow::anyhow!("welcome bonus credit {key} missing")))?;
        total += row.amount;
        redemptions.push(redemption::ActiveModel {
            coupon_id: Set(*id),
            user_id: Set(user_id),
            context: Set(RedemptionContext::WelcomeBonus),
            credit_amount: Set(*credit),
            discount_amount: Set(None),
            transaction_id: Set(Some(row.id)),
            subscription_id: Set(None),
            redeemed_at: Set(now),
            ..Default::default()
        });
    }
    redemption::Entity::insert_many(redemptions).exec(db).await?;
    tracing::info!(user_id, coupons = taken.len(), total, "welcome bonus given");
    Ok(total)
}

fn welcome_key(coupon_id: i64, user_id: i64) -> String {
    format!("welcome:{coupon_id}:{user_id}")
}
