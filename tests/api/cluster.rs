//! Admin cluster views against the fake Kubernetes API server: queries, degraded modes, and the
//! shared metric pollers behind the subscriptions.
use std::{collections::HashSet, time::Duration};

use futures::future::join_all;
use minispod_gateway::config::KubeSource;
use serde_json::{Value, json};

use crate::support::{
    TestApp, error_code, eventually,
    fake_k8s::{self, FakeCluster},
    ws::WsClient,
};

const POD_METRICS: &str = "subscription($ns: String, $i: Int) {
  podMetrics(namespace: $ns, intervalSeconds: $i) { timestamp namespace pods { name namespace usage { cpuMillicores memoryBytes } containers { name usage { cpuMillicores memoryBytes } } } }
}";
const SHOP_METRICS_PATH: &str = "/apis/metrics.k8s.io/v1beta1/namespaces/shop/pods";

async fn spawn_with(fake: &FakeCluster) -> TestApp {
    let path = fake.kubeconfig.clone();
    TestApp::spawn_with(move |c| c.kube.source = KubeSource::Kubeconfig(path)).await
}

/// The code of a subscription failure, whether sent as an `error` message or a `next` with errors.
fn ws_error_code(msg: &Value) -> String {
    let err = if msg["type"] == "error" { &msg["payload"][0] } else { &msg["payload"]["errors"][0] };
    err["extensions"]["code"].as_str().unwrap_or_else(|| panic!("expected an error with a code: {msg}")).to_string()
}

/// Reads a refused subscription: its error, then its `complete`.
async fn refusal(ws: &mut WsClient) -> String {
    let code = ws_error_code(&ws.next_message(Duration::from_secs(5)).await.expect("an error"));
    let end = ws.next_message(Duration::from_secs(5)).await.expect("complete");
    assert_eq!(end["type"], "complete", "{end}");
    code
}

fn by_name<'a>(list: &'a Value, name: &str) -> &'a Value {
    list.as_array().unwrap().iter().find(|v| v["name"] == name).unwrap_or_else(|| panic!("{name} in {list}"))
}

#[tokio::test]
async fn namespaces_nodes_and_workloads_against_the_fake_cluster() {
    let fake = FakeCluster::start().await;
    let app = spawn_with(&fake).await;
    let admin = app.login_admin().await;
    let d = app
        .gql_ok(
            Some(&admin.token),
            "{ cluster {
                namespaces { name phase labels createdAt podCount }
                nodes { name ready roles kubeletVersion capacity { cpuMillicores memoryBytes } allocatable { cpuMillicores } usage { cpuMillicores memoryBytes } createdAt }
                deployments(namespace: \"shop\") { name namespace replicas readyReplicas availableReplicas images conditions createdAt }
                services { name namespace type clusterIp ports selector }
                ingresses(namespace: \"shop\") { name className hosts tls rules }
            } }",
            json!({}),
        )
        .await;
    let c = &d["cluster"];
    assert_eq!(by_name(&c["namespaces"], "shop")["podCount"], 4);
    assert_eq!(by_name(&c["namespaces"], "kube-system")["podCount"], 2);
    assert_eq!(by_name(&c["namespaces"], "default")["podCount"], 0);
    assert_eq!(by_name(&c["namespaces"], "shop")["phase"], "Active");

    let cp = by_name(&c["nodes"], "cp-1");
    assert_eq!(cp["ready"], true);
    assert_eq!(cp["roles"], json!(["control-plane"]));
    assert_eq!(cp["kubeletVersion"], "v1.37.0");
    assert_eq!(cp["capacity"], json!({ "cpuMillicores": 4000.0, "memoryBytes": 17179869184.0 }));
    assert_eq!(cp["allocatable"]["cpuMillicores"], 3800.0);
    assert_eq!(cp["usage"]["cpuMillicores"], 350.0);
    let w2 = by_name(&c["nodes"], "worker-2");
    assert_eq!(w2["ready"], false);
    assert!((w2["usage"]["cpuMillicores"].as_f64().unwrap() - 196.382978).abs() < 1e-6);
    assert_eq!(w2["usage"]["memoryBytes"], 1848836.0 * 1024.0);

    let dep = &c["deployments"][0];
    assert_eq!(dep["name"], "web");
    assert_eq!((dep["replicas"].clone(), dep["readyReplicas"].clone()), (json!(2), json!(2)));
    assert_eq!(dep["images"], json!(["nginx:1.27", "prom/statsd-exporter:v0.28"]));
    assert_eq!(dep["conditions"][0]["type"], "Available");
    let svc = &c["services"][0];
    assert_eq!((svc["type"].as_str(), svc["clusterIp"].as_str()), (Some("ClusterIP"), Some("10.96.12.34")));
    assert_eq!(svc["ports"][0]["port"], 80);
    assert_eq!(svc["selector"], json!({ "app": "web" }));
    let ing = &c["ingresses"][0];
    assert_eq!(ing["className"], "nginx");
    assert_eq!(ing["hosts"], json!(["shop.minispod.local"]));
    assert_eq!(ing["tls"][0]["secretName"], "shop-tls");

    // podCount is only paid for when asked.
    let before = fake.hits("/api/v1/pods");
    app.gql_ok(Some(&admin.token), "{ cluster { namespaces { name } } }", json!({})).await;
    assert_eq!(fake.hits("/api/v1/pods"), before);
}

