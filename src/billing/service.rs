//! Ledger use cases. `credit` and `debit` are the only code that changes a balance: one
//! conditional `UPDATE … RETURNING` on the user row plus one ledger row, in the caller's
//! transaction (so a subscription and its charge commit together).
use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set,
    sea_query::{Expr, ExprTrait, Query},
};

use super::{PaymentMethod, TransactionStatus, TransactionType, entity as transactions, entity::posting};
use crate::{
    auth::Viewer,
    error::{AppError, AppResult, DbResultExt},
    pagination::{Page, PageArgs},
    state::AppState,
    users::entity as users,
};

/// A completed money movement to append to the ledger.
#[derive(Clone, Debug)]
pub struct Entry {
    pub user_id: i64,
    pub kind: TransactionType,
    /// Positive, whole IDR.
    pub amount: i64,
    pub description: String,
    pub subscription_id: Option<i64>,
    pub metadata: Option<serde_json::Value>,
    pub processed_by: Option<i64>,
    pub payment_method: Option<PaymentMethod>,
    /// A retried call with the same key fails with CONFLICT instead of moving money twice.
    pub idempotency_key: Option<String>,
    /// Of a refund: the charge it returns.
    pub refund_of: Option<i64>,
}

impl Entry {
    pub fn new(user_id: i64, kind: TransactionType, amount: i64, description: impl Into<String>) -> Self {
        Self {
            user_id,
            kind,
            amount,
            description: description.into(),
            subscription_id: None,
            metadata: None,
            processed_by: None,
            payment_method: None,
            idempotency_key: None,
            refund_of: None,
        }
    }
}

/// How a movement of `kind` changes the lifetime totals: (top-up delta, spent delta) for a
/// positive amount in the given direction. Adjustments change neither.
fn totals_delta(kind: TransactionType, amount: i64) -> (i64, i64) {
    match kind {
        TransactionType::TopUp => (amount, 0),
        TransactionType::Reversal => (-amount, 0),
        TransactionType::Subscription | TransactionType::Upgrade | TransactionType::Renewal => (0, amount),
        TransactionType::Refund => (0, -amount),
        TransactionType::AdminAdjustment | TransactionType::CouponRedemption => (0, 0),
    }
}

/// Adds `delta` to the balance unless that would go below zero (when `allow_negative` is false).
/// Returns the new balance, or None when the condition failed.
async fn move_balance(
    db: &impl ConnectionTrait,
    user_id: i64,
    delta: i64,
    kind: TransactionType,
    allow_negative: bool,
    now: DateTime<Utc>,
) -> AppResult<Option<i64>> {
    let (top_up, spent) = totals_delta(kind, delta.abs());
    let mut stmt = Query::update();
    stmt.table(users::Entity)
        .value(users::Column::Balance, Expr::col(users::Column::Balance).add(delta))
        .value(users::Column::TotalTopUp, Expr::col(users::Column::TotalTopUp).add(top_up))
        .value(users::Column::TotalSpent, Expr::col(users::Column::TotalSpent).add(spent))
        .value(users::Column::UpdatedAt, now)
        .and_where(Expr::col(users::Column::Id).eq(user_id))
        .returning_col(users::Column::Balance);
    if !allow_negative {
        stmt.and_where(Expr::col(users::Column::Balance).add(delta).gte(0));
    }
    let row = db.query_one(&stmt).await?;
    Ok(row.map(|r| r.try_get::<i64>("", "balance")).transpose()?)
}

fn check_amount(amount: i64) -> AppResult<()> {
    if amount <= 0 {
        return Err(AppError::bad_input("amount", "amount must be positive"));
    }
    Ok(())
}

/// The COMPLETED ledger row of `e`, moving the balance from `before` to `after`.
fn completed_row(e: Entry, before: i64, after: i64, now: DateTime<Utc>) -> transactions::ActiveModel {
    transactions::ActiveModel {
        user_id: Set(e.user_id),
        kind: Set(e.kind),
        status: Set(TransactionStatus::Completed),
        amount: Set(e.amount),
        balance_before: Set(before),
        balance_after: Set(after),
        payment_method: Set(e.payment_method),
        description: Set(e.description),
        subscription_id: Set(e.subscription_id),
        metadata: Set(e.metadata),
        processed_by: Set(e.processed_by),
        idempotency_key: Set(e.idempotency_key),
        refund_of: Set(e.refund_of),
        created_at: Set(now),
        updated_at: Set(now),
        completed_at: Set(Some(now)),
        ..Default::default()
    }
}

