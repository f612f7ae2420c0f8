//! Instance use cases. Each records its intent (status, version, rollout stamp) in one short
//! transaction, commits, then calls the cluster, then records the outcome: no transaction is
//! held across a Kubernetes call, and a crash at any point leaves a row the reconciler
//! converges from. Status changes are conditional on the version the caller read.
use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set};

use super::{
    InstanceStatus,
    cluster::{self, ClusterError},
    entity as instance,
    lifecycle::{self, Action, Desired},
    manifests::{self, Spec},
};
use crate::{
    auth::Viewer,
    catalog::entity::{plan, service as catalog_service},
    error::{AppError, AppResult},
    pagination::{Page, PageArgs},
    state::AppState,
    subscriptions::{SubscriptionStatus, entity::subscription, service as subscriptions},
};

/// The instance if the viewer owns its subscription or is an administrator; NOT_FOUND otherwise,
/// exactly as for ids that do not exist.
pub async fn visible(db: &impl ConnectionTrait, viewer: Viewer, id: i64) -> AppResult<instance::Model> {
    let inst = instance::Entity::find_by_id(id).one(db).await?.ok_or(AppError::NotFound("instance"))?;
    match subscriptions::visible(db, viewer, inst.subscription_id).await {
        Ok(_) => Ok(inst),
        Err(AppError::NotFound(_)) => Err(AppError::NotFound("instance")),
        Err(e) => Err(e),
    }
}

/// The instance if the viewer owns it. Administrators see every instance, but its secrets and
/// its app's log (`what`) are the owner's alone: FORBIDDEN for them, NOT_FOUND for anyone else.
pub async fn owned(db: &impl ConnectionTrait, viewer: Viewer, id: i64, what: &str) -> AppResult<instance::Model> {
    let inst = visible(db, viewer, id).await?;
    if !subscriptions::owned(db, viewer.id, inst.subscription_id).await? {
        return Err(AppError::Forbidden(format!("only the owner can read the {what}")));
    }
    Ok(inst)
}

/// An instance with everything its manifests depend on.
#[derive(Clone, Debug)]
pub struct Loaded {
    pub instance: instance::Model,
    pub user_id: i64,
    pub subscription_status: SubscriptionStatus,
    pub service: catalog_service::Model,
    pub plan: plan::Model,
}

impl Loaded {
    /// What the cluster should hold: the lifecycle's answer, except that a suspended
    /// subscription runs nothing.
    pub fn desired(&self) -> Desired {
        match lifecycle::desired(self.instance.status) {
            Desired::Replicas(_) if self.subscription_status == SubscriptionStatus::Suspended => Desired::Replicas(0),
            d => d,
        }
    }

    pub fn spec<'a>(&'a self, state: &'a AppState) -> Spec<'a> {
        let replicas = match self.desired() {
            Desired::Replicas(n) => n,
            Desired::Absent => 0,
        };
        Spec {
            instance: &self.instance,
            user_id: self.user_id,
            service: &self.service,
            plan: &self.plan,
            settings: &state.config.provisioning,
            base_domain: state.config.base_domain.as_deref(),
            replicas,
        }
    }
}

/// Loads instances (all live ones when `ids` is `None`) with their subscription, service and
/// plan: four statements whatever the number of instances.
pub async fn load_many(db: &impl ConnectionTrait, ids: Option<&[i64]>) -> AppResult<Vec<Loaded>> {
    let mut q = instance::Entity::find().filter(instance::Column::Status.ne(InstanceStatus::Terminated));
    if let Some(ids) = ids {
        q = q.filter(instance::Column::Id.is_in(ids.iter().copied()));
    }
    let rows = q.order_by_asc(instance::Column::Id).all(db).await?;
    let sub_ids: Vec<i64> = rows.iter().map(|i| i.subscription_id).collect();
    let subs: HashMap<i64, subscription::Model> = subscription::Entity::find()
        .filter(subscription::Column::Id.is_in(sub_ids))
        .all(db)
        .await?
        .into_iter()
        .map(|s| (s.id, s))
        .collect();
    let plan_ids: Vec<i64> = subs.values().map(|s| s.plan_id).collect();
    let plans: HashMap<i64, plan::Model> = plan::Entity::find()
        .filter(plan::Column::Id.is_in(plan_ids))
        .all(db)
        .await?
        .into_iter()
        .map(|p| (p.id, p))
        .collect();
    let service_ids: Vec<i64> = subs.values().map(|s| s.service_id).collect();
    let services: HashMap<i64, catalog_service::Model> = catalog_service::Entity::find()
        .filter(catalog_service::Column::Id.is_in(service_ids))
        .all(db)
        .await?
        .into_iter()
        .map(|s| (s.id, s))
        .collect();
    Ok(rows
        .into_iter()
        .filter_map(|i| {
            let sub = subs.get(&i.subscription_id)?;
            Some(Loaded {
                user_id: sub.user_id,
                subscription_status: sub.status,
                service: services.get(&sub.service_id)?.clone(),
                plan: plans.get(&sub.plan_id)?.clone(),
                instance: i,
            })
        })
        .collect())
}

