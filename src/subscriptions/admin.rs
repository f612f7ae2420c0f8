//! Support operations: what staff do to a customer's subscription. Each goes through the same
//! use case as the owner's action (checkout, plan change, expiry), so quota, ledger and history
//! rules hold, and each lands in the history with the administrator and the reason.
use sea_orm::EntityTrait;

use super::{
    entity::subscription,
    refunds::{self, REFUNDABLE},
    renewal,
    service::{self, Actor, Checkout, announce, record, reload},
};
use crate::{
    auth::Viewer,
    billing::{
        TransactionStatus, TransactionType, entity as transactions,
        service::{self as ledger, Entry},
    },
    error::{AppError, AppResult},
    state::AppState,
};

fn reason(raw: &str) -> AppResult<String> {
    Ok(service::parse_reason(Some(raw), true)?.unwrap_or_default())
}

/// Creates a subscription for `user_id` as checkout does (active plan, one per service, a free
/// quota slot). With `charge_credit` the user pays the first period from credit; without, the
/// period is granted and the ledger shows no charge.
pub async fn create_for(
    state: &AppState,
    admin: Viewer,
    user_id: i64,
    plan_id: i64,
    charge_credit: bool,
    why: &str,
) -> AppResult<subscription::Model> {
    let why = reason(why)?;
    let checkout = Checkout {
        user_id,
        actor: Actor(Some(admin.id)),
        plan_id,
        instance_name: None,
        key: None,
        charge: charge_credit,
        reason: Some(why),
        coupon: None,
    };
    service::subscribe_once(state, checkout).await
}

/// Moves a subscription to any other plan of its service: up with the prorated charge, down
/// with the prorated refund.
pub async fn change_plan(
    state: &AppState,
    admin: Viewer,
    id: i64,
    plan_id: i64,
    why: &str,
) -> AppResult<subscription::Model> {
    let why = reason(why)?;
    let sub = service::visible(&state.db.conn, admin, id).await?;
    service::change_plan(state, Actor(Some(admin.id)), sub, plan_id, Some(&why)).await
}

/// Ends a live subscription now, as the expiry job would: slot released, instances removed.
pub async fn expire(state: &AppState, admin: Viewer, id: i64, why: &str) -> AppResult<subscription::Model> {
    let why = reason(why)?;
    let now = state.now();
    let sub = service::visible(&state.db.conn, admin, id).await?;
    super::lifecycle::check(super::lifecycle::Action::Expire, &sub, now)?;
    renewal::expire_now(state, &sub, Actor(Some(admin.id)), &why, now).await
}

/// Gives back `amount` of one charge as a REFUND credit that names it. Across all refunds of a
/// charge, never more than was charged.
#[tracing::instrument(skip_all, fields(admin_id = admin.id, transaction_id, amount))]
pub async fn refund(
    state: &AppState,
    admin: Viewer,
    transaction_id: i64,
    amount: i64,
    why: &str,
) -> AppResult<transactions::Model> {
    let why = reason(why)?;
    if amount <= 0 {
        return Err(AppError::bad_input("amount", "amount must be positive"));
    }
    let now = state.now();
    let tx = state.db.begin().await?;
    let charge =
        transactions::Entity::find_by_id(transaction_id).one(&*tx).await?.ok_or(AppError::NotFound("transaction"))?;
    if !REFUNDABLE.contains(&charge.kind) || charge.status != TransactionStatus::Completed {
        return Err(AppError::bad_input(
            "transactionId",
            "only a completed subscription, upgrade or renewal charge can be refunded",
        ));
    }
    if !refunds::claim(&*tx, charge.id, amount).await? {
        let left =
            transactions::Entity::find_by_id(charge.id).one(&*tx).await?.map_or(0, |c| c.amount - c.refunded_amount);
        return Err(AppError::bad_input(
            "amount",
            format!("at most {left} IDR of this {} IDR charge is left to refund", charge.amount),
        ));
    }
    let mut entry = Entry::new(charge.user_id, TransactionType::Refund, amount, format!("Refund: {why}"));
    entry.subscription_id = charge.subscription_id;
    entry.processed_by = Some(admin.id);
    entry.refund_of = Some(charge.id);
    entry.metadata = Some(serde_json::json!({ "reason": why, "adminId": admin.id, "chargeId": charge.id }));
    let credited = ledger::credit(&*tx, entry, now).await?;
    if let Some(sub_id) = charge.subscription_id {
        let sub = reload(&*tx, sub_id).await?;
        let details = serde_json::json!({ "transactionId": charge.id, "refund": amount, "refundId": credited.id });
        let actor = Actor(Some(admin.id));
        record(&*tx, sub.id, actor, "REFUNDED", Some(sub.status), sub.status, Some(&why), details, now).await?;
    }
    tx.commit().await?;
    announce(state, credited.user_id, Some(credited.id)).await;
    Ok(credited)
}

/// How much of a charge may still be refunded (0 for rows that are not refundable charges).
pub fn refundable(t: &transactions::Model) -> i64 {
    if REFUNDABLE.contains(&t.kind) && t.status == TransactionStatus::Completed {
        t.amount - t.refunded_amount
    } else {
        0
    }
}
