//! The admin's analytics over a hand-built ledger with known totals. Rows are written straight
//! into the test database with explicit timestamps (the use cases stamp "now"); the services,
//! plans and users come from the real mutations. Instants sit on both sides of bucket and
//! time-zone boundaries: 2026-03-31T18:30Z is 31 March in UTC but 1 April in Asia/Jakarta.
use chrono::{DateTime, Duration, Utc};
use minispod_gateway::{
    billing::{TransactionStatus as TS, TransactionType as TT, entity as transactions},
    instances::{InstanceStatus, entity as instance},
    subscriptions::{
        SubscriptionStatus as SS,
        entity::{event, subscription},
    },
    users::entity as users,
};
use sea_orm::{ActiveModelTrait, EntityTrait, Set};
use serde_json::{Value, json};

use crate::{
    helpers::*,
    support::{Session, TestApp, error_code},
};

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn id(s: &str) -> i64 {
    s.parse().unwrap()
}

struct Ledger {
    f: Fixture,
    app_two: String,
    a: Session,
    b: Session,
    c: Session,
    /// S1 (A, app-one, live), S2 (B, app-two, cancelled), S3 (C, app-one, expired), S4 (A, app-two, live).
    subs: [i64; 4],
}

async fn set_created(app: &TestApp, user: &Session, created: &str) {
    let mut u: users::ActiveModel =
        users::Entity::find_by_id(id(&user.user_id)).one(&app.state.db.conn).await.unwrap().unwrap().into();
    u.created_at = Set(at(created));
    u.update(&app.state.db.conn).await.unwrap();
}

#[allow(clippy::too_many_arguments)]
async fn add_subscription(
    app: &TestApp,
    user: &Session,
    service: &str,
    plan: &str,
    status: SS,
    price: i64,
    created: &str,
    ended: Option<&str>,
) -> i64 {
    let created = at(created);
    let row = subscription::ActiveModel {
        user_id: Set(id(&user.user_id)),
        service_id: Set(id(service)),
        plan_id: Set(id(plan)),
        status: Set(status),
        monthly_price: Set(price),
        period_start: Set(created),
        period_end: Set(created + Duration::days(30)),
        next_billing_at: Set(None),
        auto_renew: Set(status == SS::Active),
        grace_period_end: Set(None),
        last_charge_amount: Set(Some(price)),
        failed_charges: Set(0),
        previous_plan_id: Set(None),
        idempotency_key: Set(None),
        idempotency_fingerprint: Set(None),
        cancelled_at: Set(None),
        created_at: Set(created),
        updated_at: Set(created),
        ..Default::default()
    }
    .insert(&app.state.db.conn)
    .await
    .unwrap();
    if let Some(ended) = ended {
        add_event(app, row.id, "ENDED", status, ended).await;
        // updated_at later than the event: the event, not the row's last change, is the end.
        let mut r: subscription::ActiveModel = row.clone().into();
        r.updated_at = Set(at("2026-11-01T00:00:00Z"));
        r.update(&app.state.db.conn).await.unwrap();
    }
    row.id
}

async fn add_event(app: &TestApp, sub: i64, kind: &str, to: SS, when: &str) {
    event::ActiveModel {
        subscription_id: Set(sub),
        actor_id: Set(None),
        kind: Set(kind.into()),
        from_status: Set(Some("ACTIVE".into())),
        to_status: Set(to.as_str().into()),
        reason: Set(None),
        details: Set(None),
        created_at: Set(at(when)),
        ..Default::default()
    }
    .insert(&app.state.db.conn)
    .await
    .unwrap();
}

async fn add_tx(app: &TestApp, user: &Session, kind: TT, status: TS, amount: i64, sub: Option<i64>, when: &str) -> i64 {
    let when = at(when);
    transactions::ActiveModel {
        user_id: Set(id(&user.user_id)),
        kind: Set(kind),
        status: Set(status),
        amount: Set(amount),
        balance_before: Set(0),
        balance_after: Set(0),
        payment_method: Set(None),
        description: Set("analytics fixture".into()),
        subscription_id: Set(sub),
        metadata: Set(None),
        processed_by: Set(None),
        idempotency_key: Set(None),
        order_id: Set(None),
        snap_token: Set(None),
        redirect_url: Set(None),
        expires_at: Set(None),
        provider_status: Set(None),
        created_at: Set(when),
        updated_at: Set(when),
        completed_at: Set((status == TS::Completed).then_some(when)),
        ..Default::default()
    }
    .insert(&app.state.db.conn)
    .await
    .unwrap()
    .id
}