async fn append(
    db: &impl ConnectionTrait,
    e: Entry,
    before: i64,
    after: i64,
    now: DateTime<Utc>,
) -> AppResult<transactions::Model> {
    completed_row(e, before, after, now)
        .insert(db)
        .await
        .on_unique_violation(|_| AppError::Conflict("this operation was already processed".into()))
}

/// Adds `entry.amount` to the user's balance and appends a COMPLETED ledger row.
#[tracing::instrument(skip_all, fields(user_id = entry.user_id, amount = entry.amount))]
pub async fn credit(db: &impl ConnectionTrait, entry: Entry, now: DateTime<Utc>) -> AppResult<transactions::Model> {
    check_amount(entry.amount)?;
    let after = move_balance(db, entry.user_id, entry.amount, entry.kind, true, now)
        .await?
        .ok_or(AppError::NotFound("user"))?;
    append(db, entry.clone(), after - entry.amount, after, now).await
}

/// Credits several entries of one user with one balance update and one multi-row insert (the
/// welcome bonus on registration: a bounded number of statements however many coupons stack).
/// The rows follow each other in the ledger: each one's `balance_before` is the previous one's
/// `balance_after`.
#[tracing::instrument(skip_all, fields(user_id, entries = entries.len()))]
pub async fn credit_many(
    db: &impl ConnectionTrait,
    user_id: i64,
    entries: Vec<Entry>,
    now: DateTime<Utc>,
) -> AppResult<Vec<transactions::Model>> {
    let Some(kind) = entries.first().map(|e| e.kind) else {
        return Ok(vec![]);
    };
    let mut total: i64 = 0;
    for e in &entries {
        check_amount(e.amount)?;
        if e.user_id != user_id || e.kind != kind {
            return Err(AppError::internal(anyhow::anyhow!("credit_many: entries of one user and kind only")));
        }
        total = total.checked_add(e.amount).ok_or_else(|| AppError::bad_input("amount", "amount too large"))?;
    }
    let after = move_balance(db, user_id, total, kind, true, now).await?.ok_or(AppError::NotFound("user"))?;
    let mut balance = after - total;
    let rows = entries.into_iter().map(|e| {
        let before = balance;
        balance += e.amount;
        completed_row(e, before, balance, now)
    });
    transactions::Entity::insert_many(rows.collect::<Vec<_>>())
        .exec_with_returning(db)
        .await
        .on_unique_violation(|_| AppError::Conflict("this operation was already processed".into()))
}

/// Takes `entry.amount` from the balance and appends a COMPLETED ledger row. Refused with
/// INSUFFICIENT_CREDIT when the balance would go below zero, unless `allow_negative` (reversals
/// of money that was already spent).
#[tracing::instrument(skip_all, fields(user_id = entry.user_id, amount = entry.amount))]
pub async fn debit(
    db: &impl ConnectionTrait,
    entry: Entry,
    allow_negative: bool,
    now: DateTime<Utc>,
) -> AppResult<transactions::Model> {
    check_amount(entry.amount)?;
    match move_balance(db, entry.user_id, -entry.amount, entry.kind, allow_negative, now).await? {
        Some(after) => append(db, entry.clone(), after + entry.amount, after, now).await,
        None => {
            let user = crate::users::service::get(db, entry.user_id).await?;
            Err(AppError::InsufficientCredit { balance: user.balance, required: entry.amount })
        }
    }
}

