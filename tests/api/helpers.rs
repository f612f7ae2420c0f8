//! Fixtures and checks shared by the subscription and billing-job tests.
use serde_json::{Value, json};

use crate::support::{Session, TestApp, eventually};

pub const WALLET: &str = "{ wallet { balance totalSpent transactions(first: 100) { edges { node { type amount status balanceBefore balanceAfter } } } } }";

pub struct Fixture {
    pub app: TestApp,
    pub admin: Session,
    pub service_id: String,
    /// planType → plan id
    pub plans: Vec<(String, String)>,
}

impl Fixture {
    pub fn plan(&self, plan_type: &str) -> &str {
        &self.plans.iter().find(|(t, _)| t == plan_type).unwrap().1
    }
}

/// A service "app-<n>" with FREE (0), BASIC (30,000), PRO (90,000) and PREMIUM (150,000) plans.
pub async fn create_service(app: &TestApp, admin: &Session, slug: &str, quota: i32) -> (String, Vec<(String, String)>) {
    let t = Some(admin.token.as_str());
    let cats = app.gql_ok(t, "{ categories { id } }", json!({})).await;
    let cat_id = match cats["categories"].as_array().unwrap().first() {
        Some(c) => c["id"].as_str().unwrap().to_string(),
        None => app
            .gql_ok(t, "mutation { createCategory(input: { name: \"Apps\", slug: \"apps\" }) { id } }", json!({}))
            .await["createCategory"]["id"]
            .as_str()
            .unwrap()
            .to_string(),
    };
    let svc = app
        .gql_ok(
            t,
            "mutation($i: CreateServiceInput!) { createService(input: $i) { id } }",
            json!({ "i": { "categoryId": cat_id, "name": slug, "slug": slug, "version": "1", "dockerImage": "nginx:1", "defaultPort": 80 } }),
        )
        .await;
    let service_id = svc["createService"]["id"].as_str().unwrap().to_string();
    let mut plans = vec![];
    for (pt, price) in [("FREE", 0), ("BASIC", 30_000), ("PRO", 90_000), ("PREMIUM", 150_000)] {
        let p = app
            .gql_ok(
                t,
                "mutation($s: ID!, $i: CreatePlanInput!) { createPlan(serviceId: $s, input: $i) { id } }",
                json!({ "s": service_id, "i": { "name": pt, "planType": pt, "monthlyPrice": price, "cpuMilli": 250, "memoryMb": 256, "storageGb": 1, "totalQuota": quota } }),
            )
            .await;
        plans.push((pt.to_string(), p["createPlan"]["id"].as_str().unwrap().to_string()));
    }
    (service_id, plans)
}

pub async fn fixture(quota: i32) -> Fixture {
    fixture_with(quota, |_| {}).await
}

/// `fixture` on a gateway whose config `tweak` changed.
pub async fn fixture_with(quota: i32, tweak: impl FnOnce(&mut minispod_gateway::config::Config)) -> Fixture {
    let app = TestApp::spawn_with(tweak).await;
    let admin = app.login_admin().await;
    let (service_id, plans) = create_service(&app, &admin, "app-one", quota).await;
    Fixture { app, admin, service_id, plans }
}

pub async fn give_credit(app: &TestApp, admin: &Session, user: &Session, amount: i64) {
    app.gql_ok(
        Some(&admin.token),
        "mutation($u: ID!, $a: Int!) { adjustCredit(userId: $u, amount: $a, reason: \"test credit\") { id } }",
        json!({ "u": user.user_id, "a": amount }),
    )
    .await;
}

pub async fn balance(app: &TestApp, user: &Session) -> i64 {
    app.gql_ok(Some(&user.token), WALLET, json!({})).await["wallet"]["balance"].as_i64().unwrap()
}

pub async fn used_quota(app: &TestApp, plan_id: &str) -> i64 {
    let v = app.gql_ok(None, "query($id: ID!) { plan(id: $id) { usedQuota } }", json!({ "id": plan_id })).await;
    v["plan"]["usedQuota"].as_i64().unwrap()
}

/// Balance equals the signed sum of completed ledger entries, and is never negative.
pub async fn assert_ledger_consistent(app: &TestApp, user: &Session) {
    let w = app.gql_ok(Some(&user.token), WALLET, json!({})).await;
    let sum: i64 = w["wallet"]["transactions"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["node"])
        .filter(|n| n["status"] == "COMPLETED")
        .map(|n| n["balanceAfter"].as_i64().unwrap() - n["balanceBefore"].as_i64().unwrap())
        .sum();
    let bal = w["wallet"]["balance"].as_i64().unwrap();
    assert_eq!(bal, sum, "balance vs ledger: {w}");
    assert!(bal >= 0);
}

pub fn ts(v: &Value) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap()).unwrap().with_timezone(&chrono::Utc)
}

/// Waits until `n` walletUpdates streams are registered on `app`, so no event can be missed.
pub async fn subscribed(app: &TestApp, n: usize) {
    eventually("the walletUpdates subscriptions are registered", || async { app.state.wallet_hub.subscribers() >= n })
        .await;
}

/// Waits until at least `n` requests of `app` wait for a lock: queued for the SQLite writer, or
/// PostgreSQL sessions of its database blocked on a row lock. The evidence that a race test's
/// requests really overlap. PostgreSQL is watched on a connection of its own, since the
/// blocked requests may hold every connection of the app's pool.
pub async fn wait_until_blocked(app: &TestApp, n: i64) {
    use sea_orm::{ConnectionTrait, Statement};
    let watcher = match app.db.is_postgres() {
        true => Some(sea_orm::Database::connect(app.db.url.as_str()).await.unwrap()),
        false => None,
    };
    let what = format!("{n} requests wait for the held lock");
    eventually(&what, || async {
        let Some(pg) = &watcher else {
            return app.state.db.writers_waiting() as i64 >= n;
        };
        let sql = "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'";
        let row = pg.query_one_raw(Statement::from_string(pg.get_database_backend(), sql)).await.unwrap().unwrap();
        row.try_get::<i64>("", "n").unwrap() >= n
    })
    .await;
    if let Some(pg) = watcher {
        pg.close().await.ok();
    }
}
