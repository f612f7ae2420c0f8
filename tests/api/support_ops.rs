//! Admin support operations on subscriptions: create for a user, change plan, expire, and
//! partial refunds of a charge (never more than charged, also under concurrency).
use serde_json::{Value, json};

use crate::{helpers::*, support::error_code};

const CREATE: &str = "mutation($u: ID!, $p: ID!, $c: Boolean!, $r: String!) { adminCreateSubscription(userId: $u, planId: $p, chargeCredit: $c, reason: $r) { id status lastChargeAmount plan { planType } transactions { id type amount } history { kind actorId reason } } }";
const CHANGE: &str = "mutation($id: ID!, $p: ID!, $r: String!) { adminChangePlan(id: $id, planId: $p, reason: $r) { status monthlyPrice plan { planType } transactions { type amount } history { kind actorId reason details } } }";
const EXPIRE: &str = "mutation($id: ID!, $r: String!) { adminExpireSubscription(id: $id, reason: $r) { status autoRenew nextBillingAt history { kind actorId reason } } }";
const REFUND: &str = "mutation($t: ID!, $a: Int!, $r: String!) { adminRefund(transactionId: $t, amount: $a, reason: $r) { type amount refundOf subscription { id } } }";

fn last_event(sub: &Value) -> &Value {
    sub["history"].as_array().and_then(|h| h.last()).expect("a history entry")
}

/// A user with `credit` and a PRO subscription (90,000) created by the admin, charged.
async fn pro_subscriber(f: &Fixture, credit: i64) -> (crate::support::Session, Value) {
    let user = f.app.register("Budi").await;
    give_credit(&f.app, &f.admin, &user, credit).await;
    let vars = json!({ "u": user.user_id, "p": f.plan("PRO"), "c": true, "r": "sales deal" });
    let v = f.app.gql_ok(Some(&f.admin.token), CREATE, vars).await;
    (user, v["adminCreateSubscription"].clone())
}

#[tokio::test]
async fn admin_creates_a_subscription_charged_or_granted() {
    let f = fixture(2).await;
    let (user, sub) = pro_subscriber(&f, 100_000).await;
    assert_eq!(sub["status"], "ACTIVE");
    assert_eq!(sub["transactions"][0]["type"], "SUBSCRIPTION");
    assert_eq!(sub["transactions"][0]["amount"], 90_000);
    let e = last_event(&sub);
    assert_eq!((e["kind"].as_str(), e["reason"].as_str()), (Some("ADMIN_CREATED"), Some("sales deal")));
    assert_eq!(e["actorId"], f.admin.user_id.as_str(), "the administrator is named");
    assert_eq!(balance(&f.app, &user).await, 10_000);
    assert_eq!(used_quota(&f.app, f.plan("PRO")).await, 1, "a slot is taken as at checkout");

    // Granted: no charge, no ledger row; the same checkout rules (one per service, quota).
    let other = f.app.register("Siti").await;
    let vars = json!({ "u": other.user_id, "p": f.plan("PRO"), "c": false, "r": "compensation" });
    let v = f.app.gql_ok(Some(&f.admin.token), CREATE, vars.clone()).await;
    assert_eq!(v["adminCreateSubscription"]["transactions"], json!([]));
    assert_eq!(v["adminCreateSubscription"]["lastChargeAmount"], 0);
    assert_eq!(balance(&f.app, &other).await, 0);
    assert_eq!(error_code(&f.app.gql(Some(&f.admin.token), CREATE, vars).await), "CONFLICT", "one per service");
    let third = f.app.register("Agus").await;
    let vars = json!({ "u": third.user_id, "p": f.plan("PRO"), "c": false, "r": "compensation" });
    assert_eq!(error_code(&f.app.gql(Some(&f.admin.token), CREATE, vars).await), "QUOTA_EXHAUSTED");

    // Charged without enough credit: refused, nothing written.
    let vars = json!({ "u": third.user_id, "p": f.plan("BASIC"), "c": true, "r": "sales deal" });
    assert_eq!(error_code(&f.app.gql(Some(&f.admin.token), CREATE, vars).await), "INSUFFICIENT_CREDIT");
    assert_eq!(used_quota(&f.app, f.plan("BASIC")).await, 0);
    let vars = json!({ "u": third.user_id, "p": f.plan("BASIC"), "c": false, "r": " " });
    let v = f.app.gql(Some(&f.admin.token), CREATE, vars).await;
    assert_eq!(v["errors"][0]["extensions"]["field"], "reason", "{v}");
    let vars = json!({ "u": "999999", "p": f.plan("BASIC"), "c": false, "r": "x" });
    assert_eq!(error_code(&f.app.gql(Some(&f.admin.token), CREATE, vars).await), "NOT_FOUND");
    assert_ledger_consistent(&f.app, &user).await;
}

