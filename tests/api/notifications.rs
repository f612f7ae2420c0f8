//! Stored notifications: each billing transition, top-up outcome and instance milestone notifies
//! its owner exactly once (re-run and concurrent jobs, replayed webhooks), notificationAdded
//! reaches the owner only, mark-read touches only one's own, and broadcasts are admin-only.
use std::{sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::{
    helpers::*,
    provisioning::end_to_end::{gateway, subscribe as subscribe_app, wait_status},
    support::{
        Session, TestApp, error_code, eventually,
        fake_k8s_workloads::FakeWorkloads,
        fake_midtrans::{FakeMidtrans, notification},
        ws::WsClient,
    },
};

const RUN: &str = "mutation($j: BillingJob!) { runBillingJob(job: $j) { processed succeeded failed details } }";
const LIST: &str = "query($u: Boolean, $f: Int, $a: String) { notifications(unreadOnly: $u, first: $f, after: $a) { totalCount pageInfo { hasNextPage endCursor } edges { node { id kind title body read subscriptionId transactionId instanceId createdAt } } } unreadNotificationCount }";
const ADDED: &str = "subscription { notificationAdded { id kind title body subscriptionId } }";
const BROADCAST: &str =
    "mutation($t: String!, $b: String!, $r: Role) { broadcastNotification(title: $t, body: $b, role: $r) }";

async fn run_job(app: &TestApp, admin: &Session, job: &str) -> Value {
    app.gql_ok(Some(&admin.token), RUN, json!({ "j": job })).await["runBillingJob"].clone()
}

async fn list(app: &TestApp, s: &Session) -> Vec<Value> {
    let v = app.gql_ok(Some(&s.token), LIST, json!({ "f": 100 })).await;
    v["notifications"]["edges"].as_array().unwrap().iter().map(|e| e["node"].clone()).collect()
}

/// The kinds of the user's notifications, oldest first.
async fn kinds(app: &TestApp, s: &Session) -> Vec<String> {
    let mut k: Vec<String> = list(app, s).await.iter().map(|n| n["kind"].as_str().unwrap().to_string()).collect();
    k.reverse();
    k
}

async fn of_kind(app: &TestApp, s: &Session, kind: &str) -> Vec<Value> {
    list(app, s).await.into_iter().filter(|n| n["kind"] == kind).collect()
}

fn move_to(app: &TestApp, at: DateTime<Utc>) {
    app.clock.advance(at - app.state.now());
}

async fn subscribe(f: &Fixture, user: &Session, plan_type: &str) -> (String, DateTime<Utc>) {
    let q = "mutation($i: SubscribeInput!) { subscribe(input: $i) { id endDate } }";
    let v = f.app.gql_ok(Some(&user.token), q, json!({ "i": { "planId": f.plan(plan_type) } })).await;
    (v["subscribe"]["id"].as_str().unwrap().to_string(), ts(&v["subscribe"]["endDate"]))
}

/// Runs `job` twice, as a re-run after a crash or a second replica would.
async fn run_twice(f: &Fixture, job: &str) {
    run_job(&f.app, &f.admin, job).await;
    run_job(&f.app, &f.admin, job).await;
}

#[tokio::test]
async fn each_billing_transition_notifies_its_owner_once() {
    let f = fixture(10).await;
    let poor = f.app.register("Poor").await;
    give_credit(&f.app, &f.admin, &poor, 30_000).await;
    let (id, end) = subscribe(&f, &poor, "BASIC").await;
    let rich = f.app.register("Rich").await;
    give_credit(&f.app, &f.admin, &rich, 100_000).await;
    let (rich_id, _) = subscribe(&f, &rich, "BASIC").await;

    // Low credit, three days ahead by default: the poor owner only, once per period.
    run_twice(&f, "LOW_CREDIT_WARNINGS").await;
    assert!(kinds(&f.app, &poor).await.is_empty(), "nothing due within 3 days yet");
    move_to(&f.app, end - chrono::Duration::days(2));
    run_twice(&f, "LOW_CREDIT_WARNINGS").await;
    let low = of_kind(&f.app, &poor, "LOW_CREDIT").await;
    assert_eq!(low.len(), 1, "{low:?}");
    assert_eq!(low[0]["subscriptionId"], id.as_str());
    let body = low[0]["body"].as_str().unwrap();
    assert!(body.contains("Rp 30.000") && body.contains("Rp 0"), "{body}");
    assert!(of_kind(&f.app, &rich, "LOW_CREDIT").await.is_empty(), "the balance covers it");

    // The renewal: charged for one, grace for the other; twice changes nothing.
    move_to(&f.app, end + chrono::Duration::hours(1));
    run_twice(&f, "RENEWALS").await;
    let renewed = of_kind(&f.app, &rich, "RENEWED").await;
    assert_eq!(renewed.len(), 1, "{renewed:?}");
    assert_eq!(renewed[0]["subscriptionId"], rich_id.as_str());
    assert!(renewed[0]["body"].as_str().unwrap().contains("We charged Rp 30.000"), "{}", renewed[0]);
    let grace = of_kind(&f.app, &poor, "GRACE_STARTED").await;
    assert_eq!(grace.len(), 1, "{grace:?}");
    let grace_end = end + chrono::Duration::days(7);
    let wib = grace_end.with_timezone(&chrono::FixedOffset::east_opt(7 * 3600).unwrap());
    let body = grace[0]["body"].as_str().unwrap();
    assert!(body.contains(&wib.format("%-d %b %Y, %H:%M WIB").to_string()), "the suspension date: {body}");
    assert!(body.contains("Rp 30.000 short"), "the shortfall: {body}");

    // The reminder, one day before the grace ends; then suspension, then expiry.
    run_twice(&f, "GRACE_PERIOD").await;
    assert!(of_kind(&f.app, &poor, "GRACE_REMINDER").await.is_empty(), "not within a day yet");
    move_to(&f.app, grace_end - chrono::Duration::hours(20));
    run_twice(&f, "GRACE_PERIOD").await;
    run_twice(&f, "RENEWALS").await; // a retried renewal does not notify again
    move_to(&f.app, grace_end + chrono::Duration::hours(1));
    run_twice(&f, "GRACE_PERIOD").await;
    move_to(&f.app, grace_end + chrono::Duration::days(31));
    run_twice(&f, "GRACE_PERIOD").await;
    assert_eq!(
        kinds(&f.app, &poor).await,
        ["LOW_CREDIT", "GRACE_STARTED", "GRACE_REMINDER", "SUSPENDED", "EXPIRED"],
        "each once, in order"
    );
    let all = list(&f.app, &poor).await;
    assert!(all.iter().all(|n| n["subscriptionId"] == id.as_str() && n["read"] == false), "{all:?}");
    assert!(all[0]["title"].as_str().unwrap().contains("ended"), "{}", all[0]);
    assert_eq!(kinds(&f.app, &rich).await, ["RENEWED"]);
}

#[tokio::test]
async fn the_reminder_window_is_configurable_and_a_covered_renewal_is_not_nagged() {
    let f = fixture_with(10, |c| c.notifications.grace_reminder_hours = 72).await;
    let a = f.app.register("Ani").await;
    give_credit(&f.app, &f.admin, &a, 30_000).await;
    let (_, end) = subscribe(&f, &a, "BASIC").await;
    let b = f.app.register("Bayu").await;
    give_credit(&f.app, &f.admin, &b, 30_000).await;
    subscribe(&f, &b, "BASIC").await;
    move_to(&f.app, end + chrono::Duration::hours(1));
    run_job(&f.app, &f.admin, "RENEWALS").await;
    give_credit(&f.app, &f.admin, &b, 40_000).await; // covers the renewal now

    move_to(&f.app, end + chrono::Duration::days(7) - chrono::Duration::hours(70));
    let r = run_job(&f.app, &f.admin, "GRACE_PERIOD").await;
    assert_eq!(r["succeeded"], 1, "{r}");
    assert_eq!(of_kind(&f.app, &a, "GRACE_REMINDER").await.len(), 1, "72 hours ahead");
    assert!(of_kind(&f.app, &b, "GRACE_REMINDER").await.is_empty(), "the next renewal pass charges Bayu");
}

#[tokio::test]
async fn concurrent_job_runs_notify_once() {
    let f = fixture(50).await;
    let mut users = Vec::new();
    for i in 0..8 {
        let u = f.app.register(&format!("User{i}")).await;
        give_credit(&f.app, &f.admin, &u, 30_000).await;
        let (_, end) = subscribe(&f, &u, "BASIC").await;
        users.push((u, end));
    }
    move_to(&f.app, users[0].1 - chrono::Duration::days(1));
    // Four passes at once, as four replicas would run them.
    let runs = futures::future::join_all((0..4).map(|_| run_job(&f.app, &f.admin, "LOW_CREDIT_WARNINGS"))).await;
    let sent: i64 = runs.iter().map(|r| r["succeeded"].as_i64().unwrap()).sum();
    assert_eq!(sent, 8, "one notice per subscription over all passes: {runs:?}");
    for (u, _) in &users {
        assert_eq!(kinds(&f.app, u).await, ["LOW_CREDIT"]);
    }
}

#[tokio::test]
async fn one_event_recorded_by_racing_writers_is_one_notification() {
    use minispod_gateway::subscriptions::renewal::{Outcome, UpcomingRenewal, warn_low_credit};
    let f = fixture(10).await;
    let u = f.app.register("Ani").await;
    let (id, end) = subscribe(&f, &u, "FREE").await;
    let r = Arc::new(UpcomingRenewal {
        subscription_id: id.parse().unwrap(),
        user_id: u.user_id.parse().unwrap(),
        service_id: f.service_id.parse().unwrap(),
        plan_id: f.plan("FREE").parse().unwrap(),
        amount: 30_000,
        due: end,
    });
    let barrier = Arc::new(tokio::sync::Barrier::new(8));
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (state, r, barrier) = (f.app.state.clone(), r.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                warn_low_credit(&state, &r, 0).await.unwrap()
            })
        })
        .collect();
    let outcomes: Vec<Outcome> = futures::future::join_all(tasks).await.into_iter().map(|t| t.unwrap()).collect();
    // No writer checks first: each one inserted, and the unique event key refused all but one.
    let done = outcomes.iter().filter(|o| matches!(o, Outcome::Done(_))).count();
    let skipped = outcomes.iter().filter(|o| matches!(o, Outcome::Skipped)).count();
    assert_eq!((done, skipped), (1, 7), "{outcomes:?}");
    assert_eq!(kinds(&f.app, &u).await, ["LOW_CREDIT"]);
}

