//! The billing jobs: automatic renewals, grace period, suspension, expiry, and runBillingJob.
use chrono::{DateTime, Datelike, Duration, Months, TimeZone, Utc};
use serde_json::{Value, json};

use crate::{
    helpers::*,
    support::{Session, error_code},
};

const RUN: &str = "mutation($j: BillingJob!) { runBillingJob(job: $j) { job processed succeeded failed details } }";
const SUBSCRIBE: &str = "mutation($i: SubscribeInput!) { subscribe(input: $i) { id endDate } }";
const SUB: &str = "query($id: ID!) { subscription(id: $id) { status startDate endDate nextBillingAt gracePeriodEnd lastChargeAmount autoRenew instances { status } transactions { type amount } history { kind fromStatus toStatus actorId reason } } }";

async fn run_job(f: &Fixture, job: &str) -> Value {
    f.app.gql_ok(Some(&f.admin.token), RUN, json!({ "j": job })).await["runBillingJob"].clone()
}

fn counts(r: &Value) -> (i64, i64, i64) {
    (r["processed"].as_i64().unwrap(), r["succeeded"].as_i64().unwrap(), r["failed"].as_i64().unwrap())
}

/// Subscribes `user` to `plan_type`; returns the subscription id and its period end.
async fn subscribe(f: &Fixture, user: &Session, plan_type: &str) -> (String, DateTime<Utc>) {
    let v = f.app.gql_ok(Some(&user.token), SUBSCRIBE, json!({ "i": { "planId": f.plan(plan_type) } })).await;
    (v["subscribe"]["id"].as_str().unwrap().to_string(), ts(&v["subscribe"]["endDate"]))
}

async fn sub(f: &Fixture, id: &str) -> Value {
    f.app.gql_ok(Some(&f.admin.token), SUB, json!({ "id": id })).await["subscription"].clone()
}

/// Moves the gateway's clock to `at` (it keeps running with real time from there).
fn move_to(f: &Fixture, at: DateTime<Utc>) {
    f.app.clock.advance(at - f.app.state.now());
}

fn last_event(s: &Value) -> &Value {
    s["history"].as_array().unwrap().last().unwrap()
}