#[tokio::test]
async fn pods_merge_containers_with_live_usage() {
    let fake = FakeCluster::start().await;
    let app = spawn_with(&fake).await;
    let admin = app.login_admin().await;
    let q = "query($ns: String, $sel: String) { cluster { pods(namespace: $ns, labelSelector: $sel) {
        name namespace phase ready nodeName podIp restartCount createdAt labels metricsTimestamp metricsWindow
        containers { name image ready restartCount state usage { cpuMillicores memoryBytes } } } } }";
    let d = app.gql_ok(Some(&admin.token), q, json!({ "ns": "shop" })).await;
    let pods = &d["cluster"]["pods"];
    assert_eq!(pods.as_array().unwrap().len(), 4);
    let web = by_name(pods, "web-7d9f8c-1");
    assert_eq!(web["phase"], "Running");
    assert_eq!(web["ready"], true);
    assert_eq!(web["nodeName"], "worker-1");
    assert_eq!(web["podIp"], "10.244.1.17");
    assert_eq!(web["restartCount"], 2);
    assert_eq!(web["labels"]["app"], "web");
    assert_eq!(web["metricsWindow"], "15s");
    assert!(web["metricsTimestamp"].as_str().unwrap().starts_with("2026-11-24T12:00:00"));
    let containers = web["containers"].as_array().unwrap();
    assert_eq!(containers.len(), 2, "one entry per container, no duplicate lists");
    let app_c = by_name(&web["containers"], "app");
    assert_eq!(app_c["image"], "nginx:1.27");
    assert_eq!(app_c["state"], "running");
    assert_eq!(app_c["usage"], json!({ "cpuMillicores": 12.0, "memoryBytes": 50331648.0 }));
    assert_eq!(by_name(&web["containers"], "metrics")["usage"]["cpuMillicores"], 1.5);
    let pending = by_name(pods, "worker-job-x1");
    assert_eq!(pending["phase"], "Pending");
    assert_eq!(pending["ready"], false);
    assert_eq!(pending["containers"][0]["state"], "waiting: ContainerCreating");
    assert_eq!(pending["containers"][0]["usage"], Value::Null, "no metrics yet: null, not an error");

    let d = app.gql_ok(Some(&admin.token), q, json!({ "sel": "app=web,tier=frontend" })).await;
    let names: HashSet<_> = d["cluster"]["pods"].as_array().unwrap().iter().map(|p| p["name"].clone()).collect();
    assert_eq!(names, HashSet::from([json!("web-7d9f8c-1"), json!("web-7d9f8c-2")]));
    let d = app.gql_ok(Some(&admin.token), q, json!({})).await;
    assert_eq!(d["cluster"]["pods"].as_array().unwrap().len(), 6, "all namespaces");

    let v = app.gql(Some(&admin.token), q, json!({ "sel": "=web" })).await;
    assert_eq!(error_code(&v), "BAD_USER_INPUT");
    assert_eq!(v["errors"][0]["extensions"]["field"], "labelSelector");

    let v = app.gql(Some(&admin.token), q, json!({ "ns": "Not/Valid" })).await;
    assert_eq!(error_code(&v), "BAD_USER_INPUT");
    assert_eq!(v["errors"][0]["extensions"]["field"], "namespace");
}