#[tokio::test]
async fn support_operations_are_refused_to_users() {
    let f = fixture(2).await;
    let (user, sub) = pro_subscriber(&f, 100_000).await;
    let (ut, id) = (Some(user.token.as_str()), sub["id"].clone());
    let charge = sub["transactions"][0]["id"].clone();
    let calls = [
        (CREATE, json!({ "u": user.user_id, "p": f.plan("BASIC"), "c": false, "r": "x" })),
        (CHANGE, json!({ "id": id, "p": f.plan("BASIC"), "r": "x" })),
        (EXPIRE, json!({ "id": id, "r": "x" })),
        (REFUND, json!({ "t": charge, "a": 1_000, "r": "x" })),
    ];
    for (q, vars) in calls {
        assert_eq!(error_code(&f.app.gql(ut, q, vars).await), "FORBIDDEN", "{q}");
    }
    assert_eq!(balance(&f.app, &user).await, 10_000, "nothing moved");
}

#[tokio::test]
async fn admin_changes_plan_down_with_a_refund_and_up_with_a_charge() {
    let f = fixture(2).await;
    let (user, sub) = pro_subscriber(&f, 200_000).await;
    let id = sub["id"].clone();
    let at = Some(f.admin.token.as_str());

    // Down from PRO (90,000) to BASIC (30,000) at once: almost the whole 60,000 comes back.
    let v = f.app.gql_ok(at, CHANGE, json!({ "id": id, "p": f.plan("BASIC"), "r": "asked to downgrade" })).await;
    let s = &v["adminChangePlan"];
    assert_eq!((s["plan"]["planType"].as_str(), s["monthlyPrice"].as_i64()), (Some("BASIC"), Some(30_000)));
    let refund = s["transactions"][1].clone();
    assert_eq!(refund["type"], "REFUND");
    let back = refund["amount"].as_i64().unwrap();
    assert!((59_990..=60_000).contains(&back), "prorated over an almost unused period: {back}");
    let e = last_event(s);
    assert_eq!((e["kind"].as_str(), e["reason"].as_str()), (Some("PLAN_CHANGED"), Some("asked to downgrade")));
    assert_eq!(e["actorId"], f.admin.user_id.as_str());
    assert_eq!((used_quota(&f.app, f.plan("PRO")).await, used_quota(&f.app, f.plan("BASIC")).await), (0, 1));
    assert_eq!(balance(&f.app, &user).await, 110_000 + back);

    // Up to PREMIUM (150,000): the prorated difference is charged.
    let v = f.app.gql_ok(at, CHANGE, json!({ "id": id, "p": f.plan("PREMIUM"), "r": "upsell" })).await;
    let charge = &v["adminChangePlan"]["transactions"][2];
    assert_eq!(charge["type"], "UPGRADE");
    assert!((119_990..=120_000).contains(&charge["amount"].as_i64().unwrap()), "{charge}");
    let same = f.app.gql(at, CHANGE, json!({ "id": id, "p": f.plan("PREMIUM"), "r": "again" })).await;
    assert_eq!(same["errors"][0]["extensions"]["field"], "planId", "{same}");
    assert_ledger_consistent(&f.app, &user).await;

    // The owner still cannot go down by themselves.
    let q = "mutation($id: ID!, $p: ID!) { upgradeSubscription(id: $id, planId: $p) { id } }";
    let v = f.app.gql(Some(&user.token), q, json!({ "id": id, "p": f.plan("BASIC") })).await;
    assert_eq!(error_code(&v), "BAD_USER_INPUT");
}

#[tokio::test]
async fn admin_expires_a_subscription_now() {
    let f = fixture(2).await;
    let (user, sub) = pro_subscriber(&f, 100_000).await;
    let id = sub["id"].clone();
    let at = Some(f.admin.token.as_str());
    let v = f.app.gql_ok(at, EXPIRE, json!({ "id": id, "r": "fraud" })).await;
    let s = &v["adminExpireSubscription"];
    assert_eq!((s["status"].as_str(), s["autoRenew"].as_bool()), (Some("EXPIRED"), Some(false)));
    assert_eq!(s["nextBillingAt"], Value::Null);
    let e = last_event(s);
    assert_eq!((e["kind"].as_str(), e["reason"].as_str()), (Some("ADMIN_EXPIRED"), Some("fraud")));
    assert_eq!(e["actorId"], f.admin.user_id.as_str());
    assert_eq!(used_quota(&f.app, f.plan("PRO")).await, 0, "the slot is released");
    assert_eq!(balance(&f.app, &user).await, 10_000, "no refund");
    assert_eq!(error_code(&f.app.gql(at, EXPIRE, json!({ "id": id, "r": "again" })).await), "CONFLICT");
}

