//! Cluster use cases: list what runs where (merged with live metrics), read and follow logs, and
//! feed the shared metric pollers.
use std::{collections::HashMap, sync::Arc, time::Duration};

use futures::{AsyncBufReadExt, Stream, StreamExt, TryStreamExt};
use k8s_openapi::{
    api::{
        apps::v1::Deployment as KDeployment,
        core::v1::{Namespace as KNamespace, Node as KNode, Pod as KPod, Service as KService},
        networking::v1::Ingress as KIngress,
    },
    serde::de::DeserializeOwned,
};
use kube::api::{Api, ListParams, LogParams};

use super::{
    Cluster,
    hub::Tick,
    kube_error,
    metrics::{MetricsList, NodeMetrics, PodMetrics},
    model::{self, Deployment, Ingress, KubeService, Namespace, Node, NodeMetricsSample, Pod, PodMetricsSample},
};
use crate::error::{AppError, AppResult};

/// A namespace name as Kubernetes accepts it (RFC 1123 label), so it is safe in a URL path.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct NamespaceName(String);

impl NamespaceName {
    pub fn parse(field: &'static str, s: &str) -> AppResult<Self> {
        let ok = (1..=63).contains(&s.len())
            && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !s.starts_with('-')
            && !s.ends_with('-');
        if !ok {
            return Err(AppError::bad_input(field, "not a valid namespace name"));
        }
        Ok(Self(s.to_string()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A pod name (RFC 1123 subdomain).
pub fn parse_pod_name(field: &'static str, s: &str) -> AppResult<String> {
    let ok = (1..=253).contains(&s.len())
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.ends_with(|c: char| c.is_ascii_alphanumeric());
    if !ok {
        return Err(AppError::bad_input(field, "not a valid pod name"));
    }
    Ok(s.to_string())
}

/// Poll interval of a metrics subscription: 1 to 300 seconds.
pub fn parse_interval(seconds: i32) -> AppResult<Duration> {
    if !(1..=300).contains(&seconds) {
        return Err(AppError::bad_input("intervalSeconds", "must be between 1 and 300"));
    }
    Ok(Duration::from_secs(seconds.unsigned_abs().into()))
}

pub fn parse_tail_lines(lines: i32, min: i32) -> AppResult<i64> {
    if !(min..=5_000).contains(&lines) {
        return Err(AppError::bad_input("tailLines", format!("must be between {min} and 5000")));
    }
    Ok(lines.into())
}

fn api<K>(client: &kube::Client, ns: Option<&NamespaceName>) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    <K as kube::Resource>::DynamicType: Default,
{
    match ns {
        Some(ns) => Api::namespaced(client.clone(), ns.as_str()),
        None => Api::all(client.clone()),
    }
}

async fn list<K>(api: Api<K>, params: &ListParams, what: &'static str) -> AppResult<Vec<K>>
where
    K: Clone + DeserializeOwned + std::fmt::Debug,
{
    Ok(api.list(params).await.map_err(kube_error(what))?.items)
}

/// metrics.k8s.io; `None` when the API is missing (no metrics-server: 404, or 503 while the
/// APIService is unavailable).
pub(crate) async fn metrics<T: DeserializeOwned>(client: &kube::Client, path: &str) -> AppResult<Option<Vec<T>>> {
    let req = axum::http::Request::get(path).body(Vec::new()).map_err(AppError::internal)?;
    match client.request::<MetricsList<T>>(req).await {
        Ok(list) => Ok(Some(list.items)),
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 503 => Ok(None),
        Err(e) => Err(kube_error("metrics")(e)),
    }
}

fn pod_metrics_path(ns: Option<&NamespaceName>) -> String {
    match ns {
        Some(ns) => format!("/apis/metrics.k8s.io/v1beta1/namespaces/{}/pods", ns.as_str()),
        None => "/apis/metrics.k8s.io/v1beta1/pods".into(),
    }
}

const NODE_METRICS_PATH: &str = "/apis/metrics.k8s.io/v1beta1/nodes";

/// Usage is decoration: when metrics fail but the inventory answered, show the inventory.
fn optional<T>(r: AppResult<Option<Vec<T>>>) -> Vec<T> {
    r.unwrap_or_else(|e| {
        tracing::debug!(error = %e, "metrics unavailable; usage left empty");
        None
    })
    .unwrap_or_default()
}

#[tracing::instrument(skip_all)]
pub async fn namespaces(cluster: &Cluster, with_pod_counts: bool) -> AppResult<Vec<Namespace>> {
    let client = &cluster.clients_or_unavailable()?.api;
    let all = ListParams::default();
    let namespaces = list(Api::<KNamespace>::all(client.clone()), &all, "namespaces");
    // Counting pods costs a cluster-wide list: only when asked for.
    let pods = async {
        if !with_pod_counts {
            return Ok(Vec::new());
        }
        list(Api::<KPod>::all(client.clone()), &all, "pods").await
    };
    let (namespaces, pods) = tokio::try_join!(namespaces, pods)?;
    let mut counts: HashMap<String, i32> = HashMap::new();
    for p in &pods {
        *counts.entry(p.metadata.namespace.clone().unwrap_or_default()).or_default() += 1;
    }
    Ok(namespaces.into_iter().map(|ns| model::namespace_view(ns, &counts)).collect())
}

#[tracing::instrument(skip_all)]
pub async fn nodes(cluster: &Cluster) -> AppResult<Vec<Node>> {
    let client = &cluster.clients_or_unavailable()?.api;
    let all = ListParams::default();
    let (nodes, usage) = tokio::join!(
        list(Api::<KNode>::all(client.clone()), &all, "nodes"),
        metrics::<NodeMetrics>(client, NODE_METRICS_PATH)
    );
    let usage: HashMap<String, NodeMetrics> =
        optional(usage).into_iter().map(|m| (m.metadata.name.clone().unwrap_or_default(), m)).collect();
    Ok(nodes?
        .into_iter()
        .map(|n| {
            let m = n.metadata.name.as_ref().and_then(|name| usage.get(name));
            model::node_view(n, m)
        })
        .collect())
}

#[tracing::instrument(skip_all)]
pub async fn pods(cluster: &Cluster, ns: Option<&NamespaceName>, label_selector: Option<&str>) -> AppResult<Vec<Pod>> {
    let client = &cluster.clients_or_unavailable()?.api;
    let mut params = ListParams::default();
    if let Some(sel) = label_selector {
        params = params.labels(sel);
    }
    let metrics_path = pod_metrics_path(ns);
    let pods = async {
        // A 400 on a list is the API server rejecting the selector: the caller's input.
        api::<KPod>(client, ns).list(&params).await.map(|l| l.items).map_err(|e| match &e {
            kube::Error::Api(s) if s.code == 400 => AppError::bad_input("labelSelector", s.message.clone()),
            _ => kube_error("pods")(e),
        })
    };
    let (pods, usage) = tokio::join!(pods, metrics::<PodMetrics>(client, &metrics_path));
    let usage: HashMap<(String, String), PodMetrics> = optional(usage)
        .into_iter()
        .map(|m| ((m.metadata.namespace.clone().unwrap_or_default(), m.metadata.name.clone().unwrap_or_default()), m))
        .collect();
    Ok(pods?
        .into_iter()
        .map(|p| {
            let key = (p.metadata.namespace.clone().unwrap_or_default(), p.metadata.name.clone().unwrap_or_default());
            let m = usage.get(&key);
            model::pod_view(p, m)
        })
        .collect())
}

#[tracing::instrument(skip_all)]
pub async fn deployments(cluster: &Cluster, ns: Option<&NamespaceName>) -> AppResult<Vec<Deployment>> {
    let client = &cluster.clients_or_unavailable()?.api;
    let items = list(api::<KDeployment>(client, ns), &ListParams::default(), "deployments").await?;
    Ok(items.into_iter().map(model::deployment_view).collect())
}

#[tracing::instrument(skip_all)]
pub async fn services(cluster: &Cluster, ns: Option<&NamespaceName>) -> AppResult<Vec<KubeService>> {
    let client = &cluster.clients_or_unavailable()?.api;
    let items = list(api::<KService>(client, ns), &ListParams::default(), "services").await?;
    Ok(items.into_iter().map(model::service_view).collect())
}

#[tracing::instrument(skip_all)]
pub async fn ingresses(cluster: &Cluster, ns: Option<&NamespaceName>) -> AppResult<Vec<Ingress>> {
    let client = &cluster.clients_or_unavailable()?.api;
    let items = list(api::<KIngress>(client, ns), &ListParams::default(), "ingresses").await?;
    Ok(items.into_iter().map(model::ingress_view).collect())
}

pub struct LogRequest {
    pub namespace: NamespaceName,
    pub pod: String,
    pub container: Option<String>,
    pub tail_lines: i64,
}

impl LogRequest {
    /// The API server refuses a log request without a container name for a pod with several
    /// containers, so the container is always named: the one asked for (checked against the pod),
    /// else the one kubectl would pick.
    async fn params(&self, cluster: &Cluster, follow: bool) -> AppResult<LogParams> {
        let api: Api<KPod> = Api::namespaced(cluster.clients_or_unavailable()?.api.clone(), self.namespace.as_str());
        let pod = api.get(&self.pod).await.map_err(kube_error("pod"))?;
        let container = log_container(&pod, self.container.as_deref())?;
        Ok(LogParams { container, tail_lines: Some(self.tail_lines), follow, ..Default::default() })
    }
}

const DEFAULT_CONTAINER_ANNOTATION: &str = "kubectl.kubernetes.io/default-container";

/// `asked` if the pod has it; without one, the pod's default container (the kubectl annotation,
/// else the first container).
fn log_container(pod: &KPod, asked: Option<&str>) -> AppResult<Option<String>> {
    let names: Vec<&str> = pod.spec.iter().flat_map(|s| &s.containers).map(|c| c.name.as_str()).collect();
    match asked {
        Some(c) if names.contains(&c) => Ok(Some(c.to_string())),
        Some(_) => Err(AppError::bad_input("container", format!("the pod's containers are: {}", names.join(", ")))),
        None => {
            let annotated = pod.metadata.annotations.as_ref().and_then(|a| a.get(DEFAULT_CONTAINER_ANNOTATION));
            Ok(annotated.map(String::as_str).or(names.first().copied()).map(str::to_string))
        }
    }
}

#[tracing::instrument(skip_all)]
pub async fn pod_logs(cluster: &Cluster, req: LogRequest) -> AppResult<Vec<String>> {
    let client = &cluster.clients_or_unavailable()?.api;
    let api: Api<KPod> = Api::namespaced(client.clone(), req.namespace.as_str());
    let text = api.logs(&req.pod, &req.params(cluster, false).await?).await.map_err(kube_error("pod"))?;
    Ok(text.lines().map(str::to_string).collect())
}

/// Follows a pod's log line by line. The stream ends when the API server ends the log (the pod
/// or container went away); a broken connection ends it too, after logging why.
#[tracing::instrument(skip_all)]
pub async fn follow_logs(cluster: &Cluster, req: LogRequest) -> AppResult<impl Stream<Item = String> + Send + use<>> {
    let client = &cluster.clients_or_unavailable()?.streams;
    let api: Api<KPod> = Api::namespaced(client.clone(), req.namespace.as_str());
    let reader = api.log_stream(&req.pod, &req.params(cluster, true).await?).await.map_err(kube_error("pod"))?;
    Ok(reader
        .lines()
        .into_stream()
        .take_while(|r| {
            if let Err(e) = r {
                tracing::debug!(error = %e, "log stream ended");
            }
            std::future::ready(r.is_ok())
        })
        .filter_map(|r| std::future::ready(r.ok())))
}

/// Joins (or starts) the shared pod metrics poller for a namespace and interval.
pub fn pod_metrics_feed(
    cluster: &Cluster,
    ns: Option<NamespaceName>,
    interval: Duration,
) -> AppResult<impl Stream<Item = Tick<PodMetricsSample>> + Send + use<>> {
    let client = cluster.clients_or_unavailable()?.api.clone();
    let clock = cluster.clock.clone();
    let key = (ns.as_ref().map(|n| n.as_str().to_string()), interval.as_secs());
    let path = pod_metrics_path(ns.as_ref());
    let fetch = move || {
        let (client, clock, path, ns) = (client.clone(), clock.clone(), path.clone(), ns.clone());
        async move {
            let timestamp = clock.now();
            let items = metrics::<PodMetrics>(&client, &path).await.map_err(|e| e.to_string())?;
            let items = items.ok_or("the metrics API (metrics-server) is not installed")?;
            let pods = items.iter().map(model::pod_usage).collect();
            Ok(Arc::new(PodMetricsSample { timestamp, namespace: ns.map(|n| n.0), pods }))
        }
    };
    Ok(cluster.pod_metrics.subscribe(key, interval, fetch))
}

/// Joins (or starts) the shared node metrics poller for an interval.
pub fn node_metrics_feed(
    cluster: &Cluster,
    interval: Duration,
) -> AppResult<impl Stream<Item = Tick<NodeMetricsSample>> + Send + use<>> {
    let client = cluster.clients_or_unavailable()?.api.clone();
    let clock = cluster.clock.clone();
    let fetch = move || {
        let (client, clock) = (client.clone(), clock.clone());
        async move {
            let timestamp = clock.now();
            let items = metrics::<NodeMetrics>(&client, NODE_METRICS_PATH).await.map_err(|e| e.to_string())?;
            let items = items.ok_or("the metrics API (metrics-server) is not installed")?;
            Ok(Arc::new(NodeMetricsSample { timestamp, nodes: items.iter().map(model::node_usage).collect() }))
        }
    };
    Ok(cluster.node_metrics.subscribe(interval.as_secs(), interval, fetch))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_at_the_edge() {
        assert!(NamespaceName::parse("namespace", "kube-system").is_ok());
        for bad in ["", "Kube", "-a", "a-", "a/b", "a..b/../x", &"a".repeat(64)] {
            assert!(NamespaceName::parse("namespace", bad).is_err(), "{bad:?}");
        }
        assert!(parse_pod_name("pod", "web-7d9f.x-1").is_ok());
        assert!(parse_pod_name("pod", "../etc").is_err());
        assert!(parse_interval(0).is_err() && parse_interval(301).is_err() && parse_interval(1).is_ok());
        assert!(parse_tail_lines(0, 1).is_err() && parse_tail_lines(5_001, 1).is_err());
    }

    #[test]
    fn logs_name_a_container_as_kubectl_does() {
        let pod = |annotation: Option<&str>| -> KPod {
            let mut v = serde_json::json!({ "metadata": { "name": "p" },
                "spec": { "containers": [{ "name": "app" }, { "name": "sidecar" }] } });
            if let Some(a) = annotation {
                v["metadata"]["annotations"] = serde_json::json!({ DEFAULT_CONTAINER_ANNOTATION: a });
            }
            serde_json::from_value(v).unwrap()
        };
        assert_eq!(log_container(&pod(None), None).unwrap().as_deref(), Some("app"));
        assert_eq!(log_container(&pod(Some("sidecar")), None).unwrap().as_deref(), Some("sidecar"));
        assert_eq!(log_container(&pod(None), Some("sidecar")).unwrap().as_deref(), Some("sidecar"));
        assert!(log_container(&pod(None), Some("nope")).is_err());
        assert_eq!(log_container(&KPod::default(), None).unwrap(), None);
    }
}