#[tokio::test]
async fn usage_is_null_without_a_metrics_server() {
    let fake = FakeCluster::start().await;
    fake.update(|f| {
        f.pod_metrics = None;
        f.node_metrics = None;
    });
    let app = spawn_with(&fake).await;
    let admin = app.login_admin().await;
    let d = app
        .gql_ok(
            Some(&admin.token),
            "{ cluster { nodes { name usage { cpuMillicores } } pods(namespace: \"shop\") { name metricsTimestamp containers { name usage { cpuMillicores } } } } }",
            json!({}),
        )
        .await;
    assert!(d["cluster"]["nodes"].as_array().unwrap().iter().all(|n| n["usage"].is_null()));
    let pods = d["cluster"]["pods"].as_array().unwrap();
    assert_eq!(pods.len(), 4);
    assert!(pods.iter().all(|p| p["metricsTimestamp"].is_null()));
    assert!(pods.iter().flat_map(|p| p["containers"].as_array().unwrap()).all(|c| c["usage"].is_null()));

    // The live view has nothing to poll: each tick says so instead of hanging.
    let mut ws = WsClient::connect_ok(&app.ws_url(), Some(&admin.token)).await;
    ws.subscribe("m", POD_METRICS, json!({ "ns": "shop", "i": 1 })).await;
    let msg = ws.next_message(Duration::from_secs(5)).await.unwrap();
    assert_eq!(ws_error_code(&msg), "CLUSTER_UNAVAILABLE");
    ws.complete("m").await;
}

#[tokio::test]
async fn pod_logs_tail_and_errors() {
    let fake = FakeCluster::start().await;
    let app = spawn_with(&fake).await;
    let admin = app.login_admin().await;
    let q = "query($pod: String!, $n: Int, $c: String) { cluster { podLogs(namespace: \"shop\", pod: $pod, tailLines: $n, container: $c) } }";
    let d = app.gql_ok(Some(&admin.token), q, json!({ "pod": "web-7d9f8c-1", "n": 3 })).await;
    let lines = d["cluster"]["podLogs"].as_array().unwrap();
    assert_eq!(lines.len(), 3);
    assert!(lines[2].as_str().unwrap().contains("GET /products/20 "));
    let d = app.gql_ok(Some(&admin.token), q, json!({ "pod": "web-7d9f8c-1", "c": "app" })).await;
    assert_eq!(d["cluster"]["podLogs"].as_array().unwrap().len(), 20, "default tail of 100 returns all 20");

    // The API server wants a container name for a pod with two: the gateway names one.
    let d = app.gql_ok(Some(&admin.token), q, json!({ "pod": "web-7d9f8c-2", "n": 3 })).await;
    assert_eq!(d["cluster"]["podLogs"], json!([]));
    let v = app.gql(Some(&admin.token), q, json!({ "pod": "web-7d9f8c-1", "c": "nope" })).await;
    assert_eq!(error_code(&v), "BAD_USER_INPUT", "{v}");
    assert_eq!(v["errors"][0]["extensions"]["field"], "container");

    let v = app.gql(Some(&admin.token), q, json!({ "pod": "nope-1" })).await;
    assert_eq!(error_code(&v), "NOT_FOUND");
    for n in [0, 5_001] {
        let v = app.gql(Some(&admin.token), q, json!({ "pod": "web-7d9f8c-1", "n": n })).await;
        assert_eq!(error_code(&v), "BAD_USER_INPUT");
        assert_eq!(v["errors"][0]["extensions"]["field"], "tailLines");
    }
}

