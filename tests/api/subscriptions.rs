use serde_json::json;

use crate::{helpers::*, support::error_code};

const SUBSCRIBE: &str = "mutation($i: SubscribeInput!) { subscribe(input: $i) { id status monthlyPrice startDate endDate nextBillingAt autoRenew lastChargeAmount plan { id planType } service { slug } instances { name subdomain status namespace } transactions { type amount status } } }";
const SUBSCRIBE_ID: &str = "mutation($i: SubscribeInput!) { subscribe(input: $i) { id instances { id } } }";
const UPGRADE: &str = "mutation($id: ID!, $p: ID!) { upgradeSubscription(id: $id, planId: $p) { id status monthlyPrice endDate plan { planType } transactions { type amount } } }";
const CANCEL: &str = "mutation($id: ID!) { cancelSubscription(id: $id, reason: \"not needed\") { id status autoRenew instances { status } } }";

#[tokio::test]
async fn subscribe_charges_takes_a_slot_and_creates_a_pending_instance() {
    let f = fixture(10).await;
    let user = f.app.register("Budi").await;
    give_credit(&f.app, &f.admin, &user, 100_000).await;
    let v = f
        .app
        .gql_ok(Some(&user.token), SUBSCRIBE, json!({ "i": { "planId": f.plan("BASIC"), "instanceName": "my-app" } }))
        .await;
    let s = &v["subscribe"];
    assert_eq!(s["status"], "ACTIVE");
    assert_eq!(s["monthlyPrice"], 30_000);
    assert_eq!(s["autoRenew"], true);
    assert_eq!(s["nextBillingAt"], s["endDate"]);
    let start = chrono::DateTime::parse_from_rfc3339(s["startDate"].as_str().unwrap()).unwrap();
    let end = chrono::DateTime::parse_from_rfc3339(s["endDate"].as_str().unwrap()).unwrap();
    assert_eq!(end, start.checked_add_months(chrono::Months::new(1)).unwrap(), "one calendar month");
    assert_eq!(s["instances"][0]["status"], "PENDING");
    assert_eq!(s["instances"][0]["name"], "my-app");
    assert!(s["instances"][0]["subdomain"].as_str().unwrap().starts_with("my-app-"));
    assert_eq!(s["transactions"], json!([{ "type": "SUBSCRIPTION", "amount": 30_000, "status": "COMPLETED" }]));
    assert_eq!(balance(&f.app, &user).await, 70_000);
    assert_eq!(used_quota(&f.app, f.plan("BASIC")).await, 1);
    assert_ledger_consistent(&f.app, &user).await;

    // History: who and what.
    let id = s["id"].as_str().unwrap();
    let h = f
        .app
        .gql_ok(
            Some(&user.token),
            "query($id: ID!) { subscription(id: $id) { history { kind toStatus actorId } } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(
        h["subscription"]["history"],
        json!([{ "kind": "CREATED", "toStatus": "ACTIVE", "actorId": user.user_id }])
    );

    // A free plan needs no credit.
    let other = f.app.register("Siti").await;
    let v = f.app.gql_ok(Some(&other.token), SUBSCRIBE, json!({ "i": { "planId": f.plan("FREE") } })).await;
    assert_eq!(v["subscribe"]["transactions"], json!([]));
    assert!(v["subscribe"]["instances"][0]["name"].as_str().unwrap().starts_with("app-one"));
}

#[tokio::test]
async fn an_instance_is_visible_to_its_owner_and_admins_only() {
    let f = fixture(10).await;
    let owner = f.app.register("Budi").await;
    let v = f
        .app
        .gql_ok(Some(&owner.token), SUBSCRIBE_ID, json!({ "i": { "planId": f.plan("FREE"), "instanceName": "mine" } }))
        .await;
    let id = v["subscribe"]["instances"][0]["id"].as_str().unwrap().to_string();
    let sub_id = v["subscribe"]["id"].clone();
    let q = "query($id: ID!) { instance(id: $id) { id name subscription { id } } }";
    for who in [&owner, &f.admin] {
        let v = f.app.gql_ok(Some(&who.token), q, json!({ "id": id })).await;
        assert_eq!(v["instance"]["name"], "mine", "{v}");
        assert_eq!(v["instance"]["subscription"]["id"], sub_id);
    }
    // Someone else's instance is indistinguishable from one that does not exist.
    let other = f.app.register("Siti").await;
    let v = f.app.gql(Some(&other.token), q, json!({ "id": id })).await;
    assert_eq!(error_code(&v), "NOT_FOUND", "{v}");
    assert_eq!(v["data"]["instance"], serde_json::Value::Null, "{v}");
    let missing = f.app.gql(Some(&other.token), q, json!({ "id": "999999" })).await;
    assert_eq!(missing["errors"][0]["message"], v["errors"][0]["message"]);
    assert_eq!(error_code(&f.app.gql(None, q, json!({ "id": id })).await), "UNAUTHENTICATED");
}

