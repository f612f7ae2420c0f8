//! The system's side of a subscription's life: automatic renewal from credit, the grace period
//! after a failed charge, suspension, and expiry. The billing jobs (`crate::jobs::billing`) call
//! these once per subscription; each call is one transaction guarded by the same conditional
//! `transition` as the user's mutations, so two runners (or a manual run racing the timer) can
//! never both act on one subscription: the loser sees CONFLICT and is told `Skipped`.
use chrono::{DateTime, Duration, Utc};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set};

use super::{
    SubscriptionStatus,
    entity::subscription,
    period_end,
    service::{Actor, announce, charge, new_period, record, release_slot, reload, terminate_instances, transition},
};
use crate::{
    billing::TransactionType,
    error::{AppError, AppResult},
    notifications::{notice::Notice, service as notifications},
    state::AppState,
};

const SYSTEM: Actor = Actor(None);
/// Subscriptions handled per job pass (ids only); the next pass picks up the rest.
const BATCH: u64 = 1_000;

/// What one system step did to one subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The change was made; the text says which.
    Done(String),
    /// Nothing to do any more (another runner or the owner got there first).
    Skipped,
    /// The step was attempted and refused (e.g. not enough credit); the text says why.
    Failed(String),
}

/// Maps "someone else changed it first" to `Skipped`; other errors stay errors.
fn lost_race(r: AppResult<Outcome>) -> AppResult<Outcome> {
    match r {
        Err(AppError::Conflict(_)) => Ok(Outcome::Skipped),
        other => other,
    }
}

async fn load(state: &AppState, id: i64) -> AppResult<Option<subscription::Model>> {
    Ok(subscription::Entity::find_by_id(id).one(&state.db.conn).await?)
}

async fn ids(state: &AppState, q: sea_orm::Select<subscription::Entity>) -> AppResult<Vec<i64>> {
    Ok(q.select_only()
        .column(subscription::Column::Id)
        .order_by_asc(subscription::Column::Id)
        .limit(BATCH)
        .into_tuple()
        .all(&state.db.conn)
        .await?)
}

/// ACTIVE, auto-renewing subscriptions whose next billing is due.
pub async fn due_for_renewal(state: &AppState, now: DateTime<Utc>) -> AppResult<Vec<i64>> {
    ids(
        state,
        subscription::Entity::find()
            .filter(subscription::Column::Status.eq(SubscriptionStatus::Active))
            .filter(subscription::Column::AutoRenew.eq(true))
            .filter(subscription::Column::NextBillingAt.lte(now)),
    )
    .await
}

fn is_due(sub: &subscription::Model, now: DateTime<Utc>) -> bool {
    sub.status == SubscriptionStatus::Active && sub.auto_renew && sub.next_billing_at.is_some_and(|n| n <= now)
}

/// Renews one due subscription from the owner's credit: the new period starts where the old
/// one ended (no gap, no drift) and lasts one calendar month. Without enough credit the
/// subscription stays ACTIVE and enters a grace period that ends `grace_period_days` after the
/// old period end; the grace is set once and never pushed back by later attempts.
#[tracing::instrument(skip_all, fields(subscription_id = id))]
pub async fn renew_due(state: &AppState, id: i64) -> AppResult<Outcome> {
    let now = state.now();
    let Some(sub) = load(state, id).await? else { return Ok(Outcome::Skipped) };
    if !is_due(&sub, now) {
        return Ok(Outcome::Skipped);
    }
    match lost_race(charge_renewal(state, &sub, now).await) {
        Err(AppError::InsufficientCredit { balance, required }) => {
            lost_race(enter_grace(state, &sub, balance, required, now).await)
        }
        other => other,
    }
}

async fn charge_renewal(state: &AppState, sub: &subscription::Model, now: DateTime<Utc>) -> AppResult<Outcome> {
    let start = sub.period_end;
    let end = period_end(start);
    let tx = state.db.begin().await?;
    transition(&*tx, sub, &[SubscriptionStatus::Active], new_period(start, end, sub.monthly_price), now).await?;
    // The slot is already held: a renewal never needs a free one.
    let description = format!("Auto-renewal until {}", end.format("%Y-%m-%d"));
    let charged = charge(&*tx, sub, TransactionType::Renewal, sub.monthly_price, description, now).await?;
    let details = serde_json::json!({ "periodStart": start, "periodEnd": end, "charged": sub.monthly_price });
    record(
        &*tx,
        sub.id,
        SYSTEM,
        "RENEWED",
        Some(sub.status),
        SubscriptionStatus::Active,
        Some("automatic renewal"),
        details,
        now,
    )
    .await?;
    let app = notifications::app_name(&*tx, sub.service_id, sub.plan_id).await?;
    let notice =
        Notice::Renewed { subscription_id: sub.id, app, period_start: start, until: end, amount: sub.monthly_price };
    let notified = notifications::notify(&*tx, state, sub.user_id, &notice).await?;
    tx.commit().await?;
    announce(state, sub.user_id, charged).await;
    state.notices.announce(&state.db, notified).await;
    Ok(Outcome::Done(format!(
        "subscription {}: renewed until {}, charged {} IDR",
        sub.id,
        end.format("%Y-%m-%d"),
        sub.monthly_price
    )))
}

