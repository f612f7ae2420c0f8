//! Top-up use cases: create (intent row, then Snap), apply a Midtrans status (webhook, sync,
//! reconciler all land in `apply_status`), sync and cancel. No database
//! transaction is ever held across a Midtrans call.
use chrono::{DateTime, Duration, FixedOffset, Offset, Utc};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set};
use serde_json::{Value, json};

use super::midtrans::{
    client::StatusResponse,
    status::{Action, Verdict, classify, transition},
};
use crate::{
    auth::Viewer,
    billing::{
        MAX_TOP_UP, MIN_TOP_UP, PaymentMethod, TransactionStatus, TransactionType, entity as transactions, service,
    },
    error::{AppError, AppResult},
    notifications::{notice::Notice, service as notifications},
    state::AppState,
    users::{entity as users, service as user_service},
};

/// What Snap gave us for a new top-up.
pub struct TopUpCreated {
    pub transaction: transactions::Model,
    pub snap_token: String,
    pub redirect_url: String,
    pub expires_at: DateTime<Utc>,
}

/// A Midtrans status, from a verified notification or from the status API.
#[derive(Clone, Debug, Default)]
pub struct ProviderStatus {
    pub transaction_status: String,
    pub fraud_status: Option<String>,
    pub status_code: Option<String>,
    pub payment_type: Option<String>,
    pub transaction_id: Option<String>,
}

impl From<StatusResponse> for ProviderStatus {
    fn from(s: StatusResponse) -> Self {
        Self {
            transaction_status: s.transaction_status.unwrap_or_default(),
            fraud_status: s.fraud_status,
            status_code: s.status_code,
            payment_type: s.payment_type,
            transaction_id: s.transaction_id,
        }
    }
}

pub fn parse_amount(amount: i64) -> AppResult<i64> {
    if !(MIN_TOP_UP..=MAX_TOP_UP).contains(&amount) {
        return Err(AppError::bad_input("amount", "amount must be between 10,000 and 10,000,000 IDR"));
    }
    Ok(amount)
}

/// Snap `enabled_payments` for the chosen method; None lets the customer choose any.
fn enabled_payments(method: Option<PaymentMethod>) -> AppResult<Option<Vec<&'static str>>> {
    Ok(match method {
        None => None,
        Some(PaymentMethod::BankTransfer) => {
            Some(vec!["bca_va", "bni_va", "bri_va", "permata_va", "cimb_va", "echannel", "other_va"])
        }
        Some(PaymentMethod::EWallet) => Some(vec!["gopay", "shopeepay"]),
        Some(PaymentMethod::CreditCard) => Some(vec!["credit_card"]),
        Some(PaymentMethod::Qris) => Some(vec!["other_qris"]),
        Some(PaymentMethod::AdminManual) => {
            return Err(AppError::bad_input("paymentMethod", "ADMIN_MANUAL cannot be used for a top-up"));
        }
    })
}

fn method_label(method: Option<PaymentMethod>) -> &'static str {
    match method {
        None => "Midtrans",
        Some(PaymentMethod::BankTransfer) => "bank transfer",
        Some(PaymentMethod::EWallet) => "e-wallet",
        Some(PaymentMethod::CreditCard) => "credit card",
        Some(PaymentMethod::Qris) => "QRIS",
        Some(PaymentMethod::AdminManual) => "admin",
    }
}

