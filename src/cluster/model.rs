//! What the admin views show, built from Kubernetes objects by pure functions.
use std::collections::{BTreeMap, HashMap};

use async_graphql::{Json, SimpleObject};
use chrono::{DateTime, Utc};
use k8s_openapi::{
    api::{
        apps::v1::Deployment as KDeployment,
        core::v1::{ContainerStatus, Namespace as KNamespace, Node as KNode, Pod as KPod, Service as KService},
        networking::v1::Ingress as KIngress,
    },
    apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time},
};
use serde_json::Value;

use super::metrics::{NodeMetrics, PodMetrics, ResourceUsage};

#[derive(Clone, Debug, SimpleObject)]
pub struct Namespace {
    pub name: String,
    pub phase: String,
    pub labels: Option<Json<Value>>,
    pub created_at: Option<DateTime<Utc>>,
    /// Pods in this namespace (all phases).
    pub pod_count: i32,
}

#[derive(Clone, Debug, SimpleObject)]
pub struct Node {
    pub name: String,
    pub ready: bool,
    pub roles: Vec<String>,
    pub kubelet_version: Option<String>,
    pub capacity: Option<ResourceUsage>,
    pub allocatable: Option<ResourceUsage>,
    /// Live usage from metrics.k8s.io; null without a metrics server.
    pub usage: Option<ResourceUsage>,
    pub created_at: Option<DateTime<Utc>>,
}

#[derive(Clone, Debug, SimpleObject)]
pub struct Pod {
    pub name: String,
    pub namespace: String,
    pub phase: String,
    pub ready: bool,
    pub node_name: Option<String>,
    pub pod_ip: Option<String>,
    /// Sum over the pod's containers.
    pub restart_count: i32,
    pub created_at: Option<DateTime<Utc>>,
    pub labels: Option<Json<Value>>,
    /// Spec, status and live usage merged: one entry per container.
    pub containers: Vec<Container>,
    pub metrics_timestamp: Option<DateTime<Utc>>,
    pub metrics_window: Option<String>,
}

#[derive(Clone, Debug, SimpleObject)]
pub struct Container {
    pub name: String,
    pub image: String,
    pub ready: bool,
    pub restart_count: i32,
    /// `running`, `waiting: <reason>`, `terminated: <reason>` or `unknown`.
    pub state: String,
    pub usage: Option<ResourceUsage>,
}

#[derive(Clone, Debug, SimpleObject)]
pub struct Deployment {
    pub name: String,
    pub namespace: String,
    pub replicas: i32,
    pub ready_replicas: i32,
    pub available_replicas: i32,
    pub images: Vec<String>,
    pub conditions: Option<Json<Value>>,
    pub created_at: Option<DateTime<Utc>>,
}

#[derive(Clone, Debug, SimpleObject)]
pub struct KubeService {
    pub name: String,
    pub namespace: String,
    #[graphql(name = "type")]
    pub service_type: String,
    pub cluster_ip: Option<String>,
    pub ports: Option<Json<Value>>,
    pub selector: Option<Json<Value>>,
    pub created_at: Option<DateTime<Utc>>,
}

#[derive(Clone, Debug, SimpleObject)]
pub struct Ingress {
    pub name: String,
    pub namespace: String,
    pub class_name: Option<String>,
    pub hosts: Vec<String>,
    pub tls: Option<Json<Value>>,
    pub rules: Option<Json<Value>>,
    pub created_at: Option<DateTime<Utc>>,
}

/// Poller key for pod metrics: namespace (None = all) and interval in seconds.
pub type PodMetricsKey = (Option<String>, u64);

#[derive(Clone, Debug, SimpleObject)]
pub struct PodMetricsSample {
    /// When the gateway polled the metrics API (the tick), shared by every subscriber.
    pub timestamp: DateTime<Utc>,
    pub namespace: Option<String>,
    pub pods: Vec<PodUsage>,
}

#[derive(Clone, Debug, SimpleObject)]
pub struct PodUsage {
    pub name: String,
    pub namespace: String,
    pub usage: ResourceUsage,
    pub containers: Vec<ContainerUsage>,
}

#[derive(Clone, Debug, SimpleObject)]
pub struct ContainerUsage {
    pub name: String,
    pub usage: ResourceUsage,
}

#[derive(Clone, Debug, SimpleObject)]
pub struct NodeMetricsSample {
    pub timestamp: DateTime<Utc>,
    pub nodes: Vec<NodeUsage>,
}

#[derive(Clone, Debug, SimpleObject)]
pub struct NodeUsage {
    pub name: String,
    pub usage: ResourceUsage,
}

pub fn time(t: Option<&Time>) -> Option<DateTime<Utc>> {
    let t = &t?.0;
    DateTime::from_timestamp(t.as_second(), u32::try_from(t.subsec_nanosecond()).ok()?)
}