async fn load(db: &impl ConnectionTrait, id: i64) -> AppResult<Option<Loaded>> {
    Ok(load_many(db, Some(&[id])).await?.into_iter().next())
}

/// Applies `changes` (plus `version + 1`) if the row still has the version `inst` was read at.
/// `false`: another request or the watch changed it first.
async fn update_if_unchanged(
    db: &impl ConnectionTrait,
    inst: &instance::Model,
    mut changes: instance::ActiveModel,
    now: DateTime<Utc>,
) -> AppResult<bool> {
    changes.version = Set(inst.version + 1);
    changes.updated_at = Set(now);
    let res = instance::Entity::update_many()
        .set(changes)
        .filter(instance::Column::Id.eq(inst.id))
        .filter(instance::Column::Version.eq(inst.version))
        .exec(db)
        .await?;
    Ok(res.rows_affected == 1)
}

/// Moves `inst` by `action` (the lifecycle table decides), with extra changes. `inst` is the
/// row as the caller read it: if anyone changed it since, this is CONFLICT.
pub async fn transition(
    state: &AppState,
    inst: &instance::Model,
    action: Action,
    mut changes: instance::ActiveModel,
) -> AppResult<instance::Model> {
    let now = state.now();
    let to = lifecycle::next(inst.status, action)?;
    changes.status = Set(to);
    changes.status_changed_at = Set(Some(now));
    // PROVISION applied the stamp its intent recorded; every other move into a rolling status
    // gets a new one.
    if lifecycle::is_rolling(to) && action != Action::Provision {
        // A new rollout stamp: the pod template changes, so the cluster rolls the pods.
        changes.provision_started_at = Set(Some(now));
    }
    let conflict = || {
        AppError::Conflict(format!(
            "the instance was changed by another request (it was {}); reload and retry",
            inst.status.as_str()
        ))
    };
    let mut notified = None;
    if let Some(what) = owner_news(inst, to, &changes) {
        // The owner hears of it in the transaction that records it.
        let tx = state.db.begin().await?;
        if !update_if_unchanged(&*tx, inst, changes, now).await? {
            return Err(conflict());
        }
        notified = notify_owner(&*tx, state, inst, what).await?;
        tx.commit().await?;
    } else if !update_if_unchanged(&state.db.conn, inst, changes, now).await? {
        return Err(conflict());
    }
    let updated =
        instance::Entity::find_by_id(inst.id).one(&state.db.conn).await?.ok_or(AppError::NotFound("instance"))?;
    state.instance_hub.announce(&state.db, updated.id).await;
    state.notices.announce(&state.db, notified).await;
    Ok(updated)
}

/// What the owner is told about a move to `to`: the first time the app runs after
/// provisioning, and every failure (once per rollout).
enum OwnerNews {
    Running,
    Failed(String),
}

fn owner_news(inst: &instance::Model, to: InstanceStatus, changes: &instance::ActiveModel) -> Option<OwnerNews> {
    match to {
        InstanceStatus::Running if inst.status == InstanceStatus::Provisioning => Some(OwnerNews::Running),
        InstanceStatus::Error => {
            let reason = match &changes.last_error {
                sea_orm::ActiveValue::Set(Some(r)) => r.clone(),
                _ => inst.last_error.clone().unwrap_or_else(|| "unknown error".into()),
            };
            Some(OwnerNews::Failed(reason))
        }
        _ => None,
    }
}