/// The ledger (UTC instants):
/// - A: TOP_UP 100,000 (03-05), SUBSCRIPTION 30,000 S1 (03-10), RENEWAL 30,000 S1 (03-31 18:30,
///   April in Jakarta), REVERSAL 20,000 (04-02), REFUND 10,000 S1 (04-20)
/// - B: SUBSCRIPTION 90,000 S2 (04-15), UPGRADE 60,000 S2 (04-30 20:00, May in Jakarta)
/// - C: SUBSCRIPTION 20,000 S3 (03-20); a FAILED SUBSCRIPTION 150,000, a PENDING TOP_UP 50,000
///   and an ADMIN_ADJUSTMENT 999 in April that no figure may count
async fn ledger() -> Ledger {
    let f = fixture(10).await;
    let (app_two, plans_two) = create_service(&f.app, &f.admin, "app-two", 10).await;
    let pro_two = plans_two.iter().find(|(t, _)| t == "PRO").unwrap().1.clone();
    let app = &f.app;
    let (a, b, c) = (app.register("Ani").await, app.register("Budi").await, app.register("Citra").await);
    set_created(app, &a, "2026-03-01T10:00:00Z").await;
    set_created(app, &b, "2026-03-31T20:00:00Z").await; // 1 April in Jakarta
    set_created(app, &c, "2026-03-15T00:00:00Z").await;
    // The administrator is no customer: registered in March too, never a new user.
    set_created(app, &f.admin, "2026-03-05T00:00:00Z").await;
    let one = f.service_id.clone();
    let s1 = add_subscription(app, &a, &one, f.plan("BASIC"), SS::Active, 30_000, "2026-03-10T05:00:00Z", None).await;
    let s2 = add_subscription(
        app,
        &b,
        &app_two,
        &pro_two,
        SS::Cancelled,
        90_000,
        "2026-04-15T10:00:00Z",
        Some("2026-04-25T00:00:00Z"),
    )
    .await;
    let s3 = add_subscription(
        app,
        &c,
        &one,
        f.plan("BASIC"),
        SS::Expired,
        20_000,
        "2026-03-20T00:00:00Z",
        Some("2026-03-31T20:00:00Z"), // April in Jakarta
    )
    .await;
    let s4 = add_subscription(app, &a, &app_two, &pro_two, SS::Active, 90_000, "2026-03-12T00:00:00Z", None).await;
    use {TS::*, TT::*};
    add_tx(app, &a, TopUp, Completed, 100_000, None, "2026-03-05T00:00:00Z").await;
    add_tx(app, &a, Subscription, Completed, 30_000, Some(s1), "2026-03-10T05:00:00Z").await;
    add_tx(app, &a, Renewal, Completed, 30_000, Some(s1), "2026-03-31T18:30:00Z").await;
    add_tx(app, &a, Reversal, Completed, 20_000, None, "2026-04-02T00:00:00Z").await;
    add_tx(app, &a, Refund, Completed, 10_000, Some(s1), "2026-04-20T00:00:00Z").await;
    add_tx(app, &b, Subscription, Completed, 90_000, Some(s2), "2026-04-15T10:00:00Z").await;
    add_tx(app, &b, Upgrade, Completed, 60_000, Some(s2), "2026-04-30T20:00:00Z").await;
    add_tx(app, &c, Subscription, Completed, 20_000, Some(s3), "2026-03-20T00:00:00Z").await;
    add_tx(app, &c, Subscription, Failed, 150_000, Some(s3), "2026-04-05T00:00:00Z").await;
    add_tx(app, &c, TopUp, Pending, 50_000, None, "2026-04-03T00:00:00Z").await;
    add_tx(app, &c, AdminAdjustment, Completed, 999, None, "2026-04-06T00:00:00Z").await;
    Ledger { f, app_two, a, b, c, subs: [s1, s2, s3, s4] }
}

/// `{ analytics { <field> } }` as the administrator, declaring the variables `field` uses.
async fn analytics(l: &Ledger, field: &str, vars: Value) -> Value {
    let decls: Vec<&str> = [("$from", "$from: DateTime!"), ("$to", "$to: DateTime!"), ("$tz", "$tz: String")]
        .into_iter()
        .filter(|(v, _)| field.contains(v))
        .map(|(_, d)| d)
        .collect();
    let q = match decls.is_empty() {
        true => format!("{{ analytics {{ {field} }} }}"),
        false => format!("query({}) {{ analytics {{ {field} }} }}", decls.join(", ")),
    };
    l.f.app.gql_ok(Some(&l.f.admin.token), &q, vars).await["analytics"].clone()
}

const TOTALS: &str = "subscriptionCharges upgrades renewals refunds netRevenue topUps reversals netTopUps";

