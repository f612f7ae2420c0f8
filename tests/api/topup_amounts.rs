//! Every path that acts on a Midtrans answer compares its `gross_amount` with the order: the
//! status API (syncTopUp, the reconciler, cancel, the webhook's confirmation) as well as the
//! notification body. A mismatch is never credited, and is flagged on the row.
use minispod_gateway::billing::entity as transactions;
use sea_orm::EntityTrait;
use serde_json::json;

use crate::support::{
    Session, TestApp, error_code,
    fake_midtrans::{FakeMidtrans, notification},
};

const CREATE: &str = "mutation($a: Int!) { createTopUp(amount: $a) { transaction { id } } }";
const TX: &str = "query($id: ID!) { transaction(id: $id) { status } }";

async fn setup(confirm: bool) -> (TestApp, FakeMidtrans, Session) {
    let fake = FakeMidtrans::start().await;
    let f = fake.clone();
    let app = TestApp::spawn_with(move |c| {
        f.configure(c);
        c.midtrans.verify_by_status = confirm;
    })
    .await;
    let user = app.register("Budi").await;
    (app, fake, user)
}

/// Creates a top-up; returns (transaction id, Midtrans order id).
async fn top_up(app: &TestApp, fake: &FakeMidtrans, s: &Session, amount: i64) -> (String, String) {
    let v = app.gql_ok(Some(&s.token), CREATE, json!({ "a": amount })).await;
    let id = v["createTopUp"]["transaction"]["id"].as_str().unwrap().to_string();
    let snap = fake.requests().into_iter().rev().find(|r| r.path == "/snap/v1/transactions").unwrap();
    (id, snap.body["transaction_details"]["order_id"].as_str().unwrap().to_string())
}

async fn balance(app: &TestApp, s: &Session) -> i64 {
    app.gql_ok(Some(&s.token), "{ wallet { balance } }", json!({})).await["wallet"]["balance"].as_i64().unwrap()
}

/// The row is still PENDING, nothing was credited, and the mismatch is flagged.
async fn assert_held(app: &TestApp, s: &Session, id: &str, reported: &str) {
    let status = app.gql_ok(Some(&s.token), TX, json!({ "id": id })).await["transaction"]["status"].clone();
    assert_eq!(status, "PENDING");
    assert_eq!(balance(app, s).await, 0);
    let row =
        transactions::Entity::find_by_id(id.parse::<i64>().unwrap()).one(&app.state.db.conn).await.unwrap().unwrap();
    let flag = &row.metadata.unwrap_or_default()["amountMismatch"];
    assert_eq!(flag["reported"], reported, "flagged: {flag}");
}

#[tokio::test]
async fn sync_top_up_never_credits_another_amount() {
    let (app, fake, s) = setup(false).await;
    let (id, order) = top_up(&app, &fake, &s, 60_000).await;
    fake.set_status(&order, 6_000_000, "settlement", None);
    let sync = "mutation($id: ID!) { syncTopUp(transactionId: $id) { status } }";
    let v = app.gql(Some(&s.token), sync, json!({ "id": id })).await;
    assert_eq!(error_code(&v), "PAYMENT_PROVIDER_ERROR", "{v}");
    assert_held(&app, &s, &id, "6000000.00").await;
    // The right amount is credited as usual.
    fake.set_status(&order, 60_000, "settlement", None);
    assert_eq!(app.gql_ok(Some(&s.token), sync, json!({ "id": id })).await["syncTopUp"]["status"], "COMPLETED");
    assert_eq!(balance(&app, &s).await, 60_000);
}

#[tokio::test]
async fn the_reconciler_never_credits_another_amount() {
    let (app, fake, s) = setup(false).await;
    let (id, order) = top_up(&app, &fake, &s, 45_000).await;
    fake.set_status(&order, 4_500_000, "settlement", None);
    app.clock.advance(chrono::Duration::minutes(10));
    let r = minispod_gateway::jobs::payments::reconcile(&app.state).await.unwrap();
    assert_eq!((r.processed, r.changed, r.failed), (1, 0, 1), "{r:?}");
    assert_held(&app, &s, &id, "4500000.00").await;
}

#[tokio::test]
async fn cancel_never_credits_another_amount() {
    let (app, fake, s) = setup(false).await;
    let cancel = "mutation($id: ID!) { cancelTopUp(transactionId: $id) { status } }";
    // Already settled at Midtrans (the cancel is refused there), but for another amount.
    let (id, order) = top_up(&app, &fake, &s, 20_000).await;
    fake.set_status(&order, 2_000_000, "settlement", None);
    let v = app.gql(Some(&s.token), cancel, json!({ "id": id })).await;
    assert_eq!(error_code(&v), "PAYMENT_PROVIDER_ERROR", "{v}");
    assert_held(&app, &s, &id, "2000000.00").await;
    // A cancel answer about another amount is not applied either.
    let (id2, order2) = top_up(&app, &fake, &s, 20_000).await;
    fake.set_status(&order2, 21_000, "pending", None);
    let v = app.gql(Some(&s.token), cancel, json!({ "id": id2 })).await;
    assert_eq!(error_code(&v), "PAYMENT_PROVIDER_ERROR", "{v}");
    assert_held(&app, &s, &id2, "21000.00").await;
}

#[tokio::test]
async fn a_confirmed_notification_needs_the_status_api_to_agree_on_the_amount() {
    let (app, fake, s) = setup(true).await;
    let (id, order) = top_up(&app, &fake, &s, 25_000).await;
    fake.set_status(&order, 2_500_000, "settlement", None);
    // The body is signed and right; the status API reports another amount: not credited.
    assert_eq!(app.notify(&notification(&order, 25_000, "settlement", None)).await, 503);
    assert_held(&app, &s, &id, "2500000.00").await;
}

#[tokio::test]
async fn a_notification_about_another_amount_is_flagged() {
    let (app, fake, s) = setup(false).await;
    let (id, order) = top_up(&app, &fake, &s, 30_000).await;
    assert_eq!(app.notify(&notification(&order, 3_000_000, "settlement", None)).await, 400);
    assert_held(&app, &s, &id, "3000000.00").await;
    // Without confirmation the notification is applied as sent: no status API call.
    assert_eq!(app.notify(&notification(&order, 30_000, "settlement", None)).await, 200);
    assert_eq!(balance(&app, &s).await, 30_000);
    assert!(!fake.requests().iter().any(|r| r.path.ends_with("/status")));
}
