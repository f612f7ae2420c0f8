use std::time::Duration;

use serde_json::json;

use crate::support::{
    TestApp, error_code,
    ws::{Init, WsClient},
};

#[tokio::test]
async fn health_ready_and_graphiql() {
    let app = TestApp::spawn().await;
    let r = app.http.get(format!("{}/healthz", app.url)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = app.http.get(format!("{}/readyz", app.url)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<serde_json::Value>().await.unwrap()["database"], "ok");
    let page = app.http.get(format!("{}/graphiql", app.url)).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("graphiql"), "GraphiQL page served");
    // Served from the binary (tests/api/graphiql.rs checks the headers, tests/browser the page).
    assert!(page.contains("graphiql/assets/bootstrap."), "GraphiQL page served from the binary");
    let root = app.http.get(format!("{}/", app.url)).send().await.unwrap();
    assert!(root.text().await.unwrap().contains("graphiql"), "GET / reaches GraphiQL");
    let m = app.http.get(format!("{}/metrics", app.url)).send().await.unwrap().text().await.unwrap();
    assert!(m.contains("# TYPE minispod_db_statements_total counter"), "{m}");
    let r = app.http.get(format!("{}/nope", app.url)).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert!(r.headers().get("x-request-id").is_some());
}

#[tokio::test]
async fn get_runs_queries_but_not_mutations() {
    let app = TestApp::spawn().await;
    let get = |query: &'static str| {
        let url = format!("{}/graphql?query={query}", app.url);
        let http = app.http.clone();
        async move { http.get(url).send().await.unwrap().json::<serde_json::Value>().await.unwrap() }
    };
    assert_eq!(get("%7B%20__typename%20%7D").await["data"]["__typename"], "QueryRoot");
    assert_eq!(error_code(&get("mutation%20%7B%20logoutAll%20%7D").await), "BAD_USER_INPUT");
}

#[tokio::test]
async fn oversized_deep_and_alias_heavy_requests_are_refused() {
    let app = TestApp::spawn().await;
    let big = format!("{{ __typename }} # {}", "x".repeat(2 * 1024 * 1024));
    let r = app.http.post(format!("{}/graphql", app.url)).json(&json!({ "query": big })).send().await.unwrap();
    assert_eq!(r.status(), 413);

    let mut deep = String::from("{ me ");
    for _ in 0..40 {
        deep.push_str("{ me ");
    }
    deep.push_str(&"}".repeat(41));
    let v = app.gql(None, &deep, json!({})).await;
    assert!(v["errors"].as_array().is_some_and(|e| !e.is_empty()), "{v}");
    assert_eq!(error_code(&v), "BAD_USER_INPUT");

    let depth40 =
        format!("{{ __schema {{ types {}{}}}}}", "{ fields { type { ofType ".repeat(10), "name } } } } ".repeat(10));
    let v = app.gql(None, &depth40, json!({})).await;
    assert_eq!(error_code(&v), "BAD_USER_INPUT", "{v}");

    // A body of nothing but brackets never reaches the (recursive) parser.
    let v = app.gql(None, &"{".repeat(500_000), json!({})).await;
    assert_eq!(error_code(&v), "BAD_USER_INPUT");
    assert!(v["errors"][0]["message"].as_str().unwrap().contains("nested too deep"), "{v}");

    let aliases: String = (0..500).map(|i| format!("a{i}: __typename ")).collect();
    let v = app.gql(None, &format!("{{ {aliases} }}"), json!({})).await;
    assert_eq!(error_code(&v), "BAD_USER_INPUT");
    assert!(v["errors"][0]["message"].as_str().unwrap().contains("aliases"), "{v}");

    // The server is unharmed.
    assert_eq!(app.gql_ok(None, "{ __typename }", json!({})).await["__typename"], "QueryRoot");
}

#[tokio::test]
async fn websocket_authenticates_in_connection_init() {
    let app = TestApp::spawn().await;
    let s = app.register("Budi").await;

    let mut ws = WsClient::connect_ok(&app.ws_url(), Some(&s.token)).await;
    ws.subscribe("1", "{ me { email } }", json!({})).await;
    let msg = ws.next_message(Duration::from_secs(10)).await.expect("a result");
    assert_eq!(msg["type"], "next");
    assert_eq!(msg["payload"]["data"]["me"]["email"], s.email.as_str());
    ws.close().await;

    // Anonymous connections are allowed; `me` is null.
    let mut anon = WsClient::connect_ok(&app.ws_url(), None).await;
    anon.subscribe("1", "{ me { email } }", json!({})).await;
    let msg = anon.next_message(Duration::from_secs(10)).await.unwrap();
    assert!(msg["payload"]["data"]["me"].is_null());

    // A bad token refuses the connection: 4403 Forbidden with the reason.
    match WsClient::connect(&app.ws_url(), "graphql-transport-ws", json!({ "Authorization": "Bearer forged" })).await {
        Init::Refused(code, reason) => {
            assert_eq!(code, 4403);
            assert!(reason.contains("invalid access token"), "{reason}");
        }
        Init::Acked(_) => panic!("a forged token must not be acknowledged"),
    }
    // The legacy graphql-ws subprotocol is spoken too.
    assert!(matches!(
        WsClient::connect(&app.ws_url(), "graphql-ws", json!({ "Authorization": format!("Bearer {}", s.token) })).await,
        Init::Acked(_)
    ));
}

#[tokio::test]
async fn schema_graphql_is_up_to_date() {
    let committed = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql")).unwrap_or_default();
    let current = minispod_gateway::graphql::sdl();
    assert!(committed == current, "schema.graphql is out of date: run `cargo run -- export-schema > schema.graphql`");
}

#[tokio::test]
async fn invalid_config_exits_with_code_2_naming_the_variable() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_minispod"))
        .env("MINISPOD_LISTEN", "not-an-address")
        .env_remove("DATABASE_URL")
        .current_dir(std::env::temp_dir())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("MINISPOD_LISTEN"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one clear line: {stderr}");
}

#[tokio::test]
async fn first_start_seeds_admin_and_demo_users_once() {
    let db = std::sync::Arc::new(crate::support::TestDb::create().await);
    let app = TestApp::spawn_on(db.clone(), |c| c.seed_demo = true).await;
    let admin = app.login_admin().await;
    let q = "{ users(first: 100) { totalCount } }";
    let before = app.gql_ok(Some(&admin.token), q, json!({})).await["users"]["totalCount"].as_u64().unwrap();
    assert!(before >= 4, "admin plus demo users");
    // Demo users can try paid plans: their credit is booked through the ledger.
    let budi = app.login("budi@minispod.local", "demo-password-1").await;
    let w = app.gql_ok(Some(&budi.token), "{ wallet { balance transactions { totalCount } } }", json!({})).await;
    assert_eq!(w["wallet"]["balance"], 500_000);
    assert_eq!(w["wallet"]["transactions"]["totalCount"], 1);
    let cats = app.gql_ok(None, "{ categories { slug } }", json!({})).await;
    assert_eq!(cats["categories"].as_array().unwrap().len(), 3, "demo catalog seeded");
    app.stop().await;
    let again = TestApp::spawn_on(db, |c| c.seed_demo = true).await;
    let admin = again.login_admin().await;
    let after = again.gql_ok(Some(&admin.token), q, json!({})).await["users"]["totalCount"].as_u64().unwrap();
    assert_eq!(before, after);
}