#[tokio::test]
async fn subscribe_refusals_change_nothing() {
    let f = fixture(1).await;
    let t = Some(f.admin.token.as_str());
    let user = f.app.register("Budi").await;
    let ut = Some(user.token.as_str());
    give_credit(&f.app, &f.admin, &user, 10_000).await;

    // Not enough credit: the shortfall is reported and nothing is taken.
    let v = f.app.gql(ut, SUBSCRIBE, json!({ "i": { "planId": f.plan("BASIC") } })).await;
    assert_eq!(error_code(&v), "INSUFFICIENT_CREDIT");
    let ext = &v["errors"][0]["extensions"];
    assert_eq!(
        (ext["balance"].as_i64(), ext["required"].as_i64(), ext["shortfall"].as_i64()),
        (Some(10_000), Some(30_000), Some(20_000))
    );
    assert_eq!(used_quota(&f.app, f.plan("BASIC")).await, 0);
    assert_eq!(balance(&f.app, &user).await, 10_000);
    assert_eq!(f.app.gql_ok(ut, "{ subscriptions { id } }", json!({})).await["subscriptions"], json!([]));

    for (input, field) in [
        (json!({ "planId": f.plan("FREE"), "instanceName": "Not DNS" }), "instanceName"),
        (json!({ "planId": f.plan("FREE"), "instanceName": "a".repeat(41) }), "instanceName"),
    ] {
        let v = f.app.gql(ut, SUBSCRIBE, json!({ "i": input })).await;
        assert_eq!(v["errors"][0]["extensions"]["field"], field, "{v}");
    }
    assert_eq!(error_code(&f.app.gql(ut, SUBSCRIBE, json!({ "i": { "planId": "999999" } })).await), "NOT_FOUND");

    // Inactive plans and hidden services cannot be subscribed to.
    f.app
        .gql_ok(
            t,
            "mutation($id: ID!) { updatePlan(id: $id, input: { isActive: false }) { id } }",
            json!({ "id": f.plan("PRO") }),
        )
        .await;
    assert_eq!(error_code(&f.app.gql(ut, SUBSCRIBE, json!({ "i": { "planId": f.plan("PRO") } })).await), "NOT_FOUND");

    // One live subscription per service.
    f.app.gql_ok(ut, SUBSCRIBE, json!({ "i": { "planId": f.plan("FREE") } })).await;
    let v = f.app.gql(ut, SUBSCRIBE, json!({ "i": { "planId": f.plan("FREE") } })).await;
    assert_eq!(error_code(&v), "CONFLICT");
    assert!(v["errors"][0]["message"].as_str().unwrap().contains("upgrade"), "{v}");

    // The quota of one is now taken.
    let other = f.app.register("Siti").await;
    let v = f.app.gql(Some(&other.token), SUBSCRIBE, json!({ "i": { "planId": f.plan("FREE") } })).await;
    assert_eq!(error_code(&v), "QUOTA_EXHAUSTED");

    f.app
        .gql_ok(
            t,
            "mutation($id: ID!) { updateService(id: $id, input: { isPublic: false }) { id } }",
            json!({ "id": f.service_id }),
        )
        .await;
    assert_eq!(
        error_code(&f.app.gql(Some(&other.token), SUBSCRIBE, json!({ "i": { "planId": f.plan("FREE") } })).await),
        "NOT_FOUND"
    );
    assert_eq!(
        error_code(&f.app.gql(None, SUBSCRIBE, json!({ "i": { "planId": f.plan("FREE") } })).await),
        "UNAUTHENTICATED"
    );
}

#[tokio::test]
async fn idempotency_key_returns_the_same_subscription_and_charges_once() {
    let f = fixture(10).await;
    let user = f.app.register("Budi").await;
    give_credit(&f.app, &f.admin, &user, 100_000).await;
    let input = json!({ "i": { "planId": f.plan("BASIC"), "idempotencyKey": "checkout-42" } });
    let results =
        futures::future::join_all((0..5).map(|_| f.app.gql(Some(&user.token), SUBSCRIBE, input.clone()))).await;
    let ids: Vec<&str> =
        results.iter().map(|v| v["data"]["subscribe"]["id"].as_str().unwrap_or_else(|| panic!("{v}"))).collect();
    assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
    let again = f.app.gql_ok(Some(&user.token), SUBSCRIBE, input).await;
    assert_eq!(again["subscribe"]["id"], ids[0]);
    assert_eq!(balance(&f.app, &user).await, 70_000, "charged once");
    assert_eq!(used_quota(&f.app, f.plan("BASIC")).await, 1);
}

