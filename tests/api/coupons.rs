//! Coupons and the welcome bonus: admin rules, validation order, exactly-once redemption under
//! concurrency, checkout discounts and free months, and the welcome bonus at registration.
use serde_json::{Value, json};

use crate::helpers::{
    Fixture, assert_ledger_consistent, balance, create_service, fixture, fixture_with, give_credit, wait_until_blocked,
};
use crate::support::{Session, TestApp, error_code};

const CREATE: &str = "mutation($i: CreateCouponInput!) { createCoupon(input: $i) { id code status usedCount } }";
const VALIDATE: &str = "query($c: String!, $p: ID) { validateCoupon(code: $c, planId: $p) { valid reason message creditAmount discountAmount finalPrice coupon { code type } } }";
const REDEEM: &str = "mutation($c: String!) { redeemCoupon(code: $c) { balance transaction { type amount } redemption { context creditAmount coupon { code } } } }";
const SUBSCRIBE: &str = "mutation($p: ID!, $c: String) { subscribe(input: { planId: $p, couponCode: $c }) { id monthlyPrice lastChargeAmount discountAmount couponCode endDate transactions { type amount } } }";
const COUPON: &str = "query($id: ID!) { coupon(id: $id) { code status usedCount enabled redemptions { totalCount nodes { userId context creditAmount discountAmount subscriptionId } } } }";

async fn create(app: &TestApp, admin: &Session, input: Value) -> String {
    let v = app.gql_ok(Some(&admin.token), CREATE, json!({ "i": input })).await;
    v["createCoupon"]["id"].as_str().unwrap().to_string()
}

fn credit(code: &str, amount: i64, max_uses: i64, per_user: i64) -> Value {
    json!({ "code": code, "name": code, "type": "CREDIT_TOPUP", "creditAmount": amount, "maxUses": max_uses, "maxUsesPerUser": per_user })
}

fn welcome(code: &str, amount: i64, max_uses: i64) -> Value {
    json!({ "code": code, "name": code, "type": "WELCOME_BONUS", "creditAmount": amount, "maxUses": max_uses })
}

fn reason(v: &Value) -> &str {
    v["errors"][0]["extensions"]["reason"].as_str().unwrap_or_else(|| panic!("no reason: {v}"))
}

async fn validate(app: &TestApp, user: &Session, code: &str, plan: Option<&str>) -> Value {
    app.gql_ok(Some(&user.token), VALIDATE, json!({ "c": code, "p": plan })).await["validateCoupon"].clone()
}

async fn used_count(app: &TestApp, admin: &Session, id: &str) -> i64 {
    app.gql_ok(Some(&admin.token), COUPON, json!({ "id": id })).await["coupon"]["usedCount"].as_i64().unwrap()
}

fn iso(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339()
}

// ------------------------------------------------------------------ admin

#[tokio::test]
async fn admin_coupon_api_is_refused_to_users() {
    let app = TestApp::spawn().await;
    let admin = app.login_admin().await;
    let id = create(&app, &admin, credit("ADMINONLY", 10_000, 5, 1)).await;
    let user = app.register("Budi").await;
    let ut = Some(user.token.as_str());
    let refused = [
        (CREATE, json!({ "i": credit("MINE", 10_000, 1, 1) })),
        ("mutation($id: ID!) { updateCoupon(id: $id, input: { maxUses: 9 }) { id } }", json!({ "id": id })),
        ("mutation($id: ID!) { setCouponEnabled(id: $id, enabled: false) { id } }", json!({ "id": id })),
        ("mutation($id: ID!) { deleteCoupon(id: $id) }", json!({ "id": id })),
        ("{ coupons { totalCount } }", json!({})),
        (COUPON, json!({ "id": id })),
        ("{ couponStatistics { totalCoupons } }", json!({})),
        ("{ welcomeBonusFailures { totalCount } }", json!({})),
    ];
    for (q, vars) in refused {
        let v = app.gql(ut, q, vars).await;
        assert_eq!(error_code(&v), "FORBIDDEN", "{q}: {v}");
    }
    assert_eq!(used_count(&app, &admin, &id).await, 0);
}

