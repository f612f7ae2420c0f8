//! What operators see: /metrics after real traffic (HTTP, GraphQL over HTTP and WebSocket,
//! webhook, jobs, Midtrans and Kubernetes calls, the catalog cache), its token, request ids,
//! and log levels (a client's mistake is one INFO line, an internal error is ERROR).
use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use minispod_gateway::config::{KubeSource, SecretString};
use serde_json::{Value, json};

use crate::support::{
    TestApp, error_code, eventually,
    fake_k8s_workloads::FakeWorkloads,
    fake_midtrans::{FakeMidtrans, notification},
    ws::WsClient,
};

/// One parsed exposition: (name, labels) → value.
struct Scrape(Vec<(String, BTreeMap<String, String>, f64)>);

impl Scrape {
    fn parse(text: &str) -> Self {
        let mut series = Vec::new();
        for line in text.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
            let (head, value) = line.rsplit_once(' ').unwrap();
            let (name, labels) = match head.split_once('{') {
                Some((name, rest)) => {
                    let body = rest.strip_suffix('}').unwrap();
                    let labels = body
                        .split("\",")
                        .filter(|kv| !kv.is_empty())
                        .map(|kv| {
                            let (k, v) = kv.split_once("=\"").unwrap();
                            (k.to_string(), v.trim_end_matches('"').to_string())
                        })
                        .collect();
                    (name.to_string(), labels)
                }
                None => (head.to_string(), BTreeMap::new()),
            };
            series.push((name, labels, value.parse::<f64>().unwrap()));
        }
        Self(series)
    }

    /// The sum over series of `name` whose labels include all of `labels`; None if there are none.
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let matching: Vec<f64> = self
            .0
            .iter()
            .filter(|(n, l, _)| n == name && labels.iter().all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v)))
            .map(|(_, _, v)| *v)
            .collect();
        (!matching.is_empty()).then(|| matching.iter().sum())
    }

    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels).unwrap_or_else(|| panic!("no series {name} with {labels:?}"))
    }

    fn label_values(&self, name: &str, label: &str) -> Vec<String> {
        self.0.iter().filter(|(n, _, _)| n == name).filter_map(|(_, l, _)| l.get(label).cloned()).collect()
    }
}

async fn scrape(app: &TestApp) -> Scrape {
    let resp = app.http.get(format!("{}/metrics", app.url)).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    Scrape::parse(&resp.text().await.unwrap())
}

const LOGIN: &str = "mutation Login($e: String!, $p: String!) { login(email: $e, password: $p) { accessToken } }";

