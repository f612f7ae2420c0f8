//! A fake Kubernetes API server on loopback: serves the real JSON of namespaces, nodes, pods,
//! deployments, services, ingresses, metrics.k8s.io and pod logs (with `follow=true`) from
//! fixtures the test controls, counts requests per path, and writes a kubeconfig pointing at
//! itself, so the gateway's real kube client runs end to end. Shared by the integration tests and
//! `cargo run --example fake-cluster`. As strict as a real API server where the gateway could get
//! it wrong: it wants the kubeconfig's bearer token (401 otherwise), a container name for the logs
//! of a pod with several containers (400), and answers 503 from metrics.k8s.io when told to.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::{
    collections::HashMap,
    net::SocketAddr,
    path::PathBuf,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
};

use axum::{
    Json, Router,
    body::Body,
    extract::{Path, Query, Request, State},
    http::{StatusCode, header::AUTHORIZATION},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::get,
};
use k8s_openapi::api::{
    apps::v1::Deployment,
    core::v1::{Namespace, Node, Pod, Service},
    networking::v1::Ingress,
};
use serde_json::{Value, json};
use tokio::sync::broadcast;

/// What the fake cluster contains. Metrics `None` means "no metrics-server" (404, as a real API
/// server answers for an unregistered group).
#[derive(Clone, Default)]
pub struct Fixtures {
    pub namespaces: Vec<Namespace>,
    pub nodes: Vec<Node>,
    pub pods: Vec<Pod>,
    pub deployments: Vec<Deployment>,
    pub services: Vec<Service>,
    pub ingresses: Vec<Ingress>,
    pub pod_metrics: Option<Vec<Value>>,
    pub node_metrics: Option<Vec<Value>>,
    /// Log lines per (namespace, pod).
    pub logs: HashMap<(String, String), Vec<String>>,
}

/// The bearer token the fake API server accepts (the one in the kubeconfig it writes).
pub const TOKEN: &str = "fake-token";

struct Shared {
    fixtures: Mutex<Fixtures>,
    /// metrics.k8s.io answers 503, as while metrics-server's APIService is unavailable.
    metrics_unavailable: AtomicBool,
    /// Requests refused for a missing or wrong bearer token.
    unauthorized: AtomicU64,
    hits: Mutex<HashMap<String, u64>>,
    /// Live followers per (namespace, pod); dropping the sender ends their streams.
    followers: Mutex<HashMap<(String, String), broadcast::Sender<String>>>,
}

pub struct FakeCluster {
    pub addr: SocketAddr,
    pub url: String,
    pub kubeconfig: PathBuf,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakeCluster {
    fn drop(&mut self) {
        self.server.abort();
        let _ = std::fs::remove_file(&self.kubeconfig);
    }
}

impl FakeCluster {
    /// The demo cluster on a random loopback port.
    pub async fn start() -> Self {
        Self::start_with(Fixtures::demo(), "127.0.0.1:0".parse().unwrap(), None).await
    }