#[tokio::test]
async fn cluster_is_admin_only() {
    let fake = FakeCluster::start().await;
    let app = spawn_with(&fake).await;
    let user = app.register("Budi").await;
    let v = app.gql(Some(&user.token), "{ cluster { nodes { name } } }", json!({})).await;
    assert_eq!(error_code(&v), "FORBIDDEN");
    let v = app.gql(None, "{ cluster { nodes { name } } }", json!({})).await;
    assert_eq!(error_code(&v), "UNAUTHENTICATED");

    let mut ws = WsClient::connect_ok(&app.ws_url(), Some(&user.token)).await;
    ws.subscribe("m", POD_METRICS, json!({ "ns": "shop", "i": 1 })).await;
    assert_eq!(refusal(&mut ws).await, "FORBIDDEN");
    ws.subscribe("n", "subscription { nodeMetrics(intervalSeconds: 1) { timestamp } }", json!({})).await;
    assert_eq!(refusal(&mut ws).await, "FORBIDDEN");
    let mut anon = WsClient::connect_ok(&app.ws_url(), None).await;
    anon.subscribe("l", "subscription { podLogs(namespace: \"shop\", pod: \"web-7d9f8c-1\") }", json!({})).await;
    assert_eq!(refusal(&mut anon).await, "UNAUTHENTICATED");
    assert_eq!(fake.hits(SHOP_METRICS_PATH), 0, "refused before any upstream call");
}

#[tokio::test]
async fn a_running_shared_feed_still_refuses_non_admins() {
    let fake = FakeCluster::start().await;
    let app = spawn_with(&fake).await;
    let admin = app.login_admin().await;
    let mut ws = WsClient::connect_ok(&app.ws_url(), Some(&admin.token)).await;
    ws.subscribe("m", POD_METRICS, json!({ "ns": "shop", "i": 1 })).await;
    read_samples(&mut ws, 1).await;
    assert_eq!(app.state.cluster.shared.active(), 1);
    let user = app.register("Budi").await;
    let mut other = WsClient::connect_ok(&app.ws_url(), Some(&user.token)).await;
    other.subscribe("m", POD_METRICS, json!({ "ns": "shop", "i": 1 })).await;
    assert_eq!(refusal(&mut other).await, "FORBIDDEN");
    let mut anon = WsClient::connect_ok(&app.ws_url(), None).await;
    anon.subscribe("m", POD_METRICS, json!({ "ns": "shop", "i": 1 })).await;
    assert_eq!(refusal(&mut anon).await, "UNAUTHENTICATED");
}

#[tokio::test]
async fn without_a_cluster_only_cluster_fields_fail() {
    // test_config disables Kubernetes.
    let app = TestApp::spawn().await;
    let admin = app.login_admin().await;
    let v = app.gql(Some(&admin.token), "{ me { email } cluster { nodes { name } } }", json!({})).await;
    assert_eq!(error_code(&v), "CLUSTER_UNAVAILABLE");
    assert_eq!(v["data"]["me"]["email"], admin.email, "the rest of the API still answers");
    minispod_gateway::seed::seed_catalog(&app.state).await.unwrap();
    let c = app.gql_ok(None, "{ categories { slug services { slug } } }", json!({})).await;
    assert_eq!(c["categories"].as_array().unwrap().len(), 3, "the catalog still answers");
    let r = app.http.get(format!("{}/readyz", app.url)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap(), json!({ "database": "ok", "cluster": "not_configured" }));

    let mut ws = WsClient::connect_ok(&app.ws_url(), Some(&admin.token)).await;
    ws.subscribe("m", POD_METRICS, json!({ "ns": "shop", "i": 1 })).await;
    assert_eq!(refusal(&mut ws).await, "CLUSTER_UNAVAILABLE");
}

