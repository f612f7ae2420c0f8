//! Midtrans top-ups end to end: Snap creation, the webhook (signature, amount, mapping,
//! exactly-once, ordering, reversal), sync, cancel and the reconciler, against a fake Midtrans.
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{
    Session, TestApp, error_code,
    fake_midtrans::{FakeMidtrans, SERVER_KEY, SnapMode, notification},
};

const CREATE: &str = "mutation($a: Int!, $m: PaymentMethod) { createTopUp(amount: $a, paymentMethod: $m) { snapToken redirectUrl expiresAt transaction { id reference type status amount balanceBefore balanceAfter paymentMethod } } }";
const WALLET: &str = "{ wallet { balance totalTopUp totalSpent transactions(first: 100) { totalCount edges { node { id type status amount balanceBefore balanceAfter } } } } }";
const TX: &str = "query($id: ID!) { transaction(id: $id) { id status amount balanceBefore balanceAfter completedAt } }";

async fn setup() -> (TestApp, FakeMidtrans, Session) {
    let fake = FakeMidtrans::start().await;
    let f = fake.clone();
    let app = TestApp::spawn_with(move |c| f.configure(c)).await;
    let user = app.register("Budi").await;
    (app, fake, user)
}

/// Creates a top-up; returns (transaction id, Midtrans order id).
async fn top_up(app: &TestApp, fake: &FakeMidtrans, s: &Session, amount: i64) -> (String, String) {
    let v = app.gql_ok(Some(&s.token), CREATE, json!({ "a": amount, "m": "BANK_TRANSFER" })).await;
    let id = v["createTopUp"]["transaction"]["id"].as_str().unwrap().to_string();
    let snap = fake.requests().into_iter().rev().find(|r| r.path == "/snap/v1/transactions").unwrap();
    let order = snap.body["transaction_details"]["order_id"].as_str().unwrap().to_string();
    (id, order)
}

async fn wallet(app: &TestApp, s: &Session) -> Value {
    app.gql_ok(Some(&s.token), WALLET, json!({})).await["wallet"].clone()
}

async fn tx(app: &TestApp, s: &Session, id: &str) -> Value {
    app.gql_ok(Some(&s.token), TX, json!({ "id": id })).await["transaction"].clone()
}