    /// Serves `fixtures` on `addr`, writing the kubeconfig to `kubeconfig` (or a temp file).
    pub async fn start_with(fixtures: Fixtures, addr: SocketAddr, kubeconfig: Option<PathBuf>) -> Self {
        let shared = Arc::new(Shared {
            fixtures: Mutex::new(fixtures),
            metrics_unavailable: AtomicBool::new(false),
            unauthorized: AtomicU64::new(0),
            hits: Mutex::default(),
            followers: Mutex::default(),
        });
        let listener = tokio::net::TcpListener::bind(addr).await.expect("fake API server binds");
        let addr = listener.local_addr().unwrap();
        let app = router(shared.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let url = format!("http://{addr}");
        let kubeconfig = kubeconfig.unwrap_or_else(|| {
            std::env::temp_dir().join(format!("minispod-fake-kubeconfig-{}.yaml", uuid::Uuid::new_v4().simple()))
        });
        std::fs::write(&kubeconfig, kubeconfig_yaml(&url)).expect("kubeconfig written");
        Self { addr, url, kubeconfig, shared, server }
    }

    /// Requests served for an exact path (query string excluded).
    pub fn hits(&self, path: &str) -> u64 {
        self.shared.hits.lock().unwrap().get(path).copied().unwrap_or(0)
    }

    pub fn total_hits(&self) -> u64 {
        self.shared.hits.lock().unwrap().values().sum()
    }

    /// Requests refused with 401 (no or a wrong bearer token).
    pub fn unauthorized(&self) -> u64 {
        self.shared.unauthorized.load(Ordering::Relaxed)
    }

    /// Makes metrics.k8s.io answer 503 ServiceUnavailable (or serve the fixtures again).
    pub fn set_metrics_unavailable(&self, unavailable: bool) {
        self.shared.metrics_unavailable.store(unavailable, Ordering::Relaxed);
    }

    /// A kubeconfig for this server with another bearer token (or none); the caller removes it.
    pub fn kubeconfig_with_token(&self, token: Option<&str>) -> PathBuf {
        let path = self.kubeconfig.with_extension(format!("token-{}.yaml", uuid::Uuid::new_v4().simple()));
        std::fs::write(&path, kubeconfig_yaml_with(&self.url, token)).expect("kubeconfig written");
        path
    }

    /// Changes the fixtures in place.
    pub fn update(&self, f: impl FnOnce(&mut Fixtures)) {
        f(&mut self.shared.fixtures.lock().unwrap());
    }

    /// Appends a log line and sends it to every follower of that pod.
    pub fn log(&self, namespace: &str, pod: &str, line: &str) {
        let key = (namespace.to_string(), pod.to_string());
        self.shared.fixtures.lock().unwrap().logs.entry(key.clone()).or_default().push(line.to_string());
        if let Some(tx) = self.shared.followers.lock().unwrap().get(&key) {
            let _ = tx.send(line.to_string());
        }
    }

    /// Live `follow=true` streams for a pod.
    pub fn followers(&self, namespace: &str, pod: &str) -> usize {
        let key = (namespace.to_string(), pod.to_string());
        self.shared.followers.lock().unwrap().get(&key).map_or(0, |tx| tx.receiver_count())
    }

    /// Deletes a pod (and its metrics and logs); its log followers see the stream end.
    pub fn delete_pod(&self, namespace: &str, pod: &str) {
        {
            let mut f = self.shared.fixtures.lock().unwrap();
            f.pods.retain(|p| {
                !(p.metadata.namespace.as_deref() == Some(namespace) && p.metadata.name.as_deref() == Some(pod))
            });
            if let Some(m) = &mut f.pod_metrics {
                m.retain(|m| !(m["metadata"]["namespace"] == namespace && m["metadata"]["name"] == pod));
            }
            f.logs.remove(&(namespace.to_string(), pod.to_string()));
        }
        self.shared.followers.lock().unwrap().remove(&(namespace.to_string(), pod.to_string()));
    }
}

/// A kubeconfig for a server that refuses connections (a port that was free a moment ago).
pub fn unreachable_kubeconfig() -> PathBuf {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let path = std::env::temp_dir().join(format!("minispod-dead-kubeconfig-{}.yaml", uuid::Uuid::new_v4().simple()));
    std::fs::write(&path, kubeconfig_yaml(&format!("http://127.0.0.1:{port}"))).unwrap();
    path
}

pub fn kubeconfig_yaml(server: &str) -> String {
    kubeconfig_yaml_with(server, Some(TOKEN))
}

pub fn kubeconfig_yaml_with(server: &str, token: Option<&str>) -> String {
    let user = token.map_or_else(|| "{}".to_string(), |t| format!("\n    token: {t}"));
    format!(
        "apiVersion: v1\nkind: Config\ncurrent-context: fake\nclusters:\n- name: fake\n  cluster:\n    server: {server}\n\
         contexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\n    namespace: default\n\
         users:\n- name: fake\n  user: {user}\n"
    )
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/version", get(version))
        .route("/api/v1/namespaces", get(|s: State<Arc<Shared>>| list(s, None, Kind::Namespaces, None)))
        .route("/api/v1/nodes", get(|s: State<Arc<Shared>>| list(s, None, Kind::Nodes, None)))
        .route("/api/v1/pods", get(|s: State<Arc<Shared>>, q: Query<ListQuery>| list(s, None, Kind::Pods, Some(q.0))))
        .route(
            "/api/v1/namespaces/{ns}/pods",
            get(|s, Path(ns): Path<String>, q: Query<ListQuery>| list(s, Some(ns), Kind::Pods, Some(q.0))),
        )
        .route("/api/v1/namespaces/{ns}/pods/{name}", get(get_pod))
        .route("/api/v1/namespaces/{ns}/pods/{name}/log", get(pod_log))
        .route("/api/v1/services", get(|s: State<Arc<Shared>>| list(s, None, Kind::Services, None)))
        .route(
            "/api/v1/namespaces/{ns}/services",
            get(|s, Path(ns): Path<String>| list(s, Some(ns), Kind::Services, None)),
        )
        .route("/apis/apps/v1/deployments", get(|s: State<Arc<Shared>>| list(s, None, Kind::Deployments, None)))
        .route(
            "/apis/apps/v1/namespaces/{ns}/deployments",
            get(|s, Path(ns): Path<String>| list(s, Some(ns), Kind::Deployments, None)),
        )
        .route(
            "/apis/networking.k8s.io/v1/ingresses",
            get(|s: State<Arc<Shared>>| list(s, None, Kind::Ingresses, None)),
        )
        .route(
            "/apis/networking.k8s.io/v1/namespaces/{ns}/ingresses",
            get(|s, Path(ns): Path<String>| list(s, Some(ns), Kind::Ingresses, None)),
        )
        .route("/apis/metrics.k8s.io/v1beta1/pods", get(|s: State<Arc<Shared>>| list(s, None, Kind::PodMetrics, None)))
        .route(
            "/apis/metrics.k8s.io/v1beta1/namespaces/{ns}/pods",
            get(|s, Path(ns): Path<String>| list(s, Some(ns), Kind::PodMetrics, None)),
        )
        .route(
            "/apis/metrics.k8s.io/v1beta1/nodes",
            get(|s: State<Arc<Shared>>| list(s, None, Kind::NodeMetrics, None)),
        )
        .fallback(|| async { not_found("the server could not find the requested resource") })
        .layer(middleware::from_fn_with_state(shared.clone(), count))
        .with_state(shared)
}

async fn count(State(shared): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    *shared.hits.lock().unwrap().entry(req.uri().path().to_string()).or_default() += 1;
    let bearer = req.headers().get(AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    if bearer != Some(TOKEN) {
        shared.unauthorized.fetch_add(1, Ordering::Relaxed);
        return status(StatusCode::UNAUTHORIZED, "Unauthorized", "Unauthorized");
    }
    next.run(req).await
}

/// A `Status` error body as the API server sends it.
fn status(code: StatusCode, reason: &str, message: &str) -> Response {
    let body = json!({ "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code.as_u16() });
    (code, Json(body)).into_response()
}

fn not_found(message: &str) -> Response {
    let status = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": "NotFound", "code": 404
    });
    (StatusCode::NOT_FOUND, Json(status)).into_response()
}

async fn version() -> Json<Value> {
    Json(json!({
        "major": "1", "minor": "37", "gitVersion": "v1.37.0-fake", "gitCommit": "0000000", "gitTreeState": "clean",
        "buildDate": "2026-11-01T00:00:00Z", "goVersion": "go1.25.0", "compiler": "gc", "platform": "linux/amd64"
    }))
}

#[derive(Clone, Copy)]
enum Kind {
    Namespaces,
    Nodes,
    Pods,
    Deployments,
    Services,
    Ingresses,
    PodMetrics,
    NodeMetrics,
}

#[derive(serde::Deserialize, Default)]
struct ListQuery {
    #[serde(rename = "labelSelector")]
    label_selector: Option<String>,
}

fn to_values<T: serde::Serialize>(items: &[T]) -> Vec<Value> {
    items.iter().map(|i| serde_json::to_value(i).unwrap()).collect()
}

async fn list(State(shared): State<Arc<Shared>>, ns: Option<String>, kind: Kind, q: Option<ListQuery>) -> Response {
    if matches!(kind, Kind::PodMetrics | Kind::NodeMetrics) && shared.metrics_unavailable.load(Ordering::Relaxed) {
        let message = "the server is currently unable to handle the request (get pods.metrics.k8s.io)";
        return status(StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable", message);
    }
    let f = shared.fixtures.lock().unwrap().clone();
    let (api_version, list_kind, items) = match kind {
        Kind::Namespaces => ("v1", "NamespaceList", to_values(&f.namespaces)),
        Kind::Nodes => ("v1", "NodeList", to_values(&f.nodes)),
        Kind::Pods => ("v1", "PodList", to_values(&f.pods)),
        Kind::Deployments => ("apps/v1", "DeploymentList", to_values(&f.deployments)),
        Kind::Services => ("v1", "ServiceList", to_values(&f.services)),
        Kind::Ingresses => ("networking.k8s.io/v1", "IngressList", to_values(&f.ingresses)),
        Kind::PodMetrics => match f.pod_metrics {
            Some(m) => ("metrics.k8s.io/v1beta1", "PodMetricsList", m),
            None => return not_found("the server could not find the requested resource"),
        },
        Kind::NodeMetrics => match f.node_metrics {
            Some(m) => ("metrics.k8s.io/v1beta1", "NodeMetricsList", m),
            None => return not_found("the server could not find the requested resource"),
        },
    };
    let selector = q.and_then(|q| q.label_selector).unwrap_or_default();
    if selector.split(',').any(|t| t.trim().starts_with(['=', '!'])) {
        let body = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 400, "reason": "BadRequest",
            "message": format!("unable to parse requirement: {selector:?}")});
        return (StatusCode::BAD_REQUEST, Json(body)).into_response();
    }
    let items: Vec<Value> = items
        .into_iter()
        .filter(|i| ns.as_deref().is_none_or(|ns| i["metadata"]["namespace"] == ns))
        .filter(|i| matches_selector(&i["metadata"]["labels"], &selector))
        .collect();
    Json(
        json!({ "apiVersion": api_version, "kind": list_kind, "metadata": { "resourceVersion": "1" }, "items": items }),
    )
    .into_response()
}

/// Equality-based selectors (`a=b`, `a==b`, `a!=b`, comma-separated), as kubectl sends them.
fn matches_selector(labels: &Value, selector: &str) -> bool {
    selector.split(',').map(str::trim).filter(|t| !t.is_empty()).all(|term| {
        if let Some((k, v)) = term.split_once("!=") {
            labels[k.trim()] != v.trim()
        } else if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
            labels[k.trim()] == v.trim()
        } else {
            !labels[term].is_null()
        }
    })
}

fn find_pod(shared: &Shared, ns: &str, name: &str) -> Option<Pod> {
    let f = shared.fixtures.lock().unwrap();
    f.pods
        .iter()
        .find(|p| p.metadata.namespace.as_deref() == Some(ns) && p.metadata.name.as_deref() == Some(name))
        .cloned()
}

async fn get_pod(State(shared): State<Arc<Shared>>, Path((ns, name)): Path<(String, String)>) -> Response {
    match find_pod(&shared, &ns, &name) {
        Some(p) => Json(p).into_response(),
        None => not_found(&format!("pods \"{name}\" not found")),
    }
}

#[derive(serde::Deserialize, Default)]
struct LogQuery {
    follow: Option<bool>,
    #[serde(rename = "tailLines")]
    tail_lines: Option<usize>,
    container: Option<String>,
}

async fn pod_log(
    State(shared): State<Arc<Shared>>,
    Path((ns, name)): Path<(String, String)>,
    Query(q): Query<LogQuery>,
) -> Response {
    let Some(pod) = find_pod(&shared, &ns, &name) else {
        return not_found(&format!("pods \"{name}\" not found"));
    };
    let containers: Vec<&str> = pod.spec.iter().flat_map(|s| &s.containers).map(|c| c.name.as_str()).collect();
    if q.container.is_none() && containers.len() > 1 {
        let message =
            format!("a container name must be specified for pod {name}, choose one of: [{}]", containers.join(" "));
        return status(StatusCode::BAD_REQUEST, "BadRequest", &message);
    }
    if let Some(c) = &q.container {
        let known = containers.contains(&c.as_str());
        if !known {
            let body = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 400, "reason": "BadRequest",
                "message": format!("container {c} is not valid for pod {name}")});
            return (StatusCode::BAD_REQUEST, Json(body)).into_response();
        }
    }
    let key = (ns, name);
    // Subscribe before reading the backlog so no line falls between the two.
    let rx = q.follow.unwrap_or(false).then(|| {
        shared.followers.lock().unwrap().entry(key.clone()).or_insert_with(|| broadcast::channel(1024).0).subscribe()
    });
    let lines = shared.fixtures.lock().unwrap().logs.get(&key).cloned().unwrap_or_default();
    let skip = lines.len().saturating_sub(q.tail_lines.unwrap_or(usize::MAX));
    let backlog: String = lines[skip..].iter().map(|l| format!("{l}\n")).collect();
    let Some(mut rx) = rx else {
        return backlog.into_response();
    };
    let stream = async_stream::stream! {
        yield Ok::<_, std::io::Error>(backlog);
        loop {
            match rx.recv().await {
                Ok(line) => yield Ok(format!("{line}\n")),
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => break,
            }
        }
    };
    Response::new(Body::from_stream(stream))
}

