//! Issue 9, item 1: a fragment bomb is refused before validation expands it, on every transport.
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{TestApp, error_code, ws::WsClient};

/// Fragment i spreads fragment i+1 twice: 2^n fields from about 1 KB of text.
fn bomb(operation: &str, on: &str, n: usize) -> String {
    let mut q = format!("{operation} {{ ...F0 }}\n");
    for i in 0..n {
        q.push_str(&format!("fragment F{i} on {on} {{ ...F{next} ...F{next} }}\n", next = i + 1));
    }
    q.push_str(&format!("fragment F{n} on {on} {{ __typename }}\n"));
    q
}

/// Generous for a debug build on a busy machine; without the limit the bomb takes far longer.
const QUICK: Duration = Duration::from_secs(3);

fn assert_refused(v: &Value, elapsed: Duration) {
    assert_eq!(error_code(v), "BAD_USER_INPUT", "{v}");
    let errors = v["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "one error, not one per expansion: {}", errors.len());
    assert!(errors[0]["message"].as_str().unwrap().contains("expands to 8388608 fields"), "{v}");
    assert!(elapsed < QUICK, "refused in {elapsed:?}");
}

#[tokio::test]
async fn a_fragment_bomb_is_refused_quickly_over_post_and_get() {
    let app = TestApp::spawn().await;
    // A client timeout: without the limit the test fails instead of eating the machine.
    let http = reqwest::Client::builder().timeout(Duration::from_secs(20)).build().unwrap();
    let query = bomb("query", "QueryRoot", 23);
    assert!(query.len() < 1600, "{} bytes", query.len());

    let started = Instant::now();
    let v: Value = http
        .post(format!("{}/graphql", app.url))
        .json(&json!({ "query": query }))
        .send()
        .await
        .expect("POST answered in time")
        .json()
        .await
        .unwrap();
    assert_refused(&v, started.elapsed());

    let started = Instant::now();
    let url = reqwest::Url::parse_with_params(&format!("{}/graphql", app.url), [("query", query.as_str())]).unwrap();
    let v: Value = http.get(url).send().await.expect("GET answered in time").json().await.unwrap();
    assert_refused(&v, started.elapsed());

    // The limit is configurable, and a legitimate document with shared fragments passes.
    let legit = r#"
        query {
          categories { ...Category services { ...Service } }
          services(first: 5) { edges { node { ...Service category { ...Category } } } }
        }
        fragment Category on ServiceCategory { name slug }
        fragment Service on Service { name slug tags plans { ...Plan } }
        fragment Plan on ServicePlan { id name planType monthlyPrice cpuMilli memoryMb storageGb features }
    "#;
    let data = app.gql_ok(None, legit, json!({})).await;
    assert!(data["categories"].is_array(), "{data}");
    let strict = TestApp::spawn_with(|c| c.graphql.max_expanded_fields = 20).await;
    let v = strict.gql(None, legit, json!({})).await;
    assert_eq!(error_code(&v), "BAD_USER_INPUT", "{v}");
    assert!(v["errors"][0]["message"].as_str().unwrap().contains("at most 20"), "{v}");
}

#[tokio::test]
async fn a_fragment_bomb_over_websocket_answers_one_error() {
    let app = TestApp::spawn().await;
    let mut ws = WsClient::connect_ok(&app.ws_url(), None).await;
    for (id, operation, on) in [("1", "subscription", "SubscriptionRoot"), ("2", "query", "QueryRoot")] {
        let started = Instant::now();
        ws.subscribe(id, &bomb(operation, on, 23), json!({})).await;
        let msg = ws.next_message(Duration::from_secs(20)).await.expect("an answer in time");
        let elapsed = started.elapsed();
        assert_eq!((msg["id"].as_str(), msg["type"].as_str()), (Some(id), Some("next")), "{msg}");
        assert!(msg["payload"]["data"].is_null(), "{msg}");
        assert_refused(&msg["payload"], elapsed);
        // One error answer, then the operation completes.
        let done = ws.next_message(Duration::from_secs(10)).await.expect("complete");
        assert_eq!((done["id"].as_str(), done["type"].as_str()), (Some(id), Some("complete")), "{done}");
    }
    // The connection still works.
    ws.subscribe("3", "{ __typename }", json!({})).await;
    let msg = ws.next_message(Duration::from_secs(10)).await.unwrap();
    assert_eq!((msg["id"].as_str(), msg["type"].as_str()), (Some("3"), Some("next")), "{msg}");
    assert_eq!(msg["payload"]["data"]["__typename"], "QueryRoot");
    ws.close().await;
}

#[tokio::test]
async fn a_bracket_flood_over_websocket_never_reaches_the_parser() {
    let app = TestApp::spawn().await;
    let mut ws = WsClient::connect_ok(&app.ws_url(), None).await;
    ws.subscribe("1", &format!("subscription {}", "{".repeat(500_000)), json!({})).await;
    let msg = ws.next_message(Duration::from_secs(20)).await.expect("an answer");
    assert_eq!(msg["id"], "1", "{msg}");
    let errors = if msg["type"] == "error" { &msg["payload"] } else { &msg["payload"]["errors"] };
    assert!(errors[0]["message"].as_str().unwrap().contains("nested too deep"), "{msg}");
    // The gateway is still up.
    assert_eq!(app.gql_ok(None, "{ __typename }", json!({})).await["__typename"], "QueryRoot");
}