#[tokio::test]
async fn an_unreachable_api_server_fails_fast_and_only_cluster_fields() {
    let dead = fake_k8s::unreachable_kubeconfig();
    let path = dead.clone();
    let app = TestApp::spawn_with(move |c| {
        c.kube.source = KubeSource::Kubeconfig(path);
        c.kube.connect_timeout = Duration::from_secs(2);
    })
    .await;
    let admin = app.login_admin().await;
    let started = std::time::Instant::now();
    let v = app.gql(Some(&admin.token), "{ me { email } cluster { pods { name } } }", json!({})).await;
    assert_eq!(error_code(&v), "CLUSTER_UNAVAILABLE");
    assert_eq!(v["data"]["me"]["email"], admin.email);
    assert!(started.elapsed() < Duration::from_secs(10), "bounded by the timeouts");
    app.gql_ok(None, "{ categories { slug } services { totalCount } }", json!({})).await;
    let msg = v["errors"][0]["message"].as_str().unwrap();
    assert!(!msg.contains("127.0.0.1"), "no internal detail in the message: {msg}");
    let r = app.http.get(format!("{}/readyz", app.url)).send().await.unwrap();
    assert_eq!(r.status(), 200, "the cluster never fails readiness");
    assert_eq!(r.json::<Value>().await.unwrap()["cluster"], "unavailable");
    let _ = std::fs::remove_file(dead);
}

#[tokio::test]
async fn readyz_reports_a_healthy_cluster() {
    let fake = FakeCluster::start().await;
    let app = spawn_with(&fake).await;
    let r = app.http.get(format!("{}/readyz", app.url)).send().await.unwrap();
    assert_eq!(r.json::<Value>().await.unwrap(), json!({ "database": "ok", "cluster": "ok" }));
}

#[tokio::test]
async fn metric_intervals_are_bounded() {
    let fake = FakeCluster::start().await;
    let app = spawn_with(&fake).await;
    let admin = app.login_admin().await;
    let mut ws = WsClient::connect_ok(&app.ws_url(), Some(&admin.token)).await;
    for (id, i) in [("a", 0), ("b", 301)] {
        ws.subscribe(id, POD_METRICS, json!({ "ns": "shop", "i": i })).await;
        assert_eq!(refusal(&mut ws).await, "BAD_USER_INPUT");
    }
    assert_eq!(fake.hits(SHOP_METRICS_PATH), 0);
}

/// Reads `n` samples and returns their tick timestamps.
async fn read_samples(ws: &mut WsClient, n: usize) -> Vec<String> {
    let mut stamps = Vec::new();
    for _ in 0..n {
        let msg = ws.next_message(Duration::from_secs(10)).await.expect("a sample in time");
        assert_eq!(msg["type"], "next", "{msg}");
        let sample = &msg["payload"]["data"]["podMetrics"];
        assert_eq!(sample["namespace"], "shop");
        assert_eq!(sample["pods"].as_array().unwrap().len(), 3, "{sample}");
        stamps.push(sample["timestamp"].as_str().unwrap().to_string());
    }
    stamps
}

#[tokio::test]
async fn fifty_subscribers_share_one_upstream_list_per_tick_and_the_poller_stops_after_the_last() {
    let fake = FakeCluster::start().await;
    let app = spawn_with(&fake).await;
    let admin = app.login_admin().await;
    let url = app.ws_url();
    let mut clients = join_all((0..50).map(|_| async {
        let mut ws = WsClient::connect_ok(&url, Some(&admin.token)).await;
        ws.subscribe("m", POD_METRICS, json!({ "ns": "shop", "i": 1 })).await;
        ws
    }))
    .await;
    let per_client = join_all(clients.iter_mut().map(|ws| read_samples(ws, 3))).await;
    let ticks: HashSet<&String> = per_client.iter().flatten().collect();
    let hits = fake.hits(SHOP_METRICS_PATH);
    // Every request is a tick someone saw, except perhaps one in flight right now.
    assert!(hits >= ticks.len() as u64 && hits <= ticks.len() as u64 + 1, "{hits} requests for {} ticks", ticks.len());
    assert!(ticks.len() <= 6, "50 subscribers x 3 samples came from {} ticks", ticks.len());
    assert_eq!(app.state.cluster.pod_metrics.active(), 1);
    assert_eq!(app.state.cluster.shared.active(), 1, "the same request is resolved once for all 50");

    // Another namespace is another poller.
    let mut other = WsClient::connect_ok(&url, Some(&admin.token)).await;
    other.subscribe("k", POD_METRICS, json!({ "ns": "kube-system", "i": 1 })).await;
    assert_eq!(other.next_message(Duration::from_secs(5)).await.unwrap()["type"], "next");
    assert_eq!(app.state.cluster.pod_metrics.active(), 2);
    other.complete("k").await;

    for ws in clients {
        ws.close().await;
    }
    eventually("the last one to leave stops the poller", || async {
        app.state.cluster.pod_metrics.active() == 0 && app.state.cluster.shared.active() == 0
    })
    .await;
    let after_leaving = fake.hits(SHOP_METRICS_PATH);
    // A clock made of ticks: while another 1-second poller delivers three samples, the stopped
    // one had two chances to poll and must not have taken them.
    let mut witness = WsClient::connect_ok(&url, Some(&admin.token)).await;
    witness.subscribe("k", POD_METRICS, json!({ "ns": "kube-system", "i": 1 })).await;
    for _ in 0..3 {
        assert_eq!(witness.next_message(Duration::from_secs(5)).await.unwrap()["type"], "next");
    }
    assert!(fake.hits("/apis/metrics.k8s.io/v1beta1/namespaces/kube-system/pods") >= 3);
    assert_eq!(fake.hits(SHOP_METRICS_PATH), after_leaving, "no upstream polling without subscribers");
}

