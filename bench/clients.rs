//! Signed-in clients for `bench/performance.sh`, against a running gateway over HTTP.
//!
//! `cargo bench --bench clients -- setup URL DIR`: registers 20 users with credit and 5 paid
//!   subscriptions each (100 in all, on the cheapest paid plans of 100 services), plus 4 churn
//!   users with credit who use the next plan of the first 4 services; writes DIR/admin.token,
//!   DIR/user.token (a user with 5 subscriptions) and DIR/churn.tokens.
//! `… churn URL DIR RATE SECONDS`: the churn users keep `subscribe` → `cancelSubscription` going
//!   at RATE pairs/s in all (each user one pair at a time, on the plan of its own service); prints
//!   one JSON line with the pairs done and failed.
//! `… statements URL TOKEN BODY N`: sends BODY N times one after another and prints the SQL
//!   statements per request, from `minispod_db_statements_total` on /metrics (fewest of 3 runs,
//!   so a background job's statements do not count).
//!
//! The administrator is `bench@minispod.local` / `bench-password-1`, as the script starts it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use serde_json::{Value, json};

const ADMIN: (&str, &str) = ("bench@minispod.local", "bench-password-1");
const USERS: usize = 20;
const SUBS_PER_USER: usize = 5;
const CHURN_USERS: usize = 4;

fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let arg = |i: usize| args.get(i).cloned().unwrap_or_else(|| panic!("missing argument {i}: see bench/clients.rs"));
    match arg(0).as_str() {
        "setup" => rt.block_on(setup(&arg(1), &arg(2))),
        "churn" => rt.block_on(churn(&arg(1), &arg(2), arg(3).parse().unwrap(), arg(4).parse().unwrap())),
        "statements" => rt.block_on(statements(&arg(1), &arg(2), &arg(3), arg(4).parse().unwrap())),
        other => panic!("unknown command {other}"),
    }
}

struct Client {
    http: reqwest::Client,
    url: String,
}

impl Client {
    fn new(url: &str) -> Self {
        Self { http: reqwest::Client::new(), url: format!("{url}/graphql") }
    }

    /// The answer's `data`, or the first error's code.
    async fn gql(&self, token: Option<&str>, query: &str, variables: Value) -> Result<Value, String> {
        let mut req = self.http.post(&self.url).json(&json!({ "query": query, "variables": variables }));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let body: Value = req.send().await.map_err(|e| e.to_string())?.json().await.map_err(|e| e.to_string())?;
        match body.get("errors").and_then(|e| e.get(0)) {
            Some(e) => Err(format!("{} ({})", e["extensions"]["code"], e["message"])),
            None => Ok(body["data"].clone()),
        }
    }

    async fn ok(&self, token: Option<&str>, query: &str, variables: Value) -> Value {
        self.gql(token, query, variables).await.unwrap_or_else(|e| panic!("{query}: {e}"))
    }

    async fn login(&self, email: &str, password: &str) -> String {
        let q = "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { accessToken } }";
        let data = self.ok(None, q, json!({ "e": email, "p": password })).await;
        data["login"]["accessToken"].as_str().unwrap().to_string()
    }

    /// A new user with `credit` IDR; returns its token.
    async fn user_with_credit(&self, admin: &str, email: &str, credit: i64) -> String {
        let q = "mutation($i: RegisterInput!) { register(input: $i) { accessToken user { id } } }";
        let input = json!({ "name": "Bench User", "email": email, "password": "bench-password-1" });
        let data = self.ok(None, q, json!({ "i": input })).await;
        let q = "mutation($u: ID!, $a: Int!) { adjustCredit(userId: $u, amount: $a, reason: \"bench\") { id } }";
        self.ok(Some(admin), q, json!({ "u": data["register"]["user"]["id"], "a": credit })).await;
        data["register"]["accessToken"].as_str().unwrap().to_string()
    }

    async fn subscribe(&self, token: &str, plan: &str) -> Result<String, String> {
        let q = "mutation($i: SubscribeInput!) { subscribe(input: $i) { id } }";
        let data = self.gql(Some(token), q, json!({ "i": { "planId": plan } })).await?;
        Ok(data["subscribe"]["id"].as_str().unwrap_or_default().to_string())
    }
}

/// The paid plans of each visible service, cheapest first, in catalog order.
async fn paid_plans(c: &Client) -> Vec<Vec<String>> {
    let data = c.ok(None, "{ categories { services { plans { id monthlyPrice } } } }", json!({})).await;
    let mut out = vec![];
    for cat in data["categories"].as_array().unwrap() {
        for svc in cat["services"].as_array().unwrap() {
            let plans = svc["plans"].as_array().unwrap();
            let paid = plans.iter().filter(|p| p["monthlyPrice"].as_i64().unwrap_or(0) > 0);
            out.push(paid.map(|p| p["id"].as_str().unwrap().to_string()).collect());
        }
    }
    out
}