#[tokio::test]
async fn create_top_up_calls_snap_and_stores_the_token() {
    let (app, fake, s) = setup().await;
    let v = app.gql_ok(Some(&s.token), CREATE, json!({ "a": 150_000, "m": "QRIS" })).await["createTopUp"].clone();
    let t = &v["transaction"];
    assert_eq!((t["type"].as_str(), t["status"].as_str()), (Some("TOP_UP"), Some("PENDING")));
    assert_eq!(
        (t["amount"].as_i64(), t["balanceBefore"].as_i64(), t["balanceAfter"].as_i64()),
        (Some(150_000), Some(0), Some(0))
    );
    assert!(t["reference"].as_str().unwrap().starts_with("TXMP-"));
    assert!(v["snapToken"].as_str().unwrap().starts_with("tok-topup-"));
    assert!(v["redirectUrl"].as_str().unwrap().contains("/snap/v2/vtweb/"));

    let reqs = fake.requests();
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    use base64::Engine;
    let basic = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{SERVER_KEY}:")));
    assert_eq!(r.authorization.as_deref(), Some(basic.as_str()));
    let key = r.idempotency_key.as_deref().unwrap();
    assert!(!key.is_empty() && key.len() <= 36);
    let b = &r.body;
    assert_eq!(b["transaction_details"]["gross_amount"], 150_000);
    let order = b["transaction_details"]["order_id"].as_str().unwrap();
    assert!(order.len() <= 50 && order.starts_with("topup-"));
    assert_eq!(b["item_details"][0]["price"], 150_000);
    assert_eq!(b["item_details"][0]["quantity"], 1);
    assert_eq!(b["customer_details"]["email"], s.email.as_str());
    assert_eq!(b["enabled_payments"], json!(["other_qris"]));
    assert_eq!(b["expiry"]["unit"], "minute");
    assert_eq!(b["expiry"]["duration"], 60);
    assert!(b["expiry"]["start_time"].as_str().unwrap().ends_with("+0700"));
    assert_eq!(b["callbacks"]["finish"], "https://app.example.test/wallet");

    // Re-reading the transaction shows the stored Snap data.
    let id = t["id"].as_str().unwrap();
    let again = app
        .gql_ok(
            Some(&s.token),
            "query($id: ID!) { transaction(id: $id) { snapToken redirectUrl expiresAt } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(again["transaction"]["snapToken"], v["snapToken"]);
    assert_eq!(wallet(&app, &s).await["balance"], 0, "nothing credited before payment");
}

#[tokio::test]
async fn top_up_amount_limits_and_sign_in() {
    let (app, fake, s) = setup().await;
    for amount in [0, 9_999, 10_000_001, -5] {
        let v = app.gql(Some(&s.token), CREATE, json!({ "a": amount })).await;
        assert_eq!(error_code(&v), "BAD_USER_INPUT", "{amount}");
        assert_eq!(v["errors"][0]["extensions"]["field"], "amount");
    }
    let v = app.gql(Some(&s.token), CREATE, json!({ "a": 50_000, "m": "ADMIN_MANUAL" })).await;
    assert_eq!(error_code(&v), "BAD_USER_INPUT");
    assert_eq!(error_code(&app.gql(None, CREATE, json!({ "a": 50_000 })).await), "UNAUTHENTICATED");
    assert!(fake.requests().is_empty(), "invalid requests never reach Midtrans");
    for amount in [10_000, 10_000_000] {
        app.gql_ok(Some(&s.token), CREATE, json!({ "a": amount })).await;
    }
}

async fn expect_provider_failure(app: &TestApp, s: &Session) {
    let v = app.gql(Some(&s.token), CREATE, json!({ "a": 50_000 })).await;
    assert_eq!(error_code(&v), "PAYMENT_PROVIDER_ERROR", "{v}");
    let msg = v["errors"][0]["message"].as_str().unwrap();
    assert!(!msg.contains("fake failure") && !msg.contains("SERVER_KEY"), "provider details are not sent: {msg}");
    let w = wallet(app, s).await;
    assert_eq!(w["balance"], 0);
    let edges = w["transactions"]["edges"].as_array().unwrap();
    assert_eq!(edges.len(), 1);
    assert_eq!(edges[0]["node"]["status"], "FAILED");
}

#[tokio::test]
async fn provider_error_marks_the_top_up_failed() {
    let (app, fake, s) = setup().await;
    fake.set_snap(SnapMode::Fail(401));
    expect_provider_failure(&app, &s).await;
    assert_eq!(fake.requests().len(), 1, "4xx is not retried");
}

#[tokio::test]
async fn provider_5xx_is_retried_with_the_same_idempotency_key_then_fails() {
    let (app, fake, s) = setup().await;
    fake.set_snap(SnapMode::Fail(503));
    expect_provider_failure(&app, &s).await;
    let reqs = fake.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0].idempotency_key, reqs[1].idempotency_key);
    assert_eq!(reqs[0].body["transaction_details"], reqs[1].body["transaction_details"]);
}

#[tokio::test]
async fn provider_timeout_marks_the_top_up_failed() {
    let fake = FakeMidtrans::start().await;
    let f = fake.clone();
    let app = TestApp::spawn_with(move |c| {
        f.configure(c);
        c.midtrans.timeout = Duration::from_millis(300);
    })
    .await;
    let s = app.register("Budi").await;
    fake.set_snap(SnapMode::Delay(Duration::from_secs(3)));
    let started = std::time::Instant::now();
    expect_provider_failure(&app, &s).await;
    assert!(started.elapsed() < Duration::from_secs(3), "the timeout applies");
}