#[tokio::test]
async fn create_checks_each_type_and_field() {
    let f = fixture(5).await;
    let (app, admin) = (&f.app, &f.admin);
    let at = Some(admin.token.as_str());
    let now = chrono::Utc::now();
    let base = |extra: Value| {
        let mut i = json!({ "code": "RULES", "name": "Rules" });
        for (k, v) in extra.as_object().unwrap() {
            i[k] = v.clone();
        }
        i
    };
    let cases = [
        (json!({ "code": "ab", "type": "CREDIT_TOPUP", "creditAmount": 5000 }), "code"),
        (json!({ "code": "NO SPACE", "type": "CREDIT_TOPUP", "creditAmount": 5000 }), "code"),
        (json!({ "name": " ", "type": "CREDIT_TOPUP", "creditAmount": 5000 }), "name"),
        (json!({ "type": "CREDIT_TOPUP" }), "creditAmount"),
        (json!({ "type": "WELCOME_BONUS", "creditAmount": 999 }), "creditAmount"),
        (json!({ "type": "CREDIT_TOPUP", "creditAmount": 5000, "discountPercent": 10 }), "discountPercent"),
        (json!({ "type": "CREDIT_TOPUP", "creditAmount": 5000, "serviceId": f.service_id }), "serviceId"),
        (json!({ "type": "SUBSCRIPTION_DISCOUNT", "discountPercent": 10 }), "discountType"),
        (json!({ "type": "SUBSCRIPTION_DISCOUNT", "discountType": "PERCENTAGE" }), "discountPercent"),
        (
            json!({ "type": "SUBSCRIPTION_DISCOUNT", "discountType": "PERCENTAGE", "discountPercent": 101 }),
            "discountPercent",
        ),
        (
            json!({ "type": "SUBSCRIPTION_DISCOUNT", "discountType": "PERCENTAGE", "discountPercent": 10, "creditAmount": 5000 }),
            "creditAmount",
        ),
        (json!({ "type": "SUBSCRIPTION_DISCOUNT", "discountType": "FIXED_AMOUNT" }), "creditAmount"),
        (json!({ "type": "FREE_SERVICE" }), "serviceId"),
        (json!({ "type": "FREE_SERVICE", "serviceId": "999999" }), "serviceId"),
        (json!({ "type": "CREDIT_TOPUP", "creditAmount": 5000, "maxUses": 0 }), "maxUses"),
        (json!({ "type": "CREDIT_TOPUP", "creditAmount": 5000, "maxUses": 2, "maxUsesPerUser": 3 }), "maxUsesPerUser"),
        (
            json!({ "type": "CREDIT_TOPUP", "creditAmount": 5000, "validFrom": iso(now + chrono::Duration::days(2)), "validUntil": iso(now + chrono::Duration::days(1)) }),
            "validUntil",
        ),
        (
            json!({ "type": "CREDIT_TOPUP", "creditAmount": 5000, "validUntil": iso(now - chrono::Duration::days(1)), "validFrom": iso(now - chrono::Duration::days(2)) }),
            "validUntil",
        ),
    ];
    for (extra, field) in cases {
        let v = app.gql(at, CREATE, json!({ "i": base(extra.clone()) })).await;
        assert_eq!(error_code(&v), "BAD_USER_INPUT", "{extra}: {v}");
        assert_eq!(v["errors"][0]["extensions"]["field"], field, "{extra}: {v}");
    }
    // Stored upper-case; the same code in another case is taken.
    let v = app.gql_ok(at, CREATE, json!({ "i": credit("  spring-25 ", 25_000, 10, 2) })).await;
    assert_eq!(v["createCoupon"]["code"], "SPRING-25");
    assert_eq!(v["createCoupon"]["status"], "ACTIVE");
    let v = app.gql(at, CREATE, json!({ "i": credit("Spring-25", 25_000, 10, 2) })).await;
    assert_eq!(error_code(&v), "CONFLICT", "{v}");
    // Each type's valid shape.
    create(app, admin, json!({ "code": "PCT", "name": "p", "type": "SUBSCRIPTION_DISCOUNT", "discountType": "PERCENTAGE", "discountPercent": 20 })).await;
    create(app, admin, json!({ "code": "FIX", "name": "f", "type": "SUBSCRIPTION_DISCOUNT", "discountType": "FIXED_AMOUNT", "creditAmount": 30000, "planType": "PRO" })).await;
    create(app, admin, json!({ "code": "FREE", "name": "f", "type": "FREE_SERVICE", "serviceId": f.service_id })).await;
}