/// Metrics item JSON exactly as metrics-server returns it.
pub fn pod_metrics(ns: &str, name: &str, containers: &[(&str, &str, &str)]) -> Value {
    json!({
        "kind": "PodMetrics", "apiVersion": "metrics.k8s.io/v1beta1",
        "metadata": { "name": name, "namespace": ns, "creationTimestamp": "2026-11-24T12:00:00Z" },
        "timestamp": "2026-11-24T12:00:00Z", "window": "15s",
        "containers": containers.iter().map(|(n, cpu, mem)| json!({ "name": n, "usage": { "cpu": cpu, "memory": mem } })).collect::<Vec<_>>()
    })
}

pub fn node_metrics(name: &str, cpu: &str, memory: &str) -> Value {
    json!({
        "kind": "NodeMetrics", "apiVersion": "metrics.k8s.io/v1beta1",
        "metadata": { "name": name, "creationTimestamp": "2026-11-24T12:00:00Z" },
        "timestamp": "2026-11-24T12:00:00Z", "window": "20s",
        "usage": { "cpu": cpu, "memory": memory }
    })
}

fn typed<T: serde::de::DeserializeOwned>(v: Value) -> T {
    serde_json::from_value(v).expect("fixture is valid Kubernetes JSON")
}

pub fn namespace(name: &str) -> Namespace {
    typed(json!({
        "metadata": { "name": name, "labels": { "kubernetes.io/metadata.name": name }, "creationTimestamp": "2026-10-01T08:00:00Z" },
        "status": { "phase": "Active" }
    }))
}

