//! The wallet and its ledger: queries, admin adjustments, access rules, and the invariant after
//! a concurrent storm of credits and debits.
use std::sync::Arc;

use minispod_gateway::billing::{
    TransactionType,
    service::{self, Entry},
};
use serde_json::{Value, json};

use crate::support::{TestApp, error_code};

const WALLET: &str = "{ wallet { balance totalTopUp totalSpent } }";
const ADJUST: &str = "mutation($u: ID!, $a: Int!, $r: String!) { adjustCredit(userId: $u, amount: $a, reason: $r) { id reference type status amount balanceBefore balanceAfter paymentMethod description user { id } processedBy { email } } }";
const LIST: &str = "query($f: TransactionFilter, $n: Int, $a: String) { wallet { transactions(filter: $f, first: $n, after: $a) { totalCount pageInfo { hasNextPage endCursor } edges { node { id reference type amount } } } } }";
const ALL: &str = "query($f: TransactionFilter, $u: ID, $n: Int) { allTransactions(filter: $f, userId: $u, first: $n) { totalCount edges { node { id user { id } } } } }";

#[tokio::test]
async fn a_new_wallet_is_empty_and_needs_sign_in() {
    let app = TestApp::spawn().await;
    let s = app.register("Budi").await;
    let v = app.gql_ok(Some(&s.token), WALLET, json!({})).await;
    assert_eq!(v["wallet"], json!({ "balance": 0, "totalTopUp": 0, "totalSpent": 0 }));
    assert_eq!(error_code(&app.gql(None, WALLET, json!({})).await), "UNAUTHENTICATED");
    let me = app.gql_ok(Some(&s.token), "{ me { wallet { balance } } }", json!({})).await;
    assert_eq!(me["me"]["wallet"]["balance"], 0);
}

#[tokio::test]
async fn admin_adjusts_credit_with_a_reason_never_below_zero() {
    let app = TestApp::spawn().await;
    let admin = app.login_admin().await;
    let s = app.register("Budi").await;
    let v = app.gql_ok(Some(&admin.token), ADJUST, json!({ "u": s.user_id, "a": 50_000, "r": "goodwill" })).await;
    let t = &v["adjustCredit"];
    assert_eq!(t["type"], "ADMIN_ADJUSTMENT");
    assert_eq!(t["status"], "COMPLETED");
    assert_eq!((t["balanceBefore"].as_i64(), t["balanceAfter"].as_i64()), (Some(0), Some(50_000)));
    assert_eq!(t["paymentMethod"], "ADMIN_MANUAL");
    assert_eq!(t["user"]["id"], s.user_id.as_str());
    assert_eq!(t["processedBy"]["email"], crate::support::ADMIN_EMAIL);
    let first_ref: u64 = t["reference"].as_str().unwrap().strip_prefix("TXMP-").unwrap().parse().unwrap();
    assert!(first_ref >= 101);

    let v = app.gql_ok(Some(&admin.token), ADJUST, json!({ "u": s.user_id, "a": -20_000, "r": "correction" })).await;
    assert_eq!(v["adjustCredit"]["balanceAfter"], 30_000);
    let next_ref: u64 =
        v["adjustCredit"]["reference"].as_str().unwrap().strip_prefix("TXMP-").unwrap().parse().unwrap();
    assert!(next_ref > first_ref, "references increase");

    let v = app.gql(Some(&admin.token), ADJUST, json!({ "u": s.user_id, "a": -30_001, "r": "too much" })).await;
    assert_eq!(error_code(&v), "INSUFFICIENT_CREDIT");
    assert_eq!(v["errors"][0]["extensions"]["shortfall"], 1);
    for (amount, reason, field) in [(0, "x", "amount"), (10, "   ", "reason")] {
        let v = app.gql(Some(&admin.token), ADJUST, json!({ "u": s.user_id, "a": amount, "r": reason })).await;
        assert_eq!(error_code(&v), "BAD_USER_INPUT");
        assert_eq!(v["errors"][0]["extensions"]["field"], field);
    }
    let v = app.gql(Some(&admin.token), ADJUST, json!({ "u": "999999", "a": 10, "r": "x" })).await;
    assert_eq!(error_code(&v), "NOT_FOUND");
    assert_eq!(
        error_code(&app.gql(Some(&s.token), ADJUST, json!({ "u": s.user_id, "a": 10, "r": "x" })).await),
        "FORBIDDEN"
    );

    let w = app.gql_ok(Some(&s.token), WALLET, json!({})).await;
    assert_eq!(
        w["wallet"],
        json!({ "balance": 30_000, "totalTopUp": 0, "totalSpent": 0 }),
        "adjustments are not top-ups"
    );
}