#[tokio::test]
async fn admin_lists_updates_and_deletes() {
    let f = fixture(5).await;
    let (app, admin) = (&f.app, &f.admin);
    let at = Some(admin.token.as_str());
    let now = chrono::Utc::now();
    let used = create(app, admin, credit("USED-ONE", 10_000, 1, 1)).await;
    let unused = create(app, admin, credit("UNUSED", 10_000, 5, 1)).await;
    let ends = create(
        app,
        admin,
        json!({ "code": "ENDS-SOON", "name": "Ends soon", "type": "SUBSCRIPTION_DISCOUNT", "discountType": "PERCENTAGE", "discountPercent": 10, "serviceId": f.service_id, "validUntil": iso(now + chrono::Duration::days(1)) }),
    )
    .await;
    let later = create(
        app,
        admin,
        json!({ "code": "LATER", "name": "Later", "type": "CREDIT_TOPUP", "creditAmount": 5000, "validFrom": iso(now + chrono::Duration::days(30)) }),
    )
    .await;
    let user = app.register("Budi").await;
    app.gql_ok(Some(&user.token), REDEEM, json!({ "c": "used-one" })).await;

    // maxUses never below the uses taken; the type's value cannot be edited at all.
    let upd = "mutation($id: ID!, $i: UpdateCouponInput!) { updateCoupon(id: $id, input: $i) { maxUses validUntil description } }";
    let v = app.gql(at, upd, json!({ "id": used, "i": { "maxUses": 0 } })).await;
    assert_eq!(v["errors"][0]["extensions"]["field"], "maxUses", "{v}");
    let v = app.gql_ok(at, upd, json!({ "id": unused, "i": { "maxUses": 7, "description": "seven" } })).await;
    assert_eq!(v["updateCoupon"], json!({ "maxUses": 7, "validUntil": null, "description": "seven" }));

    let disable = "mutation($id: ID!, $e: Boolean!) { setCouponEnabled(id: $id, enabled: $e) { status enabled } }";
    let v = app.gql_ok(at, disable, json!({ "id": unused, "e": false })).await;
    assert_eq!(v["setCouponEnabled"], json!({ "status": "DISABLED", "enabled": false }));

    // Statuses as they read now, EXPIRED included once the clock passes validUntil.
    app.clock.advance(chrono::Duration::days(2));
    let list = "query($f: CouponFilter) { coupons(filter: $f) { totalCount nodes { code status } } }";
    let codes = |v: &Value| {
        v["coupons"]["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["code"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    for (status, expected) in [
        ("EXPIRED", vec!["ENDS-SOON"]),
        ("USED_UP", vec!["USED-ONE"]),
        ("DISABLED", vec!["UNUSED"]),
        ("SCHEDULED", vec!["LATER"]),
        ("ACTIVE", vec![]),
    ] {
        let v = app.gql_ok(at, list, json!({ "f": { "status": status } })).await;
        assert_eq!(codes(&v), expected, "{status}: {v}");
        for n in v["coupons"]["nodes"].as_array().unwrap() {
            assert_eq!(n["status"], status);
        }
    }
    let v = app.gql_ok(at, list, json!({ "f": { "search": "soon" } })).await;
    assert_eq!(codes(&v), vec!["ENDS-SOON"]);
    let v = app.gql_ok(at, list, json!({ "f": { "search": "used-" } })).await;
    assert_eq!(codes(&v), vec!["USED-ONE"]);
    let v = app.gql_ok(at, list, json!({ "f": { "type": "CREDIT_TOPUP", "serviceId": null } })).await;
    assert_eq!(v["coupons"]["totalCount"], 3);
    let v = app.gql_ok(at, list, json!({ "f": { "serviceId": f.service_id } })).await;
    assert_eq!(codes(&v), vec!["ENDS-SOON"]);
    let v = app.gql_ok(at, "{ coupons(first: 2) { totalCount pageInfo { hasNextPage } } }", json!({})).await;
    assert_eq!(v["coupons"]["totalCount"], 4);
    assert_eq!(v["coupons"]["pageInfo"]["hasNextPage"], true);

    // Detail with its redemptions.
    let v = app.gql_ok(at, COUPON, json!({ "id": used })).await;
    assert_eq!(v["coupon"]["redemptions"]["totalCount"], 1);
    assert_eq!(v["coupon"]["redemptions"]["nodes"][0]["userId"], user.user_id.as_str());
    assert_eq!(v["coupon"]["redemptions"]["nodes"][0]["context"], "WALLET");

    // Statistics and platformStats.
    let stats = "{ couponStatistics { totalCoupons totalRedemptions periodRedemptions periodCredit byStatus { status count } redemptionsByType { type count } topCoupons { code } } }";
    let v = app.gql_ok(at, stats, json!({})).await["couponStatistics"].clone();
    assert_eq!((v["totalCoupons"].as_i64(), v["totalRedemptions"].as_i64()), (Some(4), Some(1)));
    assert_eq!(v["periodCredit"], 10_000);
    assert_eq!(v["redemptionsByType"], json!([{ "type": "CREDIT_TOPUP", "count": 1 }]));
    assert_eq!(v["topCoupons"], json!([{ "code": "USED-ONE" }]));
    assert!(v["byStatus"].as_array().unwrap().contains(&json!({ "status": "EXPIRED", "count": 1 })));
    let v = app.gql_ok(at, "{ platformStats { couponRedemptionsThisMonth couponCreditThisMonth } }", json!({})).await;
    let p = &v["platformStats"];
    // The clock moved 2 days; the redemption may sit in the previous month on the 1st or 2nd.
    assert!(p["couponRedemptionsThisMonth"].as_i64().unwrap() <= 1);
    assert_eq!(
        p["couponCreditThisMonth"].as_i64().unwrap(),
        10_000 * p["couponRedemptionsThisMonth"].as_i64().unwrap()
    );

    // Delete: only without redemptions.
    let del = "mutation($id: ID!) { deleteCoupon(id: $id) }";
    assert_eq!(error_code(&app.gql(at, del, json!({ "id": used })).await), "CONFLICT");
    app.gql_ok(at, del, json!({ "id": later })).await;
    assert_eq!(error_code(&app.gql(at, COUPON, json!({ "id": later })).await), "NOT_FOUND");
    let _ = ends;
}

// ------------------------------------------------------------------ validation order

#[tokio::test]
async fn validation_gives_the_first_failing_reason_in_order() {
    let f = fixture(10).await;
    let (app, admin) = (&f.app, &f.admin);
    let at = Some(admin.token.as_str());
    let (other_service, other_plans) = create_service(app, admin, "app-two", 10).await;
    let plan_of = |t: &str| other_plans.iter().find(|(pt, _)| pt == t).unwrap().1.clone();
    let now = chrono::Utc::now();
    let id = create(
        app,
        admin,
        json!({
            "code": "ORDER20", "name": "Order", "type": "SUBSCRIPTION_DISCOUNT", "discountType": "PERCENTAGE",
            "discountPercent": 20, "serviceId": other_service, "planType": "PRO", "maxUses": 2, "maxUsesPerUser": 1,
            "validFrom": iso(now + chrono::Duration::days(1)), "validUntil": iso(now + chrono::Duration::days(10)),
        }),
    )
    .await;
    app.gql_ok(at, "mutation($id: ID!) { setCouponEnabled(id: $id, enabled: false) { id } }", json!({ "id": id }))
        .await;
    let [u1, u2, u3] = [app.register("Ana").await, app.register("Bob").await, app.register("Cici").await];
    for u in [&u1, &u2, &u3] {
        give_credit(app, admin, u, 200_000).await;
    }
    let check = |u: &'static str, v: Value, expected: &str| {
        assert_eq!(v["valid"], false, "{u}: {v}");
        assert_eq!(v["reason"], expected, "{u}: {v}");
    };

    check("unknown", validate(app, &u1, "NOPE99", None).await, "UNKNOWN_CODE");
    check("malformed", validate(app, &u1, "x", None).await, "UNKNOWN_CODE");
    check("disabled", validate(app, &u1, "order20", Some(f.plan("BASIC"))).await, "DISABLED");
    app.gql_ok(at, "mutation($id: ID!) { setCouponEnabled(id: $id, enabled: true) { id } }", json!({ "id": id })).await;
    check("not yet", validate(app, &u1, "order20", Some(f.plan("BASIC"))).await, "NOT_YET_VALID");
    app.clock.advance(chrono::Duration::days(2));
    check("service", validate(app, &u1, "order20", Some(f.plan("BASIC"))).await, "WRONG_SERVICE");
    check("plan type", validate(app, &u1, "order20", Some(&plan_of("BASIC"))).await, "WRONG_PLAN_TYPE");
    let v = app.gql(Some(&u1.token), REDEEM, json!({ "c": "order20" })).await;
    assert_eq!((error_code(&v).as_str(), reason(&v)), ("BAD_USER_INPUT", "CHECKOUT_ONLY"), "{v}");
    assert_eq!(v["errors"][0]["extensions"]["field"], "code");
    // The same refusals from subscribe, naming couponCode.
    let v = app.gql(Some(&u1.token), SUBSCRIBE, json!({ "p": plan_of("BASIC"), "c": "ORDER20" })).await;
    assert_eq!((reason(&v), &v["errors"][0]["extensions"]["field"]), ("WRONG_PLAN_TYPE", &json!("couponCode")));

    let ok = validate(app, &u1, "Order20", Some(&plan_of("PRO"))).await;
    assert_eq!(
        ok,
        json!({ "valid": true, "reason": null, "message": null, "creditAmount": null, "discountAmount": 18_000, "finalPrice": 72_000, "coupon": { "code": "ORDER20", "type": "SUBSCRIPTION_DISCOUNT" } })
    );
    assert_eq!(validate(app, &u1, "ORDER20", None).await["valid"], true, "without a plan: terms only");

    let v = app.gql_ok(Some(&u1.token), SUBSCRIBE, json!({ "p": plan_of("PRO"), "c": "order20" })).await;
    assert_eq!(v["subscribe"]["lastChargeAmount"], 72_000);
    check("per user", validate(app, &u1, "ORDER20", Some(&plan_of("PRO"))).await, "PER_USER_LIMIT_REACHED");
    app.gql_ok(Some(&u2.token), SUBSCRIBE, json!({ "p": plan_of("PRO"), "c": "ORDER20" })).await;
    check("used up", validate(app, &u3, "ORDER20", Some(&plan_of("PRO"))).await, "USED_UP");
    check("used up before per user", validate(app, &u1, "ORDER20", Some(&plan_of("PRO"))).await, "USED_UP");
    let v = app.gql(Some(&u3.token), SUBSCRIBE, json!({ "p": plan_of("PRO"), "c": "ORDER20" })).await;
    assert_eq!(reason(&v), "USED_UP");
    app.clock.advance(chrono::Duration::days(9));
    check("expired", validate(app, &u3, "ORDER20", Some(&plan_of("PRO"))).await, "EXPIRED");
    let v = app.gql_ok(at, COUPON, json!({ "id": id })).await;
    assert_eq!(v["coupon"]["status"], "EXPIRED", "past validUntil reads EXPIRED: {v}");
    assert_eq!(v["coupon"]["usedCount"], 2);

    // A credit coupon does not apply at checkout.
    create(app, admin, credit("CASH10", 10_000, 10, 1)).await;
    check("credit at checkout", validate(app, &u3, "CASH10", Some(&plan_of("PRO"))).await, "NOT_FOR_CHECKOUT");
    assert_eq!(validate(app, &u3, "cash10", None).await["creditAmount"], 10_000);
}

