//! Test harness: the real gateway on a random loopback port with a fresh database per test
//! (SQLite file by default; a new PostgreSQL database when TEST_DATABASE_URL is set).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod fake_k8s;
pub mod fake_k8s_workloads;
pub mod fake_midtrans;
pub mod fake_smtp;
pub mod ws;

use std::{sync::Arc, time::Duration};

use minispod_gateway::{
    app::App,
    clock::OffsetClock,
    config::{Config, KubeSource, SecretString},
};
use serde_json::{Value, json};

pub const JWT_SECRET: &str = "test-secret-0123456789abcdef0123456789abcdef";
pub const ADMIN_EMAIL: &str = "admin@minispod.test";
pub const ADMIN_PASSWORD: &str = "admin-password-1";

/// A database that exists for one test and is removed afterwards.
pub struct TestDb {
    pub url: String,
    cleanup: Cleanup,
}

enum Cleanup {
    Sqlite(std::path::PathBuf),
    Postgres { admin_url: String, name: String },
}

impl TestDb {
    pub async fn create() -> Self {
        match std::env::var("TEST_DATABASE_URL").ok().filter(|u| !u.is_empty()) {
            Some(admin_url) if admin_url.starts_with("postgres") => {
                let name = format!("minispod_t_{}", uuid::Uuid::new_v4().simple());
                let conn = sea_orm::Database::connect(admin_url.as_str())
                    .await
                    .expect("TEST_DATABASE_URL is set but PostgreSQL is not reachable");
                use sea_orm::ConnectionTrait;
                conn.execute_unprepared(&format!("CREATE DATABASE \"{name}\"")).await.unwrap();
                conn.close().await.ok();
                let base = admin_url.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin_url);
                TestDb { url: format!("{base}/{name}"), cleanup: Cleanup::Postgres { admin_url, name } }
            }
            Some(other) => panic!("TEST_DATABASE_URL must be a postgres:// URL, got {other}"),
            None => {
                if std::env::var("CI").is_ok_and(|v| v == "true")
                    && std::env::var("MINISPOD_TEST_DB").is_ok_and(|v| v == "postgres")
                {
                    panic!("CI asked for PostgreSQL but TEST_DATABASE_URL is not set");
                }
                let path = std::env::temp_dir().join(format!("minispod-test-{}.db", uuid::Uuid::new_v4().simple()));
                TestDb { url: format!("sqlite://{}?mode=rwc", path.display()), cleanup: Cleanup::Sqlite(path) }
            }
        }
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self.cleanup, Cleanup::Postgres { .. })
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        match &self.cleanup {
            Cleanup::Sqlite(path) => {
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
                }
            }
            Cleanup::Postgres { admin_url, name } => {
                let (admin_url, name) = (admin_url.clone(), name.clone());
                // Drop runs outside async context: use a private runtime on a helper thread.
                let _ = std::thread::spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                    rt.block_on(async {
                        use sea_orm::ConnectionTrait;
                        if let Ok(conn) = sea_orm::Database::connect(admin_url.as_str()).await {
                            let _ = conn
                                .execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                                .await;
                            let _ = conn.close().await;
                        }
                    });
                })
                .join();
            }
        }
    }
}

pub fn test_config(database_url: &str) -> Config {
    let mut c = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        database_url: database_url.to_string(),
        jwt_secret: Some(SecretString::new(JWT_SECRET)),
        admin_email: ADMIN_EMAIL.into(),
        admin_password: Some(SecretString::new(ADMIN_PASSWORD)),
        seed_demo: false,
        ..Default::default()
    };
    c.rate_limit.per_email_per_minute = 1_000;
    c.rate_limit.per_ip_per_minute = 10_000;
    // Never reach the real Midtrans from tests: a closed loopback port unless a test points the
    // config at `fake_midtrans`. The reconciler runs only when a test calls it.
    c.midtrans.snap_url = "http://127.0.0.1:9/snap/v1".into();
    c.midtrans.api_url = "http://127.0.0.1:9".into();
    c.payment_reconcile_interval = None;
    c.billing_interval = None;
    // Tests never discover a developer's real cluster; cluster tests point at the fake one.
    c.kube.source = KubeSource::Disabled;
    c
}