#[tokio::test]
async fn transactions_are_owner_scoped_filtered_and_paginated() {
    let app = TestApp::spawn().await;
    let admin = app.login_admin().await;
    let s = app.register("Budi").await;
    let other = app.register("Siti").await;
    for i in 1..=5 {
        app.gql_ok(Some(&admin.token), ADJUST, json!({ "u": s.user_id, "a": 1_000 * i, "r": "add" })).await;
    }
    app.gql_ok(Some(&admin.token), ADJUST, json!({ "u": s.user_id, "a": -500, "r": "remove" })).await;
    let own = app.gql_ok(Some(&admin.token), ADJUST, json!({ "u": other.user_id, "a": 7, "r": "x" })).await;
    let other_tx = own["adjustCredit"]["id"].as_str().unwrap().to_string();

    let mut ids = vec![];
    let mut after = Value::Null;
    loop {
        let v = app.gql_ok(Some(&s.token), LIST, json!({ "n": 4, "a": after })).await;
        let c = &v["wallet"]["transactions"];
        assert_eq!(c["totalCount"], 6);
        ids.extend(c["edges"].as_array().unwrap().iter().map(|e| e["node"]["id"].as_str().unwrap().to_string()));
        if c["pageInfo"]["hasNextPage"] == false {
            break;
        }
        after = c["pageInfo"]["endCursor"].clone();
    }
    assert_eq!(ids.len(), 6);
    assert!(!ids.contains(&other_tx), "only the viewer's rows");
    let nums: Vec<i64> = ids.iter().map(|i| i.parse().unwrap()).collect();
    assert!(nums.windows(2).all(|w| w[0] > w[1]), "newest first");

    let v =
        app.gql_ok(Some(&s.token), LIST, json!({ "f": { "type": "ADMIN_ADJUSTMENT", "status": "COMPLETED" } })).await;
    assert_eq!(v["wallet"]["transactions"]["totalCount"], 6);
    let v = app.gql_ok(Some(&s.token), LIST, json!({ "f": { "type": "TOP_UP" } })).await;
    assert_eq!(v["wallet"]["transactions"]["totalCount"], 0);
    let v = app.gql_ok(Some(&s.token), LIST, json!({ "f": { "from": "2100-01-01T00:00:00Z" } })).await;
    assert_eq!(v["wallet"]["transactions"]["totalCount"], 0);

    // transaction(id): owner or admin; others see null.
    let q = "query($id: ID!) { transaction(id: $id) { id } }";
    assert!(app.gql_ok(Some(&s.token), q, json!({ "id": other_tx })).await["transaction"].is_null());
    assert_eq!(
        app.gql_ok(Some(&other.token), q, json!({ "id": other_tx })).await["transaction"]["id"],
        other_tx.as_str()
    );
    assert_eq!(
        app.gql_ok(Some(&admin.token), q, json!({ "id": other_tx })).await["transaction"]["id"],
        other_tx.as_str()
    );
    assert!(app.gql_ok(Some(&s.token), q, json!({ "id": "nope" })).await["transaction"].is_null());

    // allTransactions and User.wallet: admin only (User.wallet: owner too).
    let v = app.gql_ok(Some(&admin.token), ALL, json!({})).await;
    assert_eq!(v["allTransactions"]["totalCount"], 7);
    let v = app.gql_ok(Some(&admin.token), ALL, json!({ "u": other.user_id })).await;
    assert_eq!(v["allTransactions"]["totalCount"], 1);
    assert_eq!(error_code(&app.gql(Some(&s.token), ALL, json!({})).await), "FORBIDDEN");
    let uw = "query($id: ID!) { user(id: $id) { wallet { balance } } }";
    assert_eq!(
        app.gql_ok(Some(&admin.token), uw, json!({ "id": s.user_id })).await["user"]["wallet"]["balance"],
        14_500
    );
}

