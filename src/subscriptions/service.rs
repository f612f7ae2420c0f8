//! Subscription use cases. Each owns one database transaction in which credit, quota, the
//! subscription row, its instance and its history change together or not at all. Status
//! changes are conditional updates (`WHERE status = …`), so two concurrent changes of one
//! subscription cannot both win.
use chrono::{DateTime, Duration, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
    Set,
    sea_query::{Expr, ExprTrait},
};

use super::{
    SubscriptionStatus,
    entity::{event, subscription},
    lifecycle::{self, Action},
    period_end, prorate, refunds,
};
use crate::{
    auth::Viewer,
    billing::{
        TransactionType,
        service::{self as ledger, Entry},
    },
    catalog::entity::{plan, service as catalog_service},
    error::{AppError, AppResult, DbResultExt},
    instances::{self, InstanceStatus, entity as instance},
    pagination::{Page, PageArgs},
    state::AppState,
};

/// Who acts, for the history: a user, an administrator, or the system (jobs).
#[derive(Clone, Copy, Debug)]
pub struct Actor(pub Option<i64>);

pub struct SubscribeInput {
    pub plan_id: i64,
    pub instance_name: Option<String>,
    pub idempotency_key: Option<String>,
    /// A checkout coupon (discount or free first period), as typed by the user.
    pub coupon_code: Option<String>,
}

fn not_found() -> AppError {
    AppError::NotFound("subscription")
}

/// Writes one history entry.
#[allow(clippy::too_many_arguments)]
pub(super) async fn record(
    db: &impl ConnectionTrait,
    sub_id: i64,
    actor: Actor,
    kind: &str,
    from: Option<SubscriptionStatus>,
    to: SubscriptionStatus,
    reason: Option<&str>,
    details: serde_json::Value,
    now: DateTime<Utc>,
) -> AppResult<()> {
    event::ActiveModel {
        subscription_id: Set(sub_id),
        actor_id: Set(actor.0),
        kind: Set(kind.to_string()),
        from_status: Set(from.map(|s| s.as_str().to_string())),
        to_status: Set(to.as_str().to_string()),
        reason: Set(reason.map(str::to_string)),
        details: Set(Some(details)),
        created_at: Set(now),
        ..Default::default()
    }
    .insert(db)
    .await?;
    Ok(())
}

/// The changes that start a paid period `start..end`: active, grace and failures cleared.
pub(super) fn new_period(start: DateTime<Utc>, end: DateTime<Utc>, price: i64) -> subscription::ActiveModel {
    subscription::ActiveModel {
        status: Set(SubscriptionStatus::Active),
        period_start: Set(start),
        period_end: Set(end),
        next_billing_at: Set(Some(end)),
        grace_period_end: Set(None),
        failed_charges: Set(0),
        last_charge_amount: Set(Some(price)),
        ..Default::default()
    }
}

/// Debits the owner for `sub` (nothing for a zero amount); returns the ledger entry's id.
pub(super) async fn charge(
    db: &impl ConnectionTrait,
    sub: &subscription::Model,
    kind: TransactionType,
    amount: i64,
    description: String,
    now: DateTime<Utc>,
) -> AppResult<Option<i64>> {
    if amount <= 0 {
        return Ok(None);
    }
    let mut entry = Entry::new(sub.user_id, kind, amount, description);
    entry.subscription_id = Some(sub.id);
    Ok(Some(ledger::debit(db, entry, false, now).await?.id))
}

/// Tells the owner's walletUpdates subscribers about a committed ledger entry.
pub(super) async fn announce(state: &AppState, user_id: i64, transaction_id: Option<i64>) {
    if let Some(t) = transaction_id {
        state.wallet_hub.announce(&state.db, user_id, t).await;
    }
}

/// Takes one slot of `plan_id` if one is free: `used < total` in the same statement.
async fn take_slot(db: &impl ConnectionTrait, plan_id: i64) -> AppResult<bool> {
    let res = plan::Entity::update_many()
        .col_expr(plan::Column::UsedQuota, Expr::col(plan::Column::UsedQuota).add(1))
        .filter(plan::Column::Id.eq(plan_id))
        .filter(Expr::col(plan::Column::UsedQuota).lt(Expr::col(plan::Column::TotalQuota)))
        .exec(db)
        .await?;
    Ok(res.rows_affected == 1)
}

pub(super) async fn release_slot(db: &impl ConnectionTrait, plan_id: i64) -> AppResult<()> {
    plan::Entity::update_many()
        .col_expr(plan::Column::UsedQuota, Expr::col(plan::Column::UsedQuota).sub(1))
        .filter(plan::Column::Id.eq(plan_id))
        .filter(plan::Column::UsedQuota.gt(0))
        .exec(db)
        .await?;
    Ok(())
}

