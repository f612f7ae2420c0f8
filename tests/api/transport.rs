//! Issue 11, transport: batches, automatic persisted queries, the persisted-only mode, GraphQL
//! JSON for every refusal, token reasons, admin-only fields as partial data, CORS.
use std::time::Duration;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::support::{
    TestApp, error_code,
    ws::{Init, WsClient},
};

fn sha256(q: &str) -> String {
    hex::encode(Sha256::digest(q.as_bytes()))
}

fn apq(hash: &str) -> Value {
    json!({ "persistedQuery": { "version": 1, "sha256Hash": hash } })
}

impl TestApp {
    async fn post_raw(&self, content_type: &str, body: impl Into<reqwest::Body>) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}/graphql", self.url))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let ct = r.headers().get("content-type").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
        assert!(ct.starts_with("application/json"), "{status} answered {ct:?}");
        (status, r.json().await.unwrap())
    }

    async fn post_json(&self, token: Option<&str>, body: &Value) -> Value {
        let mut req = self.http.post(format!("{}/graphql", self.url)).json(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 200);
        r.json().await.unwrap()
    }
}

/// A GraphQL error body: `errors[0]` with a message and the code.
fn assert_error(v: &Value, code: &str) {
    assert_eq!(error_code(v), code, "{v}");
    let message = v["errors"][0]["message"].as_str().unwrap();
    assert!(!message.is_empty() && !message.contains("Error {") && !message.contains("Some("), "{message}");
}