/// Sum of signed COMPLETED movements, per the ledger.
async fn ledger_sum(app: &TestApp, user_id: i64) -> (i64, i64, usize) {
    use minispod_gateway::billing::{TransactionStatus, entity as transactions};
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    let rows = transactions::Entity::find()
        .filter(transactions::Column::UserId.eq(user_id))
        .filter(transactions::Column::Status.eq(TransactionStatus::Completed))
        .all(&app.state.db.conn)
        .await
        .unwrap();
    let signed: i64 = rows.iter().map(|r| r.balance_after - r.balance_before).sum();
    let spent: i64 = rows.iter().filter(|r| r.kind == TransactionType::Subscription).map(|r| r.amount).sum();
    for r in &rows {
        assert_eq!((r.balance_after - r.balance_before).abs(), r.amount, "amount matches the movement");
    }
    (signed, spent, rows.len())
}

#[tokio::test]
async fn ledger_invariant_holds_after_a_concurrent_storm() {
    let app = Arc::new(TestApp::spawn().await);
    let admin = app.login_admin().await;
    let s = app.register("Budi").await;
    let user_id: i64 = s.user_id.parse().unwrap();
    const TASKS: usize = 16;
    const OPS: usize = 14;
    let mut handles = vec![];
    for t in 0..TASKS {
        let (app, admin, uid) = (app.clone(), admin.clone(), s.user_id.clone());
        handles.push(tokio::spawn(async move {
            let mut ok = 0usize;
            for i in 0..OPS {
                let amount = 1_000 + ((t * 31 + i * 17) % 9) as i64 * 500;
                let done = match (t + i) % 3 {
                    // Credit through the API.
                    0 => app
                        .gql(Some(&admin.token), ADJUST, json!({ "u": uid, "a": amount, "r": "storm credit" }))
                        .await["errors"]
                        .is_null(),
                    // Debit through the API (may be refused).
                    1 => {
                        let v = app
                            .gql(Some(&admin.token), ADJUST, json!({ "u": uid, "a": -amount, "r": "storm debit" }))
                            .await;
                        if !v["errors"].is_null() {
                            assert_eq!(error_code(&v), "INSUFFICIENT_CREDIT", "{v}");
                        }
                        v["errors"].is_null()
                    }
                    // Debit the way the subscriptions capability does: inside its own transaction.
                    _ => {
                        let state = &app.state;
                        let tx = state.db.begin().await.unwrap();
                        let entry = Entry::new(user_id, TransactionType::Subscription, amount, "storm charge");
                        match service::debit(&*tx, entry, false, state.now()).await {
                            Ok(_) => {
                                tx.commit().await.unwrap();
                                true
                            }
                            Err(minispod_gateway::error::AppError::InsufficientCredit { .. }) => false,
                            Err(e) => panic!("unexpected {e:?}"),
                        }
                    }
                };
                ok += usize::from(done);
            }
            ok
        }));
    }
    let mut succeeded = 0;
    for h in handles {
        succeeded += h.await.unwrap();
    }
    const { assert!(TASKS * OPS >= 200) };
    let w = app.gql_ok(Some(&s.token), WALLET, json!({})).await["wallet"].clone();
    let balance = w["balance"].as_i64().unwrap();
    let (signed, spent, rows) = ledger_sum(&app, user_id).await;
    assert!(balance >= 0, "never negative");
    assert_eq!(balance, signed, "balance == sum of signed COMPLETED amounts");
    assert_eq!(rows, succeeded, "one ledger row per successful operation");
    assert_eq!(w["totalSpent"].as_i64().unwrap(), spent, "totalSpent == sum of charges");
    assert_eq!(w["totalTopUp"], 0);
    assert!(succeeded > TASKS * OPS / 3, "most operations succeeded ({succeeded})");
}