async fn top_up(app: &TestApp, fake: &FakeMidtrans, s: &Session, amount: i64) -> (String, String) {
    let q = "mutation($a: Int!) { createTopUp(amount: $a) { transaction { id } } }";
    let v = app.gql_ok(Some(&s.token), q, json!({ "a": amount })).await;
    let id = v["createTopUp"]["transaction"]["id"].as_str().unwrap().to_string();
    let snap = fake.requests().into_iter().rev().find(|r| r.path == "/snap/v1/transactions").unwrap();
    (id, snap.body["transaction_details"]["order_id"].as_str().unwrap().to_string())
}

#[tokio::test]
async fn a_settled_top_up_notifies_once_under_replayed_webhooks() {
    let fake = FakeMidtrans::start().await;
    let fk = fake.clone();
    let app = TestApp::spawn_with(move |c| fk.configure(c)).await;
    let s = app.register("Budi").await;
    let (id, order) = top_up(&app, &fake, &s, 150_000).await;
    let settle = notification(&order, 150_000, "settlement", None);
    let replies = futures::future::join_all((0..6).map(|_| app.notify(&settle))).await;
    assert!(replies.iter().all(|c| *c == 200), "{replies:?}");
    assert_eq!(app.notify(&settle).await, 200, "a late replay");
    let settled = of_kind(&app, &s, "TOP_UP_SETTLED").await;
    assert_eq!(settled.len(), 1, "{settled:?}");
    assert_eq!(settled[0]["transactionId"], id.as_str());
    assert_eq!(settled[0]["title"], "Top-up of Rp 150.000 received");
    assert!(settled[0]["body"].as_str().unwrap().contains("Your balance is now Rp 150.000"), "{}", settled[0]);

    let (failed_id, order) = top_up(&app, &fake, &s, 20_000).await;
    for _ in 0..2 {
        assert_eq!(app.notify(&notification(&order, 20_000, "expire", None)).await, 200);
    }
    let failed = of_kind(&app, &s, "TOP_UP_FAILED").await;
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0]["transactionId"], failed_id.as_str());
    assert!(failed[0]["body"].as_str().unwrap().contains("expired"), "{}", failed[0]);

    // The owner's own cancel is no news to them.
    let (cancel_id, _) = top_up(&app, &fake, &s, 30_000).await;
    let q = "mutation($id: ID!) { cancelTopUp(transactionId: $id) { status } }";
    app.gql_ok(Some(&s.token), q, json!({ "id": cancel_id })).await;
    assert_eq!(kinds(&app, &s).await, ["TOP_UP_SETTLED", "TOP_UP_FAILED"]);
}