fn validate_instance_name(raw: Option<&str>) -> AppResult<Option<String>> {
    match raw.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(n) if instances::is_dns_label(n, 40) => Ok(Some(n.to_string())),
        Some(_) => Err(AppError::bad_input(
            "instanceName",
            "instanceName must be 1-40 characters of a-z, 0-9 and '-', not starting or ending with '-'",
        )),
    }
}

/// Keys are taken verbatim, as Stripe does: `"k"` and `" k"` are different keys.
fn validate_idempotency_key(raw: Option<&str>) -> AppResult<Option<String>> {
    match raw {
        None => Ok(None),
        Some(k) if (1..=100).contains(&k.len()) && k.bytes().all(|b| (0x20..0x7f).contains(&b)) => {
            Ok(Some(k.to_string()))
        }
        Some(_) => Err(AppError::bad_input(
            "idempotencyKey",
            "idempotencyKey must be 1-100 printable ASCII characters (spaces count)",
        )),
    }
}

/// What a retry must repeat exactly for its key to answer with the first result: the
/// parameters as the gateway understood them (after validation), hashed.
fn fingerprint(plan_id: i64, instance_name: Option<&str>, coupon: Option<&str>) -> String {
    use sha2::{Digest, Sha256};
    let mut canonical = serde_json::json!({ "planId": plan_id, "instanceName": instance_name });
    // Only when given, so keys recorded before coupons existed keep their fingerprints.
    if let Some(code) = coupon.and_then(crate::coupons::Code::parse) {
        canonical["couponCode"] = serde_json::json!(code.as_str());
    }
    let canonical = canonical.to_string();
    hex::encode(Sha256::digest(canonical.as_bytes()))
}

/// The subscription this user created with this idempotency key, if any.
async fn by_idempotency_key(
    db: &impl ConnectionTrait,
    user_id: i64,
    key: &str,
) -> AppResult<Option<subscription::Model>> {
    Ok(subscription::owned_by(user_id).filter(subscription::Column::IdempotencyKey.eq(key)).one(db).await?)
}

/// The first result of a key, if this request repeats its parameters; CONFLICT otherwise.
/// Rows from before fingerprints were recorded (NULL) are answered as before.
fn replay(existing: subscription::Model, fingerprint: &str) -> AppResult<subscription::Model> {
    match existing.idempotency_fingerprint.as_deref() {
        Some(f) if f != fingerprint => Err(AppError::Conflict(
            "this idempotencyKey was already used with different parameters; use a new key".into(),
        )),
        _ => Ok(existing),
    }
}

fn subscription_exists(detail: &str) -> AppError {
    if detail.contains("idempotency") {
        AppError::Conflict("a subscription with this idempotency key is being created".into())
    } else {
        AppError::Conflict(
            "you already have a subscription for this service; upgrade it instead of subscribing again".into(),
        )
    }
}

#[tracing::instrument(skip_all, fields(user_id = viewer.id, plan_id = input.plan_id))]
pub async fn subscribe(state: &AppState, viewer: Viewer, input: SubscribeInput) -> AppResult<subscription::Model> {
    let instance_name = validate_instance_name(input.instance_name.as_deref())?;
    let key = validate_idempotency_key(input.idempotency_key.as_deref())?;
    let coupon = input.coupon_code.filter(|c| !c.trim().is_empty());
    let print = fingerprint(input.plan_id, instance_name.as_deref(), coupon.as_deref());
    if let Some(k) = &key
        && let Some(existing) = by_idempotency_key(&state.db.conn, viewer.id, k).await?
    {
        return replay(existing, &print);
    }
    let checkout = Checkout {
        user_id: viewer.id,
        actor: Actor(Some(viewer.id)),
        plan_id: input.plan_id,
        instance_name,
        key: key.clone().map(|k| (k, print.clone())),
        charge: true,
        reason: None,
        coupon,
    };
    match subscribe_once(state, checkout).await {
        // A concurrent request with the same key won the insert: answer with its result.
        Err(AppError::Conflict(msg)) => match &key {
            Some(k) => match by_idempotency_key(&state.db.conn, viewer.id, k).await? {
                Some(existing) => replay(existing, &print),
                None => Err(AppError::Conflict(msg)),
            },
            None => Err(AppError::Conflict(msg)),
        },
        other => other,
    }
}