async fn enter_grace(
    state: &AppState,
    sub: &subscription::Model,
    balance: i64,
    required: i64,
    now: DateTime<Utc>,
) -> AppResult<Outcome> {
    if let Some(grace_end) = sub.grace_period_end {
        // Already in grace: retried on every pass, but the grace end stays where it is.
        return Ok(Outcome::Failed(format!(
            "subscription {}: insufficient credit ({balance} of {required} IDR); grace until {}",
            sub.id,
            grace_end.format("%Y-%m-%d %H:%M")
        )));
    }
    let grace_end = sub.period_end + Duration::days(state.config.grace_period_days);
    let tx = state.db.begin().await?;
    transition(
        &*tx,
        sub,
        &[SubscriptionStatus::Active],
        subscription::ActiveModel {
            grace_period_end: Set(Some(grace_end)),
            failed_charges: Set(sub.failed_charges + 1),
            ..Default::default()
        },
        now,
    )
    .await?;
    let details = serde_json::json!({ "balance": balance, "required": required, "gracePeriodEnd": grace_end });
    record(
        &*tx,
        sub.id,
        SYSTEM,
        "RENEWAL_FAILED",
        Some(sub.status),
        SubscriptionStatus::Active,
        Some("insufficient credit for the automatic renewal; grace period started"),
        details,
        now,
    )
    .await?;
    let app = notifications::app_name(&*tx, sub.service_id, sub.plan_id).await?;
    let notice = Notice::GraceStarted { subscription_id: sub.id, app, required, balance, grace_end };
    let notified = notifications::notify(&*tx, state, sub.user_id, &notice).await?;
    tx.commit().await?;
    state.notices.announce(&state.db, notified).await;
    Ok(Outcome::Failed(format!(
        "subscription {}: insufficient credit ({balance} of {required} IDR); grace until {}",
        sub.id,
        grace_end.format("%Y-%m-%d %H:%M")
    )))
}

/// ACTIVE subscriptions whose grace period is over.
pub async fn grace_over(state: &AppState, now: DateTime<Utc>) -> AppResult<Vec<i64>> {
    ids(
        state,
        subscription::Entity::find()
            .filter(subscription::Column::Status.eq(SubscriptionStatus::Active))
            .filter(subscription::Column::GracePeriodEnd.lte(now)),
    )
    .await
}

/// Grace over without payment: ACTIVE → SUSPENDED. The slot stays held so that paying
/// (`renewSubscription`) brings the service back; stopping the instances is the provisioner's
/// job, so only the intent is recorded.
#[tracing::instrument(skip_all, fields(subscription_id = id))]
pub async fn suspend_unpaid(state: &AppState, id: i64) -> AppResult<Outcome> {
    let now = state.now();
    let Some(sub) = load(state, id).await? else { return Ok(Outcome::Skipped) };
    if sub.status != SubscriptionStatus::Active || sub.grace_period_end.is_none_or(|g| g > now) {
        return Ok(Outcome::Skipped);
    }
    lost_race(
        async {
            let tx = state.db.begin().await?;
            transition(
                &*tx,
                &sub,
                &[SubscriptionStatus::Active],
                subscription::ActiveModel { status: Set(SubscriptionStatus::Suspended), ..Default::default() },
                now,
            )
            .await?;
            let details = serde_json::json!({
                "gracePeriodEnd": sub.grace_period_end,
                "failedCharges": sub.failed_charges,
                "instances": "to be stopped",
            });
            record(
                &*tx,
                sub.id,
                SYSTEM,
                "SUSPENDED",
                Some(sub.status),
                SubscriptionStatus::Suspended,
                Some("grace period ended without payment"),
                details,
                now,
            )
            .await?;
            let grace_end = sub.grace_period_end.unwrap_or(now);
            let notice = Notice::Suspended {
                subscription_id: sub.id,
                app: notifications::app_name(&*tx, sub.service_id, sub.plan_id).await?,
                grace_end,
                kept_until: grace_end + Duration::days(state.config.suspension_retention_days),
            };
            let notified = notifications::notify(&*tx, state, sub.user_id, &notice).await?;
            tx.commit().await?;
            state.notices.announce(&state.db, notified).await;
            crate::instances::service::on_subscription_change(state, sub.id);
            Ok(Outcome::Done(format!("subscription {}: suspended (grace period over)", sub.id)))
        }
        .await,
    )
}