/// [subscriptionCharges, upgrades, renewals, refunds, topUps, reversals] of each bucket.
fn series(v: &Value) -> Vec<(String, [i64; 6])> {
    v["revenue"]["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let n = |k: &str| p[k].as_i64().unwrap();
            assert_eq!(n("netRevenue"), n("subscriptionCharges") + n("upgrades") + n("renewals") - n("refunds"));
            assert_eq!(n("netTopUps"), n("topUps") - n("reversals"));
            let label = p["label"].as_str().unwrap().to_string();
            (label, [n("subscriptionCharges"), n("upgrades"), n("renewals"), n("refunds"), n("topUps"), n("reversals")])
        })
        .collect()
}

fn revenue_query(bucket: &str) -> String {
    format!(
        "revenue(from: $from, to: $to, bucket: {bucket}, timeZone: $tz) {{ series {{ bucketStart label from to {TOTALS} }} byService {{ serviceId name {TOTALS} }} }}"
    )
}

#[tokio::test]
async fn revenue_by_month_in_utc_and_in_jakarta() {
    let l = ledger().await;
    let utc = analytics(
        &l,
        &revenue_query("MONTH"),
        json!({ "from": "2026-03-01T00:00:00Z", "to": "2026-05-01T00:00:00Z", "tz": "UTC" }),
    )
    .await;
    assert_eq!(
        series(&utc),
        [
            ("2026-03-01".to_string(), [50_000, 0, 30_000, 0, 100_000, 0]),
            ("2026-04-01".to_string(), [90_000, 60_000, 0, 10_000, 0, 20_000]),
        ],
        "{utc}"
    );
    assert_eq!(utc["revenue"]["series"][1]["bucketStart"], "2026-04-01T00:00:00+00:00");
    // Per service over the range: app-one 50,000 + 30,000 − 10,000; app-two 90,000 + 60,000.
    let by_service = utc["revenue"]["byService"].as_array().unwrap();
    let svc = |sid: &str| by_service.iter().find(|s| s["serviceId"] == sid).unwrap_or_else(|| panic!("{utc}"));
    let one = svc(&l.f.service_id);
    assert_eq!((one["name"].as_str(), one["subscriptionCharges"].as_i64()), (Some("app-one"), Some(50_000)));
    assert_eq!(
        (one["renewals"].as_i64(), one["refunds"].as_i64(), one["netRevenue"].as_i64()),
        (Some(30_000), Some(10_000), Some(70_000))
    );
    let two = svc(&l.app_two);
    assert_eq!(
        (two["subscriptionCharges"].as_i64(), two["upgrades"].as_i64(), two["netRevenue"].as_i64()),
        (Some(90_000), Some(60_000), Some(150_000))
    );
    assert_eq!(two["topUps"], 0, "top-ups belong to no service");

    // Jakarta (UTC+7): the 31 March renewal is April's, the 30 April upgrade May's.
    let vars = json!({ "from": "2026-02-28T17:00:00Z", "to": "2026-05-31T17:00:00Z", "tz": "Asia/Jakarta" });
    let jkt = analytics(&l, &revenue_query("MONTH"), vars.clone()).await;
    assert_eq!(
        series(&jkt),
        [
            ("2026-03-01".to_string(), [50_000, 0, 0, 0, 100_000, 0]),
            ("2026-04-01".to_string(), [90_000, 0, 30_000, 10_000, 0, 20_000]),
            ("2026-05-01".to_string(), [0, 60_000, 0, 0, 0, 0]),
        ],
        "{jkt}"
    );
    assert_eq!(jkt["revenue"]["series"][1]["bucketStart"], "2026-03-31T17:00:00+00:00");
    // Without timeZone: Asia/Jakarta.
    let default = analytics(&l, &revenue_query("MONTH"), json!({ "from": vars["from"], "to": vars["to"] })).await;
    assert_eq!(series(&default), series(&jkt));
}

