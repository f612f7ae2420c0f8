//! Admin users and wallets: accounts created by an administrator (temporary password or
//! invitation), profile edits, anonymization, the wallet overview, low balances and the
//! subscribers of a plan.
use chrono::Duration;
use serde_json::{Value, json};

use crate::helpers::{fixture, give_credit};
use crate::support::{Session, TestApp, error_code};

const CREATE: &str = "mutation($i: AdminCreateUserInput!) { adminCreateUser(input: $i) { user { id name email phone avatar role isActive mustChangePassword wallet { balance } } temporaryPassword invitationToken invitationExpiresAt } }";
const UPDATE: &str = "mutation($u: ID!, $i: AdminUpdateUserInput!) { adminUpdateUser(userId: $u, input: $i) { id name email phone avatar } }";
const ANONYMIZE: &str = "mutation($u: ID!, $r: String!) { anonymizeUser(userId: $u, reason: $r) { id name email phone avatar isActive anonymizedAt } }";
const ACCEPT: &str = "mutation($t: String!, $p: String!) { acceptInvitation(token: $t, password: $p) { accessToken refreshToken user { id email } } }";
const OVERVIEW: &str = "query($f: WalletOverviewFilter, $s: WalletSort, $o: SortDirection, $n: Int, $a: String) { walletOverview(filter: $f, sort: $s, order: $o, first: $n, after: $a) { totalCount totalCreditOutstanding pageInfo { hasNextPage endCursor } edges { node { balance totalTopUp totalSpent user { id name } } } } }";
const LOW: &str =
    "query($d: Int) { lowBalanceUsers(days: $d) { user { id } balance due shortfall renewals nextRenewalAt } }";
const SUBSCRIBERS: &str = "query($p: ID!, $n: Int, $a: String) { planSubscribers(planId: $p, first: $n, after: $a) { totalCount pageInfo { hasNextPage endCursor } edges { node { id status user { id email } } } } }";
const SUBSCRIBE: &str = "mutation($i: SubscribeInput!) { subscribe(input: $i) { id } }";

async fn try_login(app: &TestApp, email: &str, password: &str) -> Value {
    app.gql(
        None,
        "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { accessToken } }",
        json!({ "e": email, "p": password }),
    )
    .await
}

async fn create(app: &TestApp, admin: &Session, input: Value) -> Value {
    app.gql_ok(Some(&admin.token), CREATE, json!({ "i": input })).await["adminCreateUser"].clone()
}

#[tokio::test]
async fn admin_user_operations_are_forbidden_to_users() {
    let app = TestApp::spawn().await;
    let user = app.register("Budi").await;
    let t = Some(user.token.as_str());
    let calls = [
        (CREATE, json!({ "i": { "name": "X", "email": "x@example.com", "mode": "INVITATION" } })),
        (UPDATE, json!({ "u": user.user_id, "i": { "name": "Hacker" } })),
        (ANONYMIZE, json!({ "u": user.user_id, "r": "because" })),
        (OVERVIEW, json!({})),
        (LOW, json!({})),
        (SUBSCRIBERS, json!({ "p": "1" })),
    ];
    for (query, vars) in calls {
        let v = app.gql(t, query, vars).await;
        assert_eq!(error_code(&v), "FORBIDDEN", "{query}: {v}");
    }
    // Nothing changed on the way.
    let me = app.gql_ok(t, "{ me { name isActive } }", json!({})).await;
    assert_eq!(me["me"], json!({ "name": "Budi", "isActive": true }));
}