/// Midtrans wants the expiry start in `YYYY-MM-DD HH:MM:SS +0700` (Jakarta, no DST).
pub fn midtrans_time(t: DateTime<Utc>) -> String {
    let jakarta = FixedOffset::east_opt(7 * 3600).unwrap_or_else(|| Utc.fix());
    t.with_timezone(&jakarta).format("%Y-%m-%d %H:%M:%S %z").to_string()
}
fn snap_body(
    order_id: &str,
    amount: i64,
    user: &users::Model,
    method: Option<PaymentMethod>,
    state: &AppState,
    now: DateTime<Utc>,
) -> AppResult<Value> {
    let cfg = state.midtrans.config();
    let mut body = json!({
        "transaction_details": { "order_id": order_id, "gross_amount": amount },
        "item_details": [{ "id": "credit-top-up", "price": amount, "quantity": 1, "name": "MinisPod credit top-up" }],
        "customer_details": { "first_name": user.name, "email": user.email, "phone": user.phone.clone().unwrap_or_default() },
        "expiry": { "start_time": midtrans_time(now), "unit": "minute", "duration": cfg.expiry_minutes },
        "custom_field1": format!("user:{}", user.id),
    });
    if let Some(p) = enabled_payments(method)? {
        body["enabled_payments"] = json!(p);
    }
    if let Some(finish) = &cfg.finish_url {
        body["callbacks"] = json!({ "finish": finish });
    }
    Ok(body)
}