/// Waits until `n` notificationAdded streams are registered on `app`.
async fn listening(app: &TestApp, n: usize) {
    eventually("the notificationAdded subscriptions are registered", || async {
        app.state.notices.hub.subscribers() >= n
    })
    .await;
}

async fn next_added(ws: &mut WsClient) -> Value {
    let m = ws.next_message(Duration::from_secs(10)).await.expect("a notificationAdded event");
    assert_eq!(m["type"], "next", "{m}");
    m["payload"]["data"]["notificationAdded"].clone()
}

#[tokio::test]
async fn notification_added_reaches_the_owner_and_no_one_else() {
    let fake = FakeMidtrans::start().await;
    let fk = fake.clone();
    let app = TestApp::spawn_with(move |c| fk.configure(c)).await;
    let budi = app.register("Budi").await;
    let siti = app.register("Siti").await;
    let admin = app.login_admin().await;
    let mut ws_budi = WsClient::connect_ok(&app.ws_url(), Some(&budi.token)).await;
    ws_budi.subscribe("1", ADDED, json!({})).await;
    let mut ws_siti = WsClient::connect_ok(&app.ws_url(), Some(&siti.token)).await;
    ws_siti.subscribe("1", ADDED, json!({})).await;
    listening(&app, 2).await;

    let (_, order) = top_up(&app, &fake, &budi, 80_000).await;
    assert_eq!(app.notify(&notification(&order, 80_000, "settlement", None)).await, 200);
    let n = next_added(&mut ws_budi).await;
    assert_eq!(
        (n["kind"].as_str(), n["title"].as_str()),
        (Some("TOP_UP_SETTLED"), Some("Top-up of Rp 80.000 received"))
    );

    // Siti's first event is the announcement that came later: Budi's never reached her.
    app.gql_ok(Some(&admin.token), BROADCAST, json!({ "t": "Maintenance", "b": "Tonight 22:00 WIB" })).await;
    let n = next_added(&mut ws_siti).await;
    assert_eq!((n["kind"].as_str(), n["title"].as_str()), (Some("ANNOUNCEMENT"), Some("Maintenance")), "{n}");
    assert_eq!(next_added(&mut ws_budi).await["kind"], "ANNOUNCEMENT");

    let mut anon = WsClient::connect_ok(&app.ws_url(), None).await;
    anon.subscribe("1", ADDED, json!({})).await;
    let m = anon.next_message(Duration::from_secs(5)).await.unwrap();
    let errors = if m["type"] == "error" { m["payload"].clone() } else { m["payload"]["errors"].clone() };
    assert_eq!(errors[0]["extensions"]["code"], "UNAUTHENTICATED", "{m}");
}