#[tokio::test]
async fn temporary_password_signs_in_and_asks_for_a_change() {
    let app = TestApp::spawn().await;
    let admin = app.login_admin().await;
    let created = create(
        &app,
        &admin,
        json!({ "name": "Siti", "email": "Siti@Example.com", "phone": "081234567890", "mode": "TEMPORARY_PASSWORD" }),
    )
    .await;
    let user = &created["user"];
    assert_eq!(user["email"], "siti@example.com", "normalised like registration");
    assert_eq!(user["phone"], "+6281234567890");
    assert_eq!(user["role"], "USER");
    assert_eq!(user["mustChangePassword"], true);
    assert_eq!(user["wallet"]["balance"], 0, "no welcome bonus");
    assert!(created["invitationToken"].is_null());
    let temporary = created["temporaryPassword"].as_str().unwrap().to_string();
    assert!(temporary.len() >= 16, "{temporary}");

    let s = app.login("siti@example.com", &temporary).await;
    let me = app.gql_ok(Some(&s.token), "{ me { id mustChangePassword } }", json!({})).await;
    assert_eq!(me["me"]["mustChangePassword"], true);
    app.gql_ok(
        Some(&s.token),
        "mutation($c: String!) { changePassword(currentPassword: $c, newPassword: \"my-own-password\") }",
        json!({ "c": temporary }),
    )
    .await;
    let s = app.login("siti@example.com", "my-own-password").await;
    let me = app.gql_ok(Some(&s.token), "{ me { mustChangePassword } }", json!({})).await;
    assert_eq!(me["me"]["mustChangePassword"], false);

    // An administrator may create another administrator.
    let other = create(
        &app,
        &admin,
        json!({ "name": "Ops", "email": "ops@example.com", "role": "ADMINISTRATOR", "mode": "TEMPORARY_PASSWORD" }),
    )
    .await;
    assert_eq!(other["user"]["role"], "ADMINISTRATOR");
    assert_ne!(other["temporaryPassword"], created["temporaryPassword"]);
}

#[tokio::test]
async fn duplicate_email_is_a_conflict_on_create_and_update() {
    let app = TestApp::spawn().await;
    let admin = app.login_admin().await;
    let budi = app.register("Budi").await;
    let t = Some(admin.token.as_str());
    let v = app
        .gql(t, CREATE, json!({ "i": { "name": "Copy", "email": budi.email.to_uppercase(), "mode": "INVITATION" } }))
        .await;
    assert_eq!(error_code(&v), "CONFLICT", "{v}");
    let v = app.gql(t, CREATE, json!({ "i": { "name": "Bad", "email": "not-an-email", "mode": "INVITATION" } })).await;
    assert_eq!(v["errors"][0]["extensions"]["field"], "email", "{v}");

    let siti = app.register("Siti").await;
    let v = app.gql(t, UPDATE, json!({ "u": siti.user_id, "i": { "email": budi.email } })).await;
    assert_eq!(error_code(&v), "CONFLICT", "{v}");
    let v = app.gql(t, UPDATE, json!({ "u": siti.user_id, "i": { "email": "siti@bad" } })).await;
    assert_eq!(v["errors"][0]["extensions"]["field"], "email", "{v}");
    // A free address is taken, normalised, and is the new login.
    let v = app.gql_ok(t, UPDATE, json!({ "u": siti.user_id, "i": { "email": " Siti.New@Example.com " } })).await;
    assert_eq!(v["adminUpdateUser"]["email"], "siti.new@example.com");
    app.login("siti.new@example.com", "password-123").await;
    let v = app.gql(t, UPDATE, json!({ "u": "999999", "i": { "name": "Nobody" } })).await;
    assert_eq!(error_code(&v), "NOT_FOUND");
}

#[tokio::test]
async fn admin_update_sets_and_clears_profile_fields() {
    let app = TestApp::spawn().await;
    let admin = app.login_admin().await;
    let s = app.register("Budi").await;
    let t = Some(admin.token.as_str());
    let v = app
        .gql_ok(
            t,
            UPDATE,
            json!({ "u": s.user_id, "i": { "name": " Budi  Santoso ", "phone": "0812-9876-5432", "avatar": "https://img.example/b.png" } }),
        )
        .await;
    assert_eq!(v["adminUpdateUser"]["name"], "Budi Santoso");
    assert_eq!(v["adminUpdateUser"]["phone"], "+6281298765432");
    assert_eq!(v["adminUpdateUser"]["avatar"], "https://img.example/b.png");
    let v = app.gql_ok(t, UPDATE, json!({ "u": s.user_id, "i": { "phone": null, "avatar": "" } })).await;
    assert_eq!(v["adminUpdateUser"]["phone"], Value::Null);
    assert_eq!(v["adminUpdateUser"]["avatar"], Value::Null);
    assert_eq!(v["adminUpdateUser"]["name"], "Budi Santoso", "absent fields stay");
    for (input, field) in [
        (json!({ "phone": "12" }), "phone"),
        (json!({ "avatar": "ftp://x" }), "avatar"),
        (json!({ "name": " " }), "name"),
    ] {
        let v = app.gql(t, UPDATE, json!({ "u": s.user_id, "i": input })).await;
        assert_eq!(v["errors"][0]["extensions"]["field"], field, "{v}");
    }
}

