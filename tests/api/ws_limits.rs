//! WebSocket resources and rights: init timeout, subscription and connection caps, duplicate
//! ids, and live streams ended when the viewer's rights end (on every revocation cause, on the
//! next `subscribe`, and across replicas).
use std::time::Duration;

use minispod_gateway::{
    config::KubeSource,
    users::{Role, entity as users},
};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, sea_query::Expr};
use serde_json::{Value, json};

use crate::support::{
    Session, TestApp,
    fake_k8s::FakeCluster,
    ws::{Event, Init, WsClient},
};

const WALLET: &str = "subscription { walletUpdates { id status } }";
const POD_METRICS: &str = "subscription { podMetrics(namespace: \"shop\", intervalSeconds: 1) { timestamp } }";
/// Revocations must end streams within 5 s.
const REVOCATION_DEADLINE: Duration = Duration::from_secs(5);

fn error_code(msg: &Value) -> String {
    let err = if msg["type"] == "error" { &msg["payload"][0] } else { &msg["payload"]["errors"][0] };
    err["extensions"]["code"].as_str().unwrap_or_else(|| panic!("expected an error with a code: {msg}")).to_string()
}

/// The socket ends with an error for operation `id`, then close 4403.
async fn assert_revoked(ws: &mut WsClient, id: &str, code: &str) {
    let (close, reason, seen) = ws.until_closed(REVOCATION_DEADLINE).await;
    assert_eq!(close, 4403, "close code ({reason}); messages: {seen:?}");
    let last = seen.iter().rev().find(|m| m["id"] == id).unwrap_or_else(|| panic!("an error for {id}: {seen:?}"));
    assert_eq!(error_code(last), code, "{last}");
}

/// A signed-in socket with a live walletUpdates subscription "w".
async fn wallet_socket(app: &TestApp, s: &Session) -> WsClient {
    let mut ws = WsClient::connect_ok(&app.ws_url(), Some(&s.token)).await;
    ws.subscribe("w", WALLET, json!({})).await;
    assert!(ws.sync().await.is_empty(), "the subscription is live");
    ws
}

async fn set_active(app: &TestApp, admin: &Session, user: &Session, active: bool) {
    let q = "mutation($u: ID!, $a: Boolean!) { setUserActive(userId: $u, active: $a) { id } }";
    app.gql_ok(Some(&admin.token), q, json!({ "u": user.user_id, "a": active })).await;
}

async fn set_role(app: &TestApp, admin: &Session, user: &Session, role: &str) {
    let q = "mutation($u: ID!, $r: Role!) { setUserRole(userId: $u, role: $r) { id } }";
    app.gql_ok(Some(&admin.token), q, json!({ "u": user.user_id, "r": role })).await;
}

#[tokio::test]
async fn a_socket_that_never_inits_is_closed_with_4408() {
    let app = TestApp::spawn_with(|c| c.websocket.init_timeout = Duration::from_secs(1)).await;
    let s = app.register("Budi").await;
    let mut silent = WsClient::open(&app.ws_url(), "graphql-transport-ws").await;
    let mut legacy = WsClient::open(&app.ws_url(), "graphql-ws").await;
    let mut working = WsClient::connect_ok(&app.ws_url(), Some(&s.token)).await;
    match silent.next_event(Duration::from_secs(10)).await {
        Some(Event::Closed(code, _)) => assert_eq!(code, 4408),
        other => panic!("expected close 4408, got {other:?}"),
    }
    match legacy.next_event(Duration::from_secs(10)).await {
        Some(Event::Closed(code, _)) => assert_eq!(code, 4408),
        other => panic!("expected close 4408, got {other:?}"),
    }
    // The timeout has passed for the initialised socket too, and it still works.
    working.sync().await;
}

#[tokio::test]
async fn subscriptions_per_connection_are_capped() {
    let app = TestApp::spawn_with(|c| c.websocket.max_subscriptions = 3).await;
    let s = app.register("Budi").await;
    let mut ws = WsClient::connect_ok(&app.ws_url(), Some(&s.token)).await;
    for id in ["a", "b", "c", "d"] {
        ws.subscribe(id, WALLET, json!({})).await;
    }
    let seen = ws.sync().await;
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!((seen[0]["id"].as_str(), error_code(&seen[0]).as_str()), (Some("d"), "RATE_LIMITED"));
    // The connection stays, and a completed operation frees its place.
    ws.complete("a").await;
    ws.subscribe("e", WALLET, json!({})).await;
    let seen = ws.sync().await;
    assert!(seen.iter().all(|m| m["type"] == "complete" && m["id"] == "a"), "e is accepted: {seen:?}");
    ws.subscribe("f", WALLET, json!({})).await;
    let seen = ws.sync().await;
    assert_eq!((seen[0]["id"].as_str(), error_code(&seen[0]).as_str()), (Some("f"), "RATE_LIMITED"));

    // The legacy protocol has the same cap.
    let payload = json!({ "Authorization": format!("Bearer {}", s.token) });
    let Init::Acked(mut legacy) = WsClient::connect(&app.ws_url(), "graphql-ws", payload).await else {
        panic!("legacy connection refused");
    };
    for id in ["1", "2", "3", "4"] {
        legacy.send_json(json!({ "id": id, "type": "start", "payload": { "query": WALLET } })).await;
    }
    let m = legacy.next_message(Duration::from_secs(5)).await.expect("an error for the fourth");
    assert_eq!((m["type"].as_str(), m["id"].as_str()), (Some("error"), Some("4")), "{m}");
}