#[tokio::test]
async fn cancelled_subscriptions_do_not_block_a_new_one() {
    let f = fixture(10).await;
    let user = f.app.register("Budi").await;
    let ut = Some(user.token.as_str());
    let v = f.app.gql_ok(ut, SUBSCRIBE, json!({ "i": { "planId": f.plan("FREE") } })).await;
    let id = v["subscribe"]["id"].as_str().unwrap().to_string();
    let c = f.app.gql_ok(ut, CANCEL, json!({ "id": id })).await;
    assert_eq!(c["cancelSubscription"]["status"], "CANCELLED");
    assert_eq!(c["cancelSubscription"]["autoRenew"], false);
    assert_eq!(c["cancelSubscription"]["instances"][0]["status"], "TERMINATING");
    assert_eq!(used_quota(&f.app, f.plan("FREE")).await, 0, "slot released");
    assert_eq!(error_code(&f.app.gql(ut, CANCEL, json!({ "id": id })).await), "CONFLICT");
    let h = f
        .app
        .gql_ok(
            ut,
            "query($id: ID!) { subscription(id: $id) { history { kind reason details } } }",
            json!({ "id": id }),
        )
        .await;
    let last = h["subscription"]["history"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["kind"], "CANCELLED");
    assert_eq!(last["reason"], "not needed");
    assert!(last["details"]["note"].as_str().unwrap().contains("not refunded"));
    f.app.gql_ok(ut, SUBSCRIBE, json!({ "i": { "planId": f.plan("FREE") } })).await;
}

#[tokio::test]
async fn others_subscriptions_are_not_found() {
    let f = fixture(10).await;
    let owner = f.app.register("Budi").await;
    let v = f.app.gql_ok(Some(&owner.token), SUBSCRIBE, json!({ "i": { "planId": f.plan("FREE") } })).await;
    let id = v["subscribe"]["id"].as_str().unwrap().to_string();
    let stranger = f.app.register("Eve").await;
    let st = Some(stranger.token.as_str());
    let q = "query($id: ID!) { subscription(id: $id) { id } }";
    let theirs = f.app.gql(st, q, json!({ "id": id })).await;
    let missing = f.app.gql(st, q, json!({ "id": "999999" })).await;
    assert_eq!(error_code(&theirs), "NOT_FOUND");
    assert_eq!(theirs["errors"][0]["message"], missing["errors"][0]["message"]);
    assert_eq!(error_code(&f.app.gql(st, CANCEL, json!({ "id": id })).await), "NOT_FOUND");
    assert_eq!(error_code(&f.app.gql(st, UPGRADE, json!({ "id": id, "p": f.plan("PRO") })).await), "NOT_FOUND");
    assert_eq!(
        error_code(
            &f.app.gql(st, "mutation($id: ID!) { renewSubscription(id: $id) { id } }", json!({ "id": id })).await
        ),
        "NOT_FOUND"
    );
    // User.subscriptions: the owner and admins only.
    let q_user = "query($u: ID!) { user(id: $u) { subscriptions(status: ACTIVE) { id } } }";
    let v = f.app.gql_ok(Some(&f.admin.token), q_user, json!({ "u": owner.user_id })).await;
    assert_eq!(v["user"]["subscriptions"][0]["id"], id.as_str());
    let me = f.app.gql_ok(Some(&owner.token), "{ me { subscriptions { id } } }", json!({})).await;
    assert_eq!(me["me"]["subscriptions"][0]["id"], id.as_str());
    // The admin sees it; allSubscriptions is admin-only.
    f.app.gql_ok(Some(&f.admin.token), q, json!({ "id": id })).await;
    let all = f
        .app
        .gql_ok(
            Some(&f.admin.token),
            "query($u: ID) { allSubscriptions(userId: $u, status: ACTIVE) { totalCount } }",
            json!({ "u": owner.user_id }),
        )
        .await;
    assert_eq!(all["allSubscriptions"]["totalCount"], 1);
    assert_eq!(error_code(&f.app.gql(st, "{ allSubscriptions { totalCount } }", json!({})).await), "FORBIDDEN");
}

