//! Walks a customer's whole journey against a running gateway and the project's fakes (Midtrans
//! and a Kubernetes API server with a Deployment controller), over HTTP only, as the single-page
//! app would: browse the catalog, register, top up (Snap + a signed webhook), subscribe to a paid
//! plan, watch the app become RUNNING, stop and start it, cancel, and check the books.
//!
//! ```sh
//! cargo run --example user-journey     # prints each step; exit code 1 on the first surprise
//! ```
//! CI runs it through `tests/api/examples.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/support/fake_k8s.rs"]
#[allow(unused)]
mod fake_k8s;
#[path = "../tests/support/fake_k8s_workloads.rs"]
mod fake_k8s_workloads;
#[path = "../tests/support/fake_midtrans.rs"]
mod fake_midtrans;

use std::{sync::Arc, time::Duration};

use anyhow::{Context, anyhow, ensure};
use minispod_gateway::{
    app::App,
    clock::SystemClock,
    config::{Config, KubeSource, SecretString},
};
use serde_json::{Value, json};

struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Client {
    /// One GraphQL operation; any error in the answer stops the journey.
    async fn gql(&self, query: &str, variables: Value) -> anyhow::Result<Value> {
        let mut req =
            self.http.post(format!("{}/graphql", self.base)).json(&json!({ "query": query, "variables": variables }));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let v: Value = req.send().await?.json().await?;
        ensure!(v["errors"].is_null(), "{query}\n  answered {}", v["errors"]);
        Ok(v["data"].clone())
    }

    async fn balance(&self) -> anyhow::Result<i64> {
        self.gql("{ wallet { balance } }", json!({})).await?["wallet"]["balance"].as_i64().context("a balance")
    }

    /// Polls the instance until it has `status` (30 s deadline).
    async fn wait_status(&self, id: &str, status: &str) -> anyhow::Result<Value> {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let i = self
                .gql("query($id: ID!) { instance(id: $id) { status publicUrl lastError } }", json!({ "id": id }))
                .await?;
            if i["instance"]["status"] == status {
                return Ok(i["instance"].clone());
            }
            ensure!(std::time::Instant::now() < deadline, "the instance never became {status}: {}", i["instance"]);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn step(s: &str) {
    println!("- {s}");
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    minispod_gateway::app::init_crypto();
    // The fakes, and a gateway on a fresh SQLite file pointed at them.
    let midtrans = fake_midtrans::FakeMidtrans::start().await;
    let cluster = fake_k8s_workloads::FakeWorkloads::start(Duration::from_millis(200)).await;
    let db = std::env::temp_dir().join(format!("minispod-journey-{}.db", uuid::Uuid::new_v4().simple()));
    let mut config = Config {
        listen: "127.0.0.1:0".parse()?,
        database_url: format!("sqlite://{}?mode=rwc", db.display()),
        jwt_secret: Some(SecretString::new("journey-secret-0123456789abcdef0123456789")),
        admin_password: Some(SecretString::new("journey-admin-password")),
        seed_demo: true,
        base_domain: Some("apps.example.test".into()),
        ..Default::default()
    };
    config.kube.source = KubeSource::Kubeconfig(cluster.kubeconfig.clone());
    midtrans.configure(&mut config);
    let app = App::build_with_clock(config, Arc::new(SystemClock)).await?;
    let base = format!("http://{}", app.addr);
    tokio::spawn(app.run(std::future::pending()));
    println!("gateway on {base}, fake Midtrans on {}, fake cluster on {}", midtrans.url, cluster.url);
    let result = journey(&base, &midtrans).await;
    let _ = std::fs::remove_file(&db);
    result
}

async fn journey(base: &str, midtrans: &fake_midtrans::FakeMidtrans) -> anyhow::Result<()> {
    let mut c = Client { http: reqwest::Client::new(), base: base.into(), token: None };

    let v = c
        .gql("{ service(slug: \"n8n-automation\") { name plans { id name planType monthlyPrice } } }", json!({}))
        .await?;
    let plans = v["service"]["plans"].as_array().context("the n8n plans")?;
    let plan = plans
        .iter()
        .filter(|p| p["monthlyPrice"].as_i64().unwrap_or(0) > 0)
        .min_by_key(|p| p["monthlyPrice"].as_i64())
        .context("a paid plan")?;
    let price = plan["monthlyPrice"].as_i64().unwrap_or(0);
    step(&format!("catalog: {} {} at {price} IDR/month", v["service"]["name"], plan["name"]));

    let email = format!("journey-{}@example.test", uuid::Uuid::new_v4().simple());
    let v = c
        .gql(
            "mutation($e: String!) { register(input: { name: \"Journey\", email: $e, password: \"a long journey password\" }) { accessToken } }",
            json!({ "e": email }),
        )
        .await?;
    c.token = v["register"]["accessToken"].as_str().map(str::to_string);
    // The demo seed's welcome bonus credits new accounts; the journey counts from there.
    let bonus = c.balance().await?;
    step(&format!("registered {email} (welcome bonus {bonus} IDR)"));

    let amount = price.max(50_000);
    let v = c
        .gql(
            "mutation($a: Int!) { createTopUp(amount: $a) { redirectUrl transaction { id status } } }",
            json!({ "a": amount }),
        )
        .await?;
    ensure!(v["createTopUp"]["transaction"]["status"] == "PENDING", "{v}");
    let order = midtrans
        .requests()
        .into_iter()
        .rev()
        .find(|r| r.path == "/snap/v1/transactions")
        .and_then(|r| r.body["transaction_details"]["order_id"].as_str().map(str::to_string))
        .ok_or_else(|| anyhow!("the gateway never asked Snap for a payment page"))?;
    step(&format!("top-up of {amount} IDR: Snap order {order}"));
    let notification = fake_midtrans::notification(&order, amount, "settlement", None);
    let r = c.http.post(format!("{base}/webhooks/midtrans")).json(&notification).send().await?;
    ensure!(r.status().is_success(), "the webhook answered {}", r.status());
    ensure!(c.balance().await? == bonus + amount, "the wallet was not credited once");
    step(&format!("webhook settled: balance {amount} IDR"));

    let v = c
        .gql(
            "mutation($p: ID!) { subscribe(input: { planId: $p }) { id status instances { id } } }",
            json!({ "p": plan["id"] }),
        )
        .await?;
    let sub = v["subscribe"]["id"].as_str().context("a subscription")?.to_string();
    let inst = v["subscribe"]["instances"][0]["id"].as_str().context("an instance")?.to_string();
    ensure!(c.balance().await? == bonus + amount - price, "the subscription was not charged once");
    step(&format!("subscribed ({}), charged {price} IDR", v["subscribe"]["status"]));
    let i = c.wait_status(&inst, "RUNNING").await?;
    step(&format!("app RUNNING at {}", i["publicUrl"]));

    c.gql("mutation($id: ID!) { stopInstance(id: $id) { status } }", json!({ "id": inst })).await?;
    c.wait_status(&inst, "STOPPED").await?;
    step("stopped");
    c.gql("mutation($id: ID!) { startInstance(id: $id) { status } }", json!({ "id": inst })).await?;
    c.wait_status(&inst, "RUNNING").await?;
    step("started again");

    c.gql("mutation($id: ID!) { cancelSubscription(id: $id) { status } }", json!({ "id": sub })).await?;
    c.wait_status(&inst, "TERMINATED").await?;
    ensure!(c.balance().await? == bonus + amount - price, "cancelling moved money");
    step("cancelled: the app and its data are deleted, the books balance");
    println!("journey complete");
    Ok(())
}