// ------------------------------------------------------------------ redemption

#[tokio::test]
async fn credit_coupons_are_redeemed_up_to_the_per_user_limit() {
    let f = fixture(5).await;
    let (app, admin) = (&f.app, &f.admin);
    let id = create(app, admin, credit("TOPUP25K", 25_000, 10, 2)).await;
    let user = app.register("Budi").await;
    let ut = Some(user.token.as_str());
    for (i, code) in ["topup25k", "  TopUp25K "].iter().enumerate() {
        let v = app.gql_ok(ut, REDEEM, json!({ "c": code })).await["redeemCoupon"].clone();
        assert_eq!(v["balance"], 25_000 * (i as i64 + 1));
        assert_eq!(v["transaction"], json!({ "type": "COUPON_REDEMPTION", "amount": 25_000 }));
        assert_eq!(v["redemption"]["coupon"]["code"], "TOPUP25K");
    }
    let v = app.gql(ut, REDEEM, json!({ "c": "TOPUP25K" })).await;
    assert_eq!(reason(&v), "PER_USER_LIMIT_REACHED", "{v}");
    assert_eq!(balance(app, &user).await, 50_000);
    assert_eq!(used_count(app, admin, &id).await, 2);
    // A gift is not a top-up: the lifetime totals do not move.
    let w = app.gql_ok(ut, "{ wallet { totalTopUp totalSpent } }", json!({})).await;
    assert_eq!(w["wallet"], json!({ "totalTopUp": 0, "totalSpent": 0 }));
    let h = app
        .gql_ok(ut, "{ couponRedemptions { totalCount nodes { context creditAmount coupon { code type } transaction { type } } } }", json!({}))
        .await;
    assert_eq!(h["couponRedemptions"]["totalCount"], 2);
    assert_eq!(
        h["couponRedemptions"]["nodes"][0],
        json!({ "context": "WALLET", "creditAmount": 25_000, "coupon": { "code": "TOPUP25K", "type": "CREDIT_TOPUP" }, "transaction": { "type": "COUPON_REDEMPTION" } })
    );
    let other = app.register("Siti").await;
    let h = app.gql_ok(Some(&other.token), "{ couponRedemptions { totalCount } }", json!({})).await;
    assert_eq!(h["couponRedemptions"]["totalCount"], 0, "owner-scoped");
    assert_ledger_consistent(app, &user).await;
}