#[tokio::test]
async fn traffic_shows_up_in_metrics_with_its_labels() {
    let fake = FakeMidtrans::start().await;
    let f = fake.clone();
    let app = TestApp::spawn_with(move |c| f.configure(c)).await;
    let admin = app.login_admin().await;
    let user = app.register("Budi").await;

    // A named query, a mutation that fails, an unmatched path, the cacheable catalog twice.
    app.gql_ok(Some(&user.token), "query Me { me { id } }", json!({})).await;
    let v = app.gql(None, LOGIN, json!({ "e": user.email, "p": "wrong-password" })).await;
    assert_eq!(error_code(&v), "UNAUTHENTICATED");
    let r = app.http.get(format!("{}/no/such/page-123", app.url)).send().await.unwrap();
    assert_eq!(r.status(), 404);
    for _ in 0..2 {
        app.gql_ok(None, "{ categories { slug } }", json!({})).await;
    }

    // A live subscription over WebSocket.
    let mut ws = WsClient::connect_ok(&app.ws_url(), Some(&user.token)).await;
    ws.subscribe("1", "subscription Wallet { walletUpdates { status } }", json!({})).await;
    crate::helpers::subscribed(&app, 1).await;
    let m = scrape(&app).await;
    assert_eq!(m.value("minispod_ws_connections", &[]), 1.0);
    assert_eq!(m.value("minispod_graphql_subscriptions_live", &[("operation", "Wallet")]), 1.0);
    assert_eq!(
        m.value(
            "minispod_graphql_operations_total",
            &[("operation", "Wallet"), ("type", "subscription"), ("result", "ok")]
        ),
        1.0
    );

    // A top-up (a Snap call) settled by the webhook, pushed to the subscription.
    let created = app
        .gql_ok(Some(&user.token), "mutation TopUp { createTopUp(amount: 50000) { transaction { id } } }", json!({}))
        .await;
    assert!(created["createTopUp"]["transaction"]["id"].is_string());
    let order = fake.requests().into_iter().rev().find(|r| r.path == "/snap/v1/transactions").unwrap().body
        ["transaction_details"]["order_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(app.notify(&notification(&order, 50_000, "settlement", None)).await, 200);
    let mut bad = notification(&order, 50_000, "settlement", None);
    bad["signature_key"] = json!("0".repeat(128));
    assert_eq!(app.notify(&bad).await, 401);
    loop {
        let msg = ws.next_message(Duration::from_secs(10)).await.expect("a walletUpdates event");
        if msg["payload"]["data"]["walletUpdates"]["status"] == "COMPLETED" {
            break;
        }
    }

    // A billing job pass.
    app.gql_ok(Some(&admin.token), "mutation { runBillingJob(job: RENEWALS) { processed } }", json!({})).await;

    let m = scrape(&app).await;
    // HTTP by matched route and status; unmatched paths never become labels.
    assert!(
        m.value("minispod_http_requests_total", &[("method", "POST"), ("route", "/graphql"), ("status", "200")]) >= 6.0
    );
    assert_eq!(m.value("minispod_http_requests_total", &[("route", "/webhooks/midtrans"), ("status", "200")]), 1.0);
    assert_eq!(m.value("minispod_http_requests_total", &[("route", "/webhooks/midtrans"), ("status", "401")]), 1.0);
    assert_eq!(m.value("minispod_http_requests_total", &[("route", "unmatched"), ("status", "404")]), 1.0);
    assert!(m.label_values("minispod_http_requests_total", "route").iter().all(|r| !r.contains("page-123")));
    assert!(
        m.value("minispod_http_request_duration_seconds_count", &[("method", "POST"), ("route", "/graphql")]) >= 6.0
    );
    assert!(m.get("minispod_http_request_duration_seconds_bucket", &[("route", "/graphql"), ("le", "+Inf")]).is_some());
    // GraphQL by name and type, with latency and error codes.
    let me = [("operation", "Me"), ("type", "query")];
    assert_eq!(m.value("minispod_graphql_operations_total", &[me[0], me[1], ("result", "ok")]), 1.0);
    assert_eq!(m.value("minispod_graphql_operation_duration_seconds_count", &me), 1.0);
    let login = [("operation", "Login"), ("type", "mutation")];
    assert_eq!(m.value("minispod_graphql_operations_total", &[login[0], login[1], ("result", "error")]), 1.0);
    assert_eq!(m.value("minispod_graphql_errors_total", &[login[0], login[1], ("code", "UNAUTHENTICATED")]), 1.0);
    assert_eq!(m.value("minispod_graphql_operations_total", &[("operation", "TopUp"), ("type", "mutation")]), 1.0);
    // The webhook by result, the job pass, the Midtrans call.
    assert_eq!(m.value("minispod_webhooks_total", &[("provider", "midtrans"), ("result", "applied")]), 1.0);
    assert_eq!(m.value("minispod_webhooks_total", &[("provider", "midtrans"), ("result", "invalid_signature")]), 1.0);
    assert_eq!(m.value("minispod_job_runs_total", &[("job", "renewals"), ("result", "ok")]), 1.0);
    assert_eq!(m.value("minispod_job_duration_seconds_count", &[("job", "renewals")]), 1.0);
    assert!(m.value("minispod_job_last_success_timestamp_seconds", &[("job", "renewals")]) > 1.0e9);
    let snap = [("upstream", "midtrans"), ("operation", "snap_create")];
    assert_eq!(m.value("minispod_upstream_requests_total", &[snap[0], snap[1], ("outcome", "2xx")]), 1.0);
    assert_eq!(m.value("minispod_upstream_request_duration_seconds_count", &snap), 1.0);
    // The pool, the statements, the catalog cache.
    assert!(m.value("minispod_db_pool_max_connections", &[]) >= 1.0);
    assert!(m.get("minispod_db_pool_connections", &[("state", "in_use")]).is_some());
    assert!(m.get("minispod_db_pool_connections", &[("state", "idle")]).is_some());
    assert!(m.value("minispod_db_statements_total", &[]) > 0.0);
    assert_eq!(m.value("minispod_catalog_cache_hits_total", &[]), 1.0);
    assert_eq!(m.value("minispod_catalog_cache_misses_total", &[]), 1.0);
    assert!(m.value("minispod_catalog_cache_bytes", &[]) > 0.0);

    // The subscription and the connection end: the gauges come back down.
    ws.close().await;
    eventually("the WebSocket gauges drop to zero", || async {
        let m = scrape(&app).await;
        m.value("minispod_ws_connections", &[]) == 0.0
            && m.value("minispod_graphql_subscriptions_live", &[("operation", "Wallet")]) == 0.0
    })
    .await;
}

#[tokio::test]
async fn a_reconcile_pass_records_the_job_and_its_kubernetes_calls() {
    let fake = FakeWorkloads::start(Duration::from_millis(50)).await;
    let kubeconfig = fake.kubeconfig.clone();
    let app = TestApp::spawn_with(move |c| {
        c.kube.source = KubeSource::Kubeconfig(kubeconfig);
        c.provisioning.reconcile_interval = None;
    })
    .await;
    let admin = app.login_admin().await;
    let before = scrape(&app).await.get("minispod_job_runs_total", &[("job", "reconcile_instances")]).unwrap_or(0.0);
    app.gql_ok(Some(&admin.token), "mutation { runBillingJob(job: RECONCILE_INSTANCES) { processed } }", json!({}))
        .await;
    let m = scrape(&app).await;
    // The start-up pass may have run too; ours is one more.
    assert!(m.value("minispod_job_runs_total", &[("job", "reconcile_instances"), ("result", "ok")]) > before);
    let list = [("upstream", "kubernetes"), ("operation", "list deployments")];
    assert!(m.value("minispod_upstream_requests_total", &[list[0], list[1], ("outcome", "2xx")]) >= 1.0);
    assert!(m.value("minispod_upstream_request_duration_seconds_count", &list) >= 1.0);
    // Names and namespaces never become labels.
    let ops = m.label_values("minispod_upstream_requests_total", "operation");
    let verbs = ["list", "get", "watch", "create", "update", "patch", "delete", "deletecollection"];
    assert!(
        ops.iter()
            .all(|o| o.split_once(' ').is_some_and(|(verb, resource)| verbs.contains(&verb)
                && resource.chars().all(|c| c.is_ascii_lowercase() || c == '/'))),
        "{ops:?}"
    );
}

#[tokio::test]
async fn the_metrics_token_protects_the_endpoint() {
    const TOKEN: &str = "scrape-token-0123456789";
    let app = TestApp::spawn_with(|c| c.metrics_token = Some(SecretString::new(TOKEN))).await;
    let url = format!("{}/metrics", app.url);
    for auth in [None, Some("Bearer wrong-token-0123456789"), Some("Basic c2NyYXBlOg==")] {
        let mut req = app.http.get(&url);
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 401, "{auth:?}");
        assert_eq!(r.headers()["www-authenticate"], "Bearer");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "UNAUTHENTICATED", "{body}");
    }
    let r = app.http.get(&url).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    assert!(text.contains("# TYPE minispod_http_requests_total counter"), "{text}");
    // The refused scrapes were counted like any request.
    assert_eq!(
        Scrape::parse(&text).value("minispod_http_requests_total", &[("route", "/metrics"), ("status", "401")]),
        3.0
    );
}