#[tokio::test]
async fn different_selections_of_the_same_feed_each_get_their_own_shape() {
    let fake = FakeCluster::start().await;
    let app = spawn_with(&fake).await;
    let admin = app.login_admin().await;
    let mut a = WsClient::connect_ok(&app.ws_url(), Some(&admin.token)).await;
    let mut b = WsClient::connect_ok(&app.ws_url(), Some(&admin.token)).await;
    a.subscribe("m", POD_METRICS, json!({ "ns": "shop", "i": 1 })).await;
    b.subscribe("m", POD_METRICS, json!({ "ns": "shop", "i": 1 })).await;
    let only_time = r#"subscription { t: podMetrics(namespace: "shop", intervalSeconds: 1) { timestamp } }"#;
    b.subscribe("t", only_time, json!({})).await;
    read_samples(&mut a, 2).await;
    let mut seen = HashSet::new();
    while seen.len() < 2 {
        let msg = b.next_message(Duration::from_secs(5)).await.expect("a sample");
        assert_eq!(msg["type"], "next", "{msg}");
        match msg["id"].as_str().unwrap() {
            "m" => assert_eq!(msg["payload"]["data"]["podMetrics"]["pods"].as_array().unwrap().len(), 3),
            "t" => {
                let sample = msg["payload"]["data"]["t"].as_object().unwrap();
                assert_eq!(sample.keys().collect::<Vec<_>>(), ["timestamp"], "{msg}");
            }
            other => panic!("unexpected id {other}"),
        }
        seen.insert(msg["id"].as_str().unwrap().to_string());
    }
    // Two requests, one poller.
    assert_eq!(app.state.cluster.shared.active(), 2);
    assert_eq!(app.state.cluster.pod_metrics.active(), 1);
    b.complete("t").await;
    eventually("the completed request leaves", || async { app.state.cluster.shared.active() == 1 }).await;
    assert_eq!(app.state.cluster.pod_metrics.active(), 1, "the other request keeps the poller");
    a.close().await;
    b.close().await;
    eventually("both connections leave", || async {
        app.state.cluster.shared.active() == 0 && app.state.cluster.pod_metrics.active() == 0
    })
    .await;
}