/// Holds the SQLite writer / the coupon row (PostgreSQL) until `n` requests wait behind it.
async fn hold_coupon<T>(f: &Fixture, coupon_id: &str, n: i64, calls: impl Future<Output = T>) -> T {
    use sea_orm::ConnectionTrait;
    let blocker = f.app.state.db.begin().await.unwrap();
    if f.app.db.is_postgres() {
        let sql = format!("SELECT id FROM coupons WHERE id = {coupon_id} FOR UPDATE");
        blocker.execute_unprepared(&sql).await.unwrap();
    }
    let (results, _) = tokio::join!(calls, async {
        wait_until_blocked(&f.app, n).await;
        blocker.commit().await.unwrap();
    });
    results
}

#[tokio::test]
async fn fifty_users_race_for_ten_uses() {
    let f = fixture(5).await;
    let id = create(&f.app, &f.admin, credit("RACE10", 10_000, 10, 1)).await;
    let mut users = vec![];
    for i in 0..50 {
        users.push(f.app.register(&format!("User{i}")).await);
    }
    let calls =
        futures::future::join_all(users.iter().map(|u| f.app.gql(Some(&u.token), REDEEM, json!({ "c": "RACE10" }))));
    // 20 waiting is proof of overlap (PostgreSQL's pool holds at most 32 at once).
    let results = hold_coupon(&f, &id, 20, calls).await;
    let ok = results.iter().filter(|v| v.get("errors").is_none()).count();
    let used_up = results.iter().filter(|v| v.get("errors").is_some() && reason(v) == "USED_UP").count();
    assert_eq!((ok, used_up), (10, 40), "{results:?}");
    assert_eq!(used_count(&f.app, &f.admin, &id).await, 10);
    let mut credited = 0;
    for u in &users {
        let b = balance(&f.app, u).await;
        assert!(b == 0 || b == 10_000);
        credited += b;
    }
    assert_eq!(credited, 100_000, "exactly ten credits");
    let v = f.app.gql_ok(Some(&f.admin.token), COUPON, json!({ "id": id })).await;
    assert_eq!(v["coupon"]["redemptions"]["totalCount"], 10);
    assert_eq!(v["coupon"]["status"], "USED_UP");
}

#[tokio::test]
async fn one_users_ten_parallel_redemptions_give_one() {
    let f = fixture(5).await;
    let id = create(&f.app, &f.admin, credit("ONCE", 10_000, 100, 1)).await;
    let user = f.app.register("Budi").await;
    let calls =
        futures::future::join_all((0..10).map(|_| f.app.gql(Some(&user.token), REDEEM, json!({ "c": "ONCE" }))));
    let results = hold_coupon(&f, &id, 10, calls).await;
    let ok = results.iter().filter(|v| v.get("errors").is_none()).count();
    assert_eq!(ok, 1, "{results:?}");
    assert!(results.iter().filter(|v| v.get("errors").is_some()).all(|v| reason(v) == "PER_USER_LIMIT_REACHED"));
    assert_eq!(balance(&f.app, &user).await, 10_000);
    assert_eq!(used_count(&f.app, &f.admin, &id).await, 1, "the losers' uses were given back");
    assert_ledger_consistent(&f.app, &user).await;
}