pub struct TestApp {
    pub url: String,
    pub http: reqwest::Client,
    pub clock: Arc<OffsetClock>,
    pub state: minispod_gateway::state::AppState,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
    pub db: Arc<TestDb>,
}

#[derive(Clone, Debug)]
pub struct Session {
    pub token: String,
    pub refresh: String,
    pub user_id: String,
    pub email: String,
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    pub async fn spawn_with(tweak: impl FnOnce(&mut Config)) -> Self {
        let db = Arc::new(TestDb::create().await);
        Self::spawn_on(db, tweak).await
    }

    /// Starts a gateway on an existing test database (e.g. a second replica, or a restart).
    pub async fn spawn_on(db: Arc<TestDb>, tweak: impl FnOnce(&mut Config)) -> Self {
        minispod_gateway::app::init_crypto();
        let mut config = test_config(&db.url);
        tweak(&mut config);
        let clock = Arc::new(OffsetClock::default());
        let app = App::build_with_clock(config, clock.clone()).await.expect("gateway starts");
        let url = format!("http://{}", app.addr);
        let state = app.state.clone();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            app.run(async move {
                let _ = rx.await;
            })
            .await
            .expect("server runs");
        });
        Self {
            url,
            http: reqwest::Client::builder().timeout(Duration::from_secs(60)).build().unwrap(),
            clock,
            state,
            shutdown: Some(tx),
            server: Some(server),
            db,
        }
    }

    /// Stops serving and waits for in-flight requests.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.server.take() {
            let _ = h.await;
        }
    }

    pub fn ws_url(&self) -> String {
        format!("{}/graphql", self.url.replacen("http", "ws", 1))
    }

    /// POSTs a GraphQL request and returns the whole JSON response (`data` and `errors`).
    pub async fn gql(&self, token: Option<&str>, query: &str, variables: Value) -> Value {
        let mut req =
            self.http.post(format!("{}/graphql", self.url)).json(&json!({ "query": query, "variables": variables }));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.expect("request sent");
        resp.json().await.expect("JSON response")
    }

    /// Like `gql`, but panics on any error and returns `data`.
    pub async fn gql_ok(&self, token: Option<&str>, query: &str, variables: Value) -> Value {
        let v = self.gql(token, query, variables).await;
        assert!(v.get("errors").is_none(), "unexpected errors: {v}");
        v["data"].clone()
    }

    pub async fn register(&self, name: &str) -> Session {
        let email = format!("{}-{}@example.com", name.to_lowercase(), &uuid::Uuid::new_v4().simple().to_string()[..8]);
        let v = self
            .gql_ok(
                None,
                "mutation($i: RegisterInput!) { register(input: $i) { accessToken refreshToken user { id email } } }",
                json!({ "i": { "name": name, "email": email, "password": "password-123" } }),
            )
            .await;
        session(&v["register"])
    }

    pub async fn login(&self, email: &str, password: &str) -> Session {
        let v = self
            .gql_ok(
                None,
                "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { accessToken refreshToken user { id email } } }",
                json!({ "e": email, "p": password }),
            )
            .await;
        session(&v["login"])
    }

    pub async fn login_admin(&self) -> Session {
        self.login(ADMIN_EMAIL, ADMIN_PASSWORD).await
    }

    /// POSTs a Midtrans notification body to the webhook; returns the HTTP status.
    pub async fn notify(&self, body: &Value) -> u16 {
        let r = self.http.post(format!("{}/webhooks/midtrans", self.url)).json(body).send().await.expect("webhook");
        r.status().as_u16()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

pub fn session(payload: &Value) -> Session {
    Session {
        token: payload["accessToken"].as_str().unwrap().to_string(),
        refresh: payload["refreshToken"].as_str().unwrap().to_string(),
        user_id: payload["user"]["id"].as_str().unwrap().to_string(),
        email: payload["user"]["email"].as_str().unwrap().to_string(),
    }
}

/// The `extensions.code` of the first error, or panics when there is none.
pub fn error_code(v: &Value) -> String {
    v["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("expected an error with a code: {v}"))
        .to_string()
}

/// Polls `condition` until it holds, failing the test after 10 s: the way to wait for a
/// background effect without guessing how long it takes.
pub async fn eventually<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !condition().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