#[tokio::test]
async fn debit_helpers_share_the_callers_transaction_and_honour_idempotency_keys() {
    let app = TestApp::spawn().await;
    let s = app.register("Budi").await;
    let user_id: i64 = s.user_id.parse().unwrap();
    let state = &app.state;
    let tx = state.db.begin().await.unwrap();
    service::credit(&*tx, Entry::new(user_id, TransactionType::Refund, 10_000, "refund"), state.now()).await.unwrap();
    drop(tx); // rolled back: nothing happened
    assert_eq!(app.gql_ok(Some(&s.token), WALLET, json!({})).await["wallet"]["balance"], 0);

    let tx = state.db.begin().await.unwrap();
    service::credit(&*tx, Entry::new(user_id, TransactionType::TopUp, 10_000, "seed"), state.now()).await.unwrap();
    let mut e = Entry::new(user_id, TransactionType::Renewal, 4_000, "renewal");
    e.idempotency_key = Some("renewal:1:2026-12".into());
    service::debit(&*tx, e.clone(), false, state.now()).await.unwrap();
    tx.commit().await.unwrap();
    let tx = state.db.begin().await.unwrap();
    let again = service::debit(&*tx, e, false, state.now()).await;
    assert!(matches!(again, Err(minispod_gateway::error::AppError::Conflict(_))), "{again:?}");
    drop(tx);
    let w = app.gql_ok(Some(&s.token), WALLET, json!({})).await;
    assert_eq!(w["wallet"], json!({ "balance": 6_000, "totalTopUp": 10_000, "totalSpent": 4_000 }));
}

/// Statements one admin page of transactions costs, with `n` users who each have a credit
/// adjustment and a subscription charge.
async fn statements_for_transaction_page(n: usize) -> (u64, usize) {
    use crate::helpers::{fixture, give_credit};
    let f = fixture(100).await;
    for i in 0..n {
        let u = f.app.register(&format!("Payer{i}")).await;
        give_credit(&f.app, &f.admin, &u, 30_000).await;
        let q = "mutation($p: ID!) { subscribe(input: { planId: $p }) { id } }";
        f.app.gql_ok(Some(&u.token), q, json!({ "p": f.plan("BASIC") })).await;
    }
    let q = "{ allTransactions(first: 100) { edges { node { id user { email } processedBy { email } subscription { id status } } } } }";
    // The fewest of five runs: provisioning started by the subscribes may still be writing
    // in the background (no cluster here), and its statements only ever add to a count.
    let (mut used, mut v) = (u64::MAX, Value::Null);
    for _ in 0..5 {
        let before = f.app.state.db.statement_count();
        v = f.app.gql_ok(Some(&f.admin.token), q, json!({})).await;
        used = used.min(f.app.state.db.statement_count() - before);
    }
    let edges = v["allTransactions"]["edges"].as_array().unwrap();
    assert!(edges.iter().all(|e| !e["node"]["user"]["email"].is_null()), "{v}");
    (used, edges.len())
}

#[tokio::test]
async fn a_page_of_transactions_loads_its_users_and_subscriptions_in_one_statement_each() {
    let (small, small_rows) = statements_for_transaction_page(2).await;
    let (large, large_rows) = statements_for_transaction_page(12).await;
    assert_eq!((small_rows, large_rows), (4, 24));
    // One statement per level; a loaded machine may split a level's batch in two (the loader
    // waits 1 ms for keys), while a query per row would add 2 × 20 statements here.
    assert!(large <= small + 3, "statements for {small_rows} vs {large_rows} transactions: {small} vs {large}");
}