#[tokio::test]
async fn revenue_by_day_splits_at_local_midnight_and_clips_to_the_range() {
    let l = ledger().await;
    let vars = json!({ "from": "2026-03-31T00:00:00Z", "to": "2026-04-02T00:00:00Z", "tz": "UTC" });
    let utc = analytics(&l, &revenue_query("DAY"), vars).await;
    let renewals: Vec<_> = series(&utc).into_iter().map(|(d, t)| (d, t[2])).collect();
    assert_eq!(renewals, [("2026-03-31".to_string(), 30_000), ("2026-04-01".to_string(), 0)]);
    // Jakarta days start at 17:00 UTC; the range starts mid-day, so the first bucket is clipped.
    let vars = json!({ "from": "2026-03-31T12:00:00Z", "to": "2026-04-01T17:00:00Z", "tz": "Asia/Jakarta" });
    let jkt = analytics(&l, &revenue_query("DAY"), vars).await;
    let renewals: Vec<_> = series(&jkt).into_iter().map(|(d, t)| (d, t[2])).collect();
    assert_eq!(renewals, [("2026-03-31".to_string(), 0), ("2026-04-01".to_string(), 30_000)]);
    let first = &jkt["revenue"]["series"][0];
    assert_eq!(
        (first["bucketStart"].as_str(), first["from"].as_str()),
        (Some("2026-03-30T17:00:00+00:00"), Some("2026-03-31T12:00:00+00:00"))
    );
    // A range ending before the renewal leaves it out.
    let vars = json!({ "from": "2026-03-31T17:00:00Z", "to": "2026-03-31T18:30:00Z", "tz": "Asia/Jakarta" });
    let cut = analytics(&l, &revenue_query("DAY"), vars).await;
    assert_eq!(series(&cut), [("2026-04-01".to_string(), [0; 6])], "[from, to) excludes `to`");
}

/// The whole hours of a range come from the hourly sums the triggers keep, the partial hours
/// from the ledger rows. Asia/Kolkata (UTC+5:30) days start at 18:30 UTC, half-way through an
/// hour; rows that change after they were written (completed later, corrected, moved, deleted)
/// must move the sums with them.
#[tokio::test]
async fn revenue_sums_follow_ledger_changes_across_half_hour_day_boundaries() {
    let l = ledger().await;
    let (app, a, s1) = (&l.f.app, &l.a, Some(l.subs[0]));
    use {TS::*, TT::*};
    add_tx(app, a, TopUp, Completed, 1_000, None, "2026-04-10T18:29:59Z").await; // 10 April in Kolkata
    add_tx(app, a, TopUp, Completed, 2_000, None, "2026-04-10T18:30:00Z").await; // 11 April
    add_tx(app, a, Renewal, Completed, 4_000, s1, "2026-04-10T20:00:00Z").await;
    let pending = add_tx(app, a, TopUp, Pending, 8_000, None, "2026-04-10T03:00:00Z").await;
    let corrected = add_tx(app, a, Renewal, Completed, 16_000, s1, "2026-04-10T05:10:00Z").await;
    let moved = add_tx(app, a, Renewal, Completed, 32_000, s1, "2026-04-10T06:00:00Z").await;
    let deleted = add_tx(app, a, Renewal, Completed, 64_000, s1, "2026-04-11T01:00:00Z").await;
    let reworded = add_tx(app, a, Renewal, Completed, 128_000, s1, "2026-04-11T02:00:00Z").await;

    let db = &app.state.db.conn;
    let row = |id| async move { transactions::Entity::find_by_id(id).one(db).await.unwrap().unwrap() };
    let mut settle: transactions::ActiveModel = row(pending).await.into();
    settle.status = Set(Completed);
    settle.completed_at = Set(Some(at("2026-04-11T09:00:00Z")));
    settle.update(db).await.unwrap();
    let mut fix: transactions::ActiveModel = row(corrected).await.into();
    fix.amount = Set(15_000);
    fix.update(db).await.unwrap();
    let mut later: transactions::ActiveModel = row(moved).await.into();
    later.completed_at = Set(Some(at("2026-04-11T10:00:00Z")));
    later.update(db).await.unwrap();
    transactions::Entity::delete_by_id(deleted).exec(db).await.unwrap();
    // A whole-row update that changes no summed column changes no sum.
    let mut note: transactions::ActiveModel = row(reworded).await.into();
    note.description = Set("reworded".into());
    note.reset_all().update(db).await.unwrap();

    // Days in Kolkata over [04-09 18:30, 04-11 18:30) UTC; and the same days with ranges that start
    // and end inside an hour.
    let kolkata = |from: &str, to: &str| json!({ "from": from, "to": to, "tz": "Asia/Kolkata" });
    let days = analytics(&l, &revenue_query("DAY"), kolkata("2026-04-09T18:30:00Z", "2026-04-11T18:30:00Z")).await;
    assert_eq!(
        series(&days),
        [
            ("2026-04-10".to_string(), [0, 0, 15_000, 0, 1_000, 0]),
            ("2026-04-11".to_string(), [0, 0, 4_000 + 32_000 + 128_000, 0, 2_000 + 8_000, 0]),
        ],
        "{days}"
    );
    let one = &days["revenue"]["byService"][0];
    assert_eq!((one["name"].as_str(), one["renewals"].as_i64()), (Some("app-one"), Some(179_000)), "{days}");
    let cut = analytics(&l, &revenue_query("DAY"), kolkata("2026-04-10T18:29:30Z", "2026-04-11T09:59:59.5Z")).await;
    assert_eq!(
        series(&cut),
        [
            ("2026-04-10".to_string(), [0, 0, 0, 0, 1_000, 0]),
            ("2026-04-11".to_string(), [0, 0, 4_000 + 128_000, 0, 2_000 + 8_000, 0]),
        ],
        "{cut}"
    );
    assert_eq!(cut["revenue"]["byService"][0]["renewals"], 132_000, "{cut}");
}