#[tokio::test]
async fn mark_read_touches_only_ones_own_and_the_list_pages() {
    let app = TestApp::spawn().await;
    let admin = app.login_admin().await;
    let a = app.register("Ani").await;
    let b = app.register("Bayu").await;
    for i in 0..3 {
        let v = json!({ "t": format!("Notice {i}"), "b": "body" });
        assert_eq!(app.gql_ok(Some(&admin.token), BROADCAST, v).await["broadcastNotification"], 3, "three users");
    }
    let mine = list(&app, &a).await;
    let theirs = list(&app, &b).await;
    assert_eq!((mine.len(), theirs.len()), (3, 3));
    assert_eq!(mine[0]["title"], "Notice 2", "newest first");

    let mark = "mutation($ids: [ID!]!) { markNotificationsRead(ids: $ids) }";
    let ids = json!([mine[0]["id"], theirs[0]["id"], theirs[1]["id"]]);
    let v = app.gql_ok(Some(&a.token), mark, json!({ "ids": ids })).await;
    assert_eq!(v["markNotificationsRead"], 1, "only Ani's own");
    let v = app.gql_ok(Some(&a.token), mark, json!({ "ids": [mine[0]["id"]] })).await;
    assert_eq!(v["markNotificationsRead"], 0, "already read");
    let count = "{ unreadNotificationCount }";
    assert_eq!(app.gql_ok(Some(&b.token), count, json!({})).await["unreadNotificationCount"], 3, "Bayu's untouched");
    assert_eq!(app.gql_ok(Some(&a.token), count, json!({})).await["unreadNotificationCount"], 2);

    let v = app.gql_ok(Some(&a.token), LIST, json!({ "u": true, "f": 1 })).await;
    let page = &v["notifications"];
    assert_eq!((page["totalCount"].as_i64(), page["pageInfo"]["hasNextPage"].as_bool()), (Some(2), Some(true)));
    assert_eq!(page["edges"][0]["node"]["title"], "Notice 1");
    let after = page["pageInfo"]["endCursor"].clone();
    let v = app.gql_ok(Some(&a.token), LIST, json!({ "u": true, "f": 1, "a": after })).await;
    assert_eq!(v["notifications"]["edges"][0]["node"]["title"], "Notice 0");
    assert_eq!(v["notifications"]["pageInfo"]["hasNextPage"], false);

    let all = "mutation { markAllNotificationsRead }";
    assert_eq!(app.gql_ok(Some(&b.token), all, json!({})).await["markAllNotificationsRead"], 3);
    assert_eq!(app.gql_ok(Some(&a.token), count, json!({})).await["unreadNotificationCount"], 2, "Ani's untouched");

    assert_eq!(error_code(&app.gql(Some(&a.token), mark, json!({ "ids": ["x"] })).await), "NOT_FOUND", "as every id");
    let many: Vec<String> = (1..=501).map(|i| i.to_string()).collect();
    assert_eq!(error_code(&app.gql(Some(&a.token), mark, json!({ "ids": many })).await), "BAD_USER_INPUT");
    assert_eq!(error_code(&app.gql(None, count, json!({})).await), "UNAUTHENTICATED");
}