#[tokio::test]
async fn request_ids_are_echoed_and_name_graphql_errors() {
    let app = TestApp::spawn().await;
    let post = |id: Option<&'static str>| {
        let mut req = app
            .http
            .post(format!("{}/graphql", app.url))
            .json(&json!({ "query": LOGIN, "variables": { "e": "nobody@example.com", "p": "wrong-password" } }));
        if let Some(id) = id {
            req = req.header("x-request-id", id);
        }
        req.send()
    };
    let r = post(Some("client-id_1.2:3")).await.unwrap();
    assert_eq!(r.headers()["x-request-id"], "client-id_1.2:3");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["errors"][0]["extensions"]["requestId"], "client-id_1.2:3", "{v}");
    assert_eq!(error_code(&v), "UNAUTHENTICATED");

    // An unusable id is replaced by a fresh one, which the errors carry too.
    for bad in [None, Some("has spaces in it"), Some("\"quoted\"")] {
        let r = post(bad).await.unwrap();
        let id = r.headers()["x-request-id"].to_str().unwrap().to_string();
        assert!(uuid::Uuid::parse_str(&id).is_ok(), "{bad:?} -> {id}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["errors"][0]["extensions"]["requestId"], id.as_str());
    }
    // Errors the engine raises (syntax) and errors over WebSocket carry it as well.
    let v = app.gql(None, "{ nope", json!({})).await;
    assert!(v["errors"][0]["extensions"]["requestId"].is_string(), "{v}");
    let mut ws = WsClient::connect_ok(&app.ws_url(), None).await;
    ws.subscribe("1", "subscription { noSuchField }", json!({})).await;
    let msg = ws.next_message(Duration::from_secs(10)).await.unwrap();
    // A validation error comes as `next` with errors (or `error`, by protocol version).
    let err = match msg["type"].as_str() {
        Some("next") => &msg["payload"]["errors"][0],
        Some("error") => &msg["payload"][0],
        _ => panic!("unexpected {msg}"),
    };
    assert!(uuid::Uuid::parse_str(err["extensions"]["requestId"].as_str().unwrap()).is_ok(), "{msg}");
}

