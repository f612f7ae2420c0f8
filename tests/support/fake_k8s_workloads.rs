//! A stateful fake API server for workloads: it stores what the gateway writes and behaves like
//! a real API server where the gateway depends on it (see the reference, section 2(e)):
//! - server-side apply (`application/apply-patch+yaml`, `fieldManager` required, creates or
//!   updates), merge patches, the `scale` subresource, create (409 when it exists), delete;
//! - namespaced objects in a missing namespace answer 404; deleting a namespace takes its
//!   objects (and a Deployment its pods) with it;
//! - list and watch with resourceVersion and label selectors (`=`, `==`, `!=`, `a`, `!a`, `in`,
//!   `notin`); a too-old resourceVersion answers 410 Gone;
//! - a Deployment controller the test drives: a rollout becomes Available after `ready_delay`,
//!   or, for images marked failing, ProgressDeadlineExceeded with ImagePullBackOff pods; rollouts
//!   can be held;
//! - a bearer token is required, and `set_unavailable(true)` answers 503 and cuts every watch;
//! - pod logs: each running pod logs "<pod> started", tests append lines; `tailLines`,
//!   `follow` (ends when the pod is deleted) and a container name the pod must have;
//! - metrics.k8s.io pod metrics (namespaced, label selectors) for running pods a test gave usage;
//!   `set_metrics_available(false)` answers 404 as a cluster without metrics-server does;
//! - `gate_lists` holds list requests of one kind, so a test can catch a pass in the middle.
//!
//! Simplification: apply merges the sent object into the stored one (objects merged, arrays
//! replaced) instead of tracking field ownership, so a field the gateway stops sending stays.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::result_large_err)]

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    net::SocketAddr,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{
    Router,
    body::{Body, Bytes},
    extract::State,
    http::{HeaderMap, Method, StatusCode, Uri},
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};
use tokio::sync::{broadcast, watch};

use super::fake_k8s::kubeconfig_yaml;

pub const TOKEN: &str = "fake-token";

/// (plural, api version, kind, namespaced)
const RESOURCES: &[(&str, &str, &str, bool)] = &[
    ("namespaces", "v1", "Namespace", false),
    ("pods", "v1", "Pod", true),
    ("services", "v1", "Service", true),
    ("secrets", "v1", "Secret", true),
    ("persistentvolumeclaims", "v1", "PersistentVolumeClaim", true),
    ("deployments", "apps/v1", "Deployment", true),
    ("ingresses", "networking.k8s.io/v1", "Ingress", true),
];

fn resource(plural: &str, group_version: &str) -> Option<(&'static str, &'static str, &'static str, bool)> {
    RESOURCES.iter().copied().find(|(p, gv, _, _)| *p == plural && *gv == group_version)
}

type Key = (String, String, String); // (plural, namespace or "", name)

#[derive(Clone, Debug)]
struct Event {
    rv: u64,
    plural: String,
    namespace: String,
    kind: &'static str,
    object: Value,
}

/// One request as the fake saw it.
#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub query: String,
}

impl Request {
    pub fn is_watch(&self) -> bool {
        self.query.contains("watch=true") || self.query.contains("watch=1")
    }
}

struct Store {
    objects: BTreeMap<Key, Value>,
    rv: u64,
    log: Vec<Event>,
    /// Events before this resourceVersion were compacted away (410 Gone).
    oldest_rv: u64,
    ready_delay: Duration,
    failing_images: HashSet<String>,
    hold: bool,
    /// Deployments whose rollout completes at the given instant.
    rollouts: HashMap<(String, String), Instant>,
    requests: Vec<Request>,
    seq: u64,
    /// Log lines per (namespace, pod).
    logs: HashMap<(String, String), Vec<String>>,
    /// (cpu, memory) quantities per (namespace, pod), served by metrics.k8s.io.
    usage: HashMap<(String, String), (String, String)>,
    metrics_available: bool,
}

struct Shared {
    store: Mutex<Store>,
    events: broadcast::Sender<Event>,
    down: watch::Sender<bool>,
    /// New log lines: (namespace, pod, line).
    log_lines: broadcast::Sender<(String, String, String)>,
    /// List requests of this plural wait while it is set.
    list_gate: watch::Sender<Option<String>>,
    lists_waiting: std::sync::atomic::AtomicUsize,
}

pub struct FakeWorkloads {
    pub url: String,
    pub kubeconfig: PathBuf,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
    controller: tokio::task::JoinHandle<()>,
}

impl Drop for FakeWorkloads {
    fn drop(&mut self) {
        self.server.abort();
        self.controller.abort();
        let _ = std::fs::remove_file(&self.kubeconfig);
    }
}

