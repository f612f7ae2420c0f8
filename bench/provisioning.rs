//! Benchmark: provisioning against the fake API server (tests/support/fake_k8s_workloads.rs)
//! with a 1 s readiness delay, on PostgreSQL.
//!
//! 1. BENCH_SUBSCRIPTIONS (200) subscriptions made at once over HTTP; each must reach RUNNING.
//!    Reports subscribe→RUNNING p50/p99 and the overhead beyond the fake's delay, and the API
//!    requests per instance (watch streams excluded).
//! 2. More subscriptions up to BENCH_RECONCILE_INSTANCES (1000), then one reconcile pass over
//!    all of them: its duration and its API calls (one list per kind is the target).
//!
//! `cargo bench --bench provisioning` (BENCH_DATABASE_URL names the PostgreSQL server)
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

#[path = "../tests/support/fake_k8s.rs"]
mod fake_k8s;
#[path = "../tests/support/fake_k8s_workloads.rs"]
mod fake_k8s_workloads;
#[path = "support.rs"]
mod support;

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use minispod_gateway::{
    app::{App, init_crypto},
    catalog::PlanType,
    clock::SystemClock,
    config::KubeSource,
    instances::{InstanceStatus, entity as instance, reconcile},
    users::Role,
};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::{Value, json};
use support::env_or;

const READY_DELAY: Duration = Duration::from_secs(1);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    init_crypto();
    let (first, total) = (env_or("BENCH_SUBSCRIPTIONS", 200), env_or("BENCH_RECONCILE_INSTANCES", 1000));
    support::with_fresh_database(|url| run(url, first, total.max(first))).await
}

async fn subscribe_all(base: &str, http: &reqwest::Client, tokens: &[String], plan: i64) -> anyhow::Result<()> {
    let body = json!({ "query": "mutation($p: ID!) { subscribe(input: { planId: $p }) { id } }", "variables": { "p": plan.to_string() } });
    let mut tasks = vec![];
    for t in tokens {
        let (http, t, base, body) = (http.clone(), t.clone(), base.to_string(), body.clone());
        tasks.push(tokio::spawn(async move {
            let v: Value = http.post(&base).bearer_auth(&t).json(&body).send().await?.json().await?;
            anyhow::ensure!(v.get("errors").is_none(), "subscribe failed: {v}");
            Ok::<_, anyhow::Error>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(())
}

async fn wait_running(state: &minispod_gateway::state::AppState, n: u64) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let running = instance::Entity::find()
            .filter(instance::Column::Status.eq(InstanceStatus::Running))
            .count(&state.db.conn)
            .await?;
        if running >= n {
            return Ok(());
        }
        anyhow::ensure!(Instant::now() < deadline, "only {running} of {n} instances RUNNING");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

async fn run(url: String, first: usize, total: usize) -> anyhow::Result<()> {
    let fake = fake_k8s_workloads::FakeWorkloads::start(READY_DELAY).await;
    let mut config = support::config(url)?;
    config.base_domain = Some("apps.bench".into());
    config.kube.source = KubeSource::Kubeconfig(fake.kubeconfig.clone());
    config.provisioning.reconcile_interval = None;
    let app = App::build_with_clock(config, Arc::new(SystemClock)).await?;
    let state = app.state.clone();
    let base = format!("http://{}/graphql", app.addr);
    tokio::spawn(app.run(std::future::pending()));

    let plan = support::create_bench_plan(&state, PlanType::Free, 0, Some("/data"), Some("/healthz")).await?;
    let mut tokens = vec![];
    for user_id in support::create_users(&state, total).await? {
        tokens.push(state.auth.keys.issue(user_id, Role::User, 0, state.now(), Duration::from_secs(3600))?.token);
    }
    let http = reqwest::Client::builder().pool_max_idle_per_host(first).build()?;

    // 1. `first` subscriptions at once.
    fake.clear_requests();
    let started = Instant::now();
    subscribe_all(&base, &http, &tokens[..first], plan.id).await?;
    wait_running(&state, first as u64).await?;
    let wall = started.elapsed();
    let rows = instance::Entity::find().all(&state.db.conn).await?;
    let mut latencies: Vec<Duration> =
        rows.iter().filter_map(|i| (i.last_started_at? - i.created_at).to_std().ok()).collect();
    latencies.sort();
    let calls = fake.requests().iter().filter(|r| !r.is_watch()).count();
    let (p50, p99) = (percentile(&latencies, 0.5), percentile(&latencies, 0.99));
    println!("{first} subscriptions → RUNNING in {wall:.2?} (fake readiness delay {READY_DELAY:?})");
    let ms = |d: Duration| d.as_millis();
    println!(
        "subscribe→RUNNING p50 {} ms  p99 {} ms; overhead beyond the delay: p50 {} ms  p99 {} ms",
        ms(p50),
        ms(p99),
        ms(p50.saturating_sub(READY_DELAY)),
        ms(p99.saturating_sub(READY_DELAY))
    );
    println!(
        "API requests per instance: {:.1} ({calls} for {first}; watch streams excluded)",
        calls as f64 / first as f64
    );

    // 2. One reconcile pass over `total` instances.
    if total > first {
        subscribe_all(&base, &http, &tokens[first..], plan.id).await?;
        wait_running(&state, total as u64).await?;
    }
    fake.clear_requests();
    let t = Instant::now();
    let report = reconcile::run_once(&state).await?;
    let pass = t.elapsed();
    let requests = fake.requests();
    let lists = requests.iter().filter(|r| r.method == "GET" && !r.is_watch()).count();
    println!(
        "reconcile pass over {} instances: {pass:.2?}, {} API requests ({lists} lists), {} changed, {} failed",
        report.processed,
        requests.len(),
        report.changed,
        report.failed
    );
    Ok(())
}