#[tokio::test]
async fn without_a_server_key_top_ups_are_unavailable_and_nothing_is_recorded() {
    let app = TestApp::spawn().await;
    assert!(app.state.config.midtrans.server_key.is_none());
    let s = app.register("Budi").await;
    let v = app.gql(Some(&s.token), CREATE, json!({ "a": 50_000, "m": "QRIS" })).await;
    assert_eq!(error_code(&v), "PAYMENTS_UNAVAILABLE", "{v}");
    let msg = v["errors"][0]["message"].as_str().unwrap();
    assert!(msg.contains("not available") && !msg.contains("SERVER_KEY"), "says so, without internals: {msg}");
    let w = wallet(&app, &s).await;
    assert_eq!(w["balance"], 0);
    assert_eq!(w["transactions"]["totalCount"], 0, "no FAILED row for an attempt never made: {w}");
    // Invalid input is still reported as such first.
    let v = app.gql(Some(&s.token), CREATE, json!({ "a": 5 })).await;
    assert_eq!(error_code(&v), "BAD_USER_INPUT", "{v}");
    // And the webhook cannot be verified without a key: refused, Midtrans retries later.
    let status = app.notify(&notification("topup-x", 50_000, "settlement", None)).await;
    assert_eq!(status, 503);
}

#[tokio::test]
async fn every_status_maps_as_documented() {
    let (app, fake, s) = setup().await;
    // (transaction_status, fraud_status, resulting status, credited)
    let rows: &[(&str, Option<&str>, &str, bool)] = &[
        ("settlement", None, "COMPLETED", true),
        ("capture", Some("accept"), "COMPLETED", true),
        ("capture", None, "COMPLETED", true),
        ("capture", Some("challenge"), "PENDING", false),
        ("capture", Some("deny"), "FAILED", false),
        ("pending", None, "PENDING", false),
        ("authorize", None, "PENDING", false),
        ("deny", None, "FAILED", false),
        ("failure", None, "FAILED", false),
        ("cancel", None, "CANCELLED", false),
        ("expire", None, "EXPIRED", false),
        ("refund", None, "PENDING", false),
        ("partial_refund", None, "PENDING", false),
        ("brand_new_status", None, "PENDING", false),
    ];
    let mut expected_balance = 0;
    for (status, fraud, want, credited) in rows {
        let (id, order) = top_up(&app, &fake, &s, 20_000).await;
        assert_eq!(app.notify(&notification(&order, 20_000, status, *fraud)).await, 200, "{status} {fraud:?}");
        let t = tx(&app, &s, &id).await;
        assert_eq!(t["status"], *want, "{status} {fraud:?}");
        if *credited {
            expected_balance += 20_000;
            assert_eq!(t["balanceAfter"].as_i64().unwrap() - t["balanceBefore"].as_i64().unwrap(), 20_000);
            assert!(t["completedAt"].is_string());
        } else {
            assert_eq!(t["balanceAfter"], t["balanceBefore"]);
        }
        assert_eq!(wallet(&app, &s).await["balance"], expected_balance, "{status} {fraud:?}");
    }
    assert_eq!(wallet(&app, &s).await["totalTopUp"], expected_balance);
}

#[tokio::test]
async fn forged_signature_is_refused_and_changes_nothing() {
    let (app, fake, s) = setup().await;
    let (id, order) = top_up(&app, &fake, &s, 50_000).await;
    let mut n = notification(&order, 50_000, "settlement", None);
    n["signature_key"] = json!("0".repeat(128));
    assert_eq!(app.notify(&n).await, 401);
    // Signed with another key.
    let mut n = notification(&order, 50_000, "settlement", None);
    n["signature_key"] =
        json!(minispod_gateway::payments::midtrans::signature::signature(&order, "200", "50000.00", "wrong-key"));
    assert_eq!(app.notify(&n).await, 401);
    // A valid signature over different values (status_code changed after signing).
    let mut n = notification(&order, 50_000, "settlement", None);
    n["status_code"] = json!("201");
    assert_eq!(app.notify(&n).await, 401);
    assert_eq!(tx(&app, &s, &id).await["status"], "PENDING");
    assert_eq!(wallet(&app, &s).await["balance"], 0);
}