/// Codes cannot be found by trying them: a user's unknown codes are counted, and once they are
/// spent every coupon lookup of that user is RATE_LIMITED, a real code included.
#[tokio::test]
async fn guessing_codes_is_rate_limited_per_user() {
    let f = fixture_with(5, |c| c.rate_limit.coupon_guesses_per_hour = 3).await;
    let (app, admin) = (&f.app, &f.admin);
    create(app, admin, credit("REAL-CODE", 10_000, 100, 1)).await;
    create(app, admin, json!({ "code": "SAVE10", "name": "Save", "type": "SUBSCRIPTION_DISCOUNT", "discountType": "PERCENTAGE", "discountPercent": 10 })).await;
    let (guesser, other) = (app.register("Guesser").await, app.register("Other").await);
    // A known code, however often, costs nothing.
    for _ in 0..5 {
        assert_eq!(validate(app, &guesser, "SAVE10", None).await["valid"], true);
    }
    for guess in ["GUESS-1", "GUESS-2", "GUESS-3"] {
        assert_eq!(validate(app, &guesser, guess, None).await["reason"], "UNKNOWN_CODE");
    }
    let gt = Some(guesser.token.as_str());
    let limited = [
        app.gql(gt, VALIDATE, json!({ "c": "REAL-CODE" })).await,
        app.gql(gt, REDEEM, json!({ "c": "REAL-CODE" })).await,
        app.gql(gt, SUBSCRIBE, json!({ "p": f.plan("BASIC"), "c": "SAVE10" })).await,
        app.gql(
            gt,
            "query($p: ID!) { checkoutPreview(planId: $p, couponCode: \"SAVE10\") { ok } }",
            json!({ "p": f.plan("BASIC") }),
        )
        .await,
    ];
    for v in &limited {
        assert_eq!(error_code(v), "RATE_LIMITED", "{v}");
    }
    assert_eq!(balance(app, &guesser).await, 0);
    // Someone else is not affected.
    let v = app.gql_ok(Some(&other.token), REDEEM, json!({ "c": "REAL-CODE" })).await;
    assert_eq!(v["redeemCoupon"]["balance"], 10_000);
}

// ------------------------------------------------------------------ checkout

#[tokio::test]
async fn a_discount_at_checkout_then_renewals_at_full_price() {
    let f = fixture(5).await;
    let (app, admin) = (&f.app, &f.admin);
    let id = create(
        app,
        admin,
        json!({ "code": "SAVE30K", "name": "30k off", "type": "SUBSCRIPTION_DISCOUNT", "discountType": "FIXED_AMOUNT", "creditAmount": 30_000, "maxUses": 10 }),
    )
    .await;
    let user = app.register("Budi").await;
    let ut = Some(user.token.as_str());
    give_credit(app, admin, &user, 70_000).await;
    let preview = "query($p: ID!, $c: String) { checkoutPreview(planId: $p, couponCode: $c) { cost discount ok reason couponRejection balanceAfter } }";
    let p = app.gql_ok(ut, preview, json!({ "p": f.plan("PRO"), "c": "save30k" })).await;
    assert_eq!(
        p["checkoutPreview"],
        json!({ "cost": 60_000, "discount": 30_000, "ok": true, "reason": null, "couponRejection": null, "balanceAfter": 10_000 })
    );
    // Too little credit even with the discount: nothing happens, the use is given back.
    let v = app.gql(ut, SUBSCRIBE, json!({ "p": f.plan("PREMIUM"), "c": "SAVE30K" })).await;
    assert_eq!(error_code(&v), "INSUFFICIENT_CREDIT", "{v}");
    assert_eq!(used_count(app, admin, &id).await, 0);

    let v = app.gql_ok(ut, SUBSCRIBE, json!({ "p": f.plan("PRO"), "c": "save30k" })).await["subscribe"].clone();
    assert_eq!(
        (&v["monthlyPrice"], &v["lastChargeAmount"], &v["discountAmount"], &v["couponCode"]),
        (&json!(90_000), &json!(60_000), &json!(30_000), &json!("SAVE30K"))
    );
    assert_eq!(v["transactions"], json!([{ "type": "SUBSCRIPTION", "amount": 60_000 }]));
    assert_eq!(balance(app, &user).await, 10_000);
    let p = app.gql_ok(ut, preview, json!({ "p": f.plan("PRO"), "c": "SAVE30K" })).await;
    assert_eq!(p["checkoutPreview"]["reason"], "COUPON_INVALID");
    assert_eq!(p["checkoutPreview"]["couponRejection"], "PER_USER_LIMIT_REACHED");
    let c = app.gql_ok(Some(&admin.token), COUPON, json!({ "id": id })).await;
    let r = &c["coupon"]["redemptions"]["nodes"][0];
    assert_eq!(
        (&r["context"], &r["discountAmount"], &r["subscriptionId"]),
        (&json!("CHECKOUT"), &json!(30_000), &v["id"])
    );
    let q = "{ allTransactions(first: 5) { nodes { type amount } } }";
    let _ = app.gql_ok(Some(&admin.token), q, json!({})).await;

    // The renewal charges the plan's full price.
    give_credit(app, admin, &user, 80_000).await;
    let end = crate::helpers::ts(&v["endDate"]);
    app.clock.advance(end - chrono::Utc::now() - chrono::Duration::days(3));
    let renew = "mutation($id: ID!) { renewSubscription(id: $id) { lastChargeAmount transactions { type amount } } }";
    let r = app.gql_ok(ut, renew, json!({ "id": v["id"] })).await["renewSubscription"].clone();
    assert_eq!(r["lastChargeAmount"], 90_000);
    assert!(r["transactions"].as_array().unwrap().contains(&json!({ "type": "RENEWAL", "amount": 90_000 })));
    assert_eq!(balance(app, &user).await, 0);
    assert_ledger_consistent(app, &user).await;
}