#[tokio::test]
async fn broadcasts_are_for_admins_and_can_target_a_role() {
    let app = TestApp::spawn().await;
    let admin = app.login_admin().await;
    let a = app.register("Ani").await;
    let v = app.gql(Some(&a.token), BROADCAST, json!({ "t": "Hi", "b": "x" })).await;
    assert_eq!(error_code(&v), "FORBIDDEN");
    let v = app.gql_ok(Some(&admin.token), BROADCAST, json!({ "t": "Staff", "b": "x", "r": "ADMINISTRATOR" })).await;
    assert_eq!(v["broadcastNotification"], 1);
    assert!(list(&app, &a).await.is_empty());
    assert_eq!(list(&app, &admin).await[0]["title"], "Staff");
    let v = app.gql(Some(&admin.token), BROADCAST, json!({ "t": "  ", "b": "x" })).await;
    assert_eq!(
        (error_code(&v), v["errors"][0]["extensions"]["field"].as_str()),
        ("BAD_USER_INPUT".into(), Some("title"))
    );
    let long = "x".repeat(4_001);
    let v = app.gql(Some(&admin.token), BROADCAST, json!({ "t": "T", "b": long })).await;
    assert_eq!(v["errors"][0]["extensions"]["field"], "body", "{v}");
}

#[tokio::test]
async fn preferences_list_every_kind_and_keep_what_was_not_sent() {
    let app = TestApp::spawn().await;
    let a = app.register("Ani").await;
    let q = "{ notificationPreferences { kind email } }";
    let v = app.gql_ok(Some(&a.token), q, json!({})).await;
    let prefs = v["notificationPreferences"].as_array().unwrap();
    assert_eq!(prefs.len(), 11, "{prefs:?}");
    let email_of = |prefs: &[Value], k: &str| prefs.iter().find(|p| p["kind"] == k).unwrap()["email"].as_bool();
    assert_eq!(email_of(prefs, "SUSPENDED"), Some(true), "what stops an app is mailed by default");
    assert_eq!(email_of(prefs, "RENEWED"), Some(false));
    let set = "mutation($p: [NotificationPreferenceInput!]!) { updateNotificationPreferences(preferences: $p) { kind email } }";
    let v = app
        .gql_ok(
            Some(&a.token),
            set,
            json!({ "p": [{ "kind": "SUSPENDED", "email": false }, { "kind": "RENEWED", "email": true }] }),
        )
        .await;
    let prefs = v["updateNotificationPreferences"].as_array().unwrap();
    assert_eq!((email_of(prefs, "SUSPENDED"), email_of(prefs, "RENEWED")), (Some(false), Some(true)));
    app.gql_ok(Some(&a.token), set, json!({ "p": [{ "kind": "SUSPENDED", "email": true }] })).await;
    let v = app.gql_ok(Some(&a.token), q, json!({})).await;
    let prefs = v["notificationPreferences"].as_array().unwrap();
    assert_eq!((email_of(prefs, "SUSPENDED"), email_of(prefs, "RENEWED")), (Some(true), Some(true)), "kept");
    let twice = json!({ "p": [{ "kind": "RENEWED", "email": false }, { "kind": "RENEWED", "email": true }] });
    let v = app.gql(Some(&a.token), set, twice).await;
    assert_eq!(
        (error_code(&v), v["errors"][0]["extensions"]["field"].as_str()),
        ("BAD_USER_INPUT".into(), Some("preferences"))
    );
    let other = app.register("Bayu").await;
    let v = app.gql_ok(Some(&other.token), q, json!({})).await;
    assert_eq!(email_of(v["notificationPreferences"].as_array().unwrap(), "RENEWED"), Some(false), "per user");
}