#[tokio::test]
async fn a_duplicate_subscription_id_closes_with_4409() {
    let app = TestApp::spawn().await;
    let s = app.register("Budi").await;
    let mut ws = wallet_socket(&app, &s).await;
    ws.subscribe("w", WALLET, json!({})).await;
    let (code, reason, _) = ws.until_closed(Duration::from_secs(5)).await;
    assert_eq!((code, reason.as_str()), (4409, "Subscriber for w already exists"));

    // An id is free again once its operation completed.
    let mut ws = wallet_socket(&app, &s).await;
    ws.complete("w").await;
    ws.subscribe("w", WALLET, json!({})).await;
    let seen = ws.sync().await;
    assert!(seen.iter().all(|m| m["type"] == "complete"), "w is accepted again: {seen:?}");
}

#[tokio::test]
async fn connections_per_user_are_capped() {
    let app = TestApp::spawn_with(|c| c.websocket.max_connections_per_user = 2).await;
    let s = app.register("Budi").await;
    let other = app.register("Siti").await;
    let first = WsClient::connect_ok(&app.ws_url(), Some(&s.token)).await;
    let _second = WsClient::connect_ok(&app.ws_url(), Some(&s.token)).await;
    let payload = json!({ "Authorization": format!("Bearer {}", s.token) });
    match WsClient::connect(&app.ws_url(), "graphql-transport-ws", payload.clone()).await {
        Init::Refused(_, reason) => assert!(reason.contains("at most 2 connections"), "{reason}"),
        Init::Acked(_) => panic!("a third connection was accepted"),
    }
    // Other users are not affected; a closed connection frees its place.
    let _theirs = WsClient::connect_ok(&app.ws_url(), Some(&other.token)).await;
    first.close().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        if let Init::Acked(_) = WsClient::connect(&app.ws_url(), "graphql-transport-ws", payload.clone()).await {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the closed connection's place was never freed");
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn deactivation_ends_live_streams() {
    let app = TestApp::spawn().await;
    let admin = app.login_admin().await;
    let s = app.register("Budi").await;
    let mut ws = wallet_socket(&app, &s).await;
    set_active(&app, &admin, &s, false).await;
    assert_revoked(&mut ws, "w", "UNAUTHENTICATED").await;
}

#[tokio::test]
async fn the_legacy_protocol_is_ended_too() {
    let app = TestApp::spawn().await;
    let admin = app.login_admin().await;
    let s = app.register("Budi").await;
    let payload = json!({ "Authorization": format!("Bearer {}", s.token) });
    let Init::Acked(mut ws) = WsClient::connect(&app.ws_url(), "graphql-ws", payload).await else {
        panic!("legacy connection refused");
    };
    ws.send_json(json!({ "id": "w", "type": "start", "payload": { "query": WALLET } })).await;
    // The legacy protocol has no ping: a query answered means the start before it was handled.
    ws.send_json(json!({ "id": "q", "type": "start", "payload": { "query": "{ __typename }" } })).await;
    let m = ws.next_message(Duration::from_secs(5)).await.unwrap();
    assert_eq!((m["type"].as_str(), m["id"].as_str()), (Some("data"), Some("q")), "{m}");
    set_active(&app, &admin, &s, false).await;
    let (code, _, seen) = ws.until_closed(REVOCATION_DEADLINE).await;
    assert_eq!(code, 4403, "{seen:?}");
    let last = seen.iter().rev().find(|m| m["id"] == "w").unwrap_or_else(|| panic!("an error for w: {seen:?}"));
    assert_eq!((last["type"].as_str(), error_code(last).as_str()), (Some("data"), "UNAUTHENTICATED"));
}

#[tokio::test]
async fn logout_all_ends_live_streams() {
    let app = TestApp::spawn().await;
    let s = app.register("Budi").await;
    let mut ws = wallet_socket(&app, &s).await;
    app.gql_ok(Some(&s.token), "mutation { logoutAll }", json!({})).await;
    assert_revoked(&mut ws, "w", "UNAUTHENTICATED").await;
}

#[tokio::test]
async fn a_password_change_ends_live_streams() {
    let app = TestApp::spawn().await;
    let s = app.register("Budi").await;
    let mut ws = wallet_socket(&app, &s).await;
    let q = "mutation { changePassword(currentPassword: \"password-123\", newPassword: \"password-456\") }";
    app.gql_ok(Some(&s.token), q, json!({})).await;
    assert_revoked(&mut ws, "w", "UNAUTHENTICATED").await;
}

#[tokio::test]
async fn token_expiry_ends_live_streams() {
    let app = TestApp::spawn().await;
    let s = app.register("Budi").await;
    let mut ws = wallet_socket(&app, &s).await;
    let ttl = chrono::Duration::from_std(app.state.config.access_token_ttl).unwrap();
    app.clock.advance(ttl + chrono::Duration::seconds(1));
    assert_revoked(&mut ws, "w", "UNAUTHENTICATED").await;
}

async fn spawn_with_cluster(fake: &FakeCluster) -> TestApp {
    let path = fake.kubeconfig.clone();
    TestApp::spawn_with(move |c| c.kube.source = KubeSource::Kubeconfig(path)).await
}

/// A second administrator with a live podMetrics subscription "m".
async fn metrics_admin(app: &TestApp, admin: &Session) -> (Session, WsClient) {
    let s = app.register("Rina").await;
    set_role(app, admin, &s, "ADMINISTRATOR").await;
    let mut ws = WsClient::connect_ok(&app.ws_url(), Some(&s.token)).await;
    ws.subscribe("m", POD_METRICS, json!({})).await;
    let sample = ws.next_message(Duration::from_secs(10)).await.expect("a sample");
    assert!(sample["payload"]["data"]["podMetrics"]["timestamp"].is_string(), "{sample}");
    (s, ws)
}

#[tokio::test]
async fn a_demoted_admins_metrics_stream_is_ended() {
    let fake = FakeCluster::start().await;
    let app = spawn_with_cluster(&fake).await;
    let admin = app.login_admin().await;
    let (s, mut ws) = metrics_admin(&app, &admin).await;
    set_role(&app, &admin, &s, "USER").await;
    assert_revoked(&mut ws, "m", "FORBIDDEN").await;
    // A new connection with the same token is a user's: podMetrics and podLogs are refused.
    let mut again = WsClient::connect_ok(&app.ws_url(), Some(&s.token)).await;
    again.subscribe("m", POD_METRICS, json!({})).await;
    assert_eq!(error_code(&again.next_message(Duration::from_secs(5)).await.unwrap()), "FORBIDDEN");
}

/// Rights that changed without an announcement reaching the connection (e.g. a lost NOTIFY)
/// are still caught by the `subscribe` check.
#[tokio::test]
async fn every_subscribe_rechecks_the_viewer() {
    let fake = FakeCluster::start().await;
    let app = spawn_with_cluster(&fake).await;
    let admin = app.login_admin().await;
    let (s, mut ws) = metrics_admin(&app, &admin).await;
    let id: i64 = s.user_id.parse().unwrap();
    users::Entity::update_many()
        .col_expr(users::Column::Role, Expr::value(Role::User))
        .filter(users::Column::Id.eq(id))
        .exec(&app.state.db.conn)
        .await
        .unwrap();
    ws.subscribe("l", "subscription { podLogs(namespace: \"shop\", pod: \"web-7d9f8c-1\") }", json!({})).await;
    assert_revoked(&mut ws, "l", "FORBIDDEN").await;

    // Same for a revoked token version (logout elsewhere whose announcement was lost).
    let u = app.register("Budi").await;
    let mut ws = wallet_socket(&app, &u).await;
    minispod_gateway::users::service::bump_token_version(&app.state.db.conn, u.user_id.parse().unwrap()).await.unwrap();
    ws.subscribe("x", WALLET, json!({})).await;
    assert_revoked(&mut ws, "x", "UNAUTHENTICATED").await;
}

mod needs_postgres {
    use super::*;

    #[tokio::test]
    #[ignore = "needs PostgreSQL (two replicas share one database); .ci/run runs it on PostgreSQL"]
    async fn a_deactivation_on_one_replica_closes_a_socket_on_another() {
        let a = TestApp::spawn().await;
        assert!(a.db.is_postgres(), "a second replica needs PostgreSQL (TEST_DATABASE_URL)");
        let b = TestApp::spawn_on(a.db.clone(), |_| {}).await;
        let admin = a.login_admin().await;
        let s = a.register("Budi").await;
        let mut ws = wallet_socket(&b, &s).await;
        set_active(&a, &admin, &s, false).await;
        assert_revoked(&mut ws, "w", "UNAUTHENTICATED").await;
    }
}
