//! A gateway process of its own on a throw-away SQLite database, for the attacks that need
//! their own settings (silent and revoked sockets).
use std::{path::PathBuf, process::Stdio, time::Duration};

use serde_json::{Value, json};

pub const ADMIN_EMAIL: &str = "admin@minispod.local";
pub const ADMIN_PASSWORD: &str = "attack-admin-password";

/// A gateway process on a throw-away SQLite database.
pub struct Gateway {
    pub base: String,
    pub pid: u32,
    pub http: reqwest::Client,
    _child: tokio::process::Child,
    db: PathBuf,
}

impl Gateway {
    pub async fn start(bin: &str, env: &[(&str, &str)]) -> Gateway {
        let db = std::env::temp_dir().join(format!("minispod-attack-{}.db", uuid::Uuid::new_v4().simple()));
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut cmd = tokio::process::Command::new(bin);
        cmd.arg("serve")
            .env("MINISPOD_LISTEN", format!("127.0.0.1:{port}"))
            .env("DATABASE_URL", format!("sqlite://{}?mode=rwc", db.display()))
            .env("MINISPOD_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .env("MINISPOD_SEED_DEMO", "false")
            .env("MINISPOD_KUBE", "off")
            .env("MINISPOD_RATE_LIMIT_IP_PER_MIN", "100000")
            .env("JWT_SECRET", "attack-secret-0123456789abcdef0123456789abcdef")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .kill_on_drop(true);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().unwrap_or_else(|e| panic!("cannot run {bin} ({e}); build it with cargo build"));
        let pid = child.id().unwrap();
        let http = reqwest::Client::new();
        let base = format!("http://127.0.0.1:{port}");
        for _ in 0..300 {
            if http.get(format!("{base}/readyz")).send().await.is_ok_and(|r| r.status().is_success()) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Gateway { base, pid, http, _child: child, db }
    }

    pub fn ws_url(&self) -> String {
        format!("{}/graphql", self.base.replacen("http", "ws", 1))
    }

    pub async fn gql(&self, token: Option<&str>, query: &str, variables: Value) -> Value {
        let mut req =
            self.http.post(format!("{}/graphql", self.base)).json(&json!({ "query": query, "variables": variables }));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let v: Value = req.send().await.unwrap().json().await.unwrap();
        assert!(v.get("errors").is_none(), "{v}");
        v["data"].clone()
    }

    /// Access token and user id of a new user.
    pub async fn register(&self, name: &str) -> (String, String) {
        let email = format!("{name}-{}@example.com", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        let q = "mutation($i: RegisterInput!) { register(input: $i) { accessToken user { id } } }";
        let v = self.gql(None, q, json!({ "i": { "name": name, "email": email, "password": "password-123" } })).await;
        (v["register"]["accessToken"].as_str().unwrap().into(), v["register"]["user"]["id"].as_str().unwrap().into())
    }

    pub async fn admin_token(&self) -> String {
        let q = "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { accessToken } }";
        let v = self.gql(None, q, json!({ "e": ADMIN_EMAIL, "p": ADMIN_PASSWORD })).await;
        v["login"]["accessToken"].as_str().unwrap().into()
    }

    /// Resident set size in MiB.
    pub fn rss_mib(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).unwrap_or_default();
        let kib = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .unwrap_or(0.0);
        kib / 1024.0
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", self.db.display()));
        }
    }
}