#[tokio::test]
async fn partial_refunds_never_exceed_the_charge() {
    let f = fixture(2).await;
    let (user, sub) = pro_subscriber(&f, 100_000).await;
    let at = Some(f.admin.token.as_str());
    let charge = sub["transactions"][0]["id"].clone();
    let v = f.app.gql_ok(at, REFUND, json!({ "t": charge, "a": 50_000, "r": "outage" })).await;
    let r = &v["adminRefund"];
    assert_eq!((r["type"].as_str(), r["amount"].as_i64()), (Some("REFUND"), Some(50_000)));
    assert_eq!((&r["refundOf"], &r["subscription"]["id"]), (&charge, &sub["id"]));
    let over = f.app.gql(at, REFUND, json!({ "t": charge, "a": 40_001, "r": "outage" })).await;
    assert_eq!(over["errors"][0]["extensions"]["field"], "amount", "{over}");
    assert!(over["errors"][0]["message"].as_str().unwrap().contains("at most 40000 IDR"), "{over}");
    f.app.gql_ok(at, REFUND, json!({ "t": charge, "a": 40_000, "r": "outage" })).await;
    assert_eq!(balance(&f.app, &user).await, 100_000, "the whole charge is back");
    let zero = f.app.gql(at, REFUND, json!({ "t": charge, "a": 0, "r": "outage" })).await;
    assert_eq!(zero["errors"][0]["extensions"]["field"], "amount");

    // A refund is not a charge; neither is a credit adjustment.
    let q = "{ allTransactions(first: 10) { nodes { id type } } }";
    let rows = f.app.gql_ok(at, q, json!({})).await["allTransactions"]["nodes"].clone();
    for row in rows.as_array().unwrap().iter().filter(|t| t["type"] != "SUBSCRIPTION") {
        let v = f.app.gql(at, REFUND, json!({ "t": row["id"], "a": 1, "r": "x" })).await;
        assert_eq!(v["errors"][0]["extensions"]["field"], "transactionId", "{row} {v}");
    }
    let q = "query($id: ID!) { subscription(id: $id) { history { kind reason details } } }";
    let h = f.app.gql_ok(at, q, json!({ "id": sub["id"] })).await["subscription"]["history"].clone();
    let refunds: Vec<_> = h.as_array().unwrap().iter().filter(|e| e["kind"] == "REFUNDED").collect();
    assert_eq!(refunds.len(), 2, "{h}");
    assert_eq!(refunds[0]["reason"], "outage");
    assert_ledger_consistent(&f.app, &user).await;
}

/// A cancellation's prorated refund is a refund of the period's charges too: after an
/// administrator gave back most of the charge, only what is left of it comes back.
#[tokio::test]
async fn period_refunds_count_against_the_charges() {
    let f = fixture(2).await;
    let (user, sub) = pro_subscriber(&f, 100_000).await;
    let at = Some(f.admin.token.as_str());
    let charge = sub["transactions"][0]["id"].clone();
    f.app.gql_ok(at, REFUND, json!({ "t": charge, "a": 80_000, "r": "outage" })).await;
    let cancel = "mutation($id: ID!) { adminCancelSubscription(id: $id, reason: \"goodwill\", refund: true) { transactions { type amount refundOf } } }";
    let v = f.app.gql_ok(at, cancel, json!({ "id": sub["id"] })).await;
    let rows = v["adminCancelSubscription"]["transactions"].as_array().unwrap().clone();
    let last = rows.iter().rfind(|t| t["type"] == "REFUND").unwrap();
    assert_eq!((last["amount"].as_i64(), &last["refundOf"]), (Some(10_000), &charge), "{rows:?}");
    assert_eq!(balance(&f.app, &user).await, 100_000, "the whole charge is back, no more");
    let over = f.app.gql(at, REFUND, json!({ "t": charge, "a": 1, "r": "again" })).await;
    assert!(over["errors"][0]["message"].as_str().unwrap().contains("at most 0 IDR"), "{over}");
    assert_ledger_consistent(&f.app, &user).await;
}