impl FakeWorkloads {
    /// An empty cluster whose rollouts become Available after `ready_delay`.
    pub async fn start(ready_delay: Duration) -> Self {
        let shared = Arc::new(Shared {
            store: Mutex::new(Store {
                objects: BTreeMap::new(),
                rv: 1,
                log: Vec::new(),
                oldest_rv: 0,
                ready_delay,
                failing_images: HashSet::new(),
                hold: false,
                rollouts: HashMap::new(),
                requests: Vec::new(),
                seq: 0,
                logs: HashMap::new(),
                usage: HashMap::new(),
                metrics_available: true,
            }),
            events: broadcast::channel(65_536).0,
            down: watch::channel(false).0,
            log_lines: broadcast::channel(4_096).0,
            list_gate: watch::channel(None).0,
            lists_waiting: Default::default(),
        });
        for ns in ["default", "kube-system"] {
            shared.write(("namespaces".into(), String::new(), ns.into()), namespace_object(ns));
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let controller = tokio::spawn(run_controller(shared.clone()));
        let url = format!("http://{addr}");
        let kubeconfig =
            std::env::temp_dir().join(format!("minispod-fake-workloads-{}.yaml", uuid::Uuid::new_v4().simple()));
        std::fs::write(&kubeconfig, kubeconfig_yaml(&url)).unwrap();
        Self { url, kubeconfig, shared, server, controller }
    }

    /// While unavailable every request answers 503 and open watches end.
    pub fn set_unavailable(&self, down: bool) {
        self.shared.down.send_replace(down);
    }

    /// Rollouts of this image fail: ImagePullBackOff pods, then ProgressDeadlineExceeded.
    pub fn fail_image(&self, image: &str) {
        self.shared.store.lock().unwrap().failing_images.insert(image.to_string());
    }

    /// Holds every rollout (pods stay ContainerCreating) until released.
    pub fn hold_rollouts(&self, hold: bool) {
        self.shared.store.lock().unwrap().hold = hold;
    }

    pub fn set_ready_delay(&self, d: Duration) {
        self.shared.store.lock().unwrap().ready_delay = d;
    }

    pub fn get(&self, plural: &str, ns: &str, name: &str) -> Option<Value> {
        self.shared.store.lock().unwrap().objects.get(&(plural.into(), ns.into(), name.into())).cloned()
    }

    /// Every stored object of a kind.
    pub fn list(&self, plural: &str) -> Vec<Value> {
        let s = self.shared.store.lock().unwrap();
        s.objects.iter().filter(|((p, _, _), _)| p == plural).map(|(_, v)| v.clone()).collect()
    }

    /// Writes an object as another client would (foreign objects, drift).
    pub fn put(&self, plural: &str, object: Value) {
        let ns = object["metadata"]["namespace"].as_str().unwrap_or_default().to_string();
        let name = object["metadata"]["name"].as_str().unwrap().to_string();
        self.shared.write((plural.into(), ns, name), object);
    }

    /// Deletes an object as another client would (drift).
    pub fn remove(&self, plural: &str, ns: &str, name: &str) -> bool {
        self.shared.delete(&(plural.into(), ns.into(), name.into()))
    }

    /// The app in `pod` writes a line to its log.
    pub fn append_log(&self, ns: &str, pod: &str, line: &str) {
        let mut s = self.shared.store.lock().unwrap();
        s.logs.entry((ns.into(), pod.into())).or_default().push(line.into());
        let _ = self.shared.log_lines.send((ns.into(), pod.into(), line.into()));
    }

    /// What metrics-server reports for a pod (e.g. "250m", "64Mi").
    pub fn set_pod_usage(&self, ns: &str, pod: &str, cpu: &str, memory: &str) {
        self.shared.store.lock().unwrap().usage.insert((ns.into(), pod.into()), (cpu.into(), memory.into()));
    }

    /// Without metrics-server the metrics.k8s.io API answers 404.
    pub fn set_metrics_available(&self, available: bool) {
        self.shared.store.lock().unwrap().metrics_available = available;
    }

    /// Holds list requests (not watches) of `plural` until `release_lists`.
    pub fn gate_lists(&self, plural: &str) {
        self.shared.list_gate.send_replace(Some(plural.into()));
    }

    pub fn release_lists(&self) {
        self.shared.list_gate.send_replace(None);
    }

    /// List requests held by the gate right now.
    pub fn lists_waiting(&self) -> usize {
        self.shared.lists_waiting.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The names of the pods in a namespace, oldest first.
    pub fn pod_names(&self, ns: &str) -> Vec<String> {
        let s = self.shared.store.lock().unwrap();
        let mut pods: Vec<&Value> =
            s.objects.iter().filter(|((p, n, _), _)| p == "pods" && n == ns).map(|(_, v)| v).collect();
        pods.sort_by_key(|p| p["metadata"]["resourceVersion"].as_str().and_then(|v| v.parse::<u64>().ok()));
        pods.iter().map(|p| p["metadata"]["name"].as_str().unwrap().to_string()).collect()
    }

    pub fn requests(&self) -> Vec<Request> {
        self.shared.store.lock().unwrap().requests.clone()
    }

    pub fn clear_requests(&self) {
        self.shared.store.lock().unwrap().requests.clear();
    }
}

fn namespace_object(name: &str) -> Value {
    json!({ "apiVersion": "v1", "kind": "Namespace",
        "metadata": { "name": name, "labels": { "kubernetes.io/metadata.name": name } },
        "spec": { "finalizers": ["kubernetes"] }, "status": { "phase": "Active" } })
}

impl Shared {
    /// Stores `object` under `key`, stamping resourceVersion (and uid and creation time when
    /// new; generation when the spec changed), and announces it to watchers.
    fn write(&self, key: Key, mut object: Value) -> Value {
        let mut s = self.store.lock().unwrap();
        s.rv += 1;
        let rv = s.rv;
        let old = s.objects.get(&key).cloned();
        let meta = &mut object["metadata"];
        meta["resourceVersion"] = json!(rv.to_string());
        match &old {
            Some(o) => {
                meta["uid"] = o["metadata"]["uid"].clone();
                meta["creationTimestamp"] = o["metadata"]["creationTimestamp"].clone();
                let generation = o["metadata"]["generation"].as_i64().unwrap_or(1);
                let changed = o.get("spec") != object.get("spec");
                object["metadata"]["generation"] = json!(if changed { generation + 1 } else { generation });
            }
            None => {
                meta["uid"] = json!(uuid::Uuid::new_v4().to_string());
                meta["creationTimestamp"] =
                    json!(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
                meta["generation"] = json!(1);
            }
        }
        if !key.1.is_empty() {
            object["metadata"]["namespace"] = json!(key.1);
        }
        let kind = if old.is_some() { "MODIFIED" } else { "ADDED" };
        s.objects.insert(key.clone(), object.clone());
        let event = Event { rv, plural: key.0.clone(), namespace: key.1.clone(), kind, object: object.clone() };
        s.log.push(event.clone());
        let _ = self.events.send(event);
        if key.0 == "deployments" && old.as_ref().and_then(|o| o.get("spec")) != object.get("spec") {
            start_rollout(&mut s, self, &key);
        }
        object
    }

    fn delete(&self, key: &Key) -> bool {
        let mut s = self.store.lock().unwrap();
        delete_locked(&mut s, self, key)
    }
}

fn delete_locked(s: &mut Store, shared: &Shared, key: &Key) -> bool {
    let Some(mut object) = s.objects.remove(key) else {
        return false;
    };
    if key.0 == "pods" {
        s.logs.remove(&(key.1.clone(), key.2.clone()));
        s.usage.remove(&(key.1.clone(), key.2.clone()));
    }
    s.rv += 1;
    object["metadata"]["resourceVersion"] = json!(s.rv.to_string());
    let event = Event { rv: s.rv, plural: key.0.clone(), namespace: key.1.clone(), kind: "DELETED", object };
    s.log.push(event.clone());
    let _ = shared.events.send(event);
    // What garbage collection and namespace finalization do.
    let dependants: Vec<Key> = match key.0.as_str() {
        "namespaces" => s.objects.keys().filter(|(_, ns, _)| *ns == key.2).cloned().collect(),
        "deployments" => s
            .objects
            .iter()
            .filter(|((p, ns, _), v)| {
                p == "pods" && *ns == key.1 && v["metadata"]["ownerReferences"][0]["name"] == key.2.as_str()
            })
            .map(|(k, _)| k.clone())
            .collect(),
        _ => vec![],
    };
    if key.0 == "deployments" {
        s.rollouts.remove(&(key.1.clone(), key.2.clone()));
    }
    for d in dependants {
        delete_locked(s, shared, &d);
    }
    true
}

// ------------------------------------------------------------------ the Deployment controller

fn replicas(d: &Value) -> i64 {
    d["spec"]["replicas"].as_i64().unwrap_or(1)
}

fn condition(kind: &str, status: &str, reason: &str, message: &str) -> Value {
    json!({ "type": kind, "status": status, "reason": reason, "message": message,
        "lastUpdateTime": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true) })
}

/// A new spec: the controller observes it at once (pods ContainerCreating) and finishes the
/// rollout after the ready delay.
fn start_rollout(s: &mut Store, shared: &Shared, key: &Key) {
    let Some(mut d) = s.objects.get(key).cloned() else { return };
    let n = replicas(&d);
    d["status"] = json!({
        "observedGeneration": d["metadata"]["generation"], "replicas": n, "updatedReplicas": n,
        "readyReplicas": 0, "availableReplicas": 0, "unavailableReplicas": n,
        "conditions": [
            condition("Available", if n == 0 { "True" } else { "False" }, if n == 0 { "MinimumReplicasAvailable" } else { "MinimumReplicasUnavailable" }, "Deployment does not have minimum availability."),
            condition("Progressing", "True", "ReplicaSetUpdated", "ReplicaSet is progressing."),
        ]
    });
    replace_status(s, shared, key, d);
    set_pods(s, shared, key, "waiting", "ContainerCreating");
    let due = Instant::now() + s.ready_delay;
    s.rollouts.insert((key.1.clone(), key.2.clone()), due);
}

/// Status writes do not bump the generation.
fn replace_status(s: &mut Store, shared: &Shared, key: &Key, mut d: Value) {
    s.rv += 1;
    d["metadata"]["resourceVersion"] = json!(s.rv.to_string());
    s.objects.insert(key.clone(), d.clone());
    let event = Event { rv: s.rv, plural: key.0.clone(), namespace: key.1.clone(), kind: "MODIFIED", object: d };
    s.log.push(event.clone());
    let _ = shared.events.send(event);
}

/// Replaces the Deployment's pods with `replicas` pods in the given container state.
fn set_pods(s: &mut Store, shared: &Shared, key: &Key, state: &str, reason: &str) {
    let Some(d) = s.objects.get(key).cloned() else { return };
    let old: Vec<Key> = s
        .objects
        .iter()
        .filter(|((p, ns, _), v)| {
            p == "pods" && *ns == key.1 && v["metadata"]["ownerReferences"][0]["name"] == key.2.as_str()
        })
        .map(|(k, _)| k.clone())
        .collect();
    for k in old {
        delete_locked(s, shared, &k);
    }
    let template = &d["spec"]["template"];
    for _ in 0..replicas(&d) {
        s.seq += 1;
        s.rv += 1;
        let name = format!("{}-{:05x}", key.2, s.seq);
        let running = state == "running";
        let containers: Vec<Value> = template["spec"]["containers"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|c| {
                let st = if running {
                    json!({ "running": { "startedAt": "2026-12-01T00:00:00Z" } })
                } else {
                    json!({ "waiting": { "reason": reason, "message": format!("{reason}: {}", c["image"].as_str().unwrap_or("")) } })
                };
                json!({ "name": c["name"], "image": c["image"], "imageID": "", "ready": running, "restartCount": 0, "state": st })
            })
            .collect();
        let pod = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": { "name": name, "namespace": key.1, "labels": template["metadata"]["labels"],
                "annotations": template["metadata"]["annotations"],
                "uid": uuid::Uuid::new_v4().to_string(), "resourceVersion": s.rv.to_string(),
                "creationTimestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                "ownerReferences": [{ "apiVersion": "apps/v1", "kind": "Deployment", "name": key.2, "uid": d["metadata"]["uid"] }] },
            "spec": template["spec"],
            "status": { "phase": if running { "Running" } else { "Pending" },
                "conditions": [{ "type": "Ready", "status": if running { "True" } else { "False" } }],
                "containerStatuses": containers }
        });
        if running {
            s.logs.insert((key.1.clone(), name.clone()), vec![format!("{name} started")]);
        }
        let pkey: Key = ("pods".into(), key.1.clone(), name);
        s.objects.insert(pkey.clone(), pod.clone());
        let event = Event { rv: s.rv, plural: "pods".into(), namespace: key.1.clone(), kind: "ADDED", object: pod };
        s.log.push(event.clone());
        let _ = shared.events.send(event);
    }
}