fn renewal_charges(s: &Value) -> Vec<i64> {
    s["transactions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["type"] == "RENEWAL")
        .map(|t| t["amount"].as_i64().unwrap())
        .collect()
}

#[tokio::test]
async fn renewal_charges_the_price_and_moves_the_period_one_calendar_month() {
    // Quota 1: the plans are full, and a renewal must not need a free slot.
    let f = fixture(1).await;
    let jan31 = Utc.with_ymd_and_hms(Utc::now().year() + 1, 1, 31, 10, 0, 0).unwrap();
    move_to(&f, jan31);
    let user = f.app.register("Budi").await;
    give_credit(&f.app, &f.admin, &user, 100_000).await;
    let (id, end) = subscribe(&f, &user, "BASIC").await;
    assert_eq!((end.month(), end.day()), (2, if end.year() % 4 == 0 { 29 } else { 28 }), "clamped: {end}");
    let free_user = f.app.register("Sari").await;
    let (free_id, free_end) = subscribe(&f, &free_user, "FREE").await;
    assert_eq!(used_quota(&f.app, f.plan("BASIC")).await, 1);

    assert_eq!(counts(&run_job(&f, "RENEWALS").await), (0, 0, 0), "nothing due yet");
    move_to(&f, end + Duration::hours(1));
    let r = run_job(&f, "RENEWALS").await;
    assert_eq!(r["job"], "RENEWALS");
    assert_eq!(counts(&r), (2, 2, 0), "{r}");

    let s = sub(&f, &id).await;
    assert_eq!(s["status"], "ACTIVE");
    assert_eq!(ts(&s["startDate"]), end, "the new period starts at the old end");
    let new_end = end.checked_add_months(Months::new(1)).unwrap();
    assert_eq!(ts(&s["endDate"]), new_end);
    assert_eq!(ts(&s["nextBillingAt"]), new_end);
    assert_eq!(s["lastChargeAmount"], 30_000);
    assert_eq!(renewal_charges(&s), vec![30_000]);
    let e = last_event(&s);
    assert_eq!((e["kind"].as_str(), e["actorId"].is_null()), (Some("RENEWED"), true), "{e}");
    assert!(e["reason"].is_string());
    assert_eq!(balance(&f.app, &user).await, 40_000);
    assert_eq!(used_quota(&f.app, f.plan("BASIC")).await, 1, "the slot is kept, not taken twice");

    let fs = sub(&f, &free_id).await;
    assert_eq!(ts(&fs["startDate"]), free_end);
    assert!(renewal_charges(&fs).is_empty(), "free plans are not charged");

    assert_eq!(counts(&run_job(&f, "RENEWALS").await), (0, 0, 0), "renewed once");
    assert_ledger_consistent(&f.app, &user).await;
}

#[tokio::test]
async fn insufficient_credit_starts_a_grace_that_is_not_reset_and_a_top_up_renews() {
    let f = fixture(10).await;
    let user = f.app.register("Budi").await;
    give_credit(&f.app, &f.admin, &user, 30_000).await;
    let (id, end) = subscribe(&f, &user, "BASIC").await;
    move_to(&f, end + Duration::hours(1));

    let r = run_job(&f, "RENEWALS").await;
    assert_eq!(counts(&r), (1, 0, 1), "{r}");
    assert!(r["details"][0].as_str().unwrap().contains("insufficient credit"), "{r}");
    let s = sub(&f, &id).await;
    assert_eq!(s["status"], "ACTIVE", "the service keeps running during the grace");
    let grace_end = end + Duration::days(7);
    assert_eq!(ts(&s["gracePeriodEnd"]), grace_end);
    assert_eq!(last_event(&s)["kind"], "RENEWAL_FAILED");
    assert!(last_event(&s)["actorId"].is_null());

    f.app.clock.advance(Duration::days(2));
    assert_eq!(counts(&run_job(&f, "RENEWALS").await), (1, 0, 1), "retried");
    let s = sub(&f, &id).await;
    assert_eq!(ts(&s["gracePeriodEnd"]), grace_end, "the grace end is not pushed back");
    assert_eq!(s["history"].as_array().unwrap().len(), 2, "a retry writes no history");
    assert_eq!(counts(&run_job(&f, "GRACE_PERIOD").await), (0, 0, 0), "grace not over yet");

    give_credit(&f.app, &f.admin, &user, 30_000).await;
    assert_eq!(counts(&run_job(&f, "RENEWALS").await), (1, 1, 0));
    let s = sub(&f, &id).await;
    assert_eq!(s["status"], "ACTIVE");
    assert!(s["gracePeriodEnd"].is_null());
    assert_eq!(ts(&s["startDate"]), end, "no gap: the paid period starts at the old end");
    assert_eq!(ts(&s["endDate"]), end.checked_add_months(Months::new(1)).unwrap());
    assert_eq!(renewal_charges(&s), vec![30_000]);
    assert_eq!(balance(&f.app, &user).await, 0);
    assert_ledger_consistent(&f.app, &user).await;
}

#[tokio::test]
async fn grace_end_suspends_and_retention_expires_releasing_the_slot() {
    let f = fixture(10).await;
    let user = f.app.register("Budi").await;
    give_credit(&f.app, &f.admin, &user, 30_000).await;
    let (id, end) = subscribe(&f, &user, "BASIC").await;
    move_to(&f, end + Duration::hours(1));
    run_job(&f, "RENEWALS").await;

    move_to(&f, end + Duration::days(7) + Duration::hours(1));
    let r = run_job(&f, "GRACE_PERIOD").await;
    assert_eq!(counts(&r), (1, 1, 0), "{r}");
    let s = sub(&f, &id).await;
    assert_eq!(s["status"], "SUSPENDED");
    let e = last_event(&s);
    assert_eq!((e["kind"].as_str(), e["fromStatus"].as_str()), (Some("SUSPENDED"), Some("ACTIVE")));
    assert!(e["actorId"].is_null() && e["reason"].is_string(), "{e}");
    assert_eq!(used_quota(&f.app, f.plan("BASIC")).await, 1, "a suspended subscription keeps its slot");
    assert_eq!(counts(&run_job(&f, "GRACE_PERIOD").await), (0, 0, 0));
    assert_eq!(counts(&run_job(&f, "RENEWALS").await), (0, 0, 0), "suspended ones are not auto-renewed");

    f.app.clock.advance(Duration::days(30));
    let r = run_job(&f, "GRACE_PERIOD").await;
    assert_eq!(counts(&r), (1, 1, 0), "{r}");
    let s = sub(&f, &id).await;
    assert_eq!(s["status"], "EXPIRED");
    assert_eq!(s["autoRenew"], false);
    assert_eq!(s["instances"][0]["status"], "TERMINATING");
    assert_eq!(last_event(&s)["kind"], "EXPIRED");
    assert_eq!(used_quota(&f.app, f.plan("BASIC")).await, 0, "slot released");
    assert!(renewal_charges(&s).is_empty());
    assert_eq!(balance(&f.app, &user).await, 0);
    assert_ledger_consistent(&f.app, &user).await;
}

#[tokio::test]
async fn auto_renew_off_expires_at_the_period_end_without_a_charge() {
    let f = fixture(10).await;
    let user = f.app.register("Budi").await;
    give_credit(&f.app, &f.admin, &user, 80_000).await;
    let (id, end) = subscribe(&f, &user, "BASIC").await;
    f.app
        .gql_ok(
            Some(&user.token),
            "mutation($id: ID!) { setAutoRenew(id: $id, enabled: false) { autoRenew } }",
            json!({ "id": id }),
        )
        .await;
    move_to(&f, end - Duration::hours(1));
    assert_eq!(counts(&run_job(&f, "GRACE_PERIOD").await), (0, 0, 0), "not before the end");
    move_to(&f, end + Duration::hours(1));
    assert_eq!(counts(&run_job(&f, "RENEWALS").await), (0, 0, 0));
    assert_eq!(counts(&run_job(&f, "GRACE_PERIOD").await), (1, 1, 0));
    let s = sub(&f, &id).await;
    assert_eq!(s["status"], "EXPIRED");
    assert_eq!(s["instances"][0]["status"], "TERMINATING");
    assert!(renewal_charges(&s).is_empty());
    assert_eq!(balance(&f.app, &user).await, 50_000, "no charge");
    assert_eq!(used_quota(&f.app, f.plan("BASIC")).await, 0);
    assert_ledger_consistent(&f.app, &user).await;
}

#[tokio::test]
async fn concurrent_runs_charge_each_subscription_once() {
    let f = fixture(10).await;
    let mut users = vec![];
    let mut end = Utc::now();
    for i in 0..4 {
        let user = f.app.register(&format!("User{i}")).await;
        give_credit(&f.app, &f.admin, &user, 100_000).await;
        end = subscribe(&f, &user, "BASIC").await.1;
        users.push(user);
    }
    move_to(&f, end + Duration::hours(1));
    // Three manual runs racing two "timer" passes: the writer (SQLite) / the subscription rows
    // (PostgreSQL) are held until all five have read a due subscription and wait to charge it.
    let blocker = f.app.state.db.begin().await.unwrap();
    if f.app.db.is_postgres() {
        use sea_orm::ConnectionTrait;
        blocker.execute_unprepared("SELECT id FROM subscriptions FOR UPDATE").await.unwrap();
    }
    let (manual, timer, _) = tokio::join!(
        futures::future::join_all((0..3).map(|_| run_job(&f, "RENEWALS"))),
        futures::future::join_all((0..2).map(|_| minispod_gateway::jobs::billing::renewals(&f.app.state))),
        async {
            crate::helpers::wait_until_blocked(&f.app, 5).await;
            blocker.commit().await.unwrap();
        },
    );
    let mut succeeded: i64 = manual.iter().map(|r| counts(r).1).sum();
    assert!(manual.iter().all(|r| counts(r).2 == 0), "losing a race is not a failure: {manual:?}");
    for r in timer {
        let r = r.unwrap();
        assert_eq!(r.failed, 0, "{r:?}");
        succeeded += r.succeeded as i64;
    }
    assert_eq!(succeeded, 4, "{manual:?}");
    for user in &users {
        assert_eq!(balance(&f.app, user).await, 40_000, "charged once");
        assert_ledger_consistent(&f.app, user).await;
    }
}

#[tokio::test]
async fn low_credit_warnings_other_jobs_and_access() {
    let f = fixture(10).await;
    let poor = f.app.register("Poor").await;
    give_credit(&f.app, &f.admin, &poor, 30_000).await;
    let (_, end) = subscribe(&f, &poor, "BASIC").await;
    let rich = f.app.register("Rich").await;
    give_credit(&f.app, &f.admin, &rich, 100_000).await;
    subscribe(&f, &rich, "BASIC").await;

    assert_eq!(counts(&run_job(&f, "LOW_CREDIT_WARNINGS").await), (0, 0, 0), "nothing due within 3 days");
    move_to(&f, end - Duration::days(2));
    let r = run_job(&f, "LOW_CREDIT_WARNINGS").await;
    assert_eq!(counts(&r), (2, 1, 0), "{r}");
    assert!(r["details"][0].as_str().unwrap().contains(&format!("user {}", poor.user_id)), "{r}");

    assert_eq!(counts(&run_job(&f, "RECONCILE_PAYMENTS").await), (0, 0, 0));
    let v = f.app.gql(Some(&f.admin.token), RUN, json!({ "j": "RECONCILE_INSTANCES" })).await;
    assert_eq!(error_code(&v), "CLUSTER_UNAVAILABLE", "no cluster in this test");

    assert_eq!(error_code(&f.app.gql(Some(&poor.token), RUN, json!({ "j": "RENEWALS" })).await), "FORBIDDEN");
    assert_eq!(error_code(&f.app.gql(None, RUN, json!({ "j": "RENEWALS" })).await), "UNAUTHENTICATED");
}

#[tokio::test]
async fn an_automatic_renewal_is_pushed_on_wallet_updates() {
    use crate::support::ws::WsClient;
    let f = fixture(10).await;
    let user = f.app.register("Budi").await;
    give_credit(&f.app, &f.admin, &user, 100_000).await;
    let (_, end) = subscribe(&f, &user, "BASIC").await;
    let mut ws = WsClient::connect_ok(&f.app.ws_url(), Some(&user.token)).await;
    ws.subscribe("1", "subscription { walletUpdates { type amount balanceAfter } }", json!({})).await;
    crate::helpers::subscribed(&f.app, 1).await;
    move_to(&f, end + Duration::hours(1));
    assert_eq!(counts(&run_job(&f, "RENEWALS").await), (1, 1, 0));
    let m = ws.next_message(std::time::Duration::from_secs(10)).await.expect("a walletUpdates event");
    let t = &m["payload"]["data"]["walletUpdates"];
    assert_eq!((t["type"].as_str(), t["amount"].as_i64()), (Some("RENEWAL"), Some(30_000)), "{m}");
    assert_eq!(t["balanceAfter"], 40_000);
}

const UPGRADE: &str = "mutation($id: ID!, $p: ID!) { upgradeSubscription(id: $id, planId: $p) { plan { planType } endDate transactions { type amount } } }";
const RENEW: &str = "mutation($id: ID!) { renewSubscription(id: $id) { status startDate endDate gracePeriodEnd } }";
const OPTIONS: &str =
    "query($id: ID!) { subscription(id: $id) { upgradeOptions { plan { planType } cost canUpgrade reason } } }";

#[tokio::test]
async fn no_upgrade_in_grace_and_a_manual_renewal_starts_at_the_old_end() {
    let f = fixture(10).await;
    let user = f.app.register("Budi").await;
    let ut = Some(user.token.as_str());
    give_credit(&f.app, &f.admin, &user, 30_000).await;
    let (id, end) = subscribe(&f, &user, "BASIC").await;
    move_to(&f, end + Duration::hours(1));
    assert_eq!(counts(&run_job(&f, "RENEWALS").await), (1, 0, 1), "no credit: grace");
    give_credit(&f.app, &f.admin, &user, 500_000).await;
    move_to(&f, end + Duration::days(3));

    // The prorated price would be 0 now that the period is over: refused, nothing charged.
    let v = f.app.gql(ut, UPGRADE, json!({ "id": id, "p": f.plan("PREMIUM") })).await;
    assert_eq!(error_code(&v), "CONFLICT", "{v}");
    assert!(v["errors"][0]["message"].as_str().unwrap().contains("renew first"), "{v}");
    assert_eq!(balance(&f.app, &user).await, 500_000);
    assert_eq!(used_quota(&f.app, f.plan("PREMIUM")).await, 0);
    let opts = f.app.gql_ok(ut, OPTIONS, json!({ "id": id })).await;
    for o in opts["subscription"]["upgradeOptions"].as_array().unwrap() {
        assert_eq!(o["canUpgrade"], false, "{o}");
        assert!(o["reason"].as_str().unwrap().contains("renew first"), "{o}");
    }

    // Renewing in grace: the grace days were served, so the new period starts at the old end.
    let r = f.app.gql_ok(ut, RENEW, json!({ "id": id })).await["renewSubscription"].clone();
    assert_eq!(r["status"], "ACTIVE");
    assert!(r["gracePeriodEnd"].is_null());
    assert_eq!(ts(&r["startDate"]), end, "{r}");
    assert_eq!(ts(&r["endDate"]), end.checked_add_months(Months::new(1)).unwrap());
    assert_eq!(balance(&f.app, &user).await, 470_000);

    // With a paid period the upgrade is allowed again, and it costs the prorated difference.
    let u = f.app.gql_ok(ut, UPGRADE, json!({ "id": id, "p": f.plan("PREMIUM") })).await["upgradeSubscription"].clone();
    assert_eq!(u["plan"]["planType"], "PREMIUM");
    let charged = u["transactions"].as_array().unwrap().iter().find(|t| t["type"] == "UPGRADE").unwrap()["amount"]
        .as_i64()
        .unwrap();
    assert!((100_000..=120_000).contains(&charged), "about 27 of 30 days of 120,000: {charged}");
    assert_ledger_consistent(&f.app, &user).await;
}

#[tokio::test]
async fn a_manual_renewal_from_suspended_starts_now() {
    let f = fixture(10).await;
    let user = f.app.register("Budi").await;
    let ut = Some(user.token.as_str());
    give_credit(&f.app, &f.admin, &user, 30_000).await;
    let (id, end) = subscribe(&f, &user, "BASIC").await;
    move_to(&f, end + Duration::hours(1));
    run_job(&f, "RENEWALS").await;
    move_to(&f, end + Duration::days(9));
    assert_eq!(counts(&run_job(&f, "GRACE_PERIOD").await), (1, 1, 0));
    assert_eq!(sub(&f, &id).await["status"], "SUSPENDED");
    let v = f.app.gql(ut, UPGRADE, json!({ "id": id, "p": f.plan("PRO") })).await;
    assert_eq!(error_code(&v), "CONFLICT", "{v}");

    give_credit(&f.app, &f.admin, &user, 30_000).await;
    let before = f.app.state.now();
    let r = f.app.gql_ok(ut, RENEW, json!({ "id": id })).await["renewSubscription"].clone();
    let after = f.app.state.now();
    assert_eq!(r["status"], "ACTIVE");
    let start = ts(&r["startDate"]);
    assert!(before <= start && start <= after, "the service was stopped: the period starts now ({start})");
    assert_eq!(ts(&r["endDate"]), start.checked_add_months(Months::new(1)).unwrap());
    assert_eq!(balance(&f.app, &user).await, 0);
}