#[tokio::test]
async fn ten_parallel_refunds_stop_at_the_charge() {
    use sea_orm::ConnectionTrait;
    let f = fixture(2).await;
    let (user, sub) = pro_subscriber(&f, 90_000).await;
    let at = Some(f.admin.token.as_str());
    let charge = sub["transactions"][0]["id"].clone();
    // Hold the writer (SQLite) / the charge row (PostgreSQL) until all ten wait for it.
    let blocker = f.app.state.db.begin().await.unwrap();
    if f.app.db.is_postgres() {
        let sql = format!("SELECT id FROM transactions WHERE id = {} FOR UPDATE", charge.as_str().unwrap());
        blocker.execute_unprepared(&sql).await.unwrap();
    }
    let vars = json!({ "t": charge, "a": 20_000, "r": "outage" });
    let calls = futures::future::join_all((0..10).map(|_| f.app.gql(at, REFUND, vars.clone())));
    let (results, _) = tokio::join!(calls, async {
        wait_until_blocked(&f.app, 10).await;
        blocker.commit().await.unwrap();
    });
    let ok = results.iter().filter(|v| v.get("errors").is_none()).count();
    assert_eq!(ok, 4, "4 × 20,000 fit in 90,000, a fifth would not");
    for v in results.iter().filter(|v| v.get("errors").is_some()) {
        assert_eq!(v["errors"][0]["extensions"]["field"], "amount", "{v}");
    }
    assert_eq!(balance(&f.app, &user).await, 80_000);
    let last = f.app.gql_ok(at, REFUND, json!({ "t": charge, "a": 10_000, "r": "rest" })).await;
    assert_eq!(last["adminRefund"]["amount"], 10_000, "exactly what was left");
    assert_ledger_consistent(&f.app, &user).await;
}