#[tokio::test]
async fn amount_mismatch_unknown_order_and_malformed_bodies() {
    let (app, fake, s) = setup().await;
    let (id, order) = top_up(&app, &fake, &s, 50_000).await;
    // Correctly signed, but for a different amount than the order.
    assert_eq!(app.notify(&notification(&order, 5_000_000, "settlement", None)).await, 400);
    let mut n = notification(&order, 50_000, "settlement", None);
    n["gross_amount"] = json!("50000.50");
    n["signature_key"] =
        json!(minispod_gateway::payments::midtrans::signature::signature(&order, "200", "50000.50", SERVER_KEY));
    assert_eq!(app.notify(&n).await, 400);
    assert_eq!(app.notify(&notification("topup-unknown", 50_000, "settlement", None)).await, 404);
    // Missing required fields, wrong types, not JSON.
    let mut n = notification(&order, 50_000, "settlement", None);
    n.as_object_mut().unwrap().remove("signature_key");
    assert_eq!(app.notify(&n).await, 400);
    let mut n = notification(&order, 50_000, "settlement", None);
    n["gross_amount"] = json!(50000);
    assert_eq!(app.notify(&n).await, 400);
    let r = app.http.post(format!("{}/webhooks/midtrans", app.url)).body("not json").send().await.unwrap();
    assert_eq!(r.status(), 400);
    // A null fraud_status and unknown fields are fine.
    let mut n = notification(&order, 50_000, "settlement", None);
    n["fraud_status"] = Value::Null;
    n["some_future_field"] = json!({ "x": 1 });
    assert_eq!(app.notify(&n).await, 200);
    assert_eq!(tx(&app, &s, &id).await["status"], "COMPLETED");
    assert_eq!(wallet(&app, &s).await["balance"], 50_000);
}

#[tokio::test]
async fn replays_and_concurrent_deliveries_credit_once() {
    let (app, fake, s) = setup().await;
    let (id, order) = top_up(&app, &fake, &s, 75_000).await;
    let n = notification(&order, 75_000, "settlement", None);
    let app = std::sync::Arc::new(app);
    // 50 concurrent deliveries of the same settlement. The writer (SQLite) / the top-up's row
    // (PostgreSQL) is held until at least ten of them have read it PENDING and wait to credit.
    let blocker = app.state.db.begin().await.unwrap();
    if app.db.is_postgres() {
        use sea_orm::ConnectionTrait;
        blocker.execute_unprepared(&format!("SELECT id FROM transactions WHERE id = {id} FOR UPDATE")).await.unwrap();
    }
    let mut tasks = vec![];
    for _ in 0..50 {
        let (app, n) = (app.clone(), n.clone());
        tasks.push(tokio::spawn(async move { app.notify(&n).await }));
    }
    crate::helpers::wait_until_blocked(&app, 10).await;
    blocker.commit().await.unwrap();
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    assert_eq!(wallet(&app, &s).await["balance"], 75_000);
    // 100 replays, plus the capture that card payments send before settlement.
    for _ in 0..100 {
        assert_eq!(app.notify(&n).await, 200);
    }
    assert_eq!(app.notify(&notification(&order, 75_000, "capture", Some("accept"))).await, 200);
    let w = wallet(&app, &s).await;
    assert_eq!(w["balance"], 75_000);
    assert_eq!(w["totalTopUp"], 75_000);
    assert_eq!(w["transactions"]["totalCount"], 1);
    assert_eq!(tx(&app, &s, &id).await["balanceAfter"], 75_000);
}