#[tokio::test]
async fn an_app_that_comes_up_or_fails_tells_its_owner() {
    let fake = FakeWorkloads::start(Duration::from_millis(50)).await;
    fake.fail_image("ghost:5-alpine");
    let app = gateway(&fake).await;
    let bo = app.register("Bo").await;
    let (sub, id) = subscribe_app(&app, &bo, "n8n-automation", "FREE").await;
    wait_status(&app, &bo.token, &id, "RUNNING").await;
    let (_, broken) = subscribe_app(&app, &bo, "ghost-blog", "FREE").await;
    wait_status(&app, &bo.token, &broken, "ERROR").await;
    // A restart of the running app is not news.
    let q = "mutation($id: ID!) { restartInstance(id: $id) { status } }";
    app.gql_ok(Some(&bo.token), q, json!({ "id": id })).await;
    wait_status(&app, &bo.token, &id, "RUNNING").await;

    let running = of_kind(&app, &bo, "INSTANCE_RUNNING").await;
    assert_eq!(running.len(), 1, "{running:?}");
    assert_eq!(
        (running[0]["instanceId"].as_str(), running[0]["subscriptionId"].as_str()),
        (Some(id.as_str()), Some(sub.as_str()))
    );
    assert!(running[0]["body"].as_str().unwrap().contains("apps.test"), "the address: {}", running[0]);
    let failed = of_kind(&app, &bo, "INSTANCE_ERROR").await;
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0]["instanceId"], broken.as_str());
    let body = failed[0]["body"].as_str().unwrap();
    assert!(body.contains("ImagePullBackOff") || body.contains("ProgressDeadlineExceeded"), "{body}");
}

mod needs_postgres {
    use super::*;

    #[tokio::test]
    #[ignore = "needs PostgreSQL (two replicas share one database); .ci/run runs it on PostgreSQL"]
    async fn a_notice_recorded_on_one_replica_reaches_the_owner_on_another() {
        let fake = FakeMidtrans::start().await;
        let fk = fake.clone();
        let a = TestApp::spawn_with(move |c| fk.configure(c)).await;
        assert!(a.db.is_postgres(), "cross-replica notificationAdded needs PostgreSQL (TEST_DATABASE_URL)");
        let fk = fake.clone();
        let b = TestApp::spawn_on(a.db.clone(), move |c| fk.configure(c)).await;
        let budi = a.register("Budi").await;
        let siti = a.register("Siti").await;
        let mut ws = WsClient::connect_ok(&b.ws_url(), Some(&budi.token)).await;
        ws.subscribe("1", ADDED, json!({})).await;
        let mut ws_siti = WsClient::connect_ok(&b.ws_url(), Some(&siti.token)).await;
        ws_siti.subscribe("1", ADDED, json!({})).await;
        listening(&b, 2).await;

        let (_, order) = top_up(&a, &fake, &budi, 90_000).await;
        assert_eq!(a.notify(&notification(&order, 90_000, "settlement", None)).await, 200);
        let n = next_added(&mut ws).await;
        assert_eq!(
            (n["kind"].as_str(), n["title"].as_str()),
            (Some("TOP_UP_SETTLED"), Some("Top-up of Rp 90.000 received"))
        );
        // A broadcast on replica A reaches both, and is Siti's first event.
        let admin = a.login_admin().await;
        a.gql_ok(Some(&admin.token), BROADCAST, json!({ "t": "Maintenance", "b": "Tonight" })).await;
        assert_eq!(next_added(&mut ws_siti).await["kind"], "ANNOUNCEMENT");
        assert_eq!(next_added(&mut ws).await["kind"], "ANNOUNCEMENT");
    }
}