/// ACTIVE subscriptions whose grace period ends after `now` but by `until`.
pub async fn grace_ending(state: &AppState, now: DateTime<Utc>, until: DateTime<Utc>) -> AppResult<Vec<i64>> {
    ids(
        state,
        subscription::Entity::find()
            .filter(subscription::Column::Status.eq(SubscriptionStatus::Active))
            .filter(subscription::Column::GracePeriodEnd.gt(now))
            .filter(subscription::Column::GracePeriodEnd.lte(until)),
    )
    .await
}

/// Tells the owner, once per grace period, that it ends soon, unless the balance already
/// covers the renewal (the next renewal pass will charge it).
#[tracing::instrument(skip_all, fields(subscription_id = id))]
pub async fn remind_grace(state: &AppState, id: i64, until: DateTime<Utc>) -> AppResult<Outcome> {
    let now = state.now();
    let Some(sub) = load(state, id).await? else { return Ok(Outcome::Skipped) };
    let Some(grace_end) = sub.grace_period_end.filter(|g| *g > now && *g <= until) else {
        return Ok(Outcome::Skipped);
    };
    if sub.status != SubscriptionStatus::Active {
        return Ok(Outcome::Skipped);
    }
    let balance = crate::users::service::get(&state.db.conn, sub.user_id).await?.balance;
    if balance >= sub.monthly_price {
        return Ok(Outcome::Skipped);
    }
    let tx = state.db.begin().await?;
    let app = notifications::app_name(&*tx, sub.service_id, sub.plan_id).await?;
    let notice =
        Notice::GraceReminder { subscription_id: sub.id, app, required: sub.monthly_price, balance, grace_end };
    let notified = notifications::notify(&*tx, state, sub.user_id, &notice).await?;
    tx.commit().await?;
    if notified.is_none() {
        return Ok(Outcome::Skipped);
    }
    state.notices.announce(&state.db, notified).await;
    Ok(Outcome::Done(format!(
        "subscription {}: reminded that the grace period ends {}",
        sub.id,
        grace_end.format("%Y-%m-%d %H:%M")
    )))
}

/// SUSPENDED subscriptions whose grace ended more than the retention ago.
pub async fn suspension_over(state: &AppState, now: DateTime<Utc>) -> AppResult<Vec<i64>> {
    let cutoff = now - Duration::days(state.config.suspension_retention_days);
    ids(
        state,
        subscription::Entity::find()
            .filter(subscription::Column::Status.eq(SubscriptionStatus::Suspended))
            .filter(subscription::Column::GracePeriodEnd.lte(cutoff)),
    )
    .await
}

/// ACTIVE subscriptions the owner chose not to renew, at the end of their period.
pub async fn ended_without_renewal(state: &AppState, now: DateTime<Utc>) -> AppResult<Vec<i64>> {
    ids(
        state,
        subscription::Entity::find()
            .filter(subscription::Column::Status.eq(SubscriptionStatus::Active))
            .filter(subscription::Column::AutoRenew.eq(false))
            .filter(subscription::Column::PeriodEnd.lte(now)),
    )
    .await
}

/// Why a subscription may expire now, if it may.
fn expiry_reason(state: &AppState, sub: &subscription::Model, now: DateTime<Utc>) -> Option<&'static str> {
    match sub.status {
        SubscriptionStatus::Suspended
            if sub
                .grace_period_end
                .is_some_and(|g| g + Duration::days(state.config.suspension_retention_days) <= now) =>
        {
            Some("suspended for non-payment longer than the retention period")
        }
        SubscriptionStatus::Active if !sub.auto_renew && sub.period_end <= now => {
            Some("the period ended and auto-renew is off")
        }
        _ => None,
    }
}