fn finish_rollout(s: &mut Store, shared: &Shared, key: &Key) {
    let Some(mut d) = s.objects.get(key).cloned() else { return };
    let n = replicas(&d);
    let image = d["spec"]["template"]["spec"]["containers"][0]["image"].as_str().unwrap_or_default().to_string();
    if n > 0 && s.failing_images.contains(&image) {
        set_pods(s, shared, key, "waiting", "ImagePullBackOff");
        d["status"]["conditions"] = json!([
            condition(
                "Available",
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability."
            ),
            condition(
                "Progressing",
                "False",
                "ProgressDeadlineExceeded",
                &format!("ReplicaSet \"{}\" has timed out progressing.", key.2)
            ),
        ]);
    } else {
        set_pods(s, shared, key, "running", "");
        d["status"]["readyReplicas"] = json!(n);
        d["status"]["availableReplicas"] = json!(n);
        d["status"]["unavailableReplicas"] = json!(0);
        d["status"]["conditions"] = json!([
            condition("Available", "True", "MinimumReplicasAvailable", "Deployment has minimum availability."),
            condition(
                "Progressing",
                "True",
                "NewReplicaSetAvailable",
                &format!("ReplicaSet \"{}\" has successfully progressed.", key.2)
            ),
        ]);
    }
    replace_status(s, shared, key, d);
}