/// Inserts a PENDING top-up, commits, then asks Snap for a payment page. A Snap failure marks
/// the row FAILED and returns PAYMENT_PROVIDER_ERROR. Without a server key nothing is recorded:
/// PAYMENTS_UNAVAILABLE.
#[tracing::instrument(skip_all, fields(user_id = viewer.id, amount))]
pub async fn create_top_up(
    state: &AppState,
    viewer: Viewer,
    amount: i64,
    method: Option<PaymentMethod>,
) -> AppResult<TopUpCreated> {
    let amount = parse_amount(amount)?;
    enabled_payments(method)?;
    if !state.midtrans.is_configured() {
        return Err(AppError::PaymentsUnavailable);
    }
    let now = state.now();
    let key = uuid::Uuid::new_v4().simple().to_string();
    let order_id = format!("topup-{key}");
    let expires_at = now + Duration::minutes(i64::from(state.midtrans.config().expiry_minutes));

    let tx = state.db.begin().await?;
    let user = user_service::get(&*tx, viewer.id).await?;
    let row = transactions::ActiveModel {
        user_id: Set(user.id),
        kind: Set(TransactionType::TopUp),
        status: Set(TransactionStatus::Pending),
        amount: Set(amount),
        balance_before: Set(user.balance),
        balance_after: Set(user.balance),
        payment_method: Set(method),
        description: Set(format!("Credit top-up via {}", method_label(method))),
        order_id: Set(Some(order_id.clone())),
        expires_at: Set(Some(expires_at)),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
    .insert(&*tx)
    .await?;
    tx.commit().await?;

    let body = snap_body(&order_id, amount, &user, method, state, now)?;
    let snap = match state.midtrans.create_snap(&body, &key).await {
        Ok(s) => s,
        Err(e) => {
            fail_creation(state, &row, &e).await?;
            return Err(e);
        }
    };
    let mut active: transactions::ActiveModel = row.into();
    active.snap_token = Set(Some(snap.token.clone()));
    active.redirect_url = Set(Some(snap.redirect_url.clone()));
    active.updated_at = Set(state.now());
    let tx = state.db.begin().await?;
    let row = active.update(&*tx).await?;
    tx.commit().await?;
    state.wallet_hub.announce(&state.db, row.user_id, row.id).await;
    Ok(TopUpCreated { transaction: row, snap_token: snap.token, redirect_url: snap.redirect_url, expires_at })
}

async fn fail_creation(state: &AppState, row: &transactions::Model, e: &AppError) -> AppResult<()> {
    let detail = match e {
        AppError::PaymentProvider(d) => d.clone(),
        other => other.to_string(),
    };
    let tx = state.db.begin().await?;
    if service::close_top_up(&*tx, row.id, TransactionStatus::Failed, "snap_error", state.now()).await? {
        transactions::Entity::update_many()
            .col_expr(
                transactions::Column::Metadata,
                sea_orm::sea_query::Expr::value(json!({ "error": detail, "failedAt": state.now() })),
            )
            .filter(transactions::Column::Id.eq(row.id))
            .exec(&*tx)
            .await?;
    }
    tx.commit().await?;
    state.wallet_hub.announce(&state.db, row.user_id, row.id).await;
    Ok(())
}

fn merged_metadata(row: &transactions::Model, ps: &ProviderStatus) -> Value {
    let mut meta = row.metadata.clone().filter(Value::is_object).unwrap_or_else(|| json!({}));
    meta["midtransStatus"] = json!(ps.transaction_status);
    if let Some(v) = &ps.payment_type {
        meta["paymentType"] = json!(v);
    }
    if let Some(v) = &ps.transaction_id {
        meta["midtransTransactionId"] = json!(v);
    }
    if let Some(v) = &ps.fraud_status {
        meta["fraudStatus"] = json!(v);
    }
    meta
}

/// The notice for a top-up that ended unpaid; none for one the owner or the merchant cancelled.
fn failure_notice(row: &transactions::Model, status: TransactionStatus) -> Option<Notice> {
    let what = match status {
        TransactionStatus::Expired => "expired before it was paid",
        TransactionStatus::Failed => "was declined by the payment provider",
        _ => return None,
    };
    Some(Notice::TopUpFailed {
        transaction_id: row.id,
        reference: crate::billing::reference(row.id),
        amount: row.amount,
        status: what,
    })
}

/// Applies a Midtrans status to a top-up. Safe to call any number of times, concurrently and in
/// any order: each money movement is claimed through a unique posting key, and status changes
/// are conditional on the current status.
#[tracing::instrument(skip_all, fields(transaction_id = id, status = %ps.transaction_status))]
pub async fn apply_status(state: &AppState, id: i64, ps: &ProviderStatus) -> AppResult<transactions::Model> {
    let verdict = classify(&ps.transaction_status, ps.fraud_status.as_deref(), ps.status_code.as_deref());
    // A concurrent change between our read and our conditional write sends us round again.
    for _ in 0..3 {
        let row = service::find(&state.db.conn, id).await?.ok_or(AppError::NotFound("transaction"))?;
        let now = state.now();
        match transition(row.status, verdict) {
            Action::Ignore => {
                if verdict == Verdict::NeedsReview
                    || (verdict == Verdict::Paid && row.status != TransactionStatus::Completed)
                {
                    tracing::warn!(transaction_id = row.id, status = %ps.transaction_status, current = ?row.status,
                        "payment status needs manual review; not applied");
                }
                return Ok(row);
            }
            Action::Credit => {
                let tx = state.db.begin().await?;
                let meta = merged_metadata(&row, ps);
                let Some(done) = service::settle_top_up(&*tx, &row, &ps.transaction_status, Some(meta), now).await?
                else {
                    continue;
                };
                let notice = Notice::TopUpSettled {
                    transaction_id: done.id,
                    reference: crate::billing::reference(done.id),
                    amount: done.amount,
                    balance: done.balance_after,
                };
                let notified = notifications::notify(&*tx, state, done.user_id, &notice).await?;
                tx.commit().await?;
                tracing::info!(transaction_id = done.id, amount = done.amount, "top-up credited");
                state.wallet_hub.announce(&state.db, done.user_id, done.id).await;
                state.notices.announce(&state.db, notified).await;
                return Ok(done);
            }
            Action::Close(status) => {
                let tx = state.db.begin().await?;
                if !service::close_top_up(&*tx, row.id, status, &ps.transaction_status, now).await? {
                    continue;
                }
                let notified = match failure_notice(&row, status) {
                    Some(notice) => notifications::notify(&*tx, state, row.user_id, &notice).await?,
                    None => None,
                };
                tx.commit().await?;
                state.wallet_hub.announce(&state.db, row.user_id, row.id).await;
                state.notices.announce(&state.db, notified).await;
                return service::find(&state.db.conn, id).await?.ok_or(AppError::NotFound("transaction"));
            }
            Action::Reverse => {
                let tx = state.db.begin().await?;
                if let Some(reversal) = service::reverse_top_up(&*tx, &row, &ps.transaction_status, now).await? {
                    tx.commit().await?;
                    tracing::warn!(transaction_id = row.id, reversal_id = reversal.id, "top-up reversed");
                    state.wallet_hub.announce(&state.db, reversal.user_id, reversal.id).await;
                }
                return Ok(row);
            }
        }
    }
    service::find(&state.db.conn, id).await?.ok_or(AppError::NotFound("transaction"))
}

/// `"100000.00"` → 100000; fractions must be zero (IDR has no minor unit in Midtrans).
pub fn parse_gross_amount(s: &str) -> Option<i64> {
    let (int, frac) = s.trim().split_once('.').unwrap_or((s.trim(), ""));
    if int.is_empty() || !int.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b == b'0') {
        return None;
    }
    int.parse().ok()
}