#[tokio::test]
async fn a_free_first_month_then_the_normal_price() {
    let f = fixture(5).await;
    let (app, admin) = (&f.app, &f.admin);
    let (_, other_plans) = create_service(app, admin, "app-two", 5).await;
    create(
        app,
        admin,
        json!({ "code": "FREEMONTH", "name": "Free month", "type": "FREE_SERVICE", "serviceId": f.service_id, "planType": "PRO" }),
    )
    .await;
    let user = app.register("Budi").await;
    let ut = Some(user.token.as_str());
    let v = app.gql(ut, SUBSCRIBE, json!({ "p": other_plans[2].1, "c": "FREEMONTH" })).await;
    assert_eq!(reason(&v), "WRONG_SERVICE");
    let preview = "query($p: ID!, $c: String) { checkoutPreview(planId: $p, couponCode: $c) { cost discount ok } }";
    let p = app.gql_ok(ut, preview, json!({ "p": f.plan("PRO"), "c": "FREEMONTH" })).await;
    assert_eq!(p["checkoutPreview"], json!({ "cost": 0, "discount": 90_000, "ok": true }));
    // No credit needed for a free first period.
    let v = app.gql_ok(ut, SUBSCRIBE, json!({ "p": f.plan("PRO"), "c": "FREEMONTH" })).await["subscribe"].clone();
    assert_eq!(
        (&v["lastChargeAmount"], &v["discountAmount"], &v["monthlyPrice"]),
        (&json!(0), &json!(90_000), &json!(90_000))
    );
    assert_eq!(v["transactions"], json!([]));
    assert_eq!(balance(app, &user).await, 0);
    let h = app
        .gql_ok(
            ut,
            "{ couponRedemptions { nodes { context discountAmount subscriptionId transaction { id } } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        h["couponRedemptions"]["nodes"][0],
        json!({ "context": "CHECKOUT", "discountAmount": 90_000, "subscriptionId": v["id"], "transaction": null })
    );

    give_credit(app, admin, &user, 90_000).await;
    let end = crate::helpers::ts(&v["endDate"]);
    app.clock.advance(end - chrono::Utc::now() - chrono::Duration::days(3));
    let renew = "mutation($id: ID!) { renewSubscription(id: $id) { lastChargeAmount } }";
    let r = app.gql_ok(ut, renew, json!({ "id": v["id"] })).await;
    assert_eq!(r["renewSubscription"]["lastChargeAmount"], 90_000);
    assert_eq!(balance(app, &user).await, 0);
}

/// A downgrade refunds the unused part of what was paid: after a free first period, nothing.
#[tokio::test]
async fn a_downgrade_after_a_free_month_gives_nothing_back() {
    let f = fixture(5).await;
    let (app, admin) = (&f.app, &f.admin);
    create(
        app,
        admin,
        json!({ "code": "FREEPRO", "name": "Free month", "type": "FREE_SERVICE", "serviceId": f.service_id }),
    )
    .await;
    let user = app.register("Budi").await;
    let v = app.gql_ok(Some(&user.token), SUBSCRIBE, json!({ "p": f.plan("PRO"), "c": "FREEPRO" })).await;
    let change = "mutation($id: ID!, $p: ID!) { adminChangePlan(id: $id, planId: $p, reason: \"asked\") { monthlyPrice transactions { type amount } } }";
    let d = app.gql_ok(Some(&admin.token), change, json!({ "id": v["subscribe"]["id"], "p": f.plan("BASIC") })).await;
    assert_eq!(d["adminChangePlan"], json!({ "monthlyPrice": 30_000, "transactions": [] }));
    assert_eq!(balance(app, &user).await, 0);
    assert_ledger_consistent(app, &user).await;
}

// ------------------------------------------------------------------ welcome bonus