fn name(meta: &ObjectMeta) -> String {
    meta.name.clone().unwrap_or_default()
}

fn namespace(meta: &ObjectMeta) -> String {
    meta.namespace.clone().unwrap_or_default()
}

fn json<T: serde::Serialize>(v: Option<&T>) -> Option<Json<Value>> {
    v.and_then(|v| serde_json::to_value(v).ok()).map(Json)
}

fn labels(meta: &ObjectMeta) -> Option<Json<Value>> {
    json(meta.labels.as_ref())
}

pub fn namespace_view(ns: KNamespace, pod_counts: &HashMap<String, i32>) -> Namespace {
    let name = name(&ns.metadata);
    Namespace {
        pod_count: pod_counts.get(&name).copied().unwrap_or(0),
        phase: ns.status.and_then(|s| s.phase).unwrap_or_else(|| "Active".into()),
        labels: labels(&ns.metadata),
        created_at: time(ns.metadata.creation_timestamp.as_ref()),
        name,
    }
}

pub fn node_view(node: KNode, metrics: Option<&NodeMetrics>) -> Node {
    let status = node.status.unwrap_or_default();
    let ready = status.conditions.iter().flatten().any(|c| c.type_ == "Ready" && c.status == "True");
    let mut roles: Vec<String> = node
        .metadata
        .labels
        .iter()
        .flatten()
        .filter_map(|(k, _)| k.strip_prefix("node-role.kubernetes.io/"))
        .filter(|r| !r.is_empty())
        .map(str::to_string)
        .collect();
    roles.sort();
    Node {
        name: name(&node.metadata),
        ready,
        roles,
        kubelet_version: status.node_info.map(|i| i.kubelet_version),
        capacity: status.capacity.as_ref().and_then(ResourceUsage::from_list),
        allocatable: status.allocatable.as_ref().and_then(ResourceUsage::from_list),
        usage: metrics.and_then(|m| ResourceUsage::from_list(&m.usage)),
        created_at: time(node.metadata.creation_timestamp.as_ref()),
    }
}

fn container_state(status: Option<&ContainerStatus>) -> String {
    let Some(state) = status.and_then(|s| s.state.as_ref()) else {
        return "unknown".into();
    };
    if state.running.is_some() {
        "running".into()
    } else if let Some(w) = &state.waiting {
        format!("waiting: {}", w.reason.as_deref().unwrap_or("unknown"))
    } else if let Some(t) = &state.terminated {
        format!("terminated: {}", t.reason.as_deref().unwrap_or("unknown"))
    } else {
        "unknown".into()
    }
}

pub fn pod_view(pod: KPod, metrics: Option<&PodMetrics>) -> Pod {
    let status = pod.status.unwrap_or_default();
    let statuses: BTreeMap<&str, &ContainerStatus> =
        status.container_statuses.iter().flatten().map(|s| (s.name.as_str(), s)).collect();
    let containers: Vec<Container> = pod
        .spec
        .iter()
        .flat_map(|s| &s.containers)
        .map(|c| {
            let st = statuses.get(c.name.as_str()).copied();
            Container {
                name: c.name.clone(),
                image: c.image.clone().or_else(|| st.map(|s| s.image.clone())).unwrap_or_default(),
                ready: st.is_some_and(|s| s.ready),
                restart_count: st.map_or(0, |s| s.restart_count),
                state: container_state(st),
                usage: metrics.and_then(|m| m.container_usage(&c.name)),
            }
        })
        .collect();
    let ready = status.conditions.iter().flatten().any(|c| c.type_ == "Ready" && c.status == "True");
    Pod {
        name: name(&pod.metadata),
        namespace: namespace(&pod.metadata),
        phase: status.phase.unwrap_or_else(|| "Unknown".into()),
        ready,
        node_name: pod.spec.and_then(|s| s.node_name),
        pod_ip: status.pod_ip,
        restart_count: containers.iter().map(|c| c.restart_count).sum(),
        created_at: time(pod.metadata.creation_timestamp.as_ref()),
        labels: labels(&pod.metadata),
        containers,
        metrics_timestamp: metrics.and_then(|m| rfc3339(m.timestamp.as_deref())),
        metrics_window: metrics.and_then(|m| m.window.clone()),
    }
}

pub fn rfc3339(s: Option<&str>) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s?).ok().map(|t| t.with_timezone(&Utc))
}

pub fn deployment_view(d: KDeployment) -> Deployment {
    let status = d.status.unwrap_or_default();
    let spec = d.spec;
    Deployment {
        name: name(&d.metadata),
        namespace: namespace(&d.metadata),
        replicas: spec.replicas.unwrap_or(1),
        ready_replicas: status.ready_replicas.unwrap_or(0),
        available_replicas: status.available_replicas.unwrap_or(0),
        images: spec.template.spec.iter().flat_map(|s| &s.containers).filter_map(|c| c.image.clone()).collect(),
        conditions: json(status.conditions.as_ref()),
        created_at: time(d.metadata.creation_timestamp.as_ref()),
    }
}