async fn notify_owner(
    db: &impl ConnectionTrait,
    state: &AppState,
    inst: &instance::Model,
    what: OwnerNews,
) -> AppResult<Option<crate::notifications::service::Notified>> {
    use crate::notifications::{notice::Notice, service as notifications};
    let Some(sub) = subscription::Entity::find_by_id(inst.subscription_id).one(db).await? else {
        return Ok(None);
    };
    let app = notifications::app_name(db, sub.service_id, sub.plan_id).await?.service;
    let rollout = inst.provision_started_at.map(manifests::stamp).unwrap_or_default();
    let notice = match what {
        OwnerNews::Running => Notice::InstanceRunning {
            instance_id: inst.id,
            subscription_id: sub.id,
            app,
            url: inst.public_url.clone().or_else(|| inst.endpoint.clone()),
            rollout,
        },
        OwnerNews::Failed(reason) => {
            Notice::InstanceError { instance_id: inst.id, subscription_id: sub.id, app, reason, rollout }
        }
    };
    notifications::notify(db, state, sub.user_id, &notice).await
}

/// Records a cluster failure on the row (no status change) so the owner sees why.
async fn record_error(state: &AppState, inst: &instance::Model, e: &ClusterError) -> AppResult<instance::Model> {
    let changes = instance::ActiveModel { last_error: Set(Some(e.to_string())), ..Default::default() };
    let now = state.now();
    if update_if_unchanged(&state.db.conn, inst, changes, now).await? {
        let updated =
            instance::Entity::find_by_id(inst.id).one(&state.db.conn).await?.ok_or(AppError::NotFound("instance"))?;
        state.instance_hub.announce(&state.db, updated.id).await;
        return Ok(updated);
    }
    Ok(inst.clone())
}

/// Applies the instance's manifests as its row says (replicas, rollout stamp, plan).
async fn apply(state: &AppState, l: &Loaded) -> Result<Option<String>, ClusterError> {
    let client = match state.cluster.clients_or_unavailable() {
        Ok(c) => c.api.clone(),
        Err(_) => return Err(ClusterError::Unavailable("no cluster is configured".into())),
    };
    let spec = l.spec(state);
    let m = manifests::build(&spec);
    let secret = manifests::needs_password(&l.service).then(|| {
        let password = hex::encode(rand::random::<[u8; 18]>());
        manifests::secret(&spec, &password)
    });
    let applied = cluster::apply_all(&client, &m, secret.as_ref()).await?;
    Ok(manifests::endpoint(&spec, &applied))
}

/// First provisioning of a PENDING instance: stamp, apply, then PROVISIONING. When the cluster
/// is unreachable the instance stays PENDING with `lastError`, and the reconciler tries again.
#[tracing::instrument(skip_all, fields(instance_id = id))]
pub async fn provision(state: &AppState, id: i64) -> AppResult<()> {
    let Some(mut l) = load(&state.db.conn, id).await? else {
        return Ok(());
    };
    if l.instance.status != InstanceStatus::Pending {
        return Ok(());
    }
    let now = state.now();
    // Intent: the rollout stamp the manifests carry.
    let stamp = instance::ActiveModel { provision_started_at: Set(Some(now)), ..Default::default() };
    if !update_if_unchanged(&state.db.conn, &l.instance, stamp, now).await? {
        return Ok(()); // someone else is provisioning it
    }
    l.instance.provision_started_at = Some(now);
    l.instance.version += 1;
    match apply(state, &l).await {
        Ok(endpoint) => {
            let changes =
                instance::ActiveModel { endpoint: Set(endpoint), last_error: Set(None), ..Default::default() };
            match transition(state, &l.instance, Action::Provision, changes).await {
                Ok(inst) => recheck(state, &inst).await,
                Err(AppError::Conflict(_)) => Ok(()),
                Err(e) => Err(e),
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "provisioning deferred");
            record_error(state, &l.instance, &e).await.map(|_| ())
        }
    }
}

/// The rollout may have finished between the apply and the PROVISIONING row (the watch then
/// reported it too early to count): read the Deployment once and record what it says.
async fn recheck(state: &AppState, inst: &instance::Model) -> AppResult<()> {
    let Ok(clients) = state.cluster.clients_or_unavailable() else { return Ok(()) };
    let Ok(Some(d)) = cluster::get_deployment(&clients.api, &inst.namespace, &inst.deployment_name).await else {
        return Ok(()); // the watch reports it later
    };
    let stamp = d
        .spec
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.annotations.as_ref())
        .and_then(|a| a.get(manifests::RESTARTED_AT).cloned());
    match super::observe::deployment_observation(&d) {
        Some(seen) => observed(state, inst.id, seen, stamp.as_deref()).await,
        None => Ok(()),
    }
}