#[tokio::test]
async fn invitation_is_accepted_once_and_expires() {
    let app = TestApp::spawn().await;
    let admin = app.login_admin().await;
    let created =
        create(&app, &admin, json!({ "name": "Rina", "email": "rina@example.com", "mode": "INVITATION" })).await;
    assert!(created["temporaryPassword"].is_null());
    assert_eq!(created["user"]["mustChangePassword"], false);
    let token = created["invitationToken"].as_str().unwrap().to_string();
    // No password works before the invitation is accepted.
    for guess in ["password-123", "", "!no-password"] {
        assert_eq!(error_code(&try_login(&app, "rina@example.com", guess).await), "UNAUTHENTICATED");
    }
    let v = app.gql(None, ACCEPT, json!({ "t": token, "p": "short" })).await;
    assert_eq!(v["errors"][0]["extensions"]["field"], "password", "{v}");

    let v = app.gql_ok(None, ACCEPT, json!({ "t": token, "p": "rina-chosen-pw" })).await;
    let session = crate::support::session(&v["acceptInvitation"]);
    assert_eq!(session.email, "rina@example.com");
    let me = app.gql_ok(Some(&session.token), "{ me { email } }", json!({})).await;
    assert_eq!(me["me"]["email"], "rina@example.com");
    app.login("rina@example.com", "rina-chosen-pw").await;

    // Single use: the same token cannot reset the password again.
    let v = app.gql(None, ACCEPT, json!({ "t": token, "p": "attacker-password" })).await;
    assert_eq!(v["errors"][0]["extensions"]["field"], "token", "{v}");
    assert_eq!(error_code(&try_login(&app, "rina@example.com", "attacker-password").await), "UNAUTHENTICATED");
    let v = app.gql(None, ACCEPT, json!({ "t": "0".repeat(64), "p": "whatever-123" })).await;
    assert_eq!(v["errors"][0]["extensions"]["field"], "token", "{v}");

    // Expired after 7 days.
    let late = create(&app, &admin, json!({ "name": "Late", "email": "late@example.com", "mode": "INVITATION" })).await;
    let expires = crate::helpers::ts(&late["invitationExpiresAt"]);
    let days = (expires - app.state.now()).num_hours();
    assert!((167..=168).contains(&days), "{days} h");
    app.clock.advance(Duration::days(7) + Duration::minutes(1));
    let v = app.gql(None, ACCEPT, json!({ "t": late["invitationToken"], "p": "too-late-pw" })).await;
    assert_eq!(v["errors"][0]["extensions"]["field"], "token", "{v}");
}