#[tokio::test]
async fn user_growth_counts_new_users_distinct_subscribers_and_churn() {
    let l = ledger().await;
    let q = "userGrowth(from: $from, to: $to, bucket: MONTH, timeZone: $tz) { label newUsers activeSubscribers churnedSubscriptions }";
    let rows = |v: &Value| -> Vec<(String, i64, i64, i64)> {
        v["userGrowth"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                let n = |k: &str| p[k].as_i64().unwrap();
                (
                    p["label"].as_str().unwrap().to_string(),
                    n("newUsers"),
                    n("activeSubscribers"),
                    n("churnedSubscriptions"),
                )
            })
            .collect()
    };
    // UTC. March: A, B (31st, 20:00), C registered; A (two subscriptions: counted once) and C
    // subscribed; S3 expired. April: A, and B from the 15th; S2 cancelled. The administrator,
    // also registered in March, is not counted.
    let utc =
        analytics(&l, q, json!({ "from": "2026-03-01T00:00:00Z", "to": "2026-05-01T00:00:00Z", "tz": "UTC" })).await;
    assert_eq!(rows(&utc), [("2026-03-01".into(), 3, 2, 1), ("2026-04-01".into(), 0, 2, 1)], "{utc}");
    // Jakarta: B registered and S3 expired in April, so C was still a subscriber then.
    let jkt =
        analytics(&l, q, json!({ "from": "2026-02-28T17:00:00Z", "to": "2026-04-30T17:00:00Z", "tz": "Asia/Jakarta" }))
            .await;
    assert_eq!(rows(&jkt), [("2026-03-01".into(), 2, 2, 0), ("2026-04-01".into(), 1, 3, 2)], "{jkt}");
    // A bucket after everything ended: A's two live subscriptions only.
    let later =
        analytics(&l, q, json!({ "from": "2026-06-01T00:00:00Z", "to": "2026-07-01T00:00:00Z", "tz": "UTC" })).await;
    assert_eq!(rows(&later), [("2026-06-01".into(), 0, 1, 0)]);
}

#[tokio::test]
async fn top_spenders_are_charges_minus_refunds_of_completed_rows() {
    let l = ledger().await;
    let q = "topSpenders(from: $from, to: $to, first: 10) { userId name email spent charges refunds }";
    let spenders = |v: &Value| -> Vec<(String, i64, i64, i64)> {
        v["topSpenders"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["userId"].as_str().unwrap().to_string(),
                    s["spent"].as_i64().unwrap(),
                    s["charges"].as_i64().unwrap(),
                    s["refunds"].as_i64().unwrap(),
                )
            })
            .collect()
    };
    let all = analytics(&l, q, json!({ "from": "2026-03-01T00:00:00Z", "to": "2026-06-01T00:00:00Z" })).await;
    // C's FAILED 150,000 and ADMIN_ADJUSTMENT, A's top-up: not spending.
    assert_eq!(
        spenders(&all),
        [
            (l.b.user_id.clone(), 150_000, 150_000, 0),
            (l.a.user_id.clone(), 50_000, 60_000, 10_000),
            (l.c.user_id.clone(), 20_000, 20_000, 0),
        ],
        "{all}"
    );
    assert_eq!(all["topSpenders"][0]["email"], l.b.email.as_str());
    // April only: A's refund outweighs nothing she was charged (renewal on 31 March), so she is out.
    let april = analytics(&l, q, json!({ "from": "2026-04-01T00:00:00Z", "to": "2026-05-01T00:00:00Z" })).await;
    assert_eq!(spenders(&april), [(l.b.user_id.clone(), 150_000, 150_000, 0)]);
    let one = l
        .f
        .app
        .gql_ok(
            Some(&l.f.admin.token),
            "{ analytics { topSpenders(from: \"2026-03-01T00:00:00Z\", to: \"2026-06-01T00:00:00Z\", first: 1) { userId } } }",
            json!({}),
        )
        .await;
    assert_eq!(one["analytics"]["topSpenders"], json!([{ "userId": l.b.user_id }]));
}

