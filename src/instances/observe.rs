//! Watches our labelled Deployments and Pods (kube-runtime watcher: list, then watch from the
//! list's resourceVersion, re-listing after 410 Gone or a dropped connection) and reports what it
//! sees through `service::observed`. It never writes rows itself, and it makes no request per
//! instance.
use futures::StreamExt;
use k8s_openapi::api::{apps::v1::Deployment, core::v1::Pod};
use kube::{
    Api,
    runtime::{WatchStreamExt, watcher},
};
use tokio::task::JoinHandle;

use super::{
    manifests,
    service::{self, Observation},
};
use crate::state::AppState;

/// Waiting reasons that will not fix themselves.
const POD_FAILURES: &[&str] =
    &["ErrImagePull", "ImagePullBackOff", "CrashLoopBackOff", "CreateContainerConfigError", "InvalidImageName"];

fn instance_id(labels: Option<&std::collections::BTreeMap<String, String>>) -> Option<i64> {
    labels?.get(manifests::INSTANCE_ID)?.parse().ok()
}

/// What a Deployment says about its rollout, once the controller has seen the latest spec.
pub fn deployment_observation(d: &Deployment) -> Option<Observation> {
    let status = d.status.as_ref()?;
    if status.observed_generation? < d.metadata.generation? {
        return None; // the controller has not seen the latest spec yet
    }
    let stalled = status.conditions.iter().flatten().find(|c| {
        c.type_.as_deref() == Some("Progressing")
            && c.status.as_deref() == Some("False")
            && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
    });
    if let Some(c) = stalled {
        return Some(Observation::Failed(format!(
            "the rollout did not progress (ProgressDeadlineExceeded): {}",
            c.message.as_deref().unwrap_or("")
        )));
    }
    let want = d.spec.replicas.unwrap_or(1);
    if want == 0 {
        return (status.replicas.unwrap_or(0) == 0).then_some(Observation::Stopped);
    }
    let done = status.available_replicas.unwrap_or(0) >= want
        && status.updated_replicas.unwrap_or(0) >= want
        && status.unavailable_replicas.unwrap_or(0) == 0;
    done.then_some(Observation::Available)
}

/// A pod that cannot start and will not recover by waiting.
pub fn pod_observation(p: &Pod) -> Option<Observation> {
    p.status.as_ref()?.container_statuses.iter().flatten().find_map(|cs| {
        let w = cs.state.as_ref()?.waiting.as_ref()?;
        let reason = w.reason.as_deref()?;
        POD_FAILURES.contains(&reason).then(|| {
            Observation::Failed(format!("{reason}: {}", w.message.as_deref().unwrap_or("the container cannot start")))
        })
    })
}

fn stamp(annotations: Option<&std::collections::BTreeMap<String, String>>) -> Option<String> {
    annotations?.get(manifests::RESTARTED_AT).cloned()
}

async fn report(state: &AppState, id: Option<i64>, seen: Option<Observation>, stamp: Option<String>) {
    if let (Some(id), Some(seen)) = (id, seen)
        && let Err(e) = service::observed(state, id, seen, stamp.as_deref()).await
    {
        tracing::warn!(error = %e, instance_id = id, "cannot record an observation");
    }
}

enum Seen {
    Deployment(Box<Deployment>),
    Pod(Box<Pod>),
}

/// Starts the watches; `None` without a cluster.
pub fn spawn(state: &AppState) -> Option<JoinHandle<()>> {
    // The streaming client: watches legitimately stay quiet for minutes.
    let client = state.cluster.clients_or_unavailable().ok()?.streams.clone();
    let state = state.clone();
    Some(tokio::spawn(async move {
        let config = watcher::Config::default().labels(&manifests::managed_selector());
        let deployments = watcher(Api::<Deployment>::all(client.clone()), config.clone())
            .default_backoff()
            .applied_objects()
            .map(|r| r.map(|d| Seen::Deployment(Box::new(d))));
        let pods = watcher(Api::<Pod>::all(client), config)
            .default_backoff()
            .applied_objects()
            .map(|r| r.map(|p| Seen::Pod(Box::new(p))));
        let mut events = std::pin::pin!(futures::stream::select(deployments, pods));
        while let Some(ev) = events.next().await {
            match ev {
                Ok(Seen::Deployment(d)) => {
                    let id = instance_id(d.metadata.labels.as_ref());
                    let s = stamp(d.spec.template.metadata.as_ref().and_then(|m| m.annotations.as_ref()));
                    report(&state, id, deployment_observation(&d), s).await;
                }
                Ok(Seen::Pod(p)) => {
                    let id = instance_id(p.metadata.labels.as_ref());
                    report(&state, id, pod_observation(&p), stamp(p.metadata.annotations.as_ref())).await;
                }
                Err(e) => tracing::debug!(error = %e, "instance watch interrupted; retrying"),
            }
        }
    }))
}
