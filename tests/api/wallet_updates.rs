//! walletUpdates over graphql-transport-ws: the owner sees the settled top-up; on PostgreSQL
//! also when the webhook is handled by another gateway replica (`needs_postgres`: ignored on
//! SQLite, run by .ci/run's PostgreSQL pass).
use std::time::Duration;

use serde_json::json;

use crate::{
    helpers::subscribed,
    support::{
        TestApp,
        fake_midtrans::{FakeMidtrans, notification},
        ws::WsClient,
    },
};

const SUB: &str = "subscription { walletUpdates { id type status amount balanceAfter } }";
const CREATE: &str = "mutation($a: Int!) { createTopUp(amount: $a) { transaction { id } } }";

async fn order_of(fake: &FakeMidtrans) -> String {
    let r = fake.requests().into_iter().rev().find(|r| r.path == "/snap/v1/transactions").unwrap();
    r.body["transaction_details"]["order_id"].as_str().unwrap().to_string()
}

/// Reads messages until one shows `status` (the PENDING creation event may come first).
async fn until_status(ws: &mut WsClient, status: &str) -> serde_json::Value {
    loop {
        let m = ws.next_message(Duration::from_secs(10)).await.expect("a walletUpdates event");
        assert_eq!(m["type"], "next", "{m}");
        let t = m["payload"]["data"]["walletUpdates"].clone();
        if t["status"] == status {
            return t;
        }
    }
}

#[tokio::test]
async fn the_owner_is_pushed_the_settled_top_up() {
    let fake = FakeMidtrans::start().await;
    let f = fake.clone();
    let app = TestApp::spawn_with(move |c| f.configure(c)).await;
    let s = app.register("Budi").await;
    let other = app.register("Siti").await;
    let mut ws = WsClient::connect_ok(&app.ws_url(), Some(&s.token)).await;
    ws.subscribe("1", SUB, json!({})).await;
    let mut ws_other = WsClient::connect_ok(&app.ws_url(), Some(&other.token)).await;
    ws_other.subscribe("1", SUB, json!({})).await;
    subscribed(&app, 2).await;

    let v = app.gql_ok(Some(&s.token), CREATE, json!({ "a": 80_000 })).await;
    let id = v["createTopUp"]["transaction"]["id"].as_str().unwrap().to_string();
    let order = order_of(&fake).await;
    assert_eq!(app.notify(&notification(&order, 80_000, "settlement", None)).await, 200);
    let t = until_status(&mut ws, "COMPLETED").await;
    assert_eq!(t["id"], id.as_str());
    assert_eq!(t["balanceAfter"], 80_000);
    // Others see nothing: the first event Siti's socket delivers is her own, later one.
    let admin = app.login_admin().await;
    let adjust = "mutation($u: ID!) { adjustCredit(userId: $u, amount: 5000, reason: \"gift\") { id } }";
    app.gql_ok(Some(&admin.token), adjust, json!({ "u": other.user_id })).await;
    let m = ws_other.next_message(Duration::from_secs(10)).await.expect("Siti's own event");
    let t = &m["payload"]["data"]["walletUpdates"];
    assert_eq!((t["type"].as_str(), t["amount"].as_i64()), (Some("ADMIN_ADJUSTMENT"), Some(5_000)), "{m}");

    // Anonymous connections cannot subscribe.
    let mut anon = WsClient::connect_ok(&app.ws_url(), None).await;
    anon.subscribe("1", SUB, json!({})).await;
    let m = anon.next_message(Duration::from_secs(5)).await.unwrap();
    let errors = if m["type"] == "error" { m["payload"].clone() } else { m["payload"]["errors"].clone() };
    assert_eq!(errors[0]["extensions"]["code"], "UNAUTHENTICATED", "{m}");
}

mod needs_postgres {
    use super::*;

    #[tokio::test]
    #[ignore = "needs PostgreSQL (two replicas share one database); .ci/run runs it on PostgreSQL"]
    async fn a_webhook_on_one_replica_reaches_a_subscriber_on_another() {
        let fake = FakeMidtrans::start().await;
        let f = fake.clone();
        let a = TestApp::spawn_with(move |c| f.configure(c)).await;
        assert!(a.db.is_postgres(), "cross-replica walletUpdates needs PostgreSQL (TEST_DATABASE_URL)");
        let f = fake.clone();
        let b = TestApp::spawn_on(a.db.clone(), move |c| f.configure(c)).await;
        let s = a.register("Budi").await;
        let mut ws = WsClient::connect_ok(&b.ws_url(), Some(&s.token)).await;
        ws.subscribe("1", SUB, json!({})).await;
        subscribed(&b, 1).await;

        let v = a.gql_ok(Some(&s.token), CREATE, json!({ "a": 90_000 })).await;
        let id = v["createTopUp"]["transaction"]["id"].as_str().unwrap().to_string();
        let order = order_of(&fake).await;
        assert_eq!(a.notify(&notification(&order, 90_000, "settlement", None)).await, 200);
        let t = until_status(&mut ws, "COMPLETED").await;
        assert_eq!(t["id"], id.as_str());
        assert_eq!(t["amount"], 90_000);
    }
}