#[tokio::test]
async fn out_of_order_notifications_never_move_backwards() {
    let (app, fake, s) = setup().await;
    let (id, order) = top_up(&app, &fake, &s, 30_000).await;
    for status in ["settlement", "pending", "expire", "capture"] {
        assert_eq!(app.notify(&notification(&order, 30_000, status, Some("accept"))).await, 200);
    }
    assert_eq!(tx(&app, &s, &id).await["status"], "COMPLETED");
    assert_eq!(wallet(&app, &s).await["balance"], 30_000);

    // A closed payment stays closed: expire then a late pending or settlement changes nothing
    // for FAILED; a deny first and a settlement after it is not credited.
    let (id2, order2) = top_up(&app, &fake, &s, 40_000).await;
    assert_eq!(app.notify(&notification(&order2, 40_000, "deny", None)).await, 200);
    assert_eq!(app.notify(&notification(&order2, 40_000, "pending", None)).await, 200);
    assert_eq!(app.notify(&notification(&order2, 40_000, "settlement", None)).await, 200);
    assert_eq!(tx(&app, &s, &id2).await["status"], "FAILED");
    assert_eq!(wallet(&app, &s).await["balance"], 30_000);
}

#[tokio::test]
async fn reversal_after_completion_debits_once_even_below_zero() {
    let (app, fake, s) = setup().await;
    let admin = app.login_admin().await;
    let (_, order) = top_up(&app, &fake, &s, 100_000).await;
    assert_eq!(app.notify(&notification(&order, 100_000, "settlement", None)).await, 200);
    // The user spends most of it.
    let adj = "mutation($u: ID!, $a: Int!, $r: String!) { adjustCredit(userId: $u, amount: $a, reason: $r) { id balanceAfter } }";
    app.gql_ok(Some(&admin.token), adj, json!({ "u": s.user_id, "a": -80_000, "r": "spent" })).await;
    // Then Midtrans reverses the settlement (deny after settlement), twice, plus a chargeback.
    for status in ["deny", "deny", "chargeback", "refund"] {
        assert_eq!(app.notify(&notification(&order, 100_000, status, None)).await, 200);
    }
    let w = wallet(&app, &s).await;
    assert_eq!(w["balance"], -80_000, "reversed once, below zero");
    assert_eq!(w["totalTopUp"], 0);
    let reversals: Vec<&Value> =
        w["transactions"]["edges"].as_array().unwrap().iter().filter(|e| e["node"]["type"] == "REVERSAL").collect();
    assert_eq!(reversals.len(), 1);
    assert_eq!(reversals[0]["node"]["balanceBefore"], 20_000);
    assert_eq!(reversals[0]["node"]["balanceAfter"], -80_000);
    // Spending is refused until topped up again.
    let v = app.gql(Some(&admin.token), adj, json!({ "u": s.user_id, "a": -1, "r": "spend" })).await;
    assert_eq!(error_code(&v), "INSUFFICIENT_CREDIT");
    assert_eq!(v["errors"][0]["extensions"]["balance"], -80_000);
}

#[tokio::test]
async fn sync_top_up_applies_the_status_api() {
    let (app, fake, s) = setup().await;
    let other = app.register("Siti").await;
    let (id, order) = top_up(&app, &fake, &s, 60_000).await;
    let sync = "mutation($id: ID!) { syncTopUp(transactionId: $id) { status balanceAfter } }";
    // Not started at Midtrans yet (404): unchanged.
    assert_eq!(app.gql_ok(Some(&s.token), sync, json!({ "id": id })).await["syncTopUp"]["status"], "PENDING");
    fake.set_status(&order, 60_000, "settlement", None);
    assert_eq!(error_code(&app.gql(Some(&other.token), sync, json!({ "id": id })).await), "NOT_FOUND");
    let v = app.gql_ok(Some(&s.token), sync, json!({ "id": id })).await;
    assert_eq!(v["syncTopUp"]["status"], "COMPLETED");
    assert_eq!(v["syncTopUp"]["balanceAfter"], 60_000);
    app.gql_ok(Some(&s.token), sync, json!({ "id": id })).await;
    assert_eq!(wallet(&app, &s).await["balance"], 60_000);
    let statuses: Vec<_> = fake.requests().into_iter().filter(|r| r.path.ends_with("/status")).collect();
    assert_eq!(statuses.len(), 3);
    assert!(statuses[0].authorization.as_deref().unwrap().starts_with("Basic "));
}