#[tokio::test]
async fn monthly_rates_define_arpu_and_churn() {
    let l = ledger().await;
    let q = "query($m: String!, $tz: String) { analytics { monthlyRates(month: $m, timeZone: $tz) { from revenue payingUsers arpu liveAtStart churned churnRate } } }";
    let rates = |m: &str, tz: &str| {
        let (app, token) = (&l.f.app, l.f.admin.token.clone());
        let vars = json!({ "m": m, "tz": tz });
        async move { app.gql_ok(Some(&token), q, vars).await["analytics"]["monthlyRates"].clone() }
    };
    // March UTC: A 30,000 + 30,000 and C 20,000 → 80,000 from 2 paying users.
    let march = rates("2026-03", "UTC").await;
    assert_eq!(
        (march["revenue"].as_i64(), march["payingUsers"].as_i64(), march["arpu"].as_i64()),
        (Some(80_000), Some(2), Some(40_000)),
        "{march}"
    );
    assert_eq!(
        (march["liveAtStart"].as_i64(), march["churnRate"].is_null()),
        (Some(0), true),
        "nothing alive on 1 March"
    );
    // April UTC: B 150,000 − A's refund 10,000; B alone paid. Alive on 1 April: S1, S4 (S3 had
    // expired the evening before); S2 was cancelled → 1 / 2.
    let april = rates("2026-04", "UTC").await;
    assert_eq!(
        (april["revenue"].as_i64(), april["payingUsers"].as_i64(), april["arpu"].as_i64()),
        (Some(140_000), Some(1), Some(140_000)),
        "{april}"
    );
    assert_eq!(
        (april["liveAtStart"].as_i64(), april["churned"].as_i64(), april["churnRate"].as_f64()),
        (Some(2), Some(1), Some(0.5))
    );
    // April in Jakarta starts 31 March 17:00 UTC: S3 was still alive and expired in April; the
    // renewal of A counts, the upgrade of B is May's: 30,000 + 90,000 − 10,000 from A and B.
    let jkt = rates("2026-04", "Asia/Jakarta").await;
    assert_eq!(jkt["from"], "2026-03-31T17:00:00+00:00");
    assert_eq!(
        (jkt["revenue"].as_i64(), jkt["payingUsers"].as_i64(), jkt["arpu"].as_i64()),
        (Some(110_000), Some(2), Some(55_000)),
        "{jkt}"
    );
    assert_eq!((jkt["liveAtStart"].as_i64(), jkt["churned"].as_i64()), (Some(3), Some(2)));
    assert!((jkt["churnRate"].as_f64().unwrap() - 2.0 / 3.0).abs() < 1e-9);
}

#[tokio::test]
async fn counts_by_status_and_health() {
    let l = ledger().await;
    let db = &l.f.app.state.db.conn;
    let now = l.f.app.state.now();
    for (i, (status, health)) in [
        (InstanceStatus::Running, Some("Healthy")),
        (InstanceStatus::Running, Some("Healthy")),
        (InstanceStatus::Stopped, None),
    ]
    .into_iter()
    .enumerate()
    {
        instance::ActiveModel {
            subscription_id: Set(l.subs[0]),
            name: Set(format!("app-{i}")),
            subdomain: Set(format!("app-{i}")),
            status: Set(status),
            health_status: Set(health.map(str::to_string)),
            last_error: Set(None),
            namespace: Set("ns".into()),
            deployment_name: Set(format!("app-{i}")),
            public_url: Set(None),
            last_started_at: Set(None),
            last_stopped_at: Set(None),
            created_at: Set(now),
            updated_at: Set(now),
            version: Set(0),
            owner_stopped: Set(false),
            endpoint: Set(None),
            provision_started_at: Set(None),
            status_changed_at: Set(None),
            ..Default::default()
        }
        .insert(db)
        .await
        .unwrap();
    }
    let v = analytics(
        &l,
        "subscriptionsByStatus { status count } instancesByStatus { status healthStatus count }",
        json!({}),
    )
    .await;
    assert_eq!(
        v["subscriptionsByStatus"],
        json!([
            { "status": "ACTIVE", "count": 2 },
            { "status": "SUSPENDED", "count": 0 },
            { "status": "CANCELLED", "count": 1 },
            { "status": "EXPIRED", "count": 1 },
            { "status": "PENDING_UPGRADE", "count": 0 },
            { "status": "PENDING_PAYMENT", "count": 0 },
        ])
    );
    assert_eq!(
        v["instancesByStatus"],
        json!([
            { "status": "RUNNING", "healthStatus": "Healthy", "count": 2 },
            { "status": "STOPPED", "healthStatus": null, "count": 1 },
        ])
    );
}

async fn update_sub(app: &TestApp, id: i64, change: impl FnOnce(&mut subscription::ActiveModel)) {
    let db = &app.state.db.conn;
    let mut m: subscription::ActiveModel = subscription::Entity::find_by_id(id).one(db).await.unwrap().unwrap().into();
    change(&mut m);
    m.update(db).await.unwrap();
}