#[tokio::test]
async fn anonymize_keeps_the_ledger_and_removes_personal_data() {
    let app = TestApp::spawn().await;
    let admin = app.login_admin().await;
    let t = Some(admin.token.as_str());
    let s = app.register("Budi").await;
    app.gql_ok(
        t,
        UPDATE,
        json!({ "u": s.user_id, "i": { "phone": "081234567890", "avatar": "https://img.example/b.png" } }),
    )
    .await;
    give_credit(&app, &admin, &s, 50_000).await;
    let invited =
        create(&app, &admin, json!({ "name": "Invitee", "email": "invitee@example.com", "mode": "INVITATION" })).await;

    let v = app.gql_ok(t, ANONYMIZE, json!({ "u": s.user_id, "r": "GDPR request #12" })).await;
    let u = &v["anonymizeUser"];
    assert_eq!(u["name"], "Deleted user");
    assert_eq!(u["email"], format!("deleted-{}@anonymized.invalid", s.user_id));
    assert_eq!(u["phone"], Value::Null);
    assert_eq!(u["avatar"], Value::Null);
    assert_eq!(u["isActive"], false);
    assert!(u["anonymizedAt"].is_string());

    // Sessions end and the old credentials no longer sign in.
    assert_eq!(error_code(&app.gql(Some(&s.token), "{ wallet { balance } }", json!({})).await), "UNAUTHENTICATED");
    let refresh = app
        .gql(
            None,
            "mutation($t: String!) { refreshToken(refreshToken: $t) { accessToken } }",
            json!({ "t": s.refresh }),
        )
        .await;
    assert_eq!(error_code(&refresh), "UNAUTHENTICATED");
    assert_eq!(error_code(&try_login(&app, &s.email, "password-123").await), "UNAUTHENTICATED");

    // Money history stays: the ledger row and the balance.
    let v = app
        .gql_ok(
            t,
            "query($u: ID!) { user(id: $u) { wallet { balance } } allTransactions(userId: $u) { totalCount edges { node { amount type } } } }",
            json!({ "u": s.user_id }),
        )
        .await;
    assert_eq!(v["user"]["wallet"]["balance"], 50_000);
    assert_eq!(v["allTransactions"]["totalCount"], 1);
    assert_eq!(v["allTransactions"]["edges"][0]["node"]["amount"], 50_000);
    let o = app.gql_ok(t, OVERVIEW, json!({})).await;
    assert_eq!(o["walletOverview"]["totalCreditOutstanding"], 50_000);

    // The personal data is gone for good: no search finds it, the email is free again, the
    // account cannot be edited back, and a second call changes nothing.
    let found = app.gql_ok(t, "query($s: String) { users(search: $s) { totalCount } }", json!({ "s": "budi" })).await;
    assert_eq!(found["users"]["totalCount"], 0);
    let v = app.gql(t, UPDATE, json!({ "u": s.user_id, "i": { "name": "Budi again" } })).await;
    assert_eq!(error_code(&v), "CONFLICT");
    let again = app.gql_ok(t, ANONYMIZE, json!({ "u": s.user_id, "r": "again" })).await;
    assert_eq!(&again["anonymizeUser"], u);
    app.gql_ok(
        None,
        "mutation($i: RegisterInput!) { register(input: $i) { accessToken } }",
        json!({ "i": { "name": "Budi", "email": s.email, "password": "password-123" } }),
    )
    .await;

    // An open invitation dies with the account.
    let id = invited["user"]["id"].as_str().unwrap();
    app.gql_ok(t, ANONYMIZE, json!({ "u": id, "r": "never joined" })).await;
    let v = app.gql(None, ACCEPT, json!({ "t": invited["invitationToken"], "p": "late-password" })).await;
    assert_eq!(v["errors"][0]["extensions"]["field"], "token", "{v}");
}

#[tokio::test]
async fn anonymize_refuses_self_and_users_with_live_subscriptions() {
    let f = fixture(10).await;
    let (app, admin) = (&f.app, &f.admin);
    let t = Some(admin.token.as_str());
    let v = app.gql(t, ANONYMIZE, json!({ "u": admin.user_id, "r": "me" })).await;
    assert_eq!(error_code(&v), "CONFLICT", "{v}");

    let s = app.register("Budi").await;
    give_credit(app, admin, &s, 30_000).await;
    let sub = app.gql_ok(Some(&s.token), SUBSCRIBE, json!({ "i": { "planId": f.plan("BASIC") } })).await;
    let v = app.gql(t, ANONYMIZE, json!({ "u": s.user_id, "r": "request" })).await;
    assert_eq!(error_code(&v), "CONFLICT", "{v}");
    let me = app.gql_ok(Some(&s.token), "{ me { name isActive } }", json!({})).await;
    assert_eq!(me["me"], json!({ "name": "Budi", "isActive": true }), "nothing changed");

    app.gql_ok(
        Some(&s.token),
        "mutation($id: ID!) { cancelSubscription(id: $id) { id } }",
        json!({ "id": sub["subscribe"]["id"] }),
    )
    .await;
    app.gql_ok(t, ANONYMIZE, json!({ "u": s.user_id, "r": "request" })).await;
    // The cancelled subscription and its charge are still there.
    let v = app
        .gql_ok(
            t,
            "query($u: ID!) { allSubscriptions(userId: $u) { totalCount } allTransactions(userId: $u) { totalCount } }",
            json!({ "u": s.user_id }),
        )
        .await;
    assert_eq!(v["allSubscriptions"]["totalCount"], 1);
    assert_eq!(v["allTransactions"]["totalCount"], 2, "credit and charge");
}

/// Users named `W-<n>` with the balances given, created in order.
async fn wallets(app: &TestApp, admin: &Session, balances: &[i64]) -> Vec<Session> {
    let mut users = vec![];
    for (i, b) in balances.iter().enumerate() {
        let s = app.register(&format!("W{i}")).await;
        if *b > 0 {
            give_credit(app, admin, &s, *b).await;
        }
        users.push(s);
    }
    users
}