pub fn node(name: &str, role: Option<&str>, ready: bool) -> Node {
    let mut labels = json!({ "kubernetes.io/hostname": name, "kubernetes.io/os": "linux" });
    if let Some(r) = role {
        labels[format!("node-role.kubernetes.io/{r}")] = json!("");
    }
    typed(json!({
        "metadata": { "name": name, "labels": labels, "creationTimestamp": "2026-10-01T08:00:00Z" },
        "status": {
            "capacity": { "cpu": "4", "memory": "16Gi", "pods": "110" },
            "allocatable": { "cpu": "3800m", "memory": "15Gi", "pods": "110" },
            "conditions": [{ "type": "Ready", "status": if ready { "True" } else { "False" } }],
            "nodeInfo": { "kubeletVersion": "v1.37.0", "architecture": "amd64", "bootID": "", "containerRuntimeVersion": "containerd://2.1.0",
                "kernelVersion": "6.12.0", "kubeProxyVersion": "", "machineID": "", "operatingSystem": "linux", "osImage": "Debian", "systemUUID": "" }
        }
    }))
}

/// A running pod; `containers` are (name, image, restart count).
pub fn pod(ns: &str, name: &str, node: &str, labels: Value, containers: &[(&str, &str, i32)]) -> Pod {
    typed(json!({
        "metadata": { "name": name, "namespace": ns, "labels": labels, "creationTimestamp": "2026-11-20T09:30:00Z" },
        "spec": { "nodeName": node, "containers": containers.iter().map(|(n, image, _)| json!({ "name": n, "image": image })).collect::<Vec<_>>() },
        "status": {
            "phase": "Running", "podIP": "10.244.1.17",
            "conditions": [{ "type": "Ready", "status": "True" }],
            "containerStatuses": containers.iter().map(|(n, image, restarts)| json!({
                "name": n, "image": image, "imageID": "", "ready": true, "restartCount": restarts,
                "state": { "running": { "startedAt": "2026-11-20T09:31:00Z" } }
            })).collect::<Vec<_>>()
        }
    }))
}

