//! One reconcile pass: desired rows against observed objects. It lists each kind once by our
//! managed-by label (no request per instance), converges every live instance through
//! `service::converge` (the same code the use cases use), deletes labelled objects that belong
//! to no live instance, and never touches an object without our label. One pass runs at a time:
//! in a process (a mutex) and, on PostgreSQL, across replicas (an advisory lock).
use std::collections::{HashMap, HashSet};

use sea_orm::DatabaseBackend;

use super::{
    cluster::{self, Kind, Observed},
    lifecycle::Desired,
    manifests,
    service::{self, Loaded},
};
use crate::{
    error::{AppError, AppResult},
    state::AppState,
};

/// Advisory lock key: "minispod reconcile".
const LOCK_KEY: i64 = 0x6d69_6e69_7370_0001;

#[derive(Debug, Default)]
pub struct PassReport {
    pub processed: usize,
    pub changed: usize,
    pub failed: usize,
    pub orphans_deleted: usize,
    pub details: Vec<String>,
    /// Another pass (here or on another replica) held the lock: this pass did nothing.
    pub skipped: bool,
}

/// Runs one pass unless another replica is running one.
#[tracing::instrument(skip_all)]
pub async fn run_once(state: &AppState) -> AppResult<PassReport> {
    let Ok(_running) = state.reconcile_pass.try_lock() else {
        return Ok(PassReport { skipped: true, ..Default::default() });
    };
    if state.db.backend() != DatabaseBackend::Postgres {
        return pass(state).await;
    }
    // A session lock on a connection of its own, released explicitly; no transaction is open
    // while the pass talks to the cluster.
    let pool = state.db.conn.get_postgres_connection_pool();
    let mut conn = pool.acquire().await.map_err(AppError::internal)?;
    let locked: bool = sea_orm::sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
        .bind(LOCK_KEY)
        .fetch_one(&mut *conn)
        .await
        .map_err(AppError::internal)?;
    if !locked {
        return Ok(PassReport { skipped: true, ..Default::default() });
    }
    let result = pass(state).await;
    let unlocked = sea_orm::sqlx::query("SELECT pg_advisory_unlock($1)").bind(LOCK_KEY).execute(&mut *conn).await;
    if unlocked.is_err() {
        // Never hand a connection that may still hold the lock back to the pool.
        let _ = conn.detach();
    }
    result
}

/// Whether the observed objects of `l` match what its manifests say.
fn up_to_date(state: &AppState, l: &Loaded, seen: &[&Observed]) -> bool {
    let Desired::Replicas(_) = l.desired() else {
        return false;
    };
    let spec = l.spec(state);
    let m = manifests::build(&spec);
    let has = |k: Kind| seen.iter().any(|o| o.kind == k);
    let complete = has(Kind::Deployment)
        && has(Kind::Service)
        && (m.pvc.is_none() || has(Kind::Pvc))
        && (m.ingress.is_none() || has(Kind::Ingress))
        && (!manifests::needs_password(&l.service) || has(Kind::Secret));
    let Some(d) = seen.iter().find_map(|o| o.deployment.as_ref()) else {
        return false;
    };
    let want = &m.deployment.spec;
    let container = |t: &k8s_openapi::api::core::v1::PodTemplateSpec| {
        t.spec
            .as_ref()
            .and_then(|s| s.containers.first())
            .map(|c| (c.image.clone(), c.resources.clone(), c.env.clone()))
    };
    let annotation = |t: &k8s_openapi::api::core::v1::PodTemplateSpec| {
        t.metadata.as_ref().and_then(|m| m.annotations.as_ref()).and_then(|a| a.get(manifests::RESTARTED_AT).cloned())
    };
    complete
        && d.spec.replicas == want.replicas
        && container(&d.spec.template) == container(&want.template)
        && annotation(&d.spec.template) == annotation(&want.template)
}

async fn pass(state: &AppState) -> AppResult<PassReport> {
    let client = state.cluster.clients_or_unavailable()?.api.clone();
    // Cluster first, rows second: every object listed belongs to a row that already exists.
    let observed = cluster::list_managed(&client).await.map_err(|e| AppError::ClusterUnavailable(e.to_string()))?;
    let loaded = service::load_many(&state.db.conn, None).await?;
    let mut by_instance: HashMap<i64, Vec<&Observed>> = HashMap::new();
    for o in &observed {
        if let Some(id) = o.instance_id() {
            by_instance.entry(id).or_default().push(o);
        }
    }
    let mut report = PassReport::default();
    let live: HashSet<i64> = loaded.iter().map(|l| l.instance.id).collect();
    let live_users: HashSet<i64> = loaded.iter().map(|l| l.user_id).collect();
    for l in loaded {
        report.processed += 1;
        let id = l.instance.id;
        let seen = by_instance.get(&id).map(Vec::as_slice).unwrap_or_default();
        let current = up_to_date(state, &l, seen);
        match service::converge(state, l, current).await {
            Ok(true) => {
                report.changed += 1;
                report.details.push(format!("instance {id}: converged"));
            }
            Ok(false) => {}
            Err(e) => {
                e.log();
                report.failed += 1;
                report.details.push(format!("instance {id}: {e}"));
            }
        }
    }
    for o in &observed {
        let orphan = match o.kind {
            Kind::Namespace => o.user_id().is_some_and(|u| !live_users.contains(&u)),
            _ => o.instance_id().is_none_or(|id| !live.contains(&id)),
        };
        if !orphan {
            continue;
        }
        match cluster::delete_object(&client, o.kind, o.namespace.as_deref(), &o.name).await {
            Ok(()) => {
                report.orphans_deleted += 1;
                report.details.push(format!("orphan {:?} {} deleted", o.kind, o.name));
            }
            Err(e) => {
                tracing::warn!(kind = ?o.kind, name = %o.name, error = %e, "cannot delete an orphaned object");
                report.failed += 1;
                report.details.push(format!("orphan {:?} {}: {e}", o.kind, o.name));
            }
        }
    }
    Ok(report)
}