#[tokio::test]
async fn every_transport_refusal_is_graphql_json_with_a_code() {
    let app = TestApp::spawn_with(|c| {
        c.graphql.max_body_bytes = 4096;
        c.graphql.max_batch = 3;
    })
    .await;
    let (status, v) = app.post_raw("application/json", "{ not json").await;
    assert_eq!(status, 400);
    assert_error(&v, "BAD_REQUEST");
    let (status, v) = app.post_raw("application/json", r#"{"query": 5}"#).await;
    assert_eq!(status, 400);
    assert_error(&v, "BAD_REQUEST");
    let (status, v) = app.post_raw("text/plain", r#"{"query":"{ __typename }"}"#).await;
    assert_eq!(status, 415);
    assert_error(&v, "BAD_REQUEST");
    let (status, v) =
        app.post_raw("application/json", format!(r#"{{"query":"{{ __typename }} #{}"}}"#, "x".repeat(5000))).await;
    assert_eq!(status, 413);
    assert_error(&v, "PAYLOAD_TOO_LARGE");
    let (status, v) = app.post_raw("application/json", "[]").await;
    assert_eq!(status, 400);
    assert_error(&v, "BAD_REQUEST");
    let four = json!([{ "query": "{ __typename }" }, { "query": "{ __typename }" }, { "query": "{ __typename }" }, { "query": "{ __typename }" }]);
    let (status, v) = app.post_raw("application/json", four.to_string()).await;
    assert_eq!(status, 400);
    assert_error(&v, "BAD_REQUEST");
    assert!(v["errors"][0]["message"].as_str().unwrap().contains("at most 3"), "{v}");

    // Wrong method, unknown route, GET without a query, a broken WebSocket upgrade.
    let r = app.http.put(format!("{}/graphql", app.url)).send().await.unwrap();
    assert_eq!(r.status(), 405);
    assert!(r.headers().get("allow").is_some(), "Allow kept");
    assert_error(&r.json().await.unwrap(), "METHOD_NOT_ALLOWED");
    let r = app.http.get(format!("{}/nope", app.url)).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert!(r.headers().get("x-request-id").is_some());
    assert_error(&r.json().await.unwrap(), "NOT_FOUND");
    let r = app.http.get(format!("{}/graphql", app.url)).send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert_error(&r.json().await.unwrap(), "BAD_REQUEST");
    let r = app.http.get(format!("{}/graphql?query=%7Ba%7D&variables=%7Bx", app.url)).send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert_error(&r.json().await.unwrap(), "BAD_REQUEST");
    let r = app
        .http
        .get(format!("{}/graphql", app.url))
        .header("upgrade", "websocket")
        .header("connection", "upgrade")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16() / 100, 4);
    assert!(r.json::<Value>().await.unwrap()["errors"][0]["extensions"]["code"].is_string());
    // The webhook's own limit answers in JSON too.
    let r = app.http.post(format!("{}/webhooks/midtrans", app.url)).body(vec![b'x'; 100 * 1024]).send().await.unwrap();
    assert_eq!(r.status(), 413);
    assert_error(&r.json().await.unwrap(), "PAYLOAD_TOO_LARGE");
}

#[tokio::test]
async fn a_batch_answers_each_operation_in_order_through_the_same_checks() {
    let app = TestApp::spawn().await;
    minispod_gateway::seed::seed_catalog(&app.state).await.unwrap();
    let s = app.register("Budi").await;
    let catalog = "{ categories { slug } }";
    app.gql_ok(None, catalog, json!({})).await;
    let hits = app.state.catalog_cache.stats().hits;
    let aliases: String = (0..500).map(|i| format!("a{i}: __typename ")).collect();
    let batch = json!([
        { "query": "query Me { me { email } }", "operationName": "Me" },
        { "query": format!("{{ {aliases} }}") },
        { "query": catalog },
        { "query": "mutation($n: String) { updateProfile(input: { name: $n }) { name } }", "variables": { "n": "Budi\u{0}X" } },
        { "query": "mutation { updateProfile(input: { name: \"Budi Santoso\" }) { name } }" },
        { "query": "{ nope }" },
    ]);
    let v = app.post_json(Some(&s.token), &batch).await;
    let answers = v.as_array().unwrap_or_else(|| panic!("an array: {v}"));
    assert_eq!(answers.len(), 6);
    assert_eq!(answers[0]["data"]["me"]["email"], s.email.as_str(), "authenticated like a single request");
    assert!(answers[1]["errors"][0]["message"].as_str().unwrap().contains("aliases"), "limits per operation");
    assert_eq!(answers[2]["data"]["categories"].as_array().unwrap().len(), 3);
    assert_eq!(app.state.catalog_cache.stats().hits, hits + 1, "the catalog answer came from the cache");
    assert_eq!(error_code(&answers[3]), "BAD_USER_INPUT", "control characters refused: {}", answers[3]);
    assert_eq!(answers[4]["data"]["updateProfile"]["name"], "Budi Santoso");
    assert_eq!(error_code(&answers[5]), "BAD_USER_INPUT");
}

#[tokio::test]
async fn automatic_persisted_queries_register_once_and_keep_every_limit() {
    let app = TestApp::spawn().await;
    let s = app.register("Budi").await;
    let q = "query Me { me { email } }";
    let h = sha256(q);
    // Hash alone: not found, as Apollo's link expects.
    let v = app.post_json(Some(&s.token), &json!({ "extensions": apq(&h) })).await;
    assert_eq!(v["errors"][0]["message"], "PersistedQueryNotFound");
    assert_eq!(error_code(&v), "PERSISTED_QUERY_NOT_FOUND");
    // A document that does not match its hash is refused and not stored.
    let v = app.post_json(Some(&s.token), &json!({ "query": "{ __typename }", "extensions": apq(&h) })).await;
    assert_eq!(error_code(&v), "BAD_USER_INPUT");
    assert!(v["errors"][0]["message"].as_str().unwrap().contains("does not match"), "{v}");
    // Hash + document registers it; then the hash alone runs it, over POST and GET.
    let v = app.post_json(Some(&s.token), &json!({ "query": q, "extensions": apq(&h) })).await;
    assert_eq!(v["data"]["me"]["email"], s.email.as_str());
    let v = app.post_json(Some(&s.token), &json!({ "extensions": apq(&h), "operationName": "Me" })).await;
    assert_eq!(v["data"]["me"]["email"], s.email.as_str(), "{v}");
    let ext = urlencode(&apq(&h).to_string());
    let r = app.http.get(format!("{}/graphql?extensions={ext}", app.url)).bearer_auth(&s.token).send().await.unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["data"]["me"]["email"], s.email.as_str());

    // A document over the limits is refused however it arrives, and never registered.
    let aliases: String = (0..500).map(|i| format!("a{i}: __typename ")).collect();
    let heavy = format!("{{ {aliases} }}");
    let hh = sha256(&heavy);
    let v = app.post_json(None, &json!({ "query": heavy, "extensions": apq(&hh) })).await;
    assert!(v["errors"][0]["message"].as_str().unwrap().contains("aliases"), "{v}");
    let v = app.post_json(None, &json!({ "extensions": apq(&hh) })).await;
    assert_eq!(error_code(&v), "PERSISTED_QUERY_NOT_FOUND");
    // A persisted mutation still cannot run over GET.
    let m = "mutation { logoutAll }";
    app.post_json(Some(&s.token), &json!({ "query": m, "extensions": apq(&sha256(m)) })).await;
    let ext = urlencode(&apq(&sha256(m)).to_string());
    let r = app.http.get(format!("{}/graphql?extensions={ext}", app.url)).send().await.unwrap();
    let v: Value = r.json().await.unwrap();
    assert!(v["errors"][0]["message"].as_str().unwrap().contains("GET requests may only run queries"), "{v}");
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn persisted_only_mode_runs_the_manifest_and_off_mode_declines_hashes() {
    use minispod_gateway::config::PersistedMode;
    let dir = std::env::temp_dir().join(format!("minispod-pq-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let manifest = dir.join("manifest.json");
    let body = "query Typename { __typename }";
    let login = "mutation Login($e: String!, $p: String!) { login(email: $e, password: $p) { accessToken } }";
    std::fs::write(
        &manifest,
        json!({ "format": "apollo-persisted-query-manifest", "version": 1, "operations": [
            { "id": sha256(body), "name": "Typename", "type": "query", "body": body },
            { "id": "login-v1", "name": "Login", "type": "mutation", "body": login },
        ] })
        .to_string(),
    )
    .unwrap();
    let app = TestApp::spawn_with(|c| {
        c.persisted_queries.mode = PersistedMode::Only;
        c.persisted_queries.manifest = Some(manifest.clone());
    })
    .await;
    let v = app.post_json(None, &json!({ "extensions": apq(&sha256(body)) })).await;
    assert_eq!(v["data"]["__typename"], "QueryRoot", "{v}");
    let v = app.post_json(None, &json!({ "query": "{ __typename }" })).await;
    assert_eq!(error_code(&v), "PERSISTED_QUERY_ID_REQUIRED");
    let other = "{ me { id } }";
    let v = app.post_json(None, &json!({ "query": other, "extensions": apq(&sha256(other)) })).await;
    assert_eq!(error_code(&v), "PERSISTED_QUERY_NOT_IN_LIST", "registering is not possible: {v}");
    // Over WebSocket too.
    let mut ws = WsClient::connect_ok(&app.ws_url(), None).await;
    ws.subscribe("1", "{ __typename }", json!({})).await;
    let msg = ws.next_message(Duration::from_secs(10)).await.unwrap();
    let error = if msg["type"] == "error" { &msg["payload"][0] } else { &msg["payload"]["errors"][0] };
    assert_eq!(error["extensions"]["code"], "PERSISTED_QUERY_ID_REQUIRED", "{msg}");
    // Administrators keep free-form documents (GraphiQL, scripts).
    let v = app
        .post_json(
            None,
            &json!({ "extensions": apq("login-v1"),
                     "variables": { "e": crate::support::ADMIN_EMAIL, "p": crate::support::ADMIN_PASSWORD } }),
        )
        .await;
    let token = v["data"]["login"]["accessToken"].as_str().unwrap_or_else(|| panic!("{v}"));
    let v = app.post_json(Some(token), &json!({ "query": "{ me { role } }" })).await;
    assert_eq!(v["data"]["me"]["role"], "ADMINISTRATOR", "{v}");
    std::fs::remove_dir_all(&dir).ok();

    let off = TestApp::spawn_with(|c| c.persisted_queries.mode = PersistedMode::Off).await;
    let v = off.post_json(None, &json!({ "extensions": apq(&sha256(body)) })).await;
    assert_eq!(v["errors"][0]["message"], "PersistedQueryNotSupported");
    assert_eq!(error_code(&v), "PERSISTED_QUERY_NOT_SUPPORTED");
    let v = off.post_json(None, &json!({ "query": body, "extensions": apq(&sha256(body)) })).await;
    assert_eq!(v["data"]["__typename"], "QueryRoot");
}

#[tokio::test]
async fn a_token_that_cannot_be_used_says_why_and_anonymous_me_is_null() {
    let app = TestApp::spawn().await;
    let s = app.register("Budi").await;
    let me = "{ me { email } }";
    let now = chrono::Utc::now().timestamp();
    let claims =
        json!({ "sub": s.user_id, "role": "USER", "iat": now - 7200, "exp": now - 3600, "jti": "x", "ver": 0 });
    let expired = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(crate::support::JWT_SECRET.as_bytes()),
    )
    .unwrap();
    let v = app.gql(None, me, json!({})).await;
    assert!(v.get("errors").is_none() && v["data"]["me"].is_null(), "anonymous: {v}");

    let reason = |v: &Value| v["errors"][0]["extensions"]["reason"].as_str().unwrap_or_default().to_string();
    let v = app.gql(Some(&expired), me, json!({})).await;
    assert!(v["data"].as_object().unwrap().contains_key("me") && v["data"]["me"].is_null(), "{v}");
    assert_eq!((error_code(&v), reason(&v).as_str()), ("UNAUTHENTICATED".into(), "expired"), "{v}");
    let v = app.gql(Some("not-a-jwt"), me, json!({})).await;
    assert_eq!((error_code(&v), reason(&v).as_str()), ("UNAUTHENTICATED".into(), "invalid"), "{v}");
    assert_eq!(v["errors"][0]["path"], json!(["me"]));
    // Public fields still answer beside it; signing in with a stale header still works.
    let v = app.gql(Some(&expired), "{ __typename me { email } }", json!({})).await;
    assert_eq!(v["data"]["__typename"], "QueryRoot");
    let login = "mutation($e: String!) { login(email: $e, password: \"password-123\") { accessToken } }";
    let v = app.gql(Some(&expired), login, json!({ "e": s.email })).await;
    assert!(v["data"]["login"]["accessToken"].is_string(), "{v}");

    app.gql_ok(Some(&s.token), "mutation { logoutAll }", json!({})).await;
    let v = app.gql(Some(&s.token), me, json!({})).await;
    assert_eq!((error_code(&v), reason(&v).as_str()), ("UNAUTHENTICATED".into(), "revoked"), "{v}");

    // WebSocket: a refused token closes with 4403 on both protocols, with the reason.
    for protocol in ["graphql-transport-ws", "graphql-ws"] {
        match WsClient::connect(&app.ws_url(), protocol, json!({ "Authorization": format!("Bearer {expired}") })).await
        {
            Init::Refused(code, why) => {
                assert_eq!(code, 4403, "{protocol}");
                assert!(why.contains("expired"), "{protocol}: {why}");
            }
            Init::Acked(_) => panic!("{protocol}: an expired token must not be acknowledged"),
        }
    }
    match WsClient::connect(
        &app.ws_url(),
        "graphql-transport-ws",
        json!({ "Authorization": format!("Bearer {}", s.token) }),
    )
    .await
    {
        Init::Refused(code, why) => assert!(code == 4403 && why.contains("revoked"), "{code} {why}"),
        Init::Acked(_) => panic!("a revoked token must not be acknowledged"),
    }
}

#[tokio::test]
async fn admin_only_fields_are_null_with_forbidden_beside_the_rest() {
    let app = TestApp::spawn().await;
    minispod_gateway::seed::seed_catalog(&app.state).await.unwrap();
    let s = app.register("Budi").await;
    let q = "{ services(first: 1) { nodes { name dockerImage isActive plans { name isActive } } } }";
    let v = app.gql(Some(&s.token), q, json!({})).await;
    let service = &v["data"]["services"]["nodes"][0];
    assert!(service["name"].is_string(), "the rest of the object is there: {v}");
    assert!(service["dockerImage"].is_null() && service["isActive"].is_null(), "{v}");
    let fields = service.as_object().unwrap();
    assert!(fields.contains_key("dockerImage") && fields.contains_key("isActive"), "present as null: {v}");
    assert!(service["plans"][0]["name"].is_string() && service["plans"][0]["isActive"].is_null(), "{v}");
    let errors = v["errors"].as_array().unwrap();
    assert!(errors.iter().all(|e| e["extensions"]["code"] == "FORBIDDEN"), "{v}");
    assert!(errors.iter().any(|e| e["path"] == json!(["services", "nodes", 0, "dockerImage"])), "{v}");
    let admin = app.login_admin().await;
    let v = app.gql_ok(Some(&admin.token), q, json!({})).await;
    assert!(v["services"]["nodes"][0]["dockerImage"].is_string());
}

#[tokio::test]
async fn cors_allows_the_configured_origins_with_the_headers_apollo_sends() {
    let app = TestApp::spawn_with(|c| c.cors_origins = vec!["https://app.example.com".into()]).await;
    let preflight = |origin: &'static str| {
        app.http
            .request(reqwest::Method::OPTIONS, format!("{}/graphql", app.url))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "content-type,authorization,apollographql-client-name,apollographql-client-version,apollo-require-preflight,x-apollo-operation-name",
            )
            .send()
    };
    let r = preflight("https://app.example.com").await.unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let h = r.headers();
    assert_eq!(h["access-control-allow-origin"], "https://app.example.com");
    let allowed = h["access-control-allow-headers"].to_str().unwrap().to_ascii_lowercase();
    for name in [
        "apollographql-client-name",
        "apollographql-client-version",
        "apollo-require-preflight",
        "x-apollo-operation-name",
        "authorization",
        "content-type",
    ] {
        assert!(allowed.contains(name), "{name} in {allowed}");
    }
    assert_eq!(h["access-control-max-age"], "7200");
    assert!(h.get("access-control-allow-credentials").is_none());
    let r = preflight("https://evil.example").await.unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());
    let r = app
        .http
        .post(format!("{}/graphql", app.url))
        .header("origin", "https://app.example.com")
        .json(&json!({ "query": "{ __typename }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["access-control-allow-origin"], "https://app.example.com");
    assert!(r.headers()["access-control-expose-headers"].to_str().unwrap().contains("x-request-id"));

    let any = TestApp::spawn_with(|c| c.cors_origins = vec!["*".into()]).await;
    let r = any
        .http
        .post(format!("{}/graphql", any.url))
        .header("origin", "https://anywhere.example")
        .json(&json!({ "query": "{ __typename }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["access-control-allow-origin"], "*");
}
