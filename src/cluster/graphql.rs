//! Admin-only cluster queries and live subscriptions (thin: check, parse, call the service).
use std::sync::Arc;

use async_graphql::{Context, Object, Result, Subscription};
use futures::{Stream, StreamExt};

use super::{
    model::{Deployment, Ingress, KubeService, Namespace, Node, NodeMetricsSample, Pod, PodMetricsSample},
    service::{self, LogRequest, NamespaceName},
};
use crate::{error::AppError, graphql::ContextExt};

fn namespace(ns: Option<String>) -> Result<Option<NamespaceName>> {
    Ok(ns.map(|n| NamespaceName::parse("namespace", &n)).transpose()?)
}

fn log_request(namespace: &str, pod: &str, container: Option<String>, tail_lines: i64) -> Result<LogRequest> {
    Ok(LogRequest {
        namespace: NamespaceName::parse("namespace", namespace)?,
        pod: service::parse_pod_name("pod", pod)?,
        container: container.map(|c| service::parse_pod_name("container", &c)).transpose()?,
        tail_lines,
    })
}

#[derive(Default)]
pub struct ClusterQuery;

#[Object]
impl ClusterQuery {
    /// Admin: the Kubernetes cluster that runs the apps.
    async fn cluster(&self, ctx: &Context<'_>) -> Result<ClusterView> {
        ctx.auth().admin()?;
        Ok(ClusterView)
    }
}

/// Reached only through the admin-checked `cluster` field.
pub struct ClusterView;

#[Object(name = "Cluster")]
impl ClusterView {
    async fn namespaces(&self, ctx: &Context<'_>) -> Result<Vec<Namespace>> {
        let with_counts = ctx.look_ahead().field("podCount").exists();
        Ok(service::namespaces(&ctx.state().cluster, with_counts).await?)
    }

    async fn nodes(&self, ctx: &Context<'_>) -> Result<Vec<Node>> {
        Ok(service::nodes(&ctx.state().cluster).await?)
    }

    /// Pods with their containers' live usage; `labelSelector` as in kubectl (`app=web,tier!=db`).
    async fn pods(
        &self,
        ctx: &Context<'_>,
        namespace: Option<String>,
        label_selector: Option<String>,
    ) -> Result<Vec<Pod>> {
        let ns = self::namespace(namespace)?;
        Ok(service::pods(&ctx.state().cluster, ns.as_ref(), label_selector.as_deref()).await?)
    }

    async fn deployments(&self, ctx: &Context<'_>, namespace: Option<String>) -> Result<Vec<Deployment>> {
        Ok(service::deployments(&ctx.state().cluster, self::namespace(namespace)?.as_ref()).await?)
    }

    async fn services(&self, ctx: &Context<'_>, namespace: Option<String>) -> Result<Vec<KubeService>> {
        Ok(service::services(&ctx.state().cluster, self::namespace(namespace)?.as_ref()).await?)
    }

    async fn ingresses(&self, ctx: &Context<'_>, namespace: Option<String>) -> Result<Vec<Ingress>> {
        Ok(service::ingresses(&ctx.state().cluster, self::namespace(namespace)?.as_ref()).await?)
    }

    /// The last `tailLines` (1–5000) lines of a pod's log: of `container`, or of the pod's default
    /// container (the `kubectl.kubernetes.io/default-container` annotation, else the first).
    async fn pod_logs(
        &self,
        ctx: &Context<'_>,
        namespace: String,
        pod: String,
        container: Option<String>,
        #[graphql(default = 100)] tail_lines: Option<i32>,
    ) -> Result<Vec<String>> {
        let tail = service::parse_tail_lines(tail_lines.unwrap_or(100), 1)?;
        let req = log_request(&namespace, &pod, container, tail)?;
        Ok(service::pod_logs(&ctx.state().cluster, req).await?)
    }
}

#[derive(Default)]
pub struct ClusterSubscription;

fn samples<T: Send + Sync + 'static>(
    feed: impl Stream<Item = super::hub::Tick<T>> + Send + 'static,
) -> impl Stream<Item = Result<Arc<T>>> + Send + 'static {
    feed.map(|tick| tick.map_err(|reason| AppError::ClusterUnavailable(reason).into()))
}

#[Subscription]
impl ClusterSubscription {
    /// Admin: pod CPU and memory every `intervalSeconds` (1–300), for one namespace or all. All
    /// subscribers of the same namespace and interval share one upstream poll.
    async fn pod_metrics(
        &self,
        ctx: &Context<'_>,
        namespace: Option<String>,
        #[graphql(default = 5)] interval_seconds: Option<i32>,
    ) -> Result<impl Stream<Item = Result<Arc<PodMetricsSample>>> + use<>> {
        ctx.auth().admin()?;
        let interval = service::parse_interval(interval_seconds.unwrap_or(5))?;
        let ns = self::namespace(namespace)?;
        Ok(samples(service::pod_metrics_feed(&ctx.state().cluster, ns, interval)?))
    }

    /// Admin: node CPU and memory every `intervalSeconds` (1–300).
    async fn node_metrics(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 5)] interval_seconds: Option<i32>,
    ) -> Result<impl Stream<Item = Result<Arc<NodeMetricsSample>>> + use<>> {
        ctx.auth().admin()?;
        let interval = service::parse_interval(interval_seconds.unwrap_or(5))?;
        Ok(samples(service::node_metrics_feed(&ctx.state().cluster, interval)?))
    }

    /// Admin: follows a pod's log, one line per event, starting with the last `tailLines`
    /// (0–5000). Completes when the pod goes away. Without `container`, the pod's default
    /// container (as for the `podLogs` query).
    async fn pod_logs(
        &self,
        ctx: &Context<'_>,
        namespace: String,
        pod: String,
        container: Option<String>,
        #[graphql(default = 50)] tail_lines: Option<i32>,
    ) -> Result<impl Stream<Item = String> + use<>> {
        ctx.auth().admin()?;
        let tail = service::parse_tail_lines(tail_lines.unwrap_or(50), 0)?;
        let req = log_request(&namespace, &pod, container, tail)?;
        Ok(service::follow_logs(&ctx.state().cluster, req).await?)
    }
}