/// The owner's (or an administrator's) start, stop, restart and retry.
#[tracing::instrument(skip_all, fields(actor = viewer.id, instance_id = id, ?action))]
pub async fn act(state: &AppState, viewer: Viewer, id: i64, action: Action) -> AppResult<instance::Model> {
    if !matches!(action, Action::Start | Action::Stop | Action::Restart | Action::Retry) {
        return Err(AppError::bad_input("action", "not an owner action"));
    }
    let inst = visible(&state.db.conn, viewer, id).await?;
    let mut l = load(&state.db.conn, id).await?.ok_or(AppError::NotFound("instance"))?;
    if action == Action::Start && l.subscription_status != SubscriptionStatus::Active {
        return Err(AppError::Conflict(format!(
            "the subscription is {}; renew it to start the instance",
            l.subscription_status.as_str()
        )));
    }
    // The cluster must be configured to accept the intent at all.
    state.cluster.clients_or_unavailable()?;
    let changes = match action {
        Action::Stop => instance::ActiveModel { owner_stopped: Set(true), ..Default::default() },
        Action::Start => instance::ActiveModel { owner_stopped: Set(false), ..Default::default() },
        Action::Retry => instance::ActiveModel { last_error: Set(None), ..Default::default() },
        _ => instance::ActiveModel::default(),
    };
    let updated = transition(state, &inst, action, changes).await?;
    l.instance = updated.clone();
    match apply(state, &l).await {
        Ok(endpoint) if endpoint != updated.endpoint => {
            let changes = instance::ActiveModel { endpoint: Set(endpoint), ..Default::default() };
            update_if_unchanged(&state.db.conn, &updated, changes, state.now()).await?;
            Ok(reload(state, id).await?)
        }
        Ok(_) => Ok(updated),
        // The intent stands; the reconciler re-applies when the cluster answers again.
        Err(e) => record_error(state, &updated, &e).await,
    }
}

async fn reload(state: &AppState, id: i64) -> AppResult<instance::Model> {
    instance::Entity::find_by_id(id).one(&state.db.conn).await?.ok_or(AppError::NotFound("instance"))
}

/// What the watch saw for an instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Observation {
    Available,
    Stopped,
    Failed(String),
}