#[tokio::test]
async fn upgrade_charges_the_prorated_difference_and_keeps_the_period() {
    let f = fixture(10).await;
    let user = f.app.register("Budi").await;
    let ut = Some(user.token.as_str());
    give_credit(&f.app, &f.admin, &user, 200_000).await;
    let v = f.app.gql_ok(ut, SUBSCRIBE, json!({ "i": { "planId": f.plan("BASIC") } })).await;
    let id = v["subscribe"]["id"].as_str().unwrap().to_string();
    let (start, end) = (ts(&v["subscribe"]["startDate"]), ts(&v["subscribe"]["endDate"]));

    // Preview.
    let opts = f
        .app
        .gql_ok(
            ut,
            "query($id: ID!) { subscription(id: $id) { upgradeOptions { plan { planType } cost canUpgrade reason } } }",
            json!({ "id": id }),
        )
        .await;
    let opts = opts["subscription"]["upgradeOptions"].as_array().unwrap().clone();
    assert_eq!(opts.iter().map(|o| o["plan"]["planType"].as_str().unwrap()).collect::<Vec<_>>(), ["PRO", "PREMIUM"]);
    assert!(opts.iter().all(|o| o["canUpgrade"] == true));

    // Ten days later, upgrade to PRO: (90,000 − 30,000) × remaining / period.
    f.app.clock.advance(chrono::Duration::days(10));
    let now = chrono::Utc::now() + chrono::Duration::days(10);
    let expected = 60_000.0 * (end - now).num_seconds() as f64 / (end - start).num_seconds() as f64;
    let u = f.app.gql_ok(ut, UPGRADE, json!({ "id": id, "p": f.plan("PRO") })).await;
    let u = &u["upgradeSubscription"];
    assert_eq!(u["plan"]["planType"], "PRO");
    assert_eq!(u["monthlyPrice"], 90_000, "the next renewal charges the new price");
    assert_eq!(ts(&u["endDate"]), end, "the period end does not move");
    let charged = u["transactions"][1]["amount"].as_i64().unwrap();
    assert_eq!(u["transactions"][1]["type"], "UPGRADE");
    assert!((charged as f64 - expected).abs() <= 1.0, "charged {charged}, expected ≈ {expected}");
    assert_eq!(balance(&f.app, &user).await, 200_000 - 30_000 - charged);
    assert_eq!(used_quota(&f.app, f.plan("BASIC")).await, 0);
    assert_eq!(used_quota(&f.app, f.plan("PRO")).await, 1);
    assert_ledger_consistent(&f.app, &user).await;

    // Downgrades and same-tier moves name the rule.
    for p in [f.plan("BASIC"), f.plan("FREE"), f.plan("PRO")] {
        let v = f.app.gql(ut, UPGRADE, json!({ "id": id, "p": p })).await;
        assert_eq!(error_code(&v), "BAD_USER_INPUT");
        assert!(v["errors"][0]["message"].as_str().unwrap().contains("higher tier"), "{v}");
    }
    // A plan of another service is refused.
    let (_, other_plans) = create_service(&f.app, &f.admin, "app-two", 10).await;
    let v = f.app.gql(ut, UPGRADE, json!({ "id": id, "p": other_plans[3].1 })).await;
    assert_eq!(error_code(&v), "BAD_USER_INPUT");
}