async fn run_controller(shared: Arc<Shared>) {
    loop {
        tokio::time::sleep(Duration::from_millis(10)).await;
        let mut s = shared.store.lock().unwrap();
        if s.hold {
            continue;
        }
        let now = Instant::now();
        let due: Vec<(String, String)> =
            s.rollouts.iter().filter(|(_, at)| **at <= now).map(|(k, _)| k.clone()).collect();
        for (ns, name) in due {
            s.rollouts.remove(&(ns.clone(), name.clone()));
            finish_rollout(&mut s, &shared, &("deployments".into(), ns, name));
        }
    }
}

// ------------------------------------------------------------------ HTTP

fn status(code: StatusCode, reason: &str, message: &str) -> Response {
    let body = json!({ "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code.as_u16() });
    (code, axum::Json(body)).into_response()
}

fn json_response(code: StatusCode, v: Value) -> Response {
    (code, axum::Json(v)).into_response()
}

struct Target {
    plural: &'static str,
    api_version: &'static str,
    kind: &'static str,
    namespaced: bool,
    namespace: Option<String>,
    name: Option<String>,
    sub: Option<String>,
}

fn parse_path(path: &str) -> Option<Target> {
    let (gv, rest) = if let Some(r) = path.strip_prefix("/api/v1/") {
        ("v1".to_string(), r)
    } else {
        let r = path.strip_prefix("/apis/")?;
        let mut it = r.splitn(3, '/');
        let (g, v, rest) = (it.next()?, it.next()?, it.next()?);
        (format!("{g}/{v}"), rest)
    };
    let seg: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    let (ns, plural, name, sub) = match seg.as_slice() {
        ["namespaces", ns, plural, rest @ ..] if gv != "v1" || *plural != "finalize" => {
            (Some(ns.to_string()), *plural, rest.first().map(|s| s.to_string()), rest.get(1).map(|s| s.to_string()))
        }
        [plural] => (None, *plural, None, None),
        [plural, name] => (None, *plural, Some(name.to_string()), None),
        _ => return None,
    };
    let (plural, api_version, kind, namespaced) = resource(plural, &gv)?;
    if !namespaced && ns.is_some() {
        return None;
    }
    Some(Target { plural, api_version, kind, namespaced, namespace: ns, name, sub })
}

fn query_map(q: &str) -> HashMap<String, String> {
    url_decode_pairs(q)
}

fn url_decode_pairs(q: &str) -> HashMap<String, String> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let h = std::str::from_utf8(&bytes[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok());
                match h {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Label selectors as the API server parses them; `Err` for what it refuses.
pub fn selector_matches(labels: &Value, selector: &str) -> Result<bool, String> {
    let mut terms = Vec::new();
    let mut depth = 0;
    let mut cur = String::new();
    for c in selector.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                terms.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    terms.push(cur);
    let get = |k: &str| labels.get(k).and_then(Value::as_str).map(str::to_string);
    let mut ok = true;
    for t in terms.iter().map(|t| t.trim()).filter(|t| !t.is_empty()) {
        let set = |list: &str| -> Vec<String> {
            list.trim().trim_start_matches('(').trim_end_matches(')').split(',').map(|v| v.trim().to_string()).collect()
        };
        let m = if let Some((k, list)) = t.split_once(" notin ") {
            get(k.trim()).is_none_or(|v| !set(list).contains(&v))
        } else if let Some((k, list)) = t.split_once(" in ") {
            get(k.trim()).is_some_and(|v| set(list).contains(&v))
        } else if let Some((k, v)) = t.split_once("!=") {
            get(k.trim()).as_deref() != Some(v.trim())
        } else if let Some((k, v)) = t.split_once("==").or_else(|| t.split_once('=')) {
            if k.trim().is_empty() {
                return Err(format!("unable to parse requirement: {t:?}"));
            }
            get(k.trim()).as_deref() == Some(v.trim())
        } else if let Some(k) = t.strip_prefix('!') {
            get(k.trim()).is_none()
        } else {
            get(t).is_some()
        };
        ok &= m;
    }
    Ok(ok)
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let query = uri.query().unwrap_or_default().to_string();
    shared.store.lock().unwrap().requests.push(Request {
        method: method.to_string(),
        path: uri.path().to_string(),
        query: query.clone(),
    });
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(&format!("Bearer {TOKEN}")) {
        return status(StatusCode::UNAUTHORIZED, "Unauthorized", "Unauthorized");
    }
    if *shared.down.borrow() {
        return status(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            "the server is currently unable to handle the request",
        );
    }
    if uri.path() == "/version" {
        return json_response(
            StatusCode::OK,
            json!({ "major": "1", "minor": "37", "gitVersion": "v1.37.0-fake", "platform": "linux/amd64" }),
        );
    }
    if let Some(rest) = uri.path().strip_prefix("/apis/metrics.k8s.io/v1beta1/") {
        return pod_metrics(&shared, rest, &query_map(&query));
    }
    let Some(t) = parse_path(uri.path()) else {
        return status(StatusCode::NOT_FOUND, "NotFound", "the server could not find the requested resource");
    };
    let q = query_map(&query);
    let content_type = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    match (method, &t.name, &t.sub) {
        (Method::GET, None, None) if q.get("watch").is_some_and(|w| w == "true" || w == "1") => {
            watch_stream(shared, t, q)
        }
        (Method::GET, None, None) => {
            wait_for_gate(&shared, t.plural).await;
            list(&shared, &t, &q)
        }
        (Method::POST, None, None) => create(&shared, &t, &body),
        (Method::GET, Some(name), None) => get(&shared, &t, name),
        (Method::PATCH, Some(name), None) => patch(&shared, &t, name, &content_type, &q, &body),
        (Method::DELETE, Some(name), None) => delete(&shared, &t, name),
        (Method::GET, Some(name), Some(sub)) if sub == "scale" && t.plural == "deployments" => {
            scale_get(&shared, &t, name)
        }
        (Method::PATCH, Some(name), Some(sub)) if sub == "scale" && t.plural == "deployments" => {
            scale_patch(&shared, &t, name, &content_type, &body)
        }
        (Method::GET, Some(name), Some(sub)) if sub == "log" && t.plural == "pods" => {
            pod_log(shared.clone(), &t, name, &q)
        }
        _ => status(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        ),
    }
}

fn key(t: &Target, name: &str) -> Key {
    (t.plural.into(), t.namespace.clone().unwrap_or_default(), name.into())
}

fn namespace_missing(shared: &Shared, t: &Target) -> Option<Response> {
    let ns = t.namespace.as_deref()?;
    let exists = shared.store.lock().unwrap().objects.contains_key(&("namespaces".into(), String::new(), ns.into()));
    (!exists).then(|| status(StatusCode::NOT_FOUND, "NotFound", &format!("namespaces \"{ns}\" not found")))
}

fn not_found(t: &Target, name: &str) -> Response {
    status(StatusCode::NOT_FOUND, "NotFound", &format!("{} \"{name}\" not found", t.plural))
}

fn list(shared: &Shared, t: &Target, q: &HashMap<String, String>) -> Response {
    let selector = q.get("labelSelector").cloned().unwrap_or_default();
    let s = shared.store.lock().unwrap();
    let mut items = Vec::new();
    for ((p, ns, _), v) in &s.objects {
        if p != t.plural || t.namespace.as_ref().is_some_and(|want| want != ns) {
            continue;
        }
        match selector_matches(&v["metadata"]["labels"], &selector) {
            Ok(true) => items.push(v.clone()),
            Ok(false) => {}
            Err(e) => return status(StatusCode::BAD_REQUEST, "BadRequest", &e),
        }
    }
    json_response(
        StatusCode::OK,
        json!({ "apiVersion": t.api_version, "kind": format!("{}List", t.kind), "metadata": { "resourceVersion": s.rv.to_string() }, "items": items }),
    )
}

fn get(shared: &Shared, t: &Target, name: &str) -> Response {
    match shared.store.lock().unwrap().objects.get(&key(t, name)) {
        Some(v) => json_response(StatusCode::OK, v.clone()),
        None => not_found(t, name),
    }
}

fn check_body(t: &Target, name: Option<&str>, body: &Value) -> Result<String, Response> {
    let bad = |m: String| Err(status(StatusCode::BAD_REQUEST, "BadRequest", &m));
    if body["apiVersion"] != t.api_version || body["kind"] != t.kind {
        return bad(format!("the body must be a {} {}", t.api_version, t.kind));
    }
    let Some(body_name) = body["metadata"]["name"].as_str() else {
        return bad("metadata.name: Required value".into());
    };
    if name.is_some_and(|n| n != body_name) {
        return bad("the name of the object does not match the name on the URL".into());
    }
    if let (Some(ns), Some(want)) = (body["metadata"]["namespace"].as_str(), &t.namespace)
        && ns != want
    {
        return bad("the namespace of the object does not match the namespace on the request".into());
    }
    Ok(body_name.to_string())
}

fn create(shared: &Shared, t: &Target, body: &Bytes) -> Response {
    let Ok(obj) = serde_json::from_slice::<Value>(body) else {
        return status(StatusCode::BAD_REQUEST, "BadRequest", "the body is not JSON");
    };
    let name = match check_body(t, None, &obj) {
        Ok(n) => n,
        Err(r) => return r,
    };
    if let Some(r) = namespace_missing(shared, t) {
        return r;
    }
    let k = key(t, &name);
    if shared.store.lock().unwrap().objects.contains_key(&k) {
        return status(StatusCode::CONFLICT, "AlreadyExists", &format!("{} \"{name}\" already exists", t.plural));
    }
    let mut obj = obj;
    materialize(t, &mut obj);
    json_response(StatusCode::CREATED, shared.write(k, obj))
}

/// What the API server fills in: Secret stringData becomes data; Services get a cluster IP (and
/// a node port when asked for one).
fn materialize(t: &Target, obj: &mut Value) {
    if t.plural == "secrets"
        && let Some(sd) = obj.get("stringData").and_then(Value::as_object).cloned()
    {
        use base64::Engine;
        let data = obj["data"].as_object().cloned().unwrap_or_default();
        let mut data = data;
        for (k, v) in sd {
            data.insert(k, json!(base64::engine::general_purpose::STANDARD.encode(v.as_str().unwrap_or_default())));
        }
        obj["data"] = Value::Object(data);
        obj.as_object_mut().unwrap().remove("stringData");
    }
    if t.plural == "services" {
        if obj["spec"]["clusterIP"].is_null() {
            obj["spec"]["clusterIP"] = json!("10.96.0.10");
        }
        let typ = obj["spec"]["type"].as_str().unwrap_or("ClusterIP").to_string();
        if let Some(ports) = obj["spec"]["ports"].as_array_mut() {
            for (i, p) in ports.iter_mut().enumerate() {
                if typ != "ClusterIP" && p["nodePort"].is_null() {
                    p["nodePort"] = json!(30000 + i as i64);
                }
            }
        }
    }
}

/// RFC 7386 JSON merge patch.
fn merge(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = json!({});
            }
            let t = target.as_object_mut().unwrap();
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        other => *target = other.clone(),
    }
}

fn patch(
    shared: &Shared,
    t: &Target,
    name: &str,
    content_type: &str,
    q: &HashMap<String, String>,
    body: &Bytes,
) -> Response {
    let Ok(p) = serde_json::from_slice::<Value>(body) else {
        return status(StatusCode::BAD_REQUEST, "BadRequest", "the body is not JSON");
    };
    let k = key(t, name);
    let existing = shared.store.lock().unwrap().objects.get(&k).cloned();
    match content_type {
        "application/apply-patch+yaml" => {
            if q.get("fieldManager").is_none_or(|m| m.is_empty()) {
                return status(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
                );
            }
            if let Err(r) = check_body(t, Some(name), &p) {
                return r;
            }
            if let Some(r) = namespace_missing(shared, t) {
                return r;
            }
            let created = existing.is_none();
            let mut obj = existing.unwrap_or(json!({}));
            merge(&mut obj, &p);
            materialize(t, &mut obj);
            let code = if created { StatusCode::CREATED } else { StatusCode::OK };
            json_response(code, shared.write(k, obj))
        }
        "application/merge-patch+json" | "application/strategic-merge-patch+json" => {
            let Some(mut obj) = existing else {
                return not_found(t, name);
            };
            merge(&mut obj, &p);
            json_response(StatusCode::OK, shared.write(k, obj))
        }
        other => status(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            &format!(
                "the body of the request was in an unknown format - accepted media types include: application/apply-patch+yaml, application/merge-patch+json (got {other})"
            ),
        ),
    }
}

fn delete(shared: &Shared, t: &Target, name: &str) -> Response {
    let k = key(t, name);
    let obj = shared.store.lock().unwrap().objects.get(&k).cloned();
    match obj {
        Some(o) => {
            shared.delete(&k);
            json_response(StatusCode::OK, o)
        }
        None => not_found(t, name),
    }
}

fn scale_object(d: &Value) -> Value {
    json!({ "apiVersion": "autoscaling/v1", "kind": "Scale",
        "metadata": { "name": d["metadata"]["name"], "namespace": d["metadata"]["namespace"], "resourceVersion": d["metadata"]["resourceVersion"] },
        "spec": { "replicas": replicas(d) },
        "status": { "replicas": d["status"]["replicas"].as_i64().unwrap_or(0) } })
}

fn scale_get(shared: &Shared, t: &Target, name: &str) -> Response {
    match shared.store.lock().unwrap().objects.get(&key(t, name)) {
        Some(d) => json_response(StatusCode::OK, scale_object(d)),
        None => not_found(t, name),
    }
}

fn scale_patch(shared: &Shared, t: &Target, name: &str, content_type: &str, body: &Bytes) -> Response {
    if content_type != "application/merge-patch+json" && content_type != "application/strategic-merge-patch+json" {
        return status(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            "use a merge patch on the scale subresource",
        );
    }
    let Ok(p) = serde_json::from_slice::<Value>(body) else {
        return status(StatusCode::BAD_REQUEST, "BadRequest", "the body is not JSON");
    };
    let k = key(t, name);
    let Some(mut d) = shared.store.lock().unwrap().objects.get(&k).cloned() else {
        return not_found(t, name);
    };
    let Some(n) = p["spec"]["replicas"].as_i64() else {
        return status(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", "spec.replicas is required");
    };
    d["spec"]["replicas"] = json!(n);
    let d = shared.write(k, d);
    json_response(StatusCode::OK, scale_object(&d))
}

async fn wait_for_gate(shared: &Shared, plural: &str) {
    let mut gate = shared.list_gate.subscribe();
    if gate.borrow().as_deref() != Some(plural) {
        return;
    }
    shared.lists_waiting.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let _ = gate.wait_for(|g| g.as_deref() != Some(plural)).await;
    shared.lists_waiting.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
}

/// `GET …/pods/<name>/log`: `container` must be one of the pod's (and is required when it has
/// several), `tailLines` keeps the last lines, `follow` streams new lines until the pod is deleted.
fn pod_log(shared: Arc<Shared>, t: &Target, name: &str, q: &HashMap<String, String>) -> Response {
    let ns = t.namespace.clone().unwrap_or_default();
    let (backlog, mut lines, mut events) = {
        let s = shared.store.lock().unwrap();
        let Some(pod) = s.objects.get(&key(t, name)) else {
            return not_found(t, name);
        };
        let containers: Vec<&str> =
            pod["spec"]["containers"].as_array().into_iter().flatten().filter_map(|c| c["name"].as_str()).collect();
        match q.get("container") {
            Some(c) if !containers.contains(&c.as_str()) => {
                return status(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    &format!("container {c} is not valid for pod {name}"),
                );
            }
            None if containers.len() > 1 => {
                return status(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    &format!("a container name must be specified for pod {name}, choose one of: {containers:?}"),
                );
            }
            _ => {}
        }
        if pod["status"]["phase"] != "Running" {
            return status(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                &format!("container \"{}\" in pod \"{name}\" is waiting to start", containers.first().unwrap_or(&"")),
            );
        }
        let all = s.logs.get(&(ns.clone(), name.to_string())).cloned().unwrap_or_default();
        let tail: usize = q.get("tailLines").and_then(|v| v.parse().ok()).unwrap_or(all.len());
        let backlog = all[all.len().saturating_sub(tail)..].to_vec();
        // Subscribed under the lock that read the backlog: no line falls between.
        (backlog, shared.log_lines.subscribe(), shared.events.subscribe())
    };
    let text: String = backlog.iter().map(|l| format!("{l}\n")).collect();
    if q.get("follow").is_none_or(|f| f != "true") {
        return text.into_response();
    }
    let pod = name.to_string();
    let mut down = shared.down.subscribe();
    let stream = async_stream::stream! {
        if !text.is_empty() {
            yield Ok::<_, std::io::Error>(text);
        }
        loop {
            tokio::select! {
                l = lines.recv() => match l {
                    Ok((n, p, line)) if n == ns && p == pod => yield Ok(format!("{line}\n")),
                    Ok(_) => {}
                    Err(_) => break,
                },
                e = events.recv() => match e {
                    Ok(e) if e.kind == "DELETED" && e.plural == "pods" && e.namespace == ns
                        && e.object["metadata"]["name"] == pod.as_str() => break,
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => break,
                },
                _ = down.changed() => if *down.borrow() { break },
            }
        }
    };
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "text/plain")
        .body(Body::from_stream(stream))
        .unwrap()
}

/// `GET /apis/metrics.k8s.io/v1beta1/namespaces/<ns>/pods`: running pods with usage.
fn pod_metrics(shared: &Shared, rest: &str, q: &HashMap<String, String>) -> Response {
    let s = shared.store.lock().unwrap();
    if !s.metrics_available {
        return status(StatusCode::NOT_FOUND, "NotFound", "the server could not find the requested resource");
    }
    let seg: Vec<&str> = rest.split('/').collect();
    let ns = match seg.as_slice() {
        ["namespaces", ns, "pods"] => Some(ns.to_string()),
        ["pods"] => None,
        _ => return status(StatusCode::NOT_FOUND, "NotFound", "the server could not find the requested resource"),
    };
    let selector = q.get("labelSelector").cloned().unwrap_or_default();
    let mut items = Vec::new();
    for ((p, pns, name), v) in &s.objects {
        if p != "pods" || ns.as_ref().is_some_and(|n| n != pns) || v["status"]["phase"] != "Running" {
            continue;
        }
        match selector_matches(&v["metadata"]["labels"], &selector) {
            Ok(true) => {}
            Ok(false) => continue,
            Err(e) => return status(StatusCode::BAD_REQUEST, "BadRequest", &e),
        }
        let Some((cpu, memory)) = s.usage.get(&(pns.clone(), name.clone())) else { continue };
        let container = v["spec"]["containers"][0]["name"].clone();
        items.push(json!({
            "metadata": { "name": name, "namespace": pns, "labels": v["metadata"]["labels"] },
            "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true), "window": "15s",
            "containers": [{ "name": container, "usage": { "cpu": cpu, "memory": memory } }]
        }));
    }
    json_response(
        StatusCode::OK,
        json!({ "kind": "PodMetricsList", "apiVersion": "metrics.k8s.io/v1beta1", "metadata": {}, "items": items }),
    )
}

fn watch_stream(shared: Arc<Shared>, t: Target, q: HashMap<String, String>) -> Response {
    let selector = q.get("labelSelector").cloned().unwrap_or_default();
    if let Err(e) = selector_matches(&json!({}), &selector) {
        return status(StatusCode::BAD_REQUEST, "BadRequest", &e);
    }
    let since: u64 = q.get("resourceVersion").and_then(|v| v.parse().ok()).unwrap_or(0);
    let timeout = Duration::from_secs(q.get("timeoutSeconds").and_then(|v| v.parse().ok()).unwrap_or(300));
    let plural = t.plural.to_string();
    let ns = t.namespace.clone();
    let matches = {
        let (plural, ns, selector) = (plural.clone(), ns.clone(), selector.clone());
        move |e: &Event| {
            e.plural == plural
                && ns.as_ref().is_none_or(|n| *n == e.namespace)
                && selector_matches(&e.object["metadata"]["labels"], &selector).unwrap_or(false)
        }
    };
    // Subscribe before reading the backlog, under the same lock: no event falls between.
    let (backlog, mut rx) = {
        let s = shared.store.lock().unwrap();
        if since != 0 && since < s.oldest_rv {
            return status(
                StatusCode::GONE,
                "Expired",
                &format!("too old resource version: {since} ({})", s.oldest_rv),
            );
        }
        let rx = shared.events.subscribe();
        let backlog: Vec<Event> =
            if since == 0 { vec![] } else { s.log.iter().filter(|e| e.rv > since && matches(e)).cloned().collect() };
        (backlog, rx)
    };
    let mut down = shared.down.subscribe();
    let line = |e: &Event| format!("{}\n", json!({ "type": e.kind, "object": e.object }));
    let last = backlog.last().map_or(since, |e| e.rv);
    let first: String = backlog.iter().map(line).collect();
    let stream = async_stream::stream! {
        if !first.is_empty() {
            yield Ok::<_, std::io::Error>(first);
        }
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                ev = rx.recv() => match ev {
                    Ok(e) if e.rv > last && matches(&e) => yield Ok(line(&e)),
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(_)) => break,
                    Err(broadcast::error::RecvError::Closed) => break,
                },
                _ = down.changed() => if *down.borrow() { break },
                _ = &mut deadline => break,
            }
        }
    };
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/json")
        .body(Body::from_stream(stream))
        .unwrap()
}