/// Records what the watch saw, if the lifecycle allows it from the current status; stale or
/// repeated observations change nothing.
pub async fn observed(state: &AppState, id: i64, seen: Observation, stamp: Option<&str>) -> AppResult<()> {
    let Some(inst) = instance::Entity::find_by_id(id).one(&state.db.conn).await? else {
        return Ok(());
    };
    // Only the rollout this row asked for counts (an older one may still be reporting).
    if stamp != inst.provision_started_at.map(manifests::stamp).as_deref() {
        return Ok(());
    }
    let now = state.now();
    let (action, changes) = match seen {
        Observation::Available => (
            Action::ObservedAvailable,
            instance::ActiveModel { last_error: Set(None), last_started_at: Set(Some(now)), ..Default::default() },
        ),
        Observation::Stopped => {
            (Action::ObservedStopped, instance::ActiveModel { last_stopped_at: Set(Some(now)), ..Default::default() })
        }
        Observation::Failed(reason) => {
            (Action::ObservedFailure, instance::ActiveModel { last_error: Set(Some(reason)), ..Default::default() })
        }
    };
    if lifecycle::next(inst.status, action).is_err() {
        return Ok(());
    }
    match transition(state, &inst, action, changes).await {
        Ok(_) | Err(AppError::Conflict(_)) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Brings one instance's cluster objects to what its row and subscription say. Used after
/// subscription changes and by every reconcile pass; `has_objects` says whether the pass saw
/// the instance's objects complete and current.
#[tracing::instrument(skip_all, fields(instance_id = l.instance.id))]
pub async fn converge(state: &AppState, mut l: Loaded, up_to_date: bool) -> AppResult<bool> {
    let inst = l.instance.clone();
    let now = state.now();
    match inst.status {
        InstanceStatus::Terminated => Ok(false),
        InstanceStatus::Terminating => {
            let client = state.cluster.clients_or_unavailable()?.api.clone();
            match cluster::delete_instance(&client, &inst.namespace, inst.id).await {
                Ok(_) => {
                    transition(state, &inst, Action::ObservedDeleted, instance::ActiveModel::default()).await?;
                    Ok(true)
                }
                Err(e) => record_error(state, &inst, &e).await.map(|_| false),
            }
        }
        InstanceStatus::Pending => provision(state, inst.id).await.map(|_| true),
        _ => {
            let suspended = l.subscription_status == SubscriptionStatus::Suspended;
            let runs = lifecycle::desired(inst.status) != Desired::Replicas(0);
            let action = if suspended && runs {
                Some(Action::Suspend)
            } else if l.subscription_status == SubscriptionStatus::Active && !runs && !inst.owner_stopped {
                Some(Action::Reactivate)
            } else if lifecycle::is_rolling(inst.status)
                && inst.provision_started_at.is_some_and(|t| {
                    now - t
                        > chrono::Duration::from_std(state.config.provisioning.provision_timeout).unwrap_or_default()
                })
            {
                let secs = state.config.provisioning.provision_timeout.as_secs();
                let reason = format!("the app did not become available within {secs} s");
                transition(
                    state,
                    &inst,
                    Action::ObservedFailure,
                    instance::ActiveModel { last_error: Set(Some(reason)), ..Default::default() },
                )
                .await?;
                return Ok(true);
            } else {
                None
            };
            if let Some(a) = action {
                l.instance = transition(state, &inst, a, instance::ActiveModel::default()).await?;
            } else if up_to_date {
                return Ok(false);
            }
            match apply(state, &l).await {
                Ok(_) => Ok(true),
                Err(e) => record_error(state, &l.instance, &e).await.map(|_| false),
            }
        }
    }
}

/// After a subscription change (cancel, expiry, suspension, renewal, upgrade): converge its
/// instances now instead of waiting for the next reconcile pass. Errors are logged; the
/// reconciler retries.
pub fn on_subscription_change(state: &AppState, subscription_id: i64) {
    let state = state.clone();
    tokio::spawn(async move {
        let ids: Vec<i64> = match instance::Entity::find()
            .select_only()
            .column(instance::Column::Id)
            .filter(instance::Column::SubscriptionId.eq(subscription_id))
            .into_tuple()
            .all(&state.db.conn)
            .await
        {
            Ok(ids) => ids,
            Err(e) => {
                tracing::warn!(error = %e, subscription_id, "cannot load instances to converge");
                return;
            }
        };
        let Ok(loaded) = load_many(&state.db.conn, Some(&ids)).await else { return };
        for l in loaded {
            // An upgrade changes the plan: re-apply even if nothing else changed.
            if let Err(e) = converge(&state, l, false).await {
                tracing::warn!(error = %e, subscription_id, "instance not converged; the reconciler retries");
            }
        }
    });
}

/// The generated password of the viewer's own instance (administrators included only when they
/// own it: credentials are the owner's alone).
pub async fn credentials(state: &AppState, viewer: Viewer, id: i64) -> AppResult<Option<serde_json::Value>> {
    let inst = owned(&state.db.conn, viewer, id, "credentials").await?;
    let l = load(&state.db.conn, id).await?.ok_or(AppError::NotFound("instance"))?;
    if !manifests::needs_password(&l.service) {
        return Ok(None);
    }
    let client = state.cluster.clients_or_unavailable()?.api.clone();
    let password = cluster::read_password(&client, &inst.namespace, &manifests::secret_name(&inst))
        .await
        .map_err(|e| AppError::ClusterUnavailable(e.to_string()))?;
    Ok(password.map(|p| serde_json::json!({ "password": p, "endpoint": inst.endpoint })))
}

/// Admin: every instance, newest first, optionally by status.
pub async fn list_all(
    db: &impl ConnectionTrait,
    status: Option<InstanceStatus>,
    args: PageArgs,
) -> AppResult<Page<instance::Model>> {
    let mut q = instance::Entity::find();
    if let Some(s) = status {
        q = q.filter(instance::Column::Status.eq(s));
    }
    crate::pagination::newest_first(db, q, instance::Column::Id, args).await
}