const BILLING: &str = "{ analytics { billingStatus(timeZone: \"UTC\") { monthStart failedRenewalsThisMonth failedPaymentsThisMonth \
    renewalsDue { count amount shortfall items { subscriptionId userId email serviceName status monthlyPrice balance nextBillingAt shortfall } } \
    inGrace { count amount shortfall items { subscriptionId shortfall gracePeriodEnd } } \
    suspended { count items { subscriptionId } } \
    lastRuns { job startedAt finishedAt ok processed succeeded failed error } } } }";

#[tokio::test]
async fn billing_status_lists_due_grace_suspended_failures_and_last_runs_for_every_replica() {
    let f = fixture(10).await;
    let app = &f.app;
    let now = app.state.now();
    let (a, b) = (app.register("Ani").await, app.register("Budi").await);
    give_credit(app, &f.admin, &a, 40_000).await;
    let iso = |t: DateTime<Utc>| t.to_rfc3339();
    // One live subscription per user and service: the second of each user is on app-two.
    let (two, plans_two) = create_service(app, &f.admin, "app-two", 10).await;
    let premium_two = plans_two.iter().find(|(t, _)| t == "PREMIUM").unwrap().1.clone();
    let sub = |user: &Session, service: &str, plan: &str, status: SS, price: i64| {
        let (user, service, plan) = (user.clone(), service.to_string(), plan.to_string());
        async move {
            let created = iso(now - Duration::days(20));
            add_subscription(app, &user, &service, &plan, status, price, &created, None).await
        }
    };
    // Due in 3 days (A can pay 40,000 of 90,000); due in 10 days (not listed).
    let due = sub(&a, &f.service_id, f.plan("PRO"), SS::Active, 90_000).await;
    update_sub(app, due, |m| m.next_billing_at = Set(Some(now + Duration::days(3)))).await;
    let later = sub(&b, &f.service_id, f.plan("BASIC"), SS::Active, 30_000).await;
    update_sub(app, later, |m| m.next_billing_at = Set(Some(now + Duration::days(10)))).await;
    // In grace: B has no credit, so the shortfall is the whole 150,000.
    let grace = sub(&b, &two, &premium_two, SS::Active, 150_000).await;
    update_sub(app, grace, |m| {
        m.grace_period_end = Set(Some(now + Duration::days(2)));
        m.auto_renew = Set(false);
    })
    .await;
    let suspended = sub(&a, &two, &premium_two, SS::Suspended, 150_000).await;
    add_event(app, grace, "RENEWAL_FAILED", SS::Active, &iso(now)).await;
    add_event(app, grace, "RENEWAL_FAILED", SS::Active, &iso(now - Duration::days(40))).await; // last month
    add_tx(app, &a, TT::TopUp, TS::Failed, 50_000, None, &iso(now)).await;

    // A job pass on this replica, read back through another replica on the same database.
    app.gql_ok(Some(&f.admin.token), "mutation { runBillingJob(job: RENEWALS) { processed } }", json!({})).await;
    let replica = TestApp::spawn_on(app.db.clone(), |_| {}).await;
    let admin = replica.login_admin().await;
    let v = replica.gql_ok(Some(&admin.token), BILLING, json!({})).await["analytics"]["billingStatus"].clone();

    let due_group = &v["renewalsDue"];
    assert_eq!(
        (due_group["count"].as_i64(), due_group["amount"].as_i64(), due_group["shortfall"].as_i64()),
        (Some(1), Some(90_000), Some(50_000)),
        "{v}"
    );
    let item = &due_group["items"][0];
    assert_eq!(item["subscriptionId"], due.to_string());
    assert_eq!(
        (item["email"].as_str(), item["balance"].as_i64(), item["serviceName"].as_str()),
        (Some(a.email.as_str()), Some(40_000), Some("app-one"))
    );
    assert_eq!(v["inGrace"]["count"], 1);
    assert_eq!(v["inGrace"]["items"][0]["subscriptionId"], grace.to_string());
    assert_eq!(v["inGrace"]["shortfall"], 150_000);
    assert_eq!(v["suspended"]["items"], json!([{ "subscriptionId": suspended.to_string() }]));
    assert_eq!(v["failedRenewalsThisMonth"], 1, "last month's failure is not this month's");
    assert_eq!(v["failedPaymentsThisMonth"], 1);
    let runs = v["lastRuns"].as_array().unwrap();
    assert_eq!(runs.len(), 1, "{v}");
    assert_eq!((runs[0]["job"].as_str(), runs[0]["ok"].as_bool()), (Some("RENEWALS"), Some(true)));
    assert_eq!(
        (runs[0]["processed"].as_i64(), runs[0]["error"].is_null()),
        (Some(0), true),
        "nothing was due yet: {v}"
    );
    assert!(ts(&runs[0]["finishedAt"]) >= ts(&runs[0]["startedAt"]));
}