/// → EXPIRED when its time has come (see `expiry_reason`). No charge.
#[tracing::instrument(skip_all, fields(subscription_id = id))]
pub async fn expire(state: &AppState, id: i64) -> AppResult<Outcome> {
    let now = state.now();
    let Some(sub) = load(state, id).await? else { return Ok(Outcome::Skipped) };
    let Some(reason) = expiry_reason(state, &sub, now) else { return Ok(Outcome::Skipped) };
    let outcome = lost_race(
        expire_now(state, &sub, SYSTEM, reason, now)
            .await
            .map(|_| Outcome::Done(format!("subscription {}: expired ({reason})", sub.id))),
    )?;
    Ok(outcome)
}

/// → EXPIRED now: the quota slot is released, the instances are marked for termination and
/// the owner is told. The billing job and an administrator's `adminExpireSubscription` alike.
pub(super) async fn expire_now(
    state: &AppState,
    sub: &subscription::Model,
    actor: Actor,
    reason: &str,
    now: DateTime<Utc>,
) -> AppResult<subscription::Model> {
    let tx = state.db.begin().await?;
    transition(
        &*tx,
        sub,
        &[sub.status],
        subscription::ActiveModel {
            status: Set(SubscriptionStatus::Expired),
            auto_renew: Set(false),
            next_billing_at: Set(None),
            ..Default::default()
        },
        now,
    )
    .await?;
    terminate_instances(&*tx, sub.id, now).await?;
    let details = serde_json::json!({ "periodEnd": sub.period_end, "gracePeriodEnd": sub.grace_period_end });
    let kind = if actor.0.is_some() { "ADMIN_EXPIRED" } else { "EXPIRED" };
    let to = SubscriptionStatus::Expired;
    record(&*tx, sub.id, actor, kind, Some(sub.status), to, Some(reason), details, now).await?;
    let notice = Notice::Expired {
        subscription_id: sub.id,
        app: notifications::app_name(&*tx, sub.service_id, sub.plan_id).await?,
        period_end: sub.period_end,
        reason: reason.to_string(),
    };
    let notified = notifications::notify(&*tx, state, sub.user_id, &notice).await?;
    let sub = reload(&*tx, sub.id).await?;
    release_slot(&*tx, sub.plan_id).await?; // last: the plan row is the hot spot
    tx.commit().await?;
    state.notices.announce(&state.db, notified).await;
    state.quota_changed().await;
    crate::instances::service::on_subscription_change(state, sub.id);
    Ok(sub)
}

/// A paid renewal due before `until`, for the low-credit report.
pub struct UpcomingRenewal {
    pub subscription_id: i64,
    pub user_id: i64,
    pub service_id: i64,
    pub plan_id: i64,
    pub amount: i64,
    pub due: DateTime<Utc>,
}

/// Warns the owner, once per period, that `balance` will not cover this renewal.
pub async fn warn_low_credit(state: &AppState, r: &UpcomingRenewal, balance: i64) -> AppResult<Outcome> {
    let tx = state.db.begin().await?;
    let notice = Notice::LowCredit {
        subscription_id: r.subscription_id,
        app: notifications::app_name(&*tx, r.service_id, r.plan_id).await?,
        due: r.due,
        amount: r.amount,
        balance,
    };
    let notified = notifications::notify(&*tx, state, r.user_id, &notice).await?;
    tx.commit().await?;
    if notified.is_none() {
        return Ok(Outcome::Skipped);
    }
    state.notices.announce(&state.db, notified).await;
    Ok(Outcome::Done(format!(
        "subscription {}: low credit ({balance} IDR, {} IDR due {})",
        r.subscription_id,
        r.amount,
        r.due.format("%Y-%m-%d")
    )))
}

pub async fn upcoming_renewals(state: &AppState, until: DateTime<Utc>) -> AppResult<Vec<UpcomingRenewal>> {
    let rows = subscription::Entity::find()
        .filter(subscription::Column::Status.eq(SubscriptionStatus::Active))
        .filter(subscription::Column::AutoRenew.eq(true))
        .filter(subscription::Column::MonthlyPrice.gt(0))
        .filter(subscription::Column::NextBillingAt.lte(until))
        // In grace, the grace notices speak instead.
        .filter(subscription::Column::GracePeriodEnd.is_null())
        .order_by_asc(subscription::Column::UserId)
        .order_by_asc(subscription::Column::NextBillingAt)
        .order_by_asc(subscription::Column::Id)
        .all(&state.db.conn)
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(|s| {
            s.next_billing_at.map(|due| UpcomingRenewal {
                subscription_id: s.id,
                user_id: s.user_id,
                service_id: s.service_id,
                plan_id: s.plan_id,
                amount: s.monthly_price,
                due,
            })
        })
        .collect())
}