pub async fn find_by_order(state: &AppState, order_id: &str) -> AppResult<transactions::Model> {
    transactions::Entity::find()
        .filter(transactions::Column::OrderId.eq(order_id))
        .filter(transactions::Column::Kind.eq(TransactionType::TopUp))
        .one(&state.db.conn)
        .await?
        .ok_or(AppError::NotFound("order"))
}

/// Where a reported `gross_amount` came from.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum AmountSource {
    /// The body of a signed HTTP notification.
    Notification,
    /// An answer of the status or cancel API.
    StatusApi,
}

/// Every path that acts on a Midtrans answer (webhook, its status confirmation, syncTopUp,
/// the reconciler, cancel) checks the reported `gross_amount` here before applying anything:
/// an answer about another amount is never applied. A mismatch is logged and flagged on the
/// row (`metadata.amountMismatch`) for a person to look at.
pub async fn ensure_amount(
    state: &AppState,
    row: &transactions::Model,
    reported: Option<&str>,
    source: AmountSource,
) -> AppResult<()> {
    if reported.and_then(parse_gross_amount) == Some(row.amount) {
        return Ok(());
    }
    tracing::error!(transaction_id = row.id, order_id = ?row.order_id, reported, expected = row.amount, ?source,
        "Midtrans reported an amount that does not match the order; not applied, flagged for review");
    let mut meta = row.metadata.clone().filter(Value::is_object).unwrap_or_else(|| json!({}));
    meta["amountMismatch"] =
        json!({ "reported": reported, "expected": row.amount, "source": format!("{source:?}"), "at": state.now() });
    // Only if the row is as we read it, so a concurrent change's metadata is never overwritten.
    transactions::Entity::update_many()
        .col_expr(transactions::Column::Metadata, sea_orm::sea_query::Expr::value(meta))
        .filter(transactions::Column::Id.eq(row.id))
        .filter(transactions::Column::UpdatedAt.eq(row.updated_at))
        .exec(&state.db.conn)
        .await?;
    Err(match source {
        AmountSource::Notification => AppError::bad_input("gross_amount", "gross_amount does not match the order"),
        AmountSource::StatusApi => AppError::PaymentProvider(format!(
            "Midtrans reported {} IDR for an order of {} IDR; held for review",
            reported.unwrap_or("no amount"),
            row.amount
        )),
    })
}

/// A status-API answer about `row`, once its amount is checked.
async fn checked(state: &AppState, row: &transactions::Model, answer: StatusResponse) -> AppResult<ProviderStatus> {
    ensure_amount(state, row, answer.gross_amount.as_deref(), AmountSource::StatusApi).await?;
    Ok(ProviderStatus::from(answer))
}

/// A verified notification (signature already checked by the webhook).
#[tracing::instrument(skip_all, fields(order_id = order_id))]
pub async fn handle_notification(
    state: &AppState,
    order_id: &str,
    gross_amount: &str,
    notified: ProviderStatus,
) -> AppResult<transactions::Model> {
    let row = find_by_order(state, order_id).await?;
    ensure_amount(state, &row, Some(gross_amount), AmountSource::Notification).await?;
    let status = if state.midtrans.config().verify_by_status {
        // Trust the backend-to-backend answer over the posted body.
        match state.midtrans.status(order_id).await? {
            Some(s) => checked(state, &row, s).await?,
            None => return Ok(row),
        }
    } else {
        notified
    };
    apply_status(state, row.id, &status).await
}