#[tokio::test]
async fn upgrade_needs_credit_and_a_free_slot() {
    let f = fixture(1).await;
    let user = f.app.register("Budi").await;
    let ut = Some(user.token.as_str());
    give_credit(&f.app, &f.admin, &user, 30_000).await;
    let v = f.app.gql_ok(ut, SUBSCRIBE, json!({ "i": { "planId": f.plan("BASIC") } })).await;
    let id = v["subscribe"]["id"].as_str().unwrap().to_string();
    let v = f.app.gql(ut, UPGRADE, json!({ "id": id, "p": f.plan("PRO") })).await;
    assert_eq!(error_code(&v), "INSUFFICIENT_CREDIT");
    assert_eq!(used_quota(&f.app, f.plan("PRO")).await, 0);
    assert_eq!(used_quota(&f.app, f.plan("BASIC")).await, 1);

    let other = f.app.register("Siti").await;
    give_credit(&f.app, &f.admin, &other, 150_000).await;
    f.app.gql_ok(Some(&other.token), SUBSCRIBE, json!({ "i": { "planId": f.plan("PREMIUM") } })).await;
    give_credit(&f.app, &f.admin, &user, 500_000).await;
    let v = f.app.gql(ut, UPGRADE, json!({ "id": id, "p": f.plan("PREMIUM") })).await;
    assert_eq!(error_code(&v), "QUOTA_EXHAUSTED");
    let opts = f
        .app
        .gql_ok(
            ut,
            "query($id: ID!) { subscription(id: $id) { upgradeOptions { plan { planType } canUpgrade reason } } }",
            json!({ "id": id }),
        )
        .await;
    let premium = opts["subscription"]["upgradeOptions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["plan"]["planType"] == "PREMIUM")
        .unwrap()
        .clone();
    assert_eq!(premium["canUpgrade"], false);
    assert!(premium["reason"].as_str().unwrap().contains("full"));
}

#[tokio::test]
async fn admin_cancel_refunds_the_unused_part() {
    let f = fixture(10).await;
    let user = f.app.register("Budi").await;
    give_credit(&f.app, &f.admin, &user, 90_000).await;
    let v = f.app.gql_ok(Some(&user.token), SUBSCRIBE, json!({ "i": { "planId": f.plan("PRO") } })).await;
    let id = v["subscribe"]["id"].as_str().unwrap().to_string();
    let q = "mutation($id: ID!, $r: String!, $f: Boolean!) { adminCancelSubscription(id: $id, reason: $r, refund: $f) { status transactions { type amount } } }";
    let v = f.app.gql(Some(&f.admin.token), q, json!({ "id": id, "r": " ", "f": true })).await;
    assert_eq!(v["errors"][0]["extensions"]["field"], "reason");
    assert_eq!(
        error_code(&f.app.gql(Some(&user.token), q, json!({ "id": id, "r": "x", "f": true })).await),
        "FORBIDDEN"
    );
    let v = f.app.gql_ok(Some(&f.admin.token), q, json!({ "id": id, "r": "abuse", "f": true })).await;
    let refund = &v["adminCancelSubscription"]["transactions"][1];
    assert_eq!(refund["type"], "REFUND");
    let amount = refund["amount"].as_i64().unwrap();
    assert!((89_990..=90_000).contains(&amount), "almost the whole period is unused: {amount}");
    assert_eq!(balance(&f.app, &user).await, amount);
    assert_ledger_consistent(&f.app, &user).await;
}

#[tokio::test]
async fn auto_renew_renew_and_extend() {
    let f = fixture(10).await;
    let user = f.app.register("Budi").await;
    let ut = Some(user.token.as_str());
    give_credit(&f.app, &f.admin, &user, 100_000).await;
    let v = f.app.gql_ok(ut, SUBSCRIBE, json!({ "i": { "planId": f.plan("BASIC") } })).await;
    let id = v["subscribe"]["id"].as_str().unwrap().to_string();
    let end = ts(&v["subscribe"]["endDate"]);

    let v = f
        .app
        .gql_ok(ut, "mutation($id: ID!) { setAutoRenew(id: $id, enabled: false) { autoRenew } }", json!({ "id": id }))
        .await;
    assert_eq!(v["setAutoRenew"]["autoRenew"], false);

    let renew = "mutation($id: ID!) { renewSubscription(id: $id) { startDate endDate transactions { type amount } } }";
    assert_eq!(error_code(&f.app.gql(ut, renew, json!({ "id": id })).await), "CONFLICT", "too early");
    f.app.clock.advance(end - chrono::Utc::now() - chrono::Duration::days(3));
    let v = f.app.gql_ok(ut, renew, json!({ "id": id })).await;
    assert_eq!(ts(&v["renewSubscription"]["startDate"]), end, "the new period follows the old one");
    assert_eq!(ts(&v["renewSubscription"]["endDate"]), end.checked_add_months(chrono::Months::new(1)).unwrap());
    assert_eq!(v["renewSubscription"]["transactions"][1], json!({ "type": "RENEWAL", "amount": 30_000 }));
    assert_eq!(balance(&f.app, &user).await, 40_000);

    let extend =
        "mutation($id: ID!, $d: Int!, $r: String!) { extendSubscription(id: $id, days: $d, reason: $r) { endDate } }";
    for (d, r, field) in [(0, "x", "days"), (366, "x", "days"), (5, "", "reason")] {
        let v = f.app.gql(Some(&f.admin.token), extend, json!({ "id": id, "d": d, "r": r })).await;
        assert_eq!(v["errors"][0]["extensions"]["field"], field, "{v}");
    }
    assert_eq!(error_code(&f.app.gql(ut, extend, json!({ "id": id, "d": 5, "r": "x" })).await), "FORBIDDEN");
    let v = f.app.gql_ok(Some(&f.admin.token), extend, json!({ "id": id, "d": 5, "r": "outage" })).await;
    let new_end = end.checked_add_months(chrono::Months::new(1)).unwrap() + chrono::Duration::days(5);
    assert_eq!(ts(&v["extendSubscription"]["endDate"]), new_end);

    f.app.gql_ok(ut, CANCEL, json!({ "id": id })).await;
    let v = f
        .app
        .gql(ut, "mutation($id: ID!) { setAutoRenew(id: $id, enabled: true) { autoRenew } }", json!({ "id": id }))
        .await;
    assert_eq!(error_code(&v), "CONFLICT");
}

#[tokio::test]
async fn plans_with_subscriptions_cannot_be_deleted() {
    let f = fixture(10).await;
    let user = f.app.register("Budi").await;
    f.app.gql_ok(Some(&user.token), SUBSCRIBE, json!({ "i": { "planId": f.plan("FREE") } })).await;
    let t = Some(f.admin.token.as_str());
    let v = f.app.gql(t, "mutation($id: ID!) { deletePlan(id: $id) }", json!({ "id": f.plan("FREE") })).await;
    assert_eq!(error_code(&v), "CONFLICT");
    let v = f.app.gql(t, "mutation($id: ID!) { deleteService(id: $id) }", json!({ "id": f.service_id })).await;
    assert_eq!(error_code(&v), "CONFLICT");
    f.app.gql_ok(t, "mutation($id: ID!) { deletePlan(id: $id) }", json!({ "id": f.plan("PREMIUM") })).await;
}

// ------------------------------------------------------------------ concurrency

#[tokio::test]
async fn fifty_users_race_for_five_slots() {
    let f = fixture(5).await;
    let mut users = vec![];
    for i in 0..50 {
        users.push(f.app.register(&format!("User{i}")).await);
    }
    let plan = f.plan("FREE").to_string();
    let results = futures::future::join_all(
        users.iter().map(|u| f.app.gql(Some(&u.token), SUBSCRIBE, json!({ "i": { "planId": plan } }))),
    )
    .await;
    let ok = results.iter().filter(|v| v.get("errors").is_none()).count();
    let exhausted = results.iter().filter(|v| v.get("errors").is_some() && error_code(v) == "QUOTA_EXHAUSTED").count();
    assert_eq!((ok, exhausted), (5, 45), "{results:?}");
    assert_eq!(used_quota(&f.app, &plan).await, 5);
    let live =
        f.app.gql_ok(Some(&f.admin.token), "{ allSubscriptions(status: ACTIVE) { totalCount } }", json!({})).await;
    assert_eq!(live["allSubscriptions"]["totalCount"], 5);
}

#[tokio::test]
async fn twenty_parallel_subscribes_with_credit_for_one() {
    let f = fixture(10).await;
    let user = f.app.register("Budi").await;
    give_credit(&f.app, &f.admin, &user, 90_000).await;
    // Twenty different services, each with a 90,000 IDR plan: only one can be paid.
    let mut plans = vec![f.plan("PRO").to_string()];
    for i in 0..19 {
        let (_, p) = create_service(&f.app, &f.admin, &format!("svc-{i}"), 10).await;
        plans.push(p[2].1.clone());
    }
    // Hold the writer (SQLite) / the user's row (PostgreSQL) until all twenty wait for it.
    let blocker = f.app.state.db.begin().await.unwrap();
    if f.app.db.is_postgres() {
        use sea_orm::ConnectionTrait;
        let sql = format!("SELECT id FROM users WHERE id = {} FOR UPDATE", user.user_id);
        blocker.execute_unprepared(&sql).await.unwrap();
    }
    let (results, _) = tokio::join!(
        futures::future::join_all(plans.iter().map(|p| f.app.gql(
            Some(&user.token),
            SUBSCRIBE,
            json!({ "i": { "planId": p } })
        )),),
        async {
            wait_until_blocked(&f.app, 20).await;
            blocker.commit().await.unwrap();
        },
    );
    let ok = results.iter().filter(|v| v.get("errors").is_none()).count();
    assert_eq!(ok, 1, "{results:?}");
    assert!(results.iter().filter(|v| v.get("errors").is_some()).all(|v| error_code(v) == "INSUFFICIENT_CREDIT"));
    assert_eq!(balance(&f.app, &user).await, 0);
    assert_ledger_consistent(&f.app, &user).await;
    let mut used = 0;
    for p in &plans {
        used += used_quota(&f.app, p).await;
    }
    assert_eq!(used, 1, "only the paid subscription holds a slot");

    // And the same plan twenty times: one subscription, the rest CONFLICT.
    let other = f.app.register("Siti").await;
    let results = futures::future::join_all(
        (0..20).map(|_| f.app.gql(Some(&other.token), SUBSCRIBE, json!({ "i": { "planId": f.plan("FREE") } }))),
    )
    .await;
    assert_eq!(results.iter().filter(|v| v.get("errors").is_none()).count(), 1);
    assert!(results.iter().filter(|v| v.get("errors").is_some()).all(|v| error_code(v) == "CONFLICT"));
}

#[tokio::test]
async fn concurrent_upgrade_and_cancel_one_wins() {
    use sea_orm::ConnectionTrait;
    for _ in 0..3 {
        let f = fixture(10).await;
        let user = f.app.register("Budi").await;
        let ut = Some(user.token.as_str());
        give_credit(&f.app, &f.admin, &user, 300_000).await;
        let v = f.app.gql_ok(ut, SUBSCRIBE, json!({ "i": { "planId": f.plan("BASIC") } })).await;
        let id = v["subscribe"]["id"].as_str().unwrap().to_string();
        // Force a real overlap: hold the writer (SQLite) / the row (PostgreSQL) until both
        // requests have read the subscription and wait for the lock, then let them race.
        let blocker = f.app.state.db.begin().await.unwrap();
        if f.app.db.is_postgres() {
            blocker
                .execute_unprepared(&format!("SELECT id FROM subscriptions WHERE id = {id} FOR UPDATE"))
                .await
                .unwrap();
        }
        let (up, cancel, _) = tokio::join!(
            f.app.gql(ut, UPGRADE, json!({ "id": id, "p": f.plan("PRO") })),
            f.app.gql(ut, CANCEL, json!({ "id": id })),
            async {
                wait_until_blocked(&f.app, 2).await;
                blocker.commit().await.unwrap();
            },
        );
        let oks = [&up, &cancel].iter().filter(|v| v.get("errors").is_none()).count();
        assert_eq!(oks, 1, "{up} {cancel}");
        let loser = if up.get("errors").is_some() { &up } else { &cancel };
        assert_eq!(error_code(loser), "CONFLICT", "{loser}");
        let (basic, pro) = (used_quota(&f.app, f.plan("BASIC")).await, used_quota(&f.app, f.plan("PRO")).await);
        if cancel.get("errors").is_none() {
            assert_eq!((basic, pro), (0, 0), "cancelled: no slot held");
            assert_eq!(balance(&f.app, &user).await, 270_000, "no upgrade charge");
        } else {
            assert_eq!((basic, pro), (0, 1), "upgraded: the PRO slot only");
        }
        assert_ledger_consistent(&f.app, &user).await;
    }
}

#[tokio::test]
async fn platform_stats_add_up() {
    let f = fixture(10).await;
    let (a, b) = (f.app.register("Budi").await, f.app.register("Siti").await);
    give_credit(&f.app, &f.admin, &a, 100_000).await;
    give_credit(&f.app, &f.admin, &b, 100_000).await;
    f.app.gql_ok(Some(&a.token), SUBSCRIBE, json!({ "i": { "planId": f.plan("BASIC") } })).await;
    let v = f.app.gql_ok(Some(&b.token), SUBSCRIBE, json!({ "i": { "planId": f.plan("PRO") } })).await;
    let q = "{ platformStats { users activeSubscriptions monthlyRecurringRevenue revenueThisMonth topUpsThisMonth planUtilization { plan { planType } usedQuota totalQuota activeSubscriptions } } }";
    assert_eq!(error_code(&f.app.gql(Some(&a.token), q, json!({})).await), "FORBIDDEN");
    let s = f.app.gql_ok(Some(&f.admin.token), q, json!({})).await["platformStats"].clone();
    assert_eq!((s["users"].as_i64(), s["activeSubscriptions"].as_i64()), (Some(3), Some(2)));
    assert_eq!(s["monthlyRecurringRevenue"].as_f64(), Some(120_000.0));
    assert_eq!(s["revenueThisMonth"].as_f64(), Some(120_000.0), "adjustments are not revenue");
    assert_eq!(s["topUpsThisMonth"].as_f64(), Some(0.0));

    // A refunded cancellation takes the refund off this month's revenue.
    let id = v["subscribe"]["id"].as_str().unwrap();
    let c = f
        .app
        .gql_ok(
            Some(&f.admin.token),
            "mutation($id: ID!) { adminCancelSubscription(id: $id, reason: \"test\", refund: true) { transactions { type amount } } }",
            json!({ "id": id }),
        )
        .await;
    let refund = c["adminCancelSubscription"]["transactions"][1]["amount"].as_i64().unwrap();
    let s = f.app.gql_ok(Some(&f.admin.token), q, json!({})).await["platformStats"].clone();
    assert_eq!(s["activeSubscriptions"], 1);
    assert_eq!(s["monthlyRecurringRevenue"].as_f64(), Some(30_000.0));
    assert_eq!(s["revenueThisMonth"].as_f64(), Some((120_000 - refund) as f64));
    for u in s["planUtilization"].as_array().unwrap() {
        assert_eq!(u["usedQuota"], u["activeSubscriptions"], "quota counter matches live subscriptions: {u}");
        let expected = if u["plan"]["planType"] == "BASIC" { 1 } else { 0 };
        assert_eq!(u["usedQuota"], expected, "{u}");
    }
}

#[tokio::test]
async fn quota_in_the_cached_catalog_follows_every_subscription_change() {
    let f = fixture(3).await;
    let user = f.app.register("Budi").await;
    let q = r#"{ service(slug: "app-one") { plans { planType usedQuota availableQuota } } }"#;
    let free = |v: serde_json::Value| {
        v["service"]["plans"].as_array().unwrap().iter().find(|p| p["planType"] == "FREE").unwrap()["availableQuota"]
            .as_i64()
            .unwrap()
    };
    // Fill the cache, then change quota through the use cases: the next read must see it.
    assert_eq!(free(f.app.gql_ok(None, q, json!({})).await), 3);
    assert_eq!(free(f.app.gql_ok(None, q, json!({})).await), 3);
    let stats = || f.app.state.catalog_cache.stats();
    let before = stats();
    let v = f.app.gql_ok(Some(&user.token), SUBSCRIBE, json!({ "i": { "planId": f.plan("FREE") } })).await;
    assert_eq!(free(f.app.gql_ok(None, q, json!({})).await), 2, "subscribe is visible at once");
    let id = v["subscribe"]["id"].as_str().unwrap().to_string();
    f.app.gql_ok(Some(&user.token), CANCEL, json!({ "id": id })).await;
    for _ in 0..3 {
        assert_eq!(free(f.app.gql_ok(None, q, json!({})).await), 3, "cancel is visible at once");
    }
    // Quota changes keep the stored answer (no render) and read the quota table once each.
    assert_eq!((stats().misses, stats().quota_reads - before.quota_reads), (before.misses, 2), "{:?}", stats());
    // A catalog change renders again, with the quota it changed: 3 more slots.
    let update = "mutation($id: ID!, $i: UpdatePlanInput!) { updatePlan(id: $id, input: $i) { id } }";
    let more = json!({ "id": f.plan("FREE"), "i": { "totalQuota": 6 } });
    f.app.gql_ok(Some(&f.admin.token), update, more).await;
    assert_eq!(free(f.app.gql_ok(None, q, json!({})).await), 6);
    assert_eq!(stats().misses, before.misses + 1);
}

#[tokio::test]
async fn idempotency_key_with_other_parameters_is_a_conflict_and_keys_are_verbatim() {
    let f = fixture(10).await;
    let user = f.app.register("Budi").await;
    let ut = Some(user.token.as_str());
    give_credit(&f.app, &f.admin, &user, 500_000).await;
    let first = json!({ "i": { "planId": f.plan("BASIC"), "instanceName": "blog", "idempotencyKey": "k" } });
    let id = f.app.gql_ok(ut, SUBSCRIBE, first.clone()).await["subscribe"]["id"].clone();

    // Same key, other plan or other instance name: CONFLICT, nothing charged or taken.
    for other in [
        json!({ "i": { "planId": f.plan("PREMIUM"), "instanceName": "blog", "idempotencyKey": "k" } }),
        json!({ "i": { "planId": f.plan("BASIC"), "instanceName": "shop", "idempotencyKey": "k" } }),
        json!({ "i": { "planId": f.plan("BASIC"), "idempotencyKey": "k" } }),
    ] {
        let v = f.app.gql(ut, SUBSCRIBE, other).await;
        assert_eq!(error_code(&v), "CONFLICT", "{v}");
        assert!(v["errors"][0]["message"].as_str().unwrap().contains("different parameters"), "{v}");
    }
    assert_eq!(balance(&f.app, &user).await, 470_000);
    assert_eq!(used_quota(&f.app, f.plan("PREMIUM")).await, 0);
    // Same key, same parameters: the first subscription.
    assert_eq!(f.app.gql_ok(ut, SUBSCRIBE, first).await["subscribe"]["id"], id);

    // Keys are verbatim: " k" is another key, so it subscribes (to another service).
    let (_, plans) = create_service(&f.app, &f.admin, "app-two", 10).await;
    let spaced = json!({ "i": { "planId": plans[1].1, "idempotencyKey": " k" } });
    let v = f.app.gql_ok(ut, SUBSCRIBE, spaced.clone()).await;
    assert_ne!(v["subscribe"]["id"], id);
    assert_eq!(f.app.gql_ok(ut, SUBSCRIBE, spaced).await["subscribe"]["id"], v["subscribe"]["id"]);
    assert_eq!(balance(&f.app, &user).await, 440_000);
    let v = f.app.gql(ut, SUBSCRIBE, json!({ "i": { "planId": plans[1].1, "idempotencyKey": "" } })).await;
    assert_eq!(v["errors"][0]["extensions"]["field"], "idempotencyKey", "{v}");
}

/// The fewest statements of five runs of `q` (subscribes leave provisioning writing in the
/// background here, without a cluster; those statements only ever add to a count).
async fn fewest_statements(app: &crate::support::TestApp, token: &str, q: &str) -> (u64, serde_json::Value) {
    let (mut used, mut v) = (u64::MAX, serde_json::Value::Null);
    for _ in 0..5 {
        let before = app.state.db.statement_count();
        v = app.gql_ok(Some(token), q, json!({})).await;
        used = used.min(app.state.db.statement_count() - before);
    }
    (used, v)
}

/// One user with `n` subscriptions (one per service) asks for their page; and an admin lists
/// every subscription. Returns (statements of the user's page, of the admin's list).
async fn statements_for_signed_in_pages(n: usize) -> (u64, u64) {
    let f = fixture(10).await;
    let user = f.app.register("Budi").await;
    give_credit(&f.app, &f.admin, &user, 1_000_000).await;
    // Each subscription with its own checkout coupon, so `couponCode` has a row to load.
    let coupon = "mutation($c: String!) { createCoupon(input: { code: $c, name: $c, type: SUBSCRIPTION_DISCOUNT, discountType: PERCENTAGE, discountPercent: 10 }) { id } }";
    for i in 0..n {
        let plans =
            if i == 0 { f.plans.clone() } else { create_service(&f.app, &f.admin, &format!("app-{i}x"), 10).await.1 };
        let plan = &plans.iter().find(|(t, _)| t == "BASIC").unwrap().1;
        let code = format!("TEN-{i}");
        f.app.gql_ok(Some(&f.admin.token), coupon, json!({ "c": code })).await;
        f.app.gql_ok(Some(&user.token), SUBSCRIBE_ID, json!({ "i": { "planId": plan, "couponCode": code } })).await;
    }
    let mine = "{ me { subscriptions { couponCode plan { service { name } } instances { status } transactions { amount } } wallet { balance } } }";
    let (page, v) = fewest_statements(&f.app, &user.token, mine).await;
    assert_eq!(v["me"]["subscriptions"].as_array().unwrap().len(), n, "{v}");
    assert!(v["me"]["subscriptions"].as_array().unwrap().iter().all(|s| s["couponCode"].is_string()), "{v}");
    let all =
        "{ allSubscriptions(first: 100) { nodes { couponCode user { email } plan { name } instances { status } } } }";
    let (list, v) = fewest_statements(&f.app, &f.admin.token, all).await;
    assert_eq!(v["allSubscriptions"]["nodes"].as_array().unwrap().len(), n, "{v}");
    (page, list)
}

#[tokio::test]
async fn signed_in_pages_cost_one_statement_per_level_whatever_the_rows() {
    let (page_1, list_1) = statements_for_signed_in_pages(1).await;
    let (page_5, list_5) = statements_for_signed_in_pages(5).await;
    // One statement per level; a loaded machine may split a level's batch in two (the loader
    // waits 1 ms for keys), while a query per row would add 3 × 4 statements here.
    assert!(page_5 <= page_1 + 3, "the user's page with 1 vs 5 subscriptions: {page_1} vs {page_5}");
    assert!(list_5 <= list_1 + 3, "the admin's list of 1 vs 5 subscriptions: {list_1} vs {list_5}");
}