fn ids(v: &Value) -> Vec<String> {
    v["walletOverview"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["user"]["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn wallet_overview_filters_sorts_pages_and_totals() {
    let app = TestApp::spawn().await;
    let admin = app.login_admin().await;
    let t = Some(admin.token.as_str());
    let w = wallets(&app, &admin, &[10_000, 20_000, 20_000, 50_000]).await;
    let id = |i: usize| w[i].user_id.clone();

    // Balance descending, ties by id descending, two per page; the admin (0) comes last.
    let mut seen = vec![];
    let mut after = Value::Null;
    loop {
        let v = app.gql_ok(t, OVERVIEW, json!({ "s": "BALANCE", "o": "DESC", "n": 2, "a": after })).await;
        assert_eq!(v["walletOverview"]["totalCount"], 5);
        assert_eq!(v["walletOverview"]["totalCreditOutstanding"], 100_000);
        seen.extend(ids(&v));
        if v["walletOverview"]["pageInfo"]["hasNextPage"] == false {
            break;
        }
        after = v["walletOverview"]["pageInfo"]["endCursor"].clone();
    }
    assert_eq!(seen, vec![id(3), id(2), id(1), id(0), admin.user_id.clone()]);

    // Ascending mirrors it, across a page boundary inside the tie.
    let p1 = app.gql_ok(t, OVERVIEW, json!({ "s": "BALANCE", "o": "ASC", "n": 3 })).await;
    assert_eq!(ids(&p1), vec![admin.user_id.clone(), id(0), id(1)]);
    let p2 = app
        .gql_ok(
            t,
            OVERVIEW,
            json!({ "s": "BALANCE", "o": "ASC", "n": 3, "a": p1["walletOverview"]["pageInfo"]["endCursor"] }),
        )
        .await;
    assert_eq!(ids(&p2), vec![id(2), id(3)]);
    assert_eq!(p2["walletOverview"]["pageInfo"]["hasNextPage"], false);

    // Filters: a balance range, and a search; the total follows the filter.
    let v = app.gql_ok(t, OVERVIEW, json!({ "f": { "minBalance": 15_000, "maxBalance": 20_000 } })).await;
    assert_eq!(v["walletOverview"]["totalCount"], 2);
    assert_eq!(v["walletOverview"]["totalCreditOutstanding"], 40_000);
    let v = app.gql_ok(t, OVERVIEW, json!({ "f": { "search": w[3].email.to_uppercase() } })).await;
    assert_eq!(ids(&v), vec![id(3)]);
    assert_eq!(v["walletOverview"]["totalCreditOutstanding"], 50_000);
    assert_eq!(v["walletOverview"]["edges"][0]["node"]["balance"], 50_000);

    // Oldest first.
    let v = app.gql_ok(t, OVERVIEW, json!({ "s": "CREATED_AT", "o": "ASC" })).await;
    assert_eq!(ids(&v), vec![admin.user_id.clone(), id(0), id(1), id(2), id(3)]);

    let v = app.gql(t, OVERVIEW, json!({ "f": { "minBalance": 10, "maxBalance": 5 } })).await;
    assert_eq!(v["errors"][0]["extensions"]["field"], "maxBalance", "{v}");
}

#[tokio::test]
async fn wallet_overview_sorts_by_lifetime_spending() {
    let f = fixture(10).await;
    let (app, admin) = (&f.app, &f.admin);
    let w = wallets(app, admin, &[100_000, 100_000]).await;
    app.gql_ok(Some(&w[0].token), SUBSCRIBE, json!({ "i": { "planId": f.plan("PRO") } })).await;
    app.gql_ok(Some(&w[1].token), SUBSCRIBE, json!({ "i": { "planId": f.plan("BASIC") } })).await;
    let v = app.gql_ok(Some(&admin.token), OVERVIEW, json!({ "s": "TOTAL_SPENT", "o": "DESC", "n": 2 })).await;
    assert_eq!(ids(&v), vec![w[0].user_id.clone(), w[1].user_id.clone()]);
    assert_eq!(v["walletOverview"]["edges"][0]["node"]["totalSpent"], 90_000);
    assert_eq!(v["walletOverview"]["edges"][1]["node"]["totalSpent"], 30_000);
    assert_eq!(v["walletOverview"]["totalCreditOutstanding"], 10_000 + 70_000);
}

#[tokio::test]
async fn low_balance_users_are_those_short_of_renewals_due_soon() {
    let f = fixture(10).await;
    let (app, admin) = (&f.app, &f.admin);
    let t = Some(admin.token.as_str());
    // short: pays BASIC (30,000) and keeps 5,000; rich: keeps 70,000; off: short but no auto-renew.
    let w = wallets(app, admin, &[35_000, 100_000, 30_000]).await;
    for s in &w {
        app.gql_ok(Some(&s.token), SUBSCRIBE, json!({ "i": { "planId": f.plan("BASIC") } })).await;
    }
    let sub_off = app.gql_ok(Some(&w[2].token), "{ subscriptions { id } }", json!({})).await;
    app.gql_ok(
        Some(&w[2].token),
        "mutation($id: ID!) { setAutoRenew(id: $id, enabled: false) { id } }",
        json!({ "id": sub_off["subscriptions"][0]["id"] }),
    )
    .await;

    // Renewals are a month away: nothing due within a week.
    let v = app.gql_ok(t, LOW, json!({ "d": 7 })).await;
    assert_eq!(v["lowBalanceUsers"], json!([]));
    let v = app.gql_ok(t, LOW, json!({ "d": 32 })).await;
    let rows = v["lowBalanceUsers"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{v}");
    assert_eq!(rows[0]["user"]["id"], w[0].user_id.as_str());
    assert_eq!(rows[0]["balance"], 5_000);
    assert_eq!(rows[0]["due"], 30_000);
    assert_eq!(rows[0]["shortfall"], 25_000);
    assert_eq!(rows[0]["renewals"], 1);

    // A week before the renewal the default window (7 days) sees it.
    f.app.clock.advance(Duration::days(25));
    let admin = app.login_admin().await;
    let v = app.gql_ok(Some(&admin.token), "{ lowBalanceUsers { user { id } shortfall } }", json!({})).await;
    assert_eq!(v["lowBalanceUsers"], json!([{ "user": { "id": w[0].user_id }, "shortfall": 25_000 }]));
    let v = app.gql(Some(&admin.token), LOW, json!({ "d": 0 })).await;
    assert_eq!(v["errors"][0]["extensions"]["field"], "days", "{v}");
}

#[tokio::test]
async fn plan_subscribers_lists_the_live_slot_holders() {
    let f = fixture(10).await;
    let (app, admin) = (&f.app, &f.admin);
    let t = Some(admin.token.as_str());
    let w = wallets(app, admin, &[0, 0, 0]).await;
    let mut subs = vec![];
    for s in &w {
        let v = app.gql_ok(Some(&s.token), SUBSCRIBE, json!({ "i": { "planId": f.plan("FREE") } })).await;
        subs.push(v["subscribe"]["id"].as_str().unwrap().to_string());
    }
    app.gql_ok(
        Some(&w[1].token),
        "mutation($id: ID!) { cancelSubscription(id: $id) { id } }",
        json!({ "id": subs[1] }),
    )
    .await;

    let p1 = app.gql_ok(t, SUBSCRIBERS, json!({ "p": f.plan("FREE"), "n": 1 })).await;
    assert_eq!(p1["planSubscribers"]["totalCount"], 2, "the cancelled one holds no slot");
    assert_eq!(p1["planSubscribers"]["pageInfo"]["hasNextPage"], true);
    let p2 = app
        .gql_ok(
            t,
            SUBSCRIBERS,
            json!({ "p": f.plan("FREE"), "n": 1, "a": p1["planSubscribers"]["pageInfo"]["endCursor"] }),
        )
        .await;
    assert_eq!(p2["planSubscribers"]["pageInfo"]["hasNextPage"], false);
    let nodes: Vec<&Value> = [&p1, &p2].iter().map(|p| &p["planSubscribers"]["edges"][0]["node"]).collect();
    assert_eq!(nodes[0]["id"], subs[2].as_str(), "newest first");
    assert_eq!(nodes[0]["user"]["email"], w[2].email.as_str());
    assert_eq!(nodes[1]["id"], subs[0].as_str());
    assert_eq!(nodes[1]["status"], "ACTIVE");

    let other = app.gql_ok(t, SUBSCRIBERS, json!({ "p": f.plan("PRO") })).await;
    assert_eq!(other["planSubscribers"]["totalCount"], 0);
    assert_eq!(error_code(&app.gql(t, SUBSCRIBERS, json!({ "p": "999999" })).await), "NOT_FOUND");
}