#[tokio::test]
async fn webhook_confirms_with_the_status_api_when_configured() {
    let fake = FakeMidtrans::start().await;
    let f = fake.clone();
    let app = TestApp::spawn_with(move |c| {
        f.configure(c);
        c.midtrans.verify_by_status = true;
    })
    .await;
    let s = app.register("Budi").await;
    let (id, order) = top_up(&app, &fake, &s, 25_000).await;
    // The body claims settlement, but Midtrans says it is still pending.
    fake.set_status(&order, 25_000, "pending", None);
    assert_eq!(app.notify(&notification(&order, 25_000, "settlement", None)).await, 200);
    assert_eq!(tx(&app, &s, &id).await["status"], "PENDING");
    fake.set_status(&order, 25_000, "settlement", None);
    assert_eq!(app.notify(&notification(&order, 25_000, "settlement", None)).await, 200);
    assert_eq!(tx(&app, &s, &id).await["status"], "COMPLETED");
    // When the status API is down we fail, so Midtrans retries.
    let (_, order2) = top_up(&app, &fake, &s, 25_000).await;
    fake.state.lock().unwrap().status_fails = true;
    assert_eq!(app.notify(&notification(&order2, 25_000, "settlement", None)).await, 503);
    assert_eq!(wallet(&app, &s).await["balance"], 25_000);
}

#[tokio::test]
async fn cancel_top_up_cancels_at_midtrans() {
    let (app, fake, s) = setup().await;
    let cancel = "mutation($id: ID!) { cancelTopUp(transactionId: $id) { status } }";
    let (id, order) = top_up(&app, &fake, &s, 20_000).await;
    fake.set_status(&order, 20_000, "pending", None);
    assert_eq!(app.gql_ok(Some(&s.token), cancel, json!({ "id": id })).await["cancelTopUp"]["status"], "CANCELLED");
    assert!(fake.requests().iter().any(|r| r.method == "POST" && r.path == format!("/v2/{order}/cancel")));
    assert_eq!(error_code(&app.gql(Some(&s.token), cancel, json!({ "id": id })).await), "CONFLICT");
    // Never chosen a method at Midtrans (404): cancelled here.
    let (id2, _) = top_up(&app, &fake, &s, 20_000).await;
    assert_eq!(app.gql_ok(Some(&s.token), cancel, json!({ "id": id2 })).await["cancelTopUp"]["status"], "CANCELLED");
    // Already paid at Midtrans: the cancel is refused there, and the settlement is applied.
    let (id3, order3) = top_up(&app, &fake, &s, 20_000).await;
    fake.set_status(&order3, 20_000, "settlement", None);
    assert_eq!(app.gql_ok(Some(&s.token), cancel, json!({ "id": id3 })).await["cancelTopUp"]["status"], "COMPLETED");
    assert_eq!(wallet(&app, &s).await["balance"], 20_000);
    let admin = app.login_admin().await;
    let v = app.gql(Some(&admin.token), cancel, json!({ "id": id })).await;
    assert_eq!(error_code(&v), "CONFLICT", "admins may act on any top-up, but CANCELLED is final");
}