#[tokio::test]
async fn a_subscriber_that_stops_reading_does_not_delay_the_others() {
    let fake = FakeCluster::start().await;
    // Large samples (~1,000 pods) so the stalled connection's buffers fill up during the test.
    fake.update(|f| {
        let metrics = f.pod_metrics.get_or_insert_with(Vec::new);
        for i in 0..1_000 {
            let name = format!("load-{i:04}");
            metrics.push(fake_k8s::pod_metrics("shop", &name, &[("app", "125m", "256Mi"), ("sidecar", "3m", "12Mi")]));
        }
    });
    let app = spawn_with(&fake).await;
    let admin = app.login_admin().await;
    let mut stalled = WsClient::connect_ok(&app.ws_url(), Some(&admin.token)).await;
    stalled.subscribe("m", POD_METRICS, json!({ "ns": "shop", "i": 1 })).await;
    let mut reader = WsClient::connect_ok(&app.ws_url(), Some(&admin.token)).await;
    reader.subscribe("m", POD_METRICS, json!({ "ns": "shop", "i": 1 })).await;
    let first = reader.next_message(Duration::from_secs(5)).await.unwrap();
    assert_eq!(first["type"], "next");
    let mut last = std::time::Instant::now();
    for _ in 0..5 {
        let msg = reader.next_message(Duration::from_secs(5)).await.expect("the reader keeps getting samples");
        assert_eq!(msg["type"], "next");
        assert_eq!(msg["payload"]["data"]["podMetrics"]["pods"].as_array().unwrap().len(), 1_003);
        let gap = last.elapsed();
        assert!(gap < Duration::from_millis(1_800), "sample delayed by {gap:?}");
        last = std::time::Instant::now();
    }
    drop(stalled);
}

#[tokio::test]
async fn node_metrics_subscription_streams_samples() {
    let fake = FakeCluster::start().await;
    let app = spawn_with(&fake).await;
    let admin = app.login_admin().await;
    let mut ws = WsClient::connect_ok(&app.ws_url(), Some(&admin.token)).await;
    ws.subscribe(
        "n",
        "subscription { nodeMetrics(intervalSeconds: 1) { timestamp nodes { name usage { cpuMillicores memoryBytes } } } }",
        json!({}),
    )
    .await;
    for _ in 0..2 {
        let msg = ws.next_message(Duration::from_secs(5)).await.unwrap();
        let nodes = &msg["payload"]["data"]["nodeMetrics"]["nodes"];
        assert_eq!(
            by_name(nodes, "worker-1")["usage"],
            json!({ "cpuMillicores": 1200.0, "memoryBytes": 6442450944.0 })
        );
    }
    ws.complete("n").await;
    eventually("the node poller stops", || async { app.state.cluster.node_metrics.active() == 0 }).await;
}

#[tokio::test]
async fn pod_logs_subscription_follows_and_ends_when_the_pod_goes_away() {
    let fake = FakeCluster::start().await;
    let app = spawn_with(&fake).await;
    let admin = app.login_admin().await;
    let mut ws = WsClient::connect_ok(&app.ws_url(), Some(&admin.token)).await;
    ws.subscribe(
        "l",
        "subscription { podLogs(namespace: \"shop\", pod: \"web-7d9f8c-1\", container: \"app\", tailLines: 2) }",
        json!({}),
    )
    .await;
    let mut line = async || {
        let msg = ws.next_message(Duration::from_secs(5)).await.unwrap();
        assert_eq!(msg["type"], "next", "{msg}");
        msg["payload"]["data"]["podLogs"].as_str().unwrap().to_string()
    };
    assert!(line().await.contains("/products/19 "));
    assert!(line().await.contains("/products/20 "));
    fake.log("shop", "web-7d9f8c-1", "first new line");
    fake.log("shop", "web-7d9f8c-1", "second new line");
    assert_eq!(line().await, "first new line");
    assert_eq!(line().await, "second new line");
    assert_eq!(fake.followers("shop", "web-7d9f8c-1"), 1);

    fake.delete_pod("shop", "web-7d9f8c-1");
    let end = ws.next_message(Duration::from_secs(5)).await.unwrap();
    assert_eq!(end["type"], "complete", "{end}");
    assert_eq!(end["id"], "l");

    ws.subscribe("x", "subscription { podLogs(namespace: \"shop\", pod: \"web-7d9f8c-1\") }", json!({})).await;
    assert_eq!(refusal(&mut ws).await, "NOT_FOUND");

    // Without a container name on a pod with two containers, the default one is followed.
    fake.log("shop", "web-7d9f8c-2", "from the default container");
    ws.subscribe("y", "subscription { podLogs(namespace: \"shop\", pod: \"web-7d9f8c-2\", tailLines: 1) }", json!({}))
        .await;
    let msg = ws.next_message(Duration::from_secs(5)).await.unwrap();
    assert_eq!(msg["payload"]["data"]["podLogs"], "from the default container", "{msg}");
}