fn top_up_of(row: transactions::Model) -> AppResult<(transactions::Model, String)> {
    match (row.kind, row.order_id.clone()) {
        (TransactionType::TopUp, Some(order)) => Ok((row, order)),
        _ => Err(AppError::bad_input("transactionId", "not a Midtrans top-up")),
    }
}

/// Asks the status API and applies the answer; an unknown order past its expiry is EXPIRED.
#[tracing::instrument(skip_all, fields(transaction_id = row.id))]
pub async fn sync_row(state: &AppState, row: transactions::Model) -> AppResult<transactions::Model> {
    let (row, order) = top_up_of(row)?;
    match state.midtrans.status(&order).await? {
        Some(s) => {
            let ps = checked(state, &row, s).await?;
            apply_status(state, row.id, &ps).await
        }
        None if row.expires_at.is_some_and(|e| e <= state.now()) => {
            let ps = ProviderStatus { transaction_status: "expire".into(), ..Default::default() };
            apply_status(state, row.id, &ps).await
        }
        None => Ok(row),
    }
}

#[tracing::instrument(skip_all, fields(user_id = viewer.id, transaction_id = id))]
pub async fn sync_top_up(state: &AppState, viewer: Viewer, id: i64) -> AppResult<transactions::Model> {
    let row = service::get_visible(&state.db.conn, viewer, id).await?;
    sync_row(state, row).await
}

/// Cancels a PENDING top-up at Midtrans, then here. If Midtrans reports the payment already
/// happened, that status is applied instead.
#[tracing::instrument(skip_all, fields(user_id = viewer.id, transaction_id = id))]
pub async fn cancel_top_up(state: &AppState, viewer: Viewer, id: i64) -> AppResult<transactions::Model> {
    let (row, order) = top_up_of(service::get_visible(&state.db.conn, viewer, id).await?)?;
    if row.status != TransactionStatus::Pending {
        return Err(AppError::Conflict("only a PENDING top-up can be cancelled".into()));
    }
    let ps = match state.midtrans.cancel(&order).await {
        Ok(Some(s)) if s.transaction_status.is_some() => checked(state, &row, s).await?,
        // Unknown at Midtrans: the customer never chose a payment method.
        Ok(_) => ProviderStatus { transaction_status: "cancel".into(), ..Default::default() },
        // Refused (e.g. already paid): apply what Midtrans says the payment is now.
        Err(e) => match state.midtrans.status(&order).await {
            Ok(Some(s)) if s.transaction_status.as_deref().is_some_and(|t| t != "pending") => {
                checked(state, &row, s).await?
            }
            _ => return Err(e),
        },
    };
    apply_status(state, row.id, &ps).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gross_amounts_are_whole_rupiah() {
        assert_eq!(parse_gross_amount("100000.00"), Some(100_000));
        assert_eq!(parse_gross_amount("10000"), Some(10_000));
        assert_eq!(parse_gross_amount("10000.50"), None);
        assert_eq!(parse_gross_amount("-5.00"), None);
        assert_eq!(parse_gross_amount(""), None);
        assert_eq!(parse_gross_amount("1e5"), None);
    }

    #[test]
    fn amounts_within_limits() {
        assert!(parse_amount(9_999).is_err());
        assert!(parse_amount(10_000).is_ok());
        assert!(parse_amount(10_000_000).is_ok());
        assert!(parse_amount(10_000_001).is_err());
    }

    #[test]
    fn expiry_start_time_is_jakarta_time() {
        let t = DateTime::parse_from_rfc3339("2026-01-01T03:00:00Z").map(|t| t.with_timezone(&Utc)).unwrap();
        assert_eq!(midtrans_time(t), "2026-01-01 10:00:00 +0700");
    }

    #[test]
    fn payment_methods_map_to_snap_channels() {
        assert_eq!(enabled_payments(Some(PaymentMethod::Qris)).unwrap(), Some(vec!["other_qris"]));
        assert!(enabled_payments(None).unwrap().is_none());
        assert!(enabled_payments(Some(PaymentMethod::AdminManual)).is_err());
    }
}