#[tokio::test]
async fn reconciler_settles_lost_webhooks_and_expires_abandoned_top_ups() {
    let (app, fake, s) = setup().await;
    let (paid, paid_order) = top_up(&app, &fake, &s, 45_000).await;
    let (abandoned, _) = top_up(&app, &fake, &s, 15_000).await;
    fake.set_status(&paid_order, 45_000, "settlement", None);
    // Nothing is old enough yet.
    let r = minispod_gateway::jobs::payments::reconcile(&app.state).await.unwrap();
    assert_eq!(r.processed, 0);
    // 10 minutes later: the paid one is settled; the abandoned one is not expired yet (60 min).
    app.clock.advance(chrono::Duration::minutes(10));
    let r = minispod_gateway::jobs::payments::reconcile(&app.state).await.unwrap();
    assert_eq!((r.processed, r.changed, r.failed), (2, 1, 0), "{r:?}");
    assert_eq!(tx(&app, &s, &paid).await["status"], "COMPLETED");
    assert_eq!(tx(&app, &s, &abandoned).await["status"], "PENDING");
    // After its expiry, unknown at Midtrans: EXPIRED.
    app.clock.advance(chrono::Duration::minutes(60));
    let r = minispod_gateway::jobs::payments::reconcile(&app.state).await.unwrap();
    assert_eq!((r.processed, r.changed), (1, 1));
    assert_eq!(tx(&app, &s, &abandoned).await["status"], "EXPIRED");
    assert_eq!(wallet(&app, &s).await["balance"], 45_000);
    // Our expiry was only a guess: if the customer paid after all, the money is theirs.
    let abandoned_order = fake
        .requests()
        .into_iter()
        .filter(|r| r.path == "/snap/v1/transactions")
        .map(|r| r.body["transaction_details"]["order_id"].as_str().unwrap().to_string())
        .nth(1)
        .unwrap();
    assert_eq!(app.notify(&notification(&abandoned_order, 15_000, "settlement", None)).await, 200);
    assert_eq!(tx(&app, &s, &abandoned).await["status"], "COMPLETED");
    assert_eq!(wallet(&app, &s).await["balance"], 60_000);
}

#[tokio::test]
async fn core_api_errors_in_an_http_200_body_are_errors() {
    let (app, fake, s) = setup().await;
    let sync = "mutation($id: ID!) { syncTopUp(transactionId: $id) { status } }";
    let cancel = "mutation($id: ID!) { cancelTopUp(transactionId: $id) { status } }";
    let (id, _) = top_up(&app, &fake, &s, 30_000).await;
    fake.set_errors_in_body(true);
    // HTTP 200 with "404 Transaction doesn't exist": the customer has not started paying.
    assert_eq!(app.gql_ok(Some(&s.token), sync, json!({ "id": id })).await["syncTopUp"]["status"], "PENDING");

    // The key was rotated at Midtrans: HTTP 200 with "401" is a provider error everywhere, and
    // nothing changes here, not even past the top-up's expiry.
    fake.set_server_key("SB-Mid-server-rotated");
    app.clock.advance(chrono::Duration::minutes(61));
    for q in [sync, cancel] {
        let v = app.gql(Some(&s.token), q, json!({ "id": id })).await;
        assert_eq!(error_code(&v), "PAYMENT_PROVIDER_ERROR", "{v}");
    }
    let r = minispod_gateway::jobs::payments::reconcile(&app.state).await.unwrap();
    assert_eq!((r.processed, r.changed, r.failed), (1, 0, 1), "{r:?}");
    assert_eq!(tx(&app, &s, &id).await["status"], "PENDING");
    let v = app.gql(Some(&s.token), CREATE, json!({ "a": 10_000 })).await;
    assert_eq!(error_code(&v), "PAYMENT_PROVIDER_ERROR", "Snap answers 401 to a wrong key: {v}");

    // With the right key again, the unknown order past its expiry is EXPIRED.
    fake.set_server_key(SERVER_KEY);
    assert_eq!(app.gql_ok(Some(&s.token), sync, json!({ "id": id })).await["syncTopUp"]["status"], "EXPIRED");
    assert_eq!(wallet(&app, &s).await["balance"], 0);
}
