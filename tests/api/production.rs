//! MINISPOD_ENV=production, end to end: the gateway runs on a configuration parsed from
//! variables exactly as the binary would read them.
use std::collections::HashMap;

use minispod_gateway::config::Config;
use serde_json::json;

use crate::support::{
    ADMIN_EMAIL, ADMIN_PASSWORD, JWT_SECRET, TestApp,
    fake_midtrans::{FakeMidtrans, SERVER_KEY, notification},
};

/// A production configuration for a test: loopback, the test database, the fake Midtrans, no
/// cluster and no background jobs, plus `extra`.
fn production(database_url: &str, fake: &FakeMidtrans, extra: &[(&str, &str)]) -> Config {
    let mut vars: HashMap<String, String> = [
        ("MINISPOD_ENV", "production"),
        ("MINISPOD_LISTEN", "127.0.0.1:0"),
        ("DATABASE_URL", database_url),
        ("JWT_SECRET", JWT_SECRET),
        ("MINISPOD_ADMIN_EMAIL", ADMIN_EMAIL),
        ("MINISPOD_ADMIN_PASSWORD", ADMIN_PASSWORD),
        ("MINISPOD_KUBE", "off"),
        ("MINISPOD_PAYMENT_RECONCILE_SECS", "0"),
        ("MINISPOD_BILLING_INTERVAL_SECS", "0"),
        ("MIDTRANS_SERVER_KEY", SERVER_KEY),
        ("MIDTRANS_SNAP_URL", &format!("{}/snap/v1", fake.url)),
        ("MIDTRANS_API_URL", &fake.url),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    vars.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    Config::from_lookup(|k| vars.get(k).cloned()).unwrap()
}

async fn spawn(extra: &'static [(&'static str, &'static str)]) -> (TestApp, FakeMidtrans) {
    let fake = FakeMidtrans::start().await;
    let f = fake.clone();
    let app = TestApp::spawn_with(move |c| *c = production(&c.database_url, &f, extra)).await;
    (app, fake)
}

const INTROSPECT: &str = "{ __schema { queryType { name } } }";

#[tokio::test]
async fn production_refuses_introspection_and_seeds_no_demo_data() {
    let (app, _) = spawn(&[]).await;
    // async-graphql answers disabled introspection with nulls: nothing of the schema leaks.
    let v = app.gql(None, INTROSPECT, json!({})).await;
    assert_eq!(v["data"], json!({ "__schema": null }), "{v}");
    let v = app.gql(None, "{ __type(name: \"QueryRoot\") { name } }", json!({})).await;
    assert_eq!(v["data"], json!({ "__type": null }), "{v}");
    assert_eq!(app.gql_ok(None, "{ __typename }", json!({})).await["__typename"], "QueryRoot");
    let admin = app.login_admin().await;
    let cats = app.gql_ok(Some(&admin.token), "{ categories { id } }", json!({})).await;
    assert_eq!(cats["categories"], json!([]), "no demo catalog");
}

#[tokio::test]
async fn production_allows_introspection_when_asked_for() {
    let (app, _) = spawn(&[("MINISPOD_INTROSPECTION", "true")]).await;
    let v = app.gql_ok(None, INTROSPECT, json!({})).await;
    assert_eq!(v["__schema"]["queryType"]["name"], "QueryRoot");
}

#[tokio::test]
async fn production_confirms_notifications_with_the_status_api() {
    let (app, fake) = spawn(&[]).await;
    let user = app.register("Budi").await;
    let v = app
        .gql_ok(Some(&user.token), "mutation { createTopUp(amount: 25000) { transaction { id status } } }", json!({}))
        .await;
    let id = v["createTopUp"]["transaction"]["id"].clone();
    let snap = fake.requests().into_iter().find(|r| r.path == "/snap/v1/transactions").unwrap();
    let order = snap.body["transaction_details"]["order_id"].as_str().unwrap().to_string();
    // The signed body claims settlement; Midtrans says it is still pending: not credited.
    fake.set_status(&order, 25_000, "pending", None);
    assert_eq!(app.notify(&notification(&order, 25_000, "settlement", None)).await, 200);
    let q = "query($id: ID!) { transaction(id: $id) { status } }";
    assert_eq!(app.gql_ok(Some(&user.token), q, json!({ "id": id })).await["transaction"]["status"], "PENDING");
    assert!(fake.requests().iter().any(|r| r.path == format!("/v2/{order}/status")));
}

#[test]
fn the_binary_refuses_to_start_in_production_without_a_jwt_secret() {
    use std::{
        io::Read,
        process::Stdio,
        time::{Duration, Instant},
    };
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_minispod"))
        .arg("serve")
        .current_dir(std::env::temp_dir()) // no .env there to fill the gap
        .env_clear()
        .env("MINISPOD_ENV", "production")
        .env("DATABASE_URL", "sqlite::memory:")
        .env("MINISPOD_LISTEN", "127.0.0.1:0")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A gateway that starts anyway would serve forever: wait with a deadline, then stop it.
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert_eq!(status.and_then(|s| s.code()), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("JWT_SECRET") && err.contains("production"), "{err}");
}