/// Records that the movement named `key` happened; `Ok(false)` when it already had. The insert
/// is the guard (a primary-key violation), so concurrent deliveries cannot both pass.
pub async fn claim_posting(
    db: &impl ConnectionTrait,
    key: String,
    transaction_id: i64,
    now: DateTime<Utc>,
) -> AppResult<bool> {
    let res = posting::ActiveModel { key: Set(key), transaction_id: Set(transaction_id), created_at: Set(now) }
        .insert(db)
        .await;
    match res {
        Ok(_) => Ok(true),
        Err(e) if matches!(e.sql_err(), Some(sea_orm::SqlErr::UniqueConstraintViolation(_))) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// A validated adjustment reason: 1–500 characters.
pub fn parse_reason(raw: &str) -> AppResult<String> {
    let s = raw.trim();
    if s.is_empty() || s.chars().count() > 500 {
        return Err(AppError::bad_input("reason", "reason must be 1 to 500 characters"));
    }
    Ok(s.to_string())
}

/// Admin: add (positive) or remove (negative) credit, never below zero.
#[tracing::instrument(skip_all, fields(admin_id = admin.id, user_id, amount))]
pub async fn adjust_credit(
    state: &AppState,
    admin: Viewer,
    user_id: i64,
    amount: i64,
    reason: String,
) -> AppResult<transactions::Model> {
    if amount == 0 || amount.abs() > 1_000_000_000 {
        return Err(AppError::bad_input("amount", "amount must be non-zero and at most 1,000,000,000 IDR in size"));
    }
    let mut entry = Entry::new(user_id, TransactionType::AdminAdjustment, amount.abs(), reason.clone());
    entry.processed_by = Some(admin.id);
    entry.payment_method = Some(PaymentMethod::AdminManual);
    entry.metadata = Some(serde_json::json!({ "reason": reason, "adminId": admin.id }));
    let now = state.now();
    let tx = state.db.begin().await?;
    crate::users::service::get(&*tx, user_id).await?;
    let row = if amount > 0 { credit(&*tx, entry, now).await? } else { debit(&*tx, entry, false, now).await? };
    tx.commit().await?;
    state.wallet_hub.announce(&state.db, row.user_id, row.id).await;
    Ok(row)
}

/// Which ledger rows a list shows.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    pub kind: Option<TransactionType>,
    pub status: Option<TransactionStatus>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub user_id: Option<i64>,
}

/// Newest first; `filter.user_id` scopes to one user (always set for non-admins).
pub async fn list(db: &impl ConnectionTrait, filter: &Filter, args: PageArgs) -> AppResult<Page<transactions::Model>> {
    let mut q = match filter.user_id {
        Some(id) => transactions::Entity::owned_by(id),
        None => transactions::Entity::find(),
    };
    if let Some(k) = filter.kind {
        q = q.filter(transactions::Column::Kind.eq(k));
    }
    if let Some(s) = filter.status {
        q = q.filter(transactions::Column::Status.eq(s));
    }
    if let Some(from) = filter.from {
        q = q.filter(transactions::Column::CreatedAt.gte(from));
    }
    if let Some(to) = filter.to {
        q = q.filter(transactions::Column::CreatedAt.lt(to));
    }
    crate::pagination::newest_first(db, q, transactions::Column::Id, args).await
}

pub async fn find(db: &impl ConnectionTrait, id: i64) -> AppResult<Option<transactions::Model>> {
    Ok(transactions::Entity::find_by_id(id).one(db).await?)
}

/// A transaction the viewer may see: their own, or any for an administrator.
pub async fn find_visible(
    db: &impl ConnectionTrait,
    viewer: Viewer,
    id: i64,
) -> AppResult<Option<transactions::Model>> {
    let q = if viewer.is_admin() {
        transactions::Entity::find_by_id(id)
    } else {
        transactions::Entity::owned_by(viewer.id).filter(transactions::Column::Id.eq(id))
    };
    Ok(q.one(db).await?)
}

/// Like `find_visible`, but NOT_FOUND when absent or someone else's.
pub async fn get_visible(db: &impl ConnectionTrait, viewer: Viewer, id: i64) -> AppResult<transactions::Model> {
    find_visible(db, viewer, id).await?.ok_or(AppError::NotFound("transaction"))
}

/// Completes a top-up row: credits its amount once and marks it COMPLETED. `Ok(None)` when it
/// was already credited or is no longer open; the caller must then roll back (drop) `db`.
#[tracing::instrument(skip_all, fields(transaction_id = row.id))]
pub async fn settle_top_up(
    db: &impl ConnectionTrait,
    row: &transactions::Model,
    provider_status: &str,
    metadata: Option<serde_json::Value>,
    now: DateTime<Utc>,
) -> AppResult<Option<transactions::Model>> {
    if !claim_posting(db, format!("credit:{}", row.id), row.id, now).await? {
        return Ok(None);
    }
    let opened = transactions::Entity::update_many()
        .col_expr(transactions::Column::Status, Expr::value(TransactionStatus::Completed))
        .filter(transactions::Column::Id.eq(row.id))
        .filter(transactions::Column::Status.is_in([TransactionStatus::Pending, TransactionStatus::Expired]))
        .exec(db)
        .await?;
    if opened.rows_affected == 0 {
        return Ok(None);
    }
    let after = move_balance(db, row.user_id, row.amount, TransactionType::TopUp, true, now)
        .await?
        .ok_or(AppError::NotFound("user"))?;
    let mut active: transactions::ActiveModel =
        find(db, row.id).await?.ok_or(AppError::NotFound("transaction"))?.into();
    active.balance_before = Set(after - row.amount);
    active.balance_after = Set(after);
    active.provider_status = Set(Some(provider_status.to_string()));
    active.metadata = Set(metadata);
    active.completed_at = Set(Some(now));
    active.updated_at = Set(now);
    Ok(Some(active.update(db).await?))
}

/// Takes back a completed top-up once (`reversal:<id>`), even below zero: the money already
/// left through the payment provider. `Ok(None)` when it was reversed before; roll back then.
#[tracing::instrument(skip_all, fields(transaction_id = top_up.id))]
pub async fn reverse_top_up(
    db: &impl ConnectionTrait,
    top_up: &transactions::Model,
    provider_status: &str,
    now: DateTime<Utc>,
) -> AppResult<Option<transactions::Model>> {
    if !claim_posting(db, format!("reversal:{}", top_up.id), top_up.id, now).await? {
        return Ok(None);
    }
    let reference = super::reference(top_up.id);
    let mut entry = Entry::new(
        top_up.user_id,
        TransactionType::Reversal,
        top_up.amount,
        format!("Reversal of top-up {reference}: payment {provider_status}"),
    );
    entry.payment_method = top_up.payment_method;
    entry.metadata =
        Some(serde_json::json!({ "reverses": top_up.id, "reference": reference, "providerStatus": provider_status }));
    let reversal = debit(db, entry, true, now).await?;
    transactions::Entity::update_many()
        .col_expr(transactions::Column::ProviderStatus, Expr::value(provider_status))
        .col_expr(transactions::Column::UpdatedAt, Expr::value(now))
        .filter(transactions::Column::Id.eq(top_up.id))
        .exec(db)
        .await?;
    Ok(Some(reversal))
}

/// Closes an open top-up with `status` (no money moves); false when it was no longer PENDING.
pub async fn close_top_up(
    db: &impl ConnectionTrait,
    id: i64,
    status: TransactionStatus,
    provider_status: &str,
    now: DateTime<Utc>,
) -> AppResult<bool> {
    let res = transactions::Entity::update_many()
        .col_expr(transactions::Column::Status, Expr::value(status))
        .col_expr(transactions::Column::ProviderStatus, Expr::value(provider_status))
        .col_expr(transactions::Column::UpdatedAt, Expr::value(now))
        .filter(transactions::Column::Id.eq(id))
        .filter(transactions::Column::Status.eq(TransactionStatus::Pending))
        .exec(db)
        .await?;
    Ok(res.rows_affected > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_follow_the_kind() {
        assert_eq!(totals_delta(TransactionType::TopUp, 5), (5, 0));
        assert_eq!(totals_delta(TransactionType::Reversal, 5), (-5, 0));
        assert_eq!(totals_delta(TransactionType::Renewal, 5), (0, 5));
        assert_eq!(totals_delta(TransactionType::Refund, 5), (0, -5));
        assert_eq!(totals_delta(TransactionType::AdminAdjustment, 5), (0, 0));
        assert_eq!(totals_delta(TransactionType::CouponRedemption, 5), (0, 0), "a gift is not a top-up");
    }
}