#[tokio::test]
async fn all_subscriptions_filters_and_sorts() {
    let f = fixture(5).await;
    let at = Some(f.admin.token.as_str());
    let (_, two) = create_service(&f.app, &f.admin, "app-two", 5).await;
    let grant = |u: &crate::support::Session, plan: &str| json!({ "u": u.user_id, "p": plan, "c": false, "r": "test" });
    let (budi, siti, agus) =
        (f.app.register("Budi").await, f.app.register("Rahmawati").await, f.app.register("Agus").await);
    f.app.gql_ok(at, CREATE, grant(&budi, f.plan("PRO"))).await;
    let start = chrono::Utc::now();
    f.app.clock.advance(chrono::Duration::days(2));
    f.app.gql_ok(at, CREATE, grant(&siti, f.plan("BASIC"))).await;
    let agus_two = f.app.gql_ok(at, CREATE, grant(&agus, &two[2].1)).await["adminCreateSubscription"]["id"].clone();
    f.app.gql_ok(at, EXPIRE, json!({ "id": agus_two, "r": "test" })).await;

    let q = "query($f: SubscriptionFilter, $s: SubscriptionSort, $after: String) { allSubscriptions(filter: $f, sort: $s, first: 2, after: $after) { totalCount pageInfo { hasNextPage endCursor } nodes { monthlyPrice status user { name } plan { planType } service { slug } } } }";
    let names = |v: &Value| -> Vec<String> {
        v["allSubscriptions"]["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["user"]["name"].as_str().unwrap().to_string())
            .collect()
    };
    let ask = |filter: Value| f.app.gql_ok(at, q, json!({ "f": filter }));
    assert_eq!(names(&ask(json!({ "serviceId": f.service_id })).await), ["Rahmawati", "Budi"]);
    assert_eq!(names(&ask(json!({ "planId": f.plan("PRO") })).await), ["Budi"]);
    assert_eq!(names(&ask(json!({ "status": "EXPIRED" })).await), ["Agus"]);
    assert_eq!(names(&ask(json!({ "search": "HMAW" })).await), ["Rahmawati"], "name, any case");
    assert_eq!(names(&ask(json!({ "search": siti.email.to_uppercase() })).await), ["Rahmawati"], "email");
    assert_eq!(names(&ask(json!({ "search": "%" })).await), Vec::<String>::new(), "wildcards are text");
    let day = chrono::Duration::days(1);
    let v = ask(json!({ "createdFrom": start - day, "createdTo": start + day })).await;
    assert_eq!(names(&v), ["Budi"], "created in the range");
    let bad = f.app.gql(at, q, json!({ "f": { "createdFrom": start, "createdTo": start } })).await;
    assert_eq!(bad["errors"][0]["extensions"]["field"], "createdTo", "{bad}");

    // Sorted by price, cheapest first, over two pages.
    let sort = json!({ "field": "MONTHLY_PRICE", "direction": "ASC" });
    let p1 = f.app.gql_ok(at, q, json!({ "s": sort })).await;
    assert_eq!(p1["allSubscriptions"]["totalCount"], 3);
    let prices: Vec<i64> = p1["allSubscriptions"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["monthlyPrice"].as_i64().unwrap())
        .collect();
    assert_eq!(prices, [30_000, 90_000], "app-two's PRO is 90,000 too: ties by id");
    let after = p1["allSubscriptions"]["pageInfo"]["endCursor"].clone();
    let p2 = f.app.gql_ok(at, q, json!({ "s": sort, "after": after })).await;
    assert_eq!(p2["allSubscriptions"]["nodes"][0]["user"]["name"], "Agus");
    assert_eq!(p2["allSubscriptions"]["pageInfo"]["hasNextPage"], false);
    assert_eq!(error_code(&f.app.gql(Some(&budi.token), q, json!({})).await), "FORBIDDEN");
}

/// `checkoutPreview` against what `subscribe` then does, for success and each failure reason.
#[tokio::test]
async fn checkout_preview_agrees_with_subscribe() {
    let f = fixture(1).await;
    let at = Some(f.admin.token.as_str());
    let user = f.app.register("Budi").await;
    let ut = Some(user.token.as_str());
    let preview = "query($p: ID!, $c: String) { checkoutPreview(planId: $p, couponCode: $c) { cost balance balanceAfter shortfall ok reason plan { planType } } }";
    let subscribe = "mutation($p: ID!) { subscribe(input: { planId: $p }) { id transactions { amount } } }";
    let app = &f.app;
    let look =
        |plan: String| async move { app.gql_ok(ut, preview, json!({ "p": plan })).await["checkoutPreview"].clone() };

    give_credit(&f.app, &f.admin, &user, 20_000).await;
    let p = look(f.plan("BASIC").to_string()).await;
    assert_eq!(
        p,
        json!({ "cost": 30_000, "balance": 20_000, "balanceAfter": -10_000, "shortfall": 10_000, "ok": false, "reason": "INSUFFICIENT_CREDIT", "plan": { "planType": "BASIC" } })
    );
    assert_eq!(error_code(&f.app.gql(ut, subscribe, json!({ "p": f.plan("BASIC") })).await), "INSUFFICIENT_CREDIT");

    let v = f.app.gql_ok(ut, preview, json!({ "p": f.plan("BASIC"), "c": "WELCOME" })).await;
    assert_eq!(v["checkoutPreview"]["reason"], "COUPON_INVALID", "no coupon is valid yet");

    give_credit(&f.app, &f.admin, &user, 10_000).await;
    let p = look(f.plan("BASIC").to_string()).await;
    assert_eq!(
        (p["ok"].as_bool(), p["balanceAfter"].as_i64(), p["shortfall"].as_i64()),
        (Some(true), Some(0), Some(0))
    );
    let v = f.app.gql_ok(ut, subscribe, json!({ "p": f.plan("BASIC") })).await;
    assert_eq!(v["subscribe"]["transactions"][0]["amount"], p["cost"], "charged what the preview said");
    assert_eq!(balance(&f.app, &user).await, 0, "the balance the preview said");

    let p = look(f.plan("PRO").to_string()).await;
    assert_eq!(p["reason"], "ALREADY_SUBSCRIBED");
    assert_eq!(error_code(&f.app.gql(ut, subscribe, json!({ "p": f.plan("PRO") })).await), "CONFLICT");

    // Quota: another user fills the one BASIC slot of a second service.
    let (_, two) = create_service(&f.app, &f.admin, "app-two", 1).await;
    let other = f.app.register("Siti").await;
    f.app.gql_ok(Some(&other.token), subscribe, json!({ "p": two[0].1 })).await;
    assert_eq!(look(two[0].1.clone()).await["reason"], "QUOTA_EXHAUSTED");
    assert_eq!(error_code(&f.app.gql(ut, subscribe, json!({ "p": two[0].1 })).await), "QUOTA_EXHAUSTED");

    // An inactive plan.
    let q = "mutation($id: ID!) { updatePlan(id: $id, input: { isActive: false }) { id } }";
    f.app.gql_ok(at, q, json!({ "id": two[1].1 })).await;
    assert_eq!(look(two[1].1.clone()).await["reason"], "PLAN_UNAVAILABLE");
    assert_eq!(error_code(&f.app.gql(ut, subscribe, json!({ "p": two[1].1 })).await), "NOT_FOUND");
    assert_eq!(error_code(&f.app.gql(None, preview, json!({ "p": two[1].1 })).await), "UNAUTHENTICATED");
}

#[tokio::test]
async fn wallet_statistics_are_the_owners_spending_per_month_and_service() {
    use chrono::{Datelike, TimeZone};
    let f = fixture(5).await;
    let at = Some(f.admin.token.as_str());
    let (user, sub) = pro_subscriber(&f, 100_000).await;
    let (other, _) = pro_subscriber(&f, 200_000).await;
    let charge = sub["transactions"][0]["id"].clone();
    f.app.gql_ok(at, REFUND, json!({ "t": charge, "a": 10_000, "r": "outage" })).await;
    let now = chrono::Utc::now();
    let from = chrono::Utc.with_ymd_and_hms(now.year(), now.month(), 1, 0, 0, 0).unwrap();
    let to = from.checked_add_months(chrono::Months::new(1)).unwrap();
    let q = "query($f: DateTime!, $t: DateTime!) { wallet { statistics(from: $f, to: $t, timeZone: \"UTC\") { series { label subscriptionCharges refunds netRevenue topUps } byService { name netRevenue } } } }";
    let v = f.app.gql_ok(Some(&user.token), q, json!({ "f": from, "t": to })).await;
    let s = &v["wallet"]["statistics"];
    assert_eq!(s["series"].as_array().unwrap().len(), 1, "{s}");
    let month = &s["series"][0];
    assert_eq!(
        (month["subscriptionCharges"].as_i64(), month["refunds"].as_i64()),
        (Some(90_000), Some(10_000)),
        "only the owner's rows: {s}"
    );
    assert_eq!(month["netRevenue"], 80_000);
    assert_eq!(s["byService"], json!([{ "name": "app-one", "netRevenue": 80_000 }]));
    let v = f.app.gql_ok(Some(&other.token), q, json!({ "f": from, "t": to })).await;
    assert_eq!(v["wallet"]["statistics"]["series"][0]["refunds"], 0);
    let bad = f.app.gql(Some(&user.token), q, json!({ "f": to, "t": from })).await;
    assert_eq!(error_code(&bad), "BAD_USER_INPUT");
}

#[tokio::test]
async fn subscription_billing_shows_days_left_the_next_charge_and_upgrade_prices() {
    let f = fixture(5).await;
    let (user, sub) = pro_subscriber(&f, 100_000).await;
    let ut = Some(user.token.as_str());
    let q = "query($id: ID!) { subscription(id: $id) { endDate billing { daysRemaining nextChargeAt nextChargeAmount upgrades { plan { planType } cost canUpgrade reason } } } }";
    let v = f.app.gql_ok(ut, q, json!({ "id": sub["id"] })).await;
    let b = &v["subscription"]["billing"];
    let days = b["daysRemaining"].as_i64().unwrap();
    assert!((28..=31).contains(&days), "a fresh monthly period: {b}");
    assert_eq!((&b["nextChargeAt"], b["nextChargeAmount"].as_i64()), (&v["subscription"]["endDate"], Some(90_000)));
    let premium = &b["upgrades"][0];
    assert_eq!(premium["plan"]["planType"], "PREMIUM");
    assert!((59_990..=60_000).contains(&premium["cost"].as_i64().unwrap()), "{premium}");
    assert_eq!(premium["canUpgrade"], false, "10,000 credit left: {premium}");

    // Ten days on: ten fewer days, a smaller prorated price.
    f.app.clock.advance(chrono::Duration::days(10));
    let v = f.app.gql_ok(ut, q, json!({ "id": sub["id"] })).await;
    let later = &v["subscription"]["billing"];
    assert_eq!(later["daysRemaining"].as_i64(), Some(days - 10));
    assert!(later["upgrades"][0]["cost"].as_i64() < premium["cost"].as_i64());

    // Auto-renew off: nothing will be charged.
    let off =
        "mutation($id: ID!) { setAutoRenew(id: $id, enabled: false) { billing { nextChargeAt nextChargeAmount } } }";
    let v = f.app.gql_ok(ut, off, json!({ "id": sub["id"] })).await;
    assert_eq!(v["setAutoRenew"]["billing"], json!({ "nextChargeAt": null, "nextChargeAmount": null }));
}