#[tokio::test]
async fn analytics_is_for_administrators_only() {
    let f = fixture(1).await;
    let user = f.app.register("Budi").await;
    let range = "from: \"2026-03-01T00:00:00Z\", to: \"2026-04-01T00:00:00Z\"";
    for field in [
        format!("revenue({range}, bucket: DAY) {{ series {{ label }} }}"),
        format!("userGrowth({range}, bucket: DAY) {{ label }}"),
        format!("topSpenders({range}) {{ userId }}"),
        "subscriptionsByStatus { count }".to_string(),
        "instancesByStatus { count }".to_string(),
        "monthlyRates(month: \"2026-03\") { arpu }".to_string(),
        "billingStatus { renewalsDue { count } }".to_string(),
    ] {
        let q = format!("{{ analytics {{ {field} }} }}");
        let v = f.app.gql(Some(&user.token), &q, json!({})).await;
        assert_eq!(error_code(&v), "FORBIDDEN", "{field}: {v}");
        assert!(v["data"].is_null(), "{v}");
        let anonymous = f.app.gql(None, &q, json!({})).await;
        assert_eq!(error_code(&anonymous), "UNAUTHENTICATED", "{field}: {anonymous}");
        f.app.gql_ok(Some(&f.admin.token), &q, json!({})).await;
    }
}

#[tokio::test]
async fn bad_ranges_zones_and_months_are_bad_user_input() {
    let f = fixture(1).await;
    let t = Some(f.admin.token.as_str());
    let cases = [
        (
            "revenue(from: \"2026-03-01T00:00:00Z\", to: \"2026-04-01T00:00:00Z\", bucket: DAY, timeZone: \"Mars/Olympus\") { series { label } }",
            "timeZone",
        ),
        (
            "revenue(from: \"2026-04-01T00:00:00Z\", to: \"2026-03-01T00:00:00Z\", bucket: DAY) { series { label } }",
            "to",
        ),
        (
            "revenue(from: \"2026-03-01T00:00:00Z\", to: \"2026-03-01T00:00:00Z\", bucket: DAY) { series { label } }",
            "to",
        ),
        (
            "revenue(from: \"2025-01-01T00:00:00Z\", to: \"2026-03-01T00:00:00Z\", bucket: DAY) { series { label } }",
            "bucket",
        ),
        (
            "revenue(from: \"2020-01-01T00:00:00Z\", to: \"2026-03-01T00:00:00Z\", bucket: MONTH) { series { label } }",
            "to",
        ),
        ("userGrowth(from: \"2026-04-01T00:00:00Z\", to: \"2026-03-01T00:00:00Z\", bucket: WEEK) { label }", "to"),
        (
            "userGrowth(from: \"2026-03-01T00:00:00Z\", to: \"2026-04-01T00:00:00Z\", bucket: WEEK, timeZone: \"jakarta\") { label }",
            "timeZone",
        ),
        ("topSpenders(from: \"2026-04-01T00:00:00Z\", to: \"2026-03-01T00:00:00Z\") { userId }", "to"),
        ("topSpenders(from: \"2026-03-01T00:00:00Z\", to: \"2026-04-01T00:00:00Z\", first: 0) { userId }", "first"),
        ("topSpenders(from: \"2026-03-01T00:00:00Z\", to: \"2026-04-01T00:00:00Z\", first: 101) { userId }", "first"),
        ("monthlyRates(month: \"2026-13\") { arpu }", "month"),
        ("monthlyRates(month: \"March\") { arpu }", "month"),
        ("monthlyRates(month: \"2026-03\", timeZone: \"UTC+7\") { arpu }", "timeZone"),
        ("billingStatus(timeZone: \"Nowhere/Else\") { renewalsDue { count } }", "timeZone"),
    ];
    for (field, name) in cases {
        let v = f.app.gql(t, &format!("{{ analytics {{ {field} }} }}"), json!({})).await;
        assert_eq!(error_code(&v), "BAD_USER_INPUT", "{field}: {v}");
        assert_eq!(v["errors"][0]["extensions"]["field"], name, "{field}: {v}");
    }
    // The largest allowed: 400 days by day, a year by week.
    f.app
        .gql_ok(t, "{ analytics { revenue(from: \"2025-01-01T00:00:00Z\", to: \"2026-02-05T00:00:00Z\", bucket: DAY, timeZone: \"UTC\") { series { label } } } }", json!({}))
        .await;
}