async fn setup(url: &str, dir: &str) {
    let c = Client::new(url);
    let admin = c.login(ADMIN.0, ADMIN.1).await;
    let plans = paid_plans(&c).await;
    assert!(plans.len() >= USERS * SUBS_PER_USER, "the catalog has too few services");
    let mut first_user = None;
    for u in 0..USERS {
        let token = c.user_with_credit(&admin, &format!("bench-user-{u}@example.com"), 10_000_000).await;
        for plans in &plans[u * SUBS_PER_USER..(u + 1) * SUBS_PER_USER] {
            c.subscribe(&token, &plans[0]).await.unwrap_or_else(|e| panic!("subscribe: {e}"));
        }
        first_user.get_or_insert(token);
    }
    let mut churn = vec![];
    // The second paid plan of the first services: the subscribed users hold the first.
    for (u, service) in plans.iter().take(CHURN_USERS).enumerate() {
        let token = c.user_with_credit(&admin, &format!("bench-churn-{u}@example.com"), 1_000_000_000).await;
        churn.push(format!("{token} {}", service[1]));
    }
    std::fs::write(format!("{dir}/admin.token"), &admin).unwrap();
    std::fs::write(format!("{dir}/user.token"), first_user.unwrap()).unwrap();
    std::fs::write(format!("{dir}/churn.tokens"), churn.join("\n")).unwrap();
}

async fn churn(url: &str, dir: &str, rate: f64, seconds: u64) {
    let lines = std::fs::read_to_string(format!("{dir}/churn.tokens")).unwrap();
    let users: Vec<(String, String)> = lines
        .lines()
        .map(|l| {
            let (t, p) = l.split_once(' ').unwrap();
            (t.to_string(), p.to_string())
        })
        .collect();
    let per_user = Duration::from_secs_f64(users.len() as f64 / rate);
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let tasks: Vec<_> = users
        .into_iter()
        .enumerate()
        .map(|(i, (token, plan))| {
            let c = Client::new(url);
            tokio::spawn(async move {
                // Staggered so the pairs spread evenly over each period.
                let start = tokio::time::Instant::now() + per_user.mul_f64(i as f64 / CHURN_USERS as f64);
                let mut tick = tokio::time::interval_at(start, per_user);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                let (mut done, mut failed, mut sample) = (0u64, 0u64, String::new());
                while Instant::now() < deadline {
                    tick.tick().await;
                    let pair = async {
                        let id = c.subscribe(&token, &plan).await?;
                        let q = "mutation($id: ID!) { cancelSubscription(id: $id) { status } }";
                        c.gql(Some(&token), q, json!({ "id": id })).await.map(|_| ())
                    };
                    match pair.await {
                        Ok(()) => done += 1,
                        Err(e) => {
                            failed += 1;
                            sample = e;
                        }
                    }
                }
                (done, failed, sample)
            })
        })
        .collect();
    let (mut done, mut failed, mut sample) = (0, 0, String::new());
    for t in tasks {
        let (d, f, s) = t.await.unwrap();
        done += d;
        failed += f;
        if !s.is_empty() {
            sample = s;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let pairs_per_s = (done as f64 / elapsed * 10.0).round() / 10.0;
    println!(
        "{}",
        json!({ "label": "churn", "pairs": done, "failed": failed, "pairs_per_s": pairs_per_s, "error_sample": sample })
    );
}

async fn statements(url: &str, token: &str, body_file: &str, n: usize) {
    let http = reqwest::Client::new();
    let body = std::fs::read_to_string(body_file).unwrap();
    let counter = || async {
        let text = http.get(format!("{url}/metrics")).send().await.unwrap().text().await.unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix("minispod_db_statements_total "))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap()
    };
    let mut best = f64::MAX;
    for _ in 0..3 {
        let before = counter().await;
        for _ in 0..n {
            let resp = http
                .post(format!("{url}/graphql"))
                .bearer_auth(token)
                .header("content-type", "application/json")
                .body(body.clone())
                .send()
                .await
                .unwrap();
            let text = resp.text().await.unwrap();
            assert!(!text.contains("\"errors\""), "{}", text.chars().take(300).collect::<String>());
        }
        // The /metrics read itself is not a statement.
        best = best.min((counter().await - before) / n as f64);
    }
    println!("{}", json!({ "label": "statements", "per_request": (best * 100.0).round() / 100.0 }));
}
