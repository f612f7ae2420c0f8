//! Live views of an instance: its resource usage from metrics.k8s.io, and its app's log, read or
//! followed. They only read the cluster; nothing here writes rows.
use std::collections::HashSet;

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::Pod;
use sea_orm::EntityTrait;
use tokio::sync::broadcast::error::RecvError;

use super::{InstanceStatus, cluster, entity as instance, service};
use crate::{
    auth::Viewer,
    cluster::{
        metrics::{PodMetrics, ResourceUsage},
        service::{self as cluster_service, LogRequest, NamespaceName},
    },
    error::{AppError, AppResult},
    state::AppState,
};

/// How much of a replacement pod's log a follower gets (the API server's own cap is larger).
const NEW_POD_TAIL: i64 = 5_000;
/// A follower waits this long for the app to come back before ending the stream.
const NEXT_POD_WAIT: std::time::Duration = std::time::Duration::from_secs(600);

/// CPU and memory of the instance's pods, summed. None while nothing runs, before the metrics
/// server's first sample of a new pod, or without a metrics server.
pub async fn usage(state: &AppState, inst: &instance::Model) -> AppResult<Option<ResourceUsage>> {
    let client = &state.cluster.clients_or_unavailable()?.api;
    let selector = cluster::instance_selector(inst.id);
    let path = format!(
        "/apis/metrics.k8s.io/v1beta1/namespaces/{}/pods?{}",
        NamespaceName::parse("namespace", &inst.namespace)?.as_str(),
        query_pair("labelSelector", &selector)
    );
    let Some(pods) = cluster_service::metrics::<PodMetrics>(client, &path).await? else {
        return Ok(None);
    };
    Ok((!pods.is_empty()).then(|| pods.iter().map(PodMetrics::total).fold(ResourceUsage::default(), |a, b| a + b)))
}

/// `key=value` with the value percent-encoded (label selectors hold `/`, `=` and `,`).
fn query_pair(key: &str, value: &str) -> String {
    let mut out = format!("{key}=");
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The pod whose log is the app's log now: the newest running one that is not being deleted.
async fn current_pod(state: &AppState, inst: &instance::Model) -> AppResult<Option<String>> {
    let client = &state.cluster.clients_or_unavailable()?.api;
    let pods = match cluster::instance_pods(client, &inst.namespace, inst.id).await {
        Ok(p) => p,
        Err(e) if e.is_not_found() => return Ok(None), // no namespace yet, or gone
        Err(e) => return Err(AppError::ClusterUnavailable(e.to_string())),
    };
    let running = |p: &Pod| {
        p.metadata.deletion_timestamp.is_none() && p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
    };
    Ok(pods
        .into_iter()
        .filter(running)
        .max_by_key(|p| p.metadata.creation_timestamp.clone().map(|t| t.0))
        .and_then(|p| p.metadata.name))
}

fn log_request(inst: &instance::Model, pod: String, tail_lines: i64) -> AppResult<LogRequest> {
    Ok(LogRequest { namespace: NamespaceName::parse("namespace", &inst.namespace)?, pod, container: None, tail_lines })
}

/// The last `tail_lines` lines of the app's log (owner only); empty while nothing runs.
pub async fn logs(state: &AppState, viewer: Viewer, id: i64, tail_lines: i64) -> AppResult<Vec<String>> {
    let inst = service::owned(&state.db.conn, viewer, id, "logs").await?;
    let Some(pod) = current_pod(state, &inst).await? else {
        return Ok(Vec::new());
    };
    match cluster_service::pod_logs(&state.cluster, log_request(&inst, pod, tail_lines)?).await {
        Err(AppError::NotFound(_)) => Ok(Vec::new()), // the pod went away meanwhile
        other => other,
    }
}

/// Whether pods of an instance in this status will come (back) without the owner acting.
fn pods_expected(status: InstanceStatus) -> bool {
    matches!(
        status,
        InstanceStatus::Pending
            | InstanceStatus::Provisioning
            | InstanceStatus::Running
            | InstanceStatus::Starting
            | InstanceStatus::Restarting
    )
}

/// Follows the app's log (owner only): the last `tail_lines` lines, then every new one. When the
/// pod is replaced (restart, upgrade, a new rollout) the follower moves to the new pod; the stream
/// ends when the app stops, is deleted, or does not come back in time.
pub async fn follow(
    state: &AppState,
    viewer: Viewer,
    id: i64,
    tail_lines: i64,
) -> AppResult<impl Stream<Item = String> + Send + use<>> {
    let inst = service::owned(&state.db.conn, viewer, id, "logs").await?;
    state.cluster.clients_or_unavailable()?;
    let state = state.clone();
    Ok(async_stream::stream! {
        let mut followed = HashSet::new();
        let mut tail = tail_lines;
        // Subscribed before each look at the pods, so a status change in between is not missed.
        let mut changes = state.instance_hub.subscribe();
        loop {
            match current_pod(&state, &inst).await {
                Ok(Some(pod)) if followed.insert(pod.clone()) => {
                    let Ok(req) = log_request(&inst, pod, tail) else { break };
                    match cluster_service::follow_logs(&state.cluster, req).await {
                        Ok(lines) => {
                            let mut lines = std::pin::pin!(lines);
                            while let Some(line) = lines.next().await {
                                yield line;
                            }
                        }
                        Err(e) => tracing::debug!(error = %e, instance = inst.id, "log follow refused"),
                    }
                    tail = NEW_POD_TAIL;
                    changes = state.instance_hub.subscribe();
                    continue;
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!(error = %e, instance = inst.id, "log follow ended");
                    break;
                }
            }
            // No new running pod: wait for the instance to change while one is still expected.
            match instance::Entity::find_by_id(inst.id).one(&state.db.conn).await {
                Ok(Some(now)) if pods_expected(now.status) => {}
                _ => break,
            }
            if !next_change(&mut changes, inst.id).await {
                break;
            }
        }
    })
}

/// Waits for the next announced change of instance `id`; false when none comes in time.
async fn next_change(changes: &mut tokio::sync::broadcast::Receiver<super::hub::InstanceEvent>, id: i64) -> bool {
    let wait = async {
        loop {
            match changes.recv().await {
                Ok(ev) if ev.instance_id == id => return true,
                Ok(_) => {}
                Err(RecvError::Lagged(_)) => return true, // maybe ours: look again
                Err(RecvError::Closed) => return false,
            }
        }
    };
    tokio::time::timeout(NEXT_POD_WAIT, wait).await.unwrap_or(false)
}

#[cfg(test)]
mod tests {
    #[test]
    fn selectors_are_encoded_for_the_query() {
        assert_eq!(
            super::query_pair("labelSelector", "app.kubernetes.io/managed-by=minispod,minispod.io/instance-id=7"),
            "labelSelector=app.kubernetes.io%2Fmanaged-by%3Dminispod%2Cminispod.io%2Finstance-id%3D7"
        );
    }
}