/// One subscription to create: by its owner, or by an administrator for a user.
pub(super) struct Checkout {
    pub user_id: i64,
    pub actor: Actor,
    pub plan_id: i64,
    pub instance_name: Option<String>,
    /// (idempotency key, fingerprint of the parameters).
    pub key: Option<(String, String)>,
    /// False when an administrator grants the first period without a charge.
    pub charge: bool,
    /// An administrator's reason, for the history.
    pub reason: Option<String>,
    /// The owner's checkout coupon code.
    pub coupon: Option<String>,
}

pub(super) async fn subscribe_once(state: &AppState, c: Checkout) -> AppResult<subscription::Model> {
    let Checkout { user_id, actor, plan_id, instance_name, key, charge: charged_now, reason, coupon } = c;
    let now = state.now();
    let tx = state.db.begin().await?;
    if actor.0 != Some(user_id) {
        // An administrator names the user; the owner's own checkout is for a signed-in account.
        let user = crate::users::service::get(&*tx, user_id).await?;
        if !user.is_active {
            return Err(AppError::Conflict("the user is deactivated".into()));
        }
    }
    let plan =
        plan::Entity::find_by_id(plan_id).one(&*tx).await?.filter(|p| p.is_active).ok_or(AppError::NotFound("plan"))?;
    let service = catalog_service::Entity::find_by_id(plan.service_id)
        .one(&*tx)
        .await?
        .filter(|s| s.is_visible())
        .ok_or(AppError::NotFound("plan"))?;

    // Checked in `checkoutPreview`'s order: the coupon right after the plan. Its use is taken
    // here and given back by the rollback if anything below fails.
    let claim = match coupon.as_deref() {
        Some(code) => Some({
            let guesses = &state.auth.coupon_guess_limiter;
            crate::coupons::service::claim_for_checkout(&*tx, guesses, user_id, code, &plan, now).await?
        }),
        None => None,
    };
    let discount = claim.as_ref().map_or(0, |c| c.discount);

    // The partial unique index decides "one live subscription per service".
    let end = period_end(now);
    let price = if charged_now { plan.monthly_price - discount } else { 0 };
    let sub = subscription::ActiveModel {
        user_id: Set(user_id),
        service_id: Set(service.id),
        plan_id: Set(plan.id),
        status: Set(SubscriptionStatus::Active),
        monthly_price: Set(plan.monthly_price),
        period_start: Set(now),
        period_end: Set(end),
        next_billing_at: Set(Some(end)),
        auto_renew: Set(true),
        grace_period_end: Set(None),
        last_charge_amount: Set(Some(price)),
        failed_charges: Set(0),
        previous_plan_id: Set(None),
        idempotency_fingerprint: Set(key.as_ref().map(|(_, f)| f.clone())),
        idempotency_key: Set(key.map(|(k, _)| k)),
        cancelled_at: Set(None),
        coupon_id: Set(claim.as_ref().map(|c| c.coupon.id)),
        discount_amount: Set(discount),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
    .insert(&*tx)
    .await
    .on_unique_violation(subscription_exists)?;

    let charged = match &claim {
        None => {
            let description = format!("Subscription to {} - {} plan", service.name, plan.name);
            charge(&*tx, &sub, TransactionType::Subscription, price, description, now).await?
        }
        Some(claim) => {
            let code = &claim.coupon.code;
            let charged = if price > 0 {
                let description =
                    format!("Subscription to {} - {} plan (coupon {code}: -{discount} IDR)", service.name, plan.name);
                let mut entry = Entry::new(user_id, TransactionType::Subscription, price, description);
                entry.subscription_id = Some(sub.id);
                entry.metadata = Some(serde_json::json!({
                    "planId": plan.id, "originalAmount": plan.monthly_price, "discountAmount": discount,
                    "finalAmount": price, "couponId": claim.coupon.id, "couponCode": code,
                }));
                Some(ledger::debit(&*tx, entry, false, now).await?.id)
            } else {
                None
            };
            claim.finish(&*tx, user_id, sub.id, charged, now).await?;
            charged
        }
    };
    let name = instance_name.unwrap_or_else(|| instances::dns_slug(&service.slug, 30));
    let subdomain = format!("{}-{}", instances::dns_slug(&name, 40), hex::encode(rand::random::<[u8; 4]>()));
    instance::ActiveModel {
        subscription_id: Set(sub.id),
        name: Set(name),
        subdomain: Set(subdomain.clone()),
        status: Set(InstanceStatus::Pending),
        health_status: Set(None),
        last_error: Set(None),
        namespace: Set(format!("minispod-u{user_id}")),
        deployment_name: Set(subdomain.clone()),
        public_url: Set(state.config.base_domain.as_ref().map(|d| format!("https://{subdomain}.{d}"))),
        last_started_at: Set(None),
        last_stopped_at: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
    .insert(&*tx)
    .await
    .on_unique_violation(|_| AppError::Conflict("instance subdomain collision; try again".into()))?;
    let mut details =
        serde_json::json!({ "planId": plan.id, "price": plan.monthly_price, "charged": price, "periodEnd": end });
    if let Some(claim) = &claim {
        details["couponCode"] = serde_json::json!(claim.coupon.code);
        details["discount"] = serde_json::json!(discount);
    }
    let kind = if actor.0 == Some(user_id) { "CREATED" } else { "ADMIN_CREATED" };
    let to = SubscriptionStatus::Active;
    record(&*tx, sub.id, actor, kind, None, to, reason.as_deref(), details, now).await?;
    // Last before commit: the plan row is every subscriber's hot spot, so its lock is held for
    // as short a time as possible (credit is checked first, quota last).
    if !take_slot(&*tx, plan.id).await? {
        return Err(AppError::QuotaExhausted(format!("the {} plan of {} is full", plan.name, service.name)));
    }
    tx.commit().await?;
    state.quota_changed().await;
    announce(state, user_id, charged).await;
    // After the commit, outside any transaction; a cluster outage leaves the instance PENDING.
    crate::instances::service::on_subscription_change(state, sub.id);
    Ok(sub)
}

/// Loads a subscription the viewer may act on: their own, or any for an administrator. Others'
/// ids answer NOT_FOUND, exactly like ids that do not exist.
pub async fn visible(db: &impl ConnectionTrait, viewer: Viewer, id: i64) -> AppResult<subscription::Model> {
    let q = if viewer.is_admin() { subscription::Entity::find() } else { subscription::owned_by(viewer.id) };
    q.filter(subscription::Column::Id.eq(id)).one(db).await?.ok_or_else(not_found)
}

/// Whether `user_id` owns subscription `id` (administrators included only for their own).
pub async fn owned(db: &impl ConnectionTrait, user_id: i64, id: i64) -> AppResult<bool> {
    Ok(subscription::owned_by(user_id).filter(subscription::Column::Id.eq(id)).count(db).await? == 1)
}

/// Applies `changes` if the subscription is still exactly as the request saw it (status in
/// `from`, same `updated_at`): optimistic concurrency, so of two requests made on the same state
/// the first to commit wins and the other gets CONFLICT, on SQLite and PostgreSQL alike.
pub(super) async fn transition(
    db: &impl ConnectionTrait,
    sub: &subscription::Model,
    from: &[SubscriptionStatus],
    mut changes: subscription::ActiveModel,
    now: DateTime<Utc>,
) -> AppResult<()> {
    changes.updated_at = Set(now);
    let res = subscription::Entity::update_many()
        .set(changes)
        .filter(subscription::Column::Id.eq(sub.id))
        .filter(subscription::Column::Status.is_in(from.iter().copied()))
        .filter(subscription::Column::UpdatedAt.eq(sub.updated_at))
        .exec(db)
        .await?;
    if res.rows_affected != 1 {
        return Err(AppError::Conflict("the subscription was changed by another request; reload and retry".into()));
    }
    Ok(())
}

pub(super) async fn reload(db: &impl ConnectionTrait, id: i64) -> AppResult<subscription::Model> {
    subscription::Entity::find_by_id(id).one(db).await?.ok_or_else(not_found)
}

pub struct UpgradeQuote {
    pub plan: plan::Model,
    pub cost: i64,
    pub reason: Option<String>,
}

/// Why `target` cannot replace the current plan, if it cannot (the plans, not the lifecycle,
/// credit or quota).
fn upgrade_rule(sub: &subscription::Model, current: &plan::Model, target: &plan::Model) -> Option<String> {
    if target.service_id != sub.service_id {
        return Some("the new plan must belong to the same service".into());
    }
    if !target.is_active {
        return Some("the new plan is not available".into());
    }
    if target.plan_type.rank() <= current.plan_type.rank() {
        return Some(format!(
            "downgrades are not allowed: plans can only change to a higher tier (FREE < BASIC < PRO < PREMIUM < ENTERPRISE); {:?} is not above {:?}",
            target.plan_type, current.plan_type
        ));
    }
    None
}

/// The prorated price difference for the rest of the current period.
fn upgrade_cost(sub: &subscription::Model, current_price: i64, target: &plan::Model, now: DateTime<Utc>) -> i64 {
    prorate(Ord::max(target.monthly_price - current_price, 0), sub.period_start, sub.period_end, now)
}

/// Preview of every higher plan of the service: cost now, and whether it can be taken.
pub async fn upgrade_options(state: &AppState, sub: &subscription::Model) -> AppResult<Vec<UpgradeQuote>> {
    let db = &state.db.conn;
    let now = state.now();
    let current = plan::Entity::find_by_id(sub.plan_id).one(db).await?.ok_or(AppError::NotFound("plan"))?;
    let balance = crate::users::service::get(db, sub.user_id).await?.balance;
    let plans = plan::Entity::find()
        .filter(plan::Column::ServiceId.eq(sub.service_id))
        .filter(plan::Column::IsActive.eq(true))
        .order_by_asc(plan::Column::MonthlyPrice)
        .all(db)
        .await?;
    Ok(plans
        .into_iter()
        .filter(|p| p.plan_type.rank() > current.plan_type.rank())
        .map(|p| {
            let cost = upgrade_cost(sub, sub.monthly_price, &p, now);
            let reason = lifecycle::allowed(Action::Upgrade, lifecycle::phase(sub, now))
                .err()
                .or_else(|| upgrade_rule(sub, &current, &p))
                .or_else(|| (p.available_quota() == 0).then(|| "plan at full capacity".to_string()))
                .or_else(|| (balance < cost).then(|| format!("insufficient credit: need {} IDR more", cost - balance)));
            UpgradeQuote { plan: p, cost, reason }
        })
        .collect())
}

#[tracing::instrument(skip_all, fields(user_id = viewer.id, subscription_id = id, plan_id))]
pub async fn upgrade(state: &AppState, viewer: Viewer, id: i64, plan_id: i64) -> AppResult<subscription::Model> {
    // The state this request acts on is read before the transaction (see `transition`).
    let sub = subscription::owned_by(viewer.id)
        .filter(subscription::Column::Id.eq(id))
        .one(&state.db.conn)
        .await?
        .ok_or_else(not_found)?;
    change_plan(state, Actor(Some(viewer.id)), sub, plan_id, None).await
}

/// Moves `sub` to another plan of its service for the rest of the period. The owner may only
/// go up a tier and pays the prorated difference. An administrator (`admin_reason`) may also go
/// down; the owner then gets the prorated difference back as a REFUND.
pub(super) async fn change_plan(
    state: &AppState,
    actor: Actor,
    sub: subscription::Model,
    plan_id: i64,
    admin_reason: Option<&str>,
) -> AppResult<subscription::Model> {
    let now = state.now();
    let tx = state.db.begin().await?;
    let current = plan::Entity::find_by_id(sub.plan_id).one(&*tx).await?.ok_or(AppError::NotFound("plan"))?;
    let target = plan::Entity::find_by_id(plan_id).one(&*tx).await?.ok_or(AppError::NotFound("plan"))?;
    lifecycle::check(if admin_reason.is_some() { Action::ChangePlan } else { Action::Upgrade }, &sub, now)?;
    let rule = match admin_reason {
        None => upgrade_rule(&sub, &current, &target),
        Some(_) => plan_change_rule(&sub, &current, &target),
    };
    if let Some(rule) = rule {
        return Err(AppError::bad_input("planId", rule));
    }
    let cost = upgrade_cost(&sub, sub.monthly_price, &target, now);
    let refund_wanted =
        prorate(Ord::max(sub.monthly_price - target.monthly_price, 0), sub.period_start, sub.period_end, now);
    transition(
        &*tx,
        &sub,
        &[SubscriptionStatus::Active],
        subscription::ActiveModel {
            plan_id: Set(target.id),
            monthly_price: Set(target.monthly_price),
            previous_plan_id: Set(Some(current.id)),
            last_charge_amount: Set(Some(cost)),
            ..Default::default()
        },
        now,
    )
    .await?;
    if !take_slot(&*tx, target.id).await? {
        return Err(AppError::QuotaExhausted(format!("the {} plan is full", target.name)));
    }
    release_slot(&*tx, current.id).await?;
    let until = sub.period_end.format("%Y-%m-%d");
    // Never more than the period's charges have left (a discounted or free first period).
    let (refund, from) = match refund_wanted > 0 {
        true => refunds::claim_from_period(&*tx, sub.id, sub.period_start, refund_wanted).await?,
        false => (0, Vec::new()),
    };
    let moved = if refund > 0 {
        let description = format!("Downgrade from {} to {} (prorated refund to {until})", current.name, target.name);
        let mut entry = Entry::new(sub.user_id, TransactionType::Refund, refund, description);
        entry.subscription_id = Some(sub.id);
        entry.processed_by = actor.0;
        entry.refund_of = from.first().copied();
        entry.metadata = Some(serde_json::json!({ "charges": from }));
        Some(ledger::credit(&*tx, entry, now).await?.id)
    } else if refund_wanted > 0 {
        None
    } else {
        let description = format!("Upgrade from {} to {} (prorated to {until})", current.name, target.name);
        charge(&*tx, &sub, TransactionType::Upgrade, cost, description, now).await?
    };
    let details = serde_json::json!({
        "fromPlanId": current.id, "toPlanId": target.id, "charged": cost, "refunded": refund
    });
    let kind = if admin_reason.is_some() { "PLAN_CHANGED" } else { "UPGRADED" };
    record(&*tx, sub.id, actor, kind, Some(sub.status), sub.status, admin_reason, details, now).await?;
    let sub = reload(&*tx, sub.id).await?;
    tx.commit().await?;
    state.quota_changed().await;
    announce(state, sub.user_id, moved).await;
    // Re-applied with the new plan's resources (and a larger volume).
    crate::instances::service::on_subscription_change(state, sub.id);
    Ok(sub)
}

/// Why an administrator cannot move `sub` from `current` to `target`, if they cannot.
fn plan_change_rule(sub: &subscription::Model, current: &plan::Model, target: &plan::Model) -> Option<String> {
    if target.service_id != sub.service_id {
        return Some("the new plan must belong to the same service".into());
    }
    if target.id == current.id {
        return Some("the subscription is already on this plan".into());
    }
    (!target.is_active).then(|| "the new plan is not available".into())
}

/// Marks the subscription's instances for termination; `instances::service` deletes their
/// objects after the commit (the lifecycle allows TERMINATE from every live status).
pub(super) async fn terminate_instances(db: &impl ConnectionTrait, sub_id: i64, now: DateTime<Utc>) -> AppResult<()> {
    instance::Entity::update_many()
        .col_expr(instance::Column::Status, Expr::value(InstanceStatus::Terminating))
        .col_expr(instance::Column::Version, Expr::col(instance::Column::Version).add(1))
        .col_expr(instance::Column::StatusChangedAt, Expr::value(Some(now)))
        .col_expr(instance::Column::UpdatedAt, Expr::value(now))
        .filter(instance::Column::SubscriptionId.eq(sub_id))
        .filter(instance::Column::Status.is_not_in([InstanceStatus::Terminating, InstanceStatus::Terminated]))
        .exec(db)
        .await?;
    Ok(())
}

pub(super) fn parse_reason(raw: Option<&str>, required: bool) -> AppResult<Option<String>> {
    match raw.map(str::trim).filter(|s| !s.is_empty()) {
        None if required => Err(AppError::bad_input("reason", "a reason is required")),
        None => Ok(None),
        Some(r) if r.chars().count() > 500 => {
            Err(AppError::bad_input("reason", "reason must be at most 500 characters"))
        }
        Some(r) => Ok(Some(r.to_string())),
    }
}

/// Cancels at once: ACTIVE or SUSPENDED → CANCELLED, slot released, instances marked for
/// termination. The owner gets no refund; an administrator may refund the unused part.
#[tracing::instrument(skip_all, fields(actor = viewer.id, subscription_id = id))]
pub async fn cancel(
    state: &AppState,
    viewer: Viewer,
    id: i64,
    reason: Option<&str>,
    admin_refund: Option<bool>,
) -> AppResult<subscription::Model> {
    let reason = parse_reason(reason, admin_refund.is_some())?;
    let now = state.now();
    let sub = visible(&state.db.conn, viewer, id).await?;
    let tx = state.db.begin().await?;
    lifecycle::check(Action::Cancel, &sub, now)?;
    transition(
        &*tx,
        &sub,
        &[sub.status],
        subscription::ActiveModel {
            status: Set(SubscriptionStatus::Cancelled),
            auto_renew: Set(false),
            next_billing_at: Set(None),
            grace_period_end: Set(None),
            cancelled_at: Set(Some(now)),
            ..Default::default()
        },
        now,
    )
    .await?;
    terminate_instances(&*tx, sub.id, now).await?;
    let refund = match admin_refund {
        Some(true) if sub.status == SubscriptionStatus::Active => {
            prorate(sub.monthly_price, sub.period_start, sub.period_end, now)
        }
        _ => 0,
    };
    // Never more than the period's charges have left (a discounted or free first period, or
    // an administrator's earlier refund).
    let (refund, from) = match refund > 0 {
        true => refunds::claim_from_period(&*tx, sub.id, sub.period_start, refund).await?,
        false => (0, Vec::new()),
    };
    let mut refunded = None;
    if refund > 0 {
        let mut entry =
            Entry::new(sub.user_id, TransactionType::Refund, refund, "Prorated refund for the unused period");
        entry.subscription_id = Some(sub.id);
        entry.processed_by = Some(viewer.id);
        entry.refund_of = from.first().copied();
        entry.metadata = Some(serde_json::json!({ "charges": from }));
        refunded = Some(ledger::credit(&*tx, entry, now).await?.id);
    }
    let kind = if admin_refund.is_some() { "ADMIN_CANCELLED" } else { "CANCELLED" };
    let note = if admin_refund.is_some() {
        format!("refund {refund} IDR")
    } else {
        "cancelled by the owner; the remaining period is not refunded".to_string()
    };
    let details = serde_json::json!({ "refund": refund, "note": note });
    record(
        &*tx,
        sub.id,
        Actor(Some(viewer.id)),
        kind,
        Some(sub.status),
        SubscriptionStatus::Cancelled,
        reason.as_deref(),
        details,
        now,
    )
    .await?;
    let sub = reload(&*tx, sub.id).await?;
    release_slot(&*tx, sub.plan_id).await?; // last: see `subscribe`
    tx.commit().await?;
    state.quota_changed().await;
    announce(state, sub.user_id, refunded).await;
    crate::instances::service::on_subscription_change(state, sub.id);
    Ok(sub)
}

pub async fn set_auto_renew(
    state: &AppState,
    viewer: Viewer,
    id: i64,
    enabled: bool,
) -> AppResult<subscription::Model> {
    let now = state.now();
    let sub = visible(&state.db.conn, viewer, id).await?;
    let tx = state.db.begin().await?;
    lifecycle::check(Action::SetAutoRenew, &sub, now)?;
    let from = [sub.status];
    transition(&*tx, &sub, &from, subscription::ActiveModel { auto_renew: Set(enabled), ..Default::default() }, now)
        .await?;
    let kind = if enabled { "AUTO_RENEW_ON" } else { "AUTO_RENEW_OFF" };
    record(&*tx, sub.id, Actor(Some(viewer.id)), kind, Some(sub.status), sub.status, None, serde_json::json!({}), now)
        .await?;
    let sub = reload(&*tx, sub.id).await?;
    tx.commit().await?;
    Ok(sub)
}

/// Pays the next period now: during a grace period (or while suspended for non-payment), or
/// within seven days of the period end. Where the new period starts is the lifecycle's rule
/// (`lifecycle::renewal_start`): at the old end, except from SUSPENDED.
#[tracing::instrument(skip_all, fields(user_id = viewer.id, subscription_id = id))]
pub async fn renew(state: &AppState, viewer: Viewer, id: i64) -> AppResult<subscription::Model> {
    let now = state.now();
    let sub = visible(&state.db.conn, viewer, id).await?;
    let tx = state.db.begin().await?;
    let phase = lifecycle::check(Action::Renew, &sub, now)?;
    let start = lifecycle::renewal_start(&sub, phase, now);
    let end = period_end(start);
    transition(&*tx, &sub, &[sub.status], new_period(start, end, sub.monthly_price), now).await?;
    let description = format!("Renewal until {}", end.format("%Y-%m-%d"));
    let charged = charge(&*tx, &sub, TransactionType::Renewal, sub.monthly_price, description, now).await?;
    let details = serde_json::json!({ "periodStart": start, "periodEnd": end, "charged": sub.monthly_price });
    record(
        &*tx,
        sub.id,
        Actor(Some(viewer.id)),
        "RENEWED",
        Some(sub.status),
        SubscriptionStatus::Active,
        None,
        details,
        now,
    )
    .await?;
    let sub = reload(&*tx, sub.id).await?;
    tx.commit().await?;
    announce(state, sub.user_id, charged).await;
    // A suspension ends: the instances start again unless their owner stopped them.
    crate::instances::service::on_subscription_change(state, sub.id);
    Ok(sub)
}

/// Admin: pushes the period end (and next billing) back by `days`, 1–365.
pub async fn extend(
    state: &AppState,
    admin: Viewer,
    id: i64,
    days: i32,
    reason: &str,
) -> AppResult<subscription::Model> {
    if !(1..=365).contains(&days) {
        return Err(AppError::bad_input("days", "days must be between 1 and 365"));
    }
    let reason = parse_reason(Some(reason), true)?;
    let now = state.now();
    let sub = visible(&state.db.conn, admin, id).await?;
    let tx = state.db.begin().await?;
    lifecycle::check(Action::Extend, &sub, now)?;
    let by = Duration::days(i64::from(days));
    let end = sub.period_end + by;
    transition(
        &*tx,
        &sub,
        &[sub.status],
        subscription::ActiveModel {
            period_end: Set(end),
            next_billing_at: Set(sub.next_billing_at.map(|n| n + by)),
            ..Default::default()
        },
        now,
    )
    .await?;
    let details = serde_json::json!({ "days": days, "periodEnd": end });
    record(
        &*tx,
        sub.id,
        Actor(Some(admin.id)),
        "EXTENDED",
        Some(sub.status),
        sub.status,
        reason.as_deref(),
        details,
        now,
    )
    .await?;
    let sub = reload(&*tx, sub.id).await?;
    tx.commit().await?;
    Ok(sub)
}

pub async fn list_own(
    db: &impl ConnectionTrait,
    user_id: i64,
    status: Option<SubscriptionStatus>,
) -> AppResult<Vec<subscription::Model>> {
    let mut q = subscription::owned_by(user_id);
    if let Some(s) = status {
        q = q.filter(subscription::Column::Status.eq(s));
    }
    Ok(q.order_by_desc(subscription::Column::Id).all(db).await?)
}

/// What an administrator narrows `allSubscriptions` to.
#[derive(Default)]
pub struct ListFilter {
    pub status: Option<SubscriptionStatus>,
    pub user_id: Option<i64>,
    pub service_id: Option<i64>,
    pub plan_id: Option<i64>,
    /// Part of the owner's name or email.
    pub user_search: Option<String>,
    pub created_from: Option<DateTime<Utc>>,
    /// Exclusive.
    pub created_to: Option<DateTime<Utc>>,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, async_graphql::Enum)]
pub enum SubscriptionSortField {
    CreatedAt,
    /// When the current period ends.
    EndDate,
    MonthlyPrice,
}

/// Newest first (keyset pages) unless `sort` asks otherwise (offset pages; ties by id).
pub async fn list_all(
    db: &impl ConnectionTrait,
    filter: ListFilter,
    sort: Option<(SubscriptionSortField, crate::pagination::SortDirection)>,
    args: PageArgs,
) -> AppResult<Page<subscription::Model>> {
    use crate::users::entity as users;
    let mut q = subscription::Entity::find();
    if let Some(s) = filter.status {
        q = q.filter(subscription::Column::Status.eq(s));
    }
    if let Some(u) = filter.user_id {
        q = q.filter(subscription::Column::UserId.eq(u));
    }
    if let Some(id) = filter.service_id {
        q = q.filter(subscription::Column::ServiceId.eq(id));
    }
    if let Some(id) = filter.plan_id {
        q = q.filter(subscription::Column::PlanId.eq(id));
    }
    if let Some(from) = filter.created_from {
        q = q.filter(subscription::Column::CreatedAt.gte(from));
    }
    if let Some(to) = filter.created_to {
        q = q.filter(subscription::Column::CreatedAt.lt(to));
    }
    if let Some(matches) = crate::users::service::search_condition(filter.user_search.as_deref())? {
        let matching = sea_orm::sea_query::Query::select()
            .column(users::Column::Id)
            .from(users::Entity)
            .cond_where(matches)
            .to_owned();
        q = q.filter(subscription::Column::UserId.in_subquery(matching));
    }
    let total = q.clone().count(db).await?;
    let Some((field, direction)) = sort else {
        if let Some(after) = args.after {
            q = q.filter(subscription::Column::Id.lt(after));
        }
        let rows = q.order_by_desc(subscription::Column::Id).limit(args.first + 1).all(db).await?;
        return Ok(Page::new(rows, args, total));
    };
    let column = match field {
        SubscriptionSortField::CreatedAt => subscription::Column::CreatedAt,
        SubscriptionSortField::EndDate => subscription::Column::PeriodEnd,
        SubscriptionSortField::MonthlyPrice => subscription::Column::MonthlyPrice,
    };
    let order = direction.order();
    let rows = q
        .order_by(column, order.clone())
        .order_by(subscription::Column::Id, order)
        .offset(Ord::max(args.after.unwrap_or(0), 0) as u64)
        .limit(args.first + 1)
        .all(db)
        .await?;
    Ok(Page::new(rows, args, total))
}

pub async fn history(db: &impl ConnectionTrait, sub_id: i64) -> AppResult<Vec<event::Model>> {
    Ok(event::Entity::find()
        .filter(event::Column::SubscriptionId.eq(sub_id))
        .order_by_asc(event::Column::Id)
        .all(db)
        .await?)
}