#[tokio::test]
async fn welcome_bonuses_stack_until_used_up() {
    let f = fixture(5).await;
    let (app, admin) = (&f.app, &f.admin);
    let big = create(app, admin, welcome("WELCOME20K", 20_000, 1000)).await;
    let db = &app.state.db;
    let before = db.statement_count();
    let first = app.register("First").await;
    let with_one = db.statement_count() - before;
    assert_eq!(balance(app, &first).await, 20_000);

    create(app, admin, welcome("NEWUSER5K", 5_000, 1)).await;
    let off = create(app, admin, welcome("OFF10K", 10_000, 100)).await;
    app.gql_ok(
        Some(&admin.token),
        "mutation($id: ID!) { setCouponEnabled(id: $id, enabled: false) { id } }",
        json!({ "id": off }),
    )
    .await;
    create(app, admin, json!({ "code": "LATER5K", "name": "later", "type": "WELCOME_BONUS", "creditAmount": 5000, "validFrom": iso(chrono::Utc::now() + chrono::Duration::days(3)) })).await;
    let before = db.statement_count();
    let second = app.register("Second").await;
    let with_two = db.statement_count() - before;
    assert_eq!(with_one, with_two, "the same statements for one coupon or two: no round trip per coupon");
    assert_eq!(balance(app, &second).await, 25_000, "20,000 + 5,000 stack; disabled and future ones do not");
    let w = app.gql_ok(Some(&second.token), crate::helpers::WALLET, json!({})).await;
    let rows = w["wallet"]["transactions"]["edges"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|e| e["node"]["type"] == "COUPON_REDEMPTION"));
    assert_eq!(w["wallet"]["totalSpent"], 0);
    assert_ledger_consistent(app, &second).await;
    let h =
        app.gql_ok(Some(&second.token), "{ couponRedemptions { nodes { context coupon { code } } } }", json!({})).await;
    assert_eq!(h["couponRedemptions"]["nodes"].as_array().unwrap().len(), 2);
    assert_eq!(h["couponRedemptions"]["nodes"][0]["context"], "WELCOME_BONUS");

    // NEWUSER5K is used up: the third account gets 20,000 only.
    let third = app.register("Third").await;
    assert_eq!(balance(app, &third).await, 20_000);
    // …and once WELCOME20K is used up too, nothing at all.
    app.gql_ok(
        Some(&admin.token),
        "mutation($id: ID!) { updateCoupon(id: $id, input: { maxUses: 3 }) { id } }",
        json!({ "id": big }),
    )
    .await;
    let fourth = app.register("Fourth").await;
    assert_eq!(balance(app, &fourth).await, 0);
    assert_eq!(used_count(app, admin, &big).await, 3);
    // Admin-created accounts get no welcome bonus.
    let v = app.gql_ok(Some(&admin.token), "{ welcomeBonusFailures { totalCount } }", json!({})).await;
    assert_eq!(v["welcomeBonusFailures"]["totalCount"], 0);
}

#[tokio::test]
async fn a_failed_welcome_bonus_is_recorded_not_swallowed() {
    use sea_orm::ConnectionTrait;
    let f = fixture(5).await;
    let (app, admin) = (&f.app, &f.admin);
    let id = create(app, admin, welcome("WELCOME20K", 20_000, 10)).await;
    // Break the last step of the bonus: the redemptions table is gone for a moment.
    let conn = &app.state.db.conn;
    conn.execute_unprepared("ALTER TABLE coupon_redemptions RENAME TO coupon_redemptions_away").await.unwrap();
    let user = app.register("Budi").await;
    conn.execute_unprepared("ALTER TABLE coupon_redemptions_away RENAME TO coupon_redemptions").await.unwrap();
    assert_eq!(balance(app, &user).await, 0, "the account exists, without the bonus");
    assert_eq!(used_count(app, admin, &id).await, 0, "and the coupon's use was given back");
    let w = app.gql_ok(Some(&user.token), crate::helpers::WALLET, json!({})).await;
    assert_eq!(w["wallet"]["transactions"]["edges"], json!([]));
    let v = app
        .gql_ok(
            Some(&admin.token),
            "{ welcomeBonusFailures { totalCount nodes { userId context message } } }",
            json!({}),
        )
        .await;
    let failures = &v["welcomeBonusFailures"];
    assert_eq!(failures["totalCount"], 1);
    assert_eq!(failures["nodes"][0]["userId"], user.user_id.as_str());
    assert_eq!(failures["nodes"][0]["context"], "WELCOME_BONUS");
    // The next registration works again.
    let next = app.register("Siti").await;
    assert_eq!(balance(app, &next).await, 20_000);
}

#[tokio::test]
async fn demo_seed_has_a_welcome_bonus_and_a_discount_code() {
    let app = TestApp::spawn_with(|c| c.seed_demo = true).await;
    let admin = app.login_admin().await;
    let v = app
        .gql_ok(
            Some(&admin.token),
            "{ coupons { nodes { code type status createdBy creditAmount discountPercent } } }",
            json!({}),
        )
        .await;
    let nodes = v["coupons"]["nodes"].as_array().unwrap();
    assert!(nodes.contains(&json!({ "code": "WELCOME20K", "type": "WELCOME_BONUS", "status": "ACTIVE", "createdBy": null, "creditAmount": 20_000, "discountPercent": null })), "{v}");
    assert!(nodes.contains(&json!({ "code": "SAVE20", "type": "SUBSCRIPTION_DISCOUNT", "status": "ACTIVE", "createdBy": null, "creditAmount": null, "discountPercent": 20 })), "{v}");
    let user = app.register("Budi").await;
    assert_eq!(balance(&app, &user).await, 20_000);
}