#[tokio::test]
async fn the_api_server_wants_the_kubeconfig_token() {
    let fake = FakeCluster::start().await;
    for token in [None, Some("wrong-token")] {
        let path = fake.kubeconfig_with_token(token);
        let kubeconfig = path.clone();
        let app = TestApp::spawn_with(move |c| c.kube.source = KubeSource::Kubeconfig(kubeconfig)).await;
        let admin = app.login_admin().await;
        let refused = fake.unauthorized();
        let v = app.gql(Some(&admin.token), "{ me { email } cluster { nodes { name } } }", json!({})).await;
        assert_eq!(error_code(&v), "CLUSTER_UNAVAILABLE", "{token:?}: {v}");
        assert_eq!(v["data"]["me"]["email"], admin.email);
        assert!(fake.unauthorized() > refused, "{token:?}: the fake refused the request");
        let r = app.http.get(format!("{}/readyz", app.url)).send().await.unwrap();
        assert_eq!(r.json::<Value>().await.unwrap()["cluster"], "unavailable", "{token:?}");
        let _ = std::fs::remove_file(path);
    }
    // The kubeconfig the fake writes carries its token: nothing refused.
    let before = fake.unauthorized();
    let app = spawn_with(&fake).await;
    let admin = app.login_admin().await;
    app.gql_ok(Some(&admin.token), "{ cluster { nodes { name } } }", json!({})).await;
    assert_eq!(fake.unauthorized(), before);
}

#[tokio::test]
async fn metrics_server_unavailable_degrades_to_no_usage_and_recovers() {
    let fake = FakeCluster::start().await;
    fake.set_metrics_unavailable(true);
    let app = spawn_with(&fake).await;
    let admin = app.login_admin().await;
    let q = "{ cluster { nodes { name usage { cpuMillicores } } pods(namespace: \"shop\") { name containers { usage { cpuMillicores } } } } }";
    let d = app.gql_ok(Some(&admin.token), q, json!({})).await;
    assert_eq!(d["cluster"]["nodes"].as_array().unwrap().len(), 3, "the inventory still answers");
    assert!(d["cluster"]["nodes"].as_array().unwrap().iter().all(|n| n["usage"].is_null()), "{d}");
    let pods = d["cluster"]["pods"].as_array().unwrap();
    assert_eq!(pods.len(), 4);
    assert!(pods.iter().flat_map(|p| p["containers"].as_array().unwrap()).all(|c| c["usage"].is_null()));
    assert!(fake.hits(SHOP_METRICS_PATH) >= 1, "metrics were asked for and refused");

    // The live view reports each failed tick and goes on: samples come back with metrics-server.
    let mut ws = WsClient::connect_ok(&app.ws_url(), Some(&admin.token)).await;
    ws.subscribe("m", POD_METRICS, json!({ "ns": "shop", "i": 1 })).await;
    let msg = ws.next_message(Duration::from_secs(5)).await.unwrap();
    assert_eq!(ws_error_code(&msg), "CLUSTER_UNAVAILABLE");
    let text = msg.to_string();
    assert!(!text.contains("127.0.0.1"), "no internal detail: {text}");
    fake.set_metrics_unavailable(false);
    let mut failed_ticks = 0;
    loop {
        let msg = ws.next_message(Duration::from_secs(5)).await.expect("a tick");
        if msg["payload"]["data"]["podMetrics"].is_null() {
            assert_eq!(ws_error_code(&msg), "CLUSTER_UNAVAILABLE");
            failed_ticks += 1;
            assert!(failed_ticks < 3, "metrics-server is back but the feed still fails");
            continue;
        }
        assert_eq!(msg["payload"]["data"]["podMetrics"]["pods"].as_array().unwrap().len(), 3, "{msg}");
        break;
    }
    let d = app.gql_ok(Some(&admin.token), q, json!({})).await;
    assert_eq!(by_name(&d["cluster"]["nodes"], "cp-1")["usage"]["cpuMillicores"], 350.0);
}