pub fn service_view(s: KService) -> KubeService {
    let spec = s.spec.unwrap_or_default();
    KubeService {
        name: name(&s.metadata),
        namespace: namespace(&s.metadata),
        service_type: spec.type_.clone().unwrap_or_else(|| "ClusterIP".into()),
        cluster_ip: spec.cluster_ip.clone(),
        ports: json(spec.ports.as_ref()),
        selector: json(spec.selector.as_ref()),
        created_at: time(s.metadata.creation_timestamp.as_ref()),
    }
}

pub fn ingress_view(i: KIngress) -> Ingress {
    let spec = i.spec.unwrap_or_default();
    let mut hosts: Vec<String> = spec.rules.iter().flatten().filter_map(|r| r.host.clone()).collect();
    hosts.dedup();
    Ingress {
        name: name(&i.metadata),
        namespace: namespace(&i.metadata),
        class_name: spec.ingress_class_name.clone(),
        hosts,
        tls: json(spec.tls.as_ref()),
        rules: json(spec.rules.as_ref()),
        created_at: time(i.metadata.creation_timestamp.as_ref()),
    }
}

pub fn pod_usage(m: &PodMetrics) -> PodUsage {
    PodUsage {
        name: name(&m.metadata),
        namespace: namespace(&m.metadata),
        usage: m.total(),
        containers: m
            .containers
            .iter()
            .map(|c| ContainerUsage {
                name: c.name.clone(),
                usage: ResourceUsage::from_list(&c.usage).unwrap_or_default(),
            })
            .collect(),
    }
}

pub fn node_usage(m: &NodeMetrics) -> NodeUsage {
    NodeUsage { name: name(&m.metadata), usage: ResourceUsage::from_list(&m.usage).unwrap_or_default() }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn pod_containers_merge_spec_status_and_usage() {
        let pod: KPod = serde_json::from_value(json!({
            "metadata": {"name": "web-1", "namespace": "shop", "creationTimestamp": "2026-11-01T10:00:00Z"},
            "spec": {"nodeName": "n1", "containers": [{"name": "app", "image": "nginx:1.27"}, {"name": "sidecar", "image": "envoy"}]},
            "status": {"phase": "Running", "podIP": "10.0.0.7",
                "conditions": [{"type": "Ready", "status": "True"}],
                "containerStatuses": [
                    {"name": "sidecar", "image": "envoy", "imageID": "", "ready": false, "restartCount": 3,
                     "state": {"waiting": {"reason": "CrashLoopBackOff"}}},
                    {"name": "app", "image": "nginx:1.27", "imageID": "", "ready": true, "restartCount": 1,
                     "state": {"running": {}}}]}
        }))
        .unwrap();
        let metrics: PodMetrics = serde_json::from_value(json!({
            "metadata": {"name": "web-1", "namespace": "shop"}, "timestamp": "2026-11-24T12:00:00Z", "window": "15s",
            "containers": [{"name": "app", "usage": {"cpu": "250m", "memory": "64Mi"}}]
        }))
        .unwrap();
        let p = pod_view(pod, Some(&metrics));
        assert_eq!(p.containers.len(), 2, "one entry per container");
        assert_eq!(p.containers[0].name, "app");
        assert_eq!(p.containers[0].state, "running");
        assert_eq!(p.containers[0].usage, Some(ResourceUsage { cpu_millicores: 250.0, memory_bytes: 67_108_864.0 }));
        assert_eq!(p.containers[1].state, "waiting: CrashLoopBackOff");
        assert_eq!(p.containers[1].usage, None);
        assert_eq!(p.restart_count, 4);
        assert!(p.ready);
        assert_eq!(p.metrics_window.as_deref(), Some("15s"));
        assert_eq!(p.created_at.unwrap().to_rfc3339(), "2026-11-01T10:00:00+00:00");
    }

    #[test]
    fn node_roles_and_readiness() {
        let node: KNode = serde_json::from_value(json!({
            "metadata": {"name": "cp", "labels": {"node-role.kubernetes.io/control-plane": "", "kubernetes.io/os": "linux"}},
            "status": {"conditions": [{"type": "Ready", "status": "False"}],
                       "capacity": {"cpu": "4", "memory": "8Gi"}}
        }))
        .unwrap();
        let n = node_view(node, None);
        assert_eq!(n.roles, vec!["control-plane"]);
        assert!(!n.ready);
        assert_eq!(n.capacity.unwrap().cpu_millicores, 4000.0);
        assert_eq!(n.allocatable, None);
        assert_eq!(n.usage, None);
    }
}