impl Fixtures {
    /// A small cluster: three nodes, an app in `shop`, system pods, metrics for all of them.
    pub fn demo() -> Self {
        let web = |i: u32| format!("web-7d9f8c-{i}");
        let mut pods = vec![
            pod(
                "shop",
                &web(1),
                "worker-1",
                json!({ "app": "web", "tier": "frontend" }),
                &[("app", "nginx:1.27", 0), ("metrics", "prom/statsd-exporter:v0.28", 2)],
            ),
            pod(
                "shop",
                &web(2),
                "worker-2",
                json!({ "app": "web", "tier": "frontend" }),
                &[("app", "nginx:1.27", 1), ("metrics", "prom/statsd-exporter:v0.28", 0)],
            ),
            pod("shop", "db-0", "worker-1", json!({ "app": "db" }), &[("postgres", "postgres:17", 0)]),
            pod(
                "kube-system",
                "coredns-5d78c9869d-abcde",
                "cp-1",
                json!({ "k8s-app": "kube-dns" }),
                &[("coredns", "registry.k8s.io/coredns/coredns:v1.12.0", 0)],
            ),
            pod(
                "kube-system",
                "metrics-server-6db985556d-nqbdz",
                "cp-1",
                json!({ "k8s-app": "metrics-server" }),
                &[("metrics-server", "registry.k8s.io/metrics-server/metrics-server:v0.8.0", 0)],
            ),
        ];
        // A pod that is still pulling its image: no metrics yet.
        let mut pending =
            pod("shop", "worker-job-x1", "worker-2", json!({ "app": "worker" }), &[("job", "busybox:1.37", 0)]);
        if let Some(s) = &mut pending.status {
            s.phase = Some("Pending".into());
            s.conditions = None;
            if let Some(cs) = &mut s.container_statuses {
                cs[0].ready = false;
                cs[0].state = Some(typed(json!({ "waiting": { "reason": "ContainerCreating" } })));
            }
        }
        pods.push(pending);
        let pod_metrics = vec![
            pod_metrics("shop", &web(1), &[("app", "12m", "48Mi"), ("metrics", "1500u", "9Mi")]),
            pod_metrics("shop", &web(2), &[("app", "9873412n", "50Mi"), ("metrics", "2m", "8Mi")]),
            pod_metrics("shop", "db-0", &[("postgres", "120m", "512Mi")]),
            pod_metrics("kube-system", "coredns-5d78c9869d-abcde", &[("coredns", "3m", "20Mi")]),
            pod_metrics("kube-system", "metrics-server-6db985556d-nqbdz", &[("metrics-server", "6082165n", "22272Ki")]),
        ];
        let deployment: Deployment = typed(json!({
            "metadata": { "name": "web", "namespace": "shop", "creationTimestamp": "2026-11-20T09:29:00Z" },
            "spec": { "replicas": 2, "selector": { "matchLabels": { "app": "web" } },
                "template": { "metadata": { "labels": { "app": "web" } },
                    "spec": { "containers": [{ "name": "app", "image": "nginx:1.27" }, { "name": "metrics", "image": "prom/statsd-exporter:v0.28" }] } } },
            "status": { "replicas": 2, "readyReplicas": 2, "availableReplicas": 2,
                "conditions": [{ "type": "Available", "status": "True", "reason": "MinimumReplicasAvailable" }] }
        }));
        let service: Service = typed(json!({
            "metadata": { "name": "web", "namespace": "shop", "creationTimestamp": "2026-11-20T09:29:00Z" },
            "spec": { "type": "ClusterIP", "clusterIP": "10.96.12.34", "selector": { "app": "web" },
                "ports": [{ "name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP" }] }
        }));
        let ingress: Ingress = typed(json!({
            "metadata": { "name": "web", "namespace": "shop", "creationTimestamp": "2026-11-20T09:29:00Z" },
            "spec": { "ingressClassName": "nginx",
                "tls": [{ "hosts": ["shop.minispod.local"], "secretName": "shop-tls" }],
                "rules": [{ "host": "shop.minispod.local", "http": { "paths": [{ "path": "/", "pathType": "Prefix",
                    "backend": { "service": { "name": "web", "port": { "number": 80 } } } }] } }] }
        }));
        let mut logs = HashMap::new();
        logs.insert(
            ("shop".to_string(), web(1)),
            (1..=20).map(|i| format!("10.0.0.{i} - - \"GET /products/{i} HTTP/1.1\" 200 512")).collect(),
        );
        Fixtures {
            namespaces: ["default", "kube-system", "shop"].into_iter().map(namespace).collect(),
            nodes: vec![
                node("cp-1", Some("control-plane"), true),
                node("worker-1", None, true),
                node("worker-2", None, false),
            ],
            pods,
            deployments: vec![deployment],
            services: vec![service],
            ingresses: vec![ingress],
            pod_metrics: Some(pod_metrics),
            node_metrics: Some(vec![
                node_metrics("cp-1", "350m", "2Gi"),
                node_metrics("worker-1", "1200m", "6Gi"),
                node_metrics("worker-2", "196382978n", "1848836Ki"),
            ]),
            logs,
        }
    }
}