/// JSON log lines written while the guard lives, by the subscriber the binary installs
/// (`MINISPOD_LOG_FORMAT=json`, default filter), on this test's thread.
#[derive(Clone, Default)]
pub(crate) struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    pub(crate) fn start(&self) -> tracing::subscriber::DefaultGuard {
        use minispod_gateway::telemetry::logging;
        use tracing_subscriber::layer::SubscriberExt as _;
        let writer = self.clone();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_subscriber::EnvFilter::new(logging::DEFAULT_FILTER))
            .with(logging::fmt_layer(true, false, move || writer.clone()));
        let guard = tracing::subscriber::set_default(subscriber);
        // Other tests' threads have no subscriber; callsites they hit first may have cached
        // "never interested". Recompute, so this thread's subscriber sees every event.
        tracing::callsite::rebuild_interest_cache();
        guard
    }

    pub(crate) fn lines(&self) -> Vec<Value> {
        let bytes = self.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }

    /// Lines logged inside the request with this id.
    fn of_request(&self, id: &str) -> Vec<Value> {
        self.lines()
            .into_iter()
            .filter(|l| l["spans"].as_array().is_some_and(|s| s.iter().any(|s| s["request_id"] == id)))
            .collect()
    }
}

#[tokio::test]
async fn a_wrong_password_is_one_info_line_and_an_internal_error_is_error() {
    let app = TestApp::spawn().await;
    let user = app.register("Budi").await;
    let logs = Captured::default();
    let guard = logs.start();
    let v: Value = app
        .http
        .post(format!("{}/graphql", app.url))
        .header("x-request-id", "wrong-password-1")
        .json(&json!({ "query": LOGIN, "variables": { "e": user.email, "p": "wrong-password" } }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(error_code(&v), "UNAUTHENTICATED");
    let lines = logs.of_request("wrong-password-1");
    let errors: Vec<_> = logs.lines().into_iter().filter(|l| l["level"] == "ERROR").collect();
    assert!(errors.is_empty(), "a client's mistake is no ERROR: {errors:#?}");
    let visible: Vec<_> = lines.iter().filter(|l| l["level"] == "INFO" || l["level"] == "WARN").collect();
    assert_eq!(visible.len(), 1, "{lines:#?}");
    assert_eq!(visible[0]["level"], "INFO");
    assert_eq!(visible[0]["fields"]["code"], "UNAUTHENTICATED");
    let graphql =
        visible[0]["spans"].as_array().unwrap().iter().find(|s| s["name"] == "graphql").expect("graphql span");
    assert_eq!((graphql["operation"].as_str(), graphql["operation_type"].as_str()), (Some("Login"), Some("mutation")));

    // Break the catalog table: the query fails inside, which an operator must see.
    use sea_orm::ConnectionTrait;
    app.state
        .db
        .conn
        .execute_unprepared("ALTER TABLE service_categories RENAME TO service_categories_gone")
        .await
        .unwrap();
    let v: Value = app
        .http
        .post(format!("{}/graphql", app.url))
        .header("x-request-id", "internal-1")
        .json(&json!({ "query": "{ categories { slug } }" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    drop(guard);
    assert_eq!(error_code(&v), "INTERNAL");
    assert_eq!(v["errors"][0]["extensions"]["requestId"], "internal-1");
    let lines = logs.of_request("internal-1");
    let errors: Vec<_> = lines.iter().filter(|l| l["level"] == "ERROR").collect();
    assert_eq!(errors.len(), 1, "{lines:#?}");
    assert_eq!(errors[0]["fields"]["code"], "INTERNAL");
    assert!(errors[0]["fields"]["error"].as_str().unwrap().contains("service_categories"), "{:#}", errors[0]);
    assert!(v.to_string().find("service_categories").is_none(), "the cause is not sent: {v}");
}
