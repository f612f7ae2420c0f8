//! Benchmark: `subscribe` throughput on PostgreSQL under N concurrent users (default 32).
//!
//! Each user loops `subscribe(plan)` → `cancelSubscription` for the given time, so every
//! subscribe runs the whole use case: plan check, partial unique index, conditional quota
//! update, ledger debit, instance row, history, commit, cache bump. At the end the books are
//! checked: every balance equals credit − charges, and the plan's used quota equals the live
//! subscriptions (zero).
//!
//! `cargo bench --bench subscribe` (knobs: BENCH_DATABASE_URL, BENCH_USERS=32, BENCH_SECONDS=10)
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support.rs"]
mod support;

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use minispod_gateway::{
    app::{App, init_crypto},
    catalog::{PlanType, service as catalog},
    clock::SystemClock,
    users::{Role, service as users},
};
use serde_json::{Value, json};
use support::env_or;

const PRICE: i64 = 1_000;
const CREDIT: i64 = 100_000_000;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    init_crypto();
    support::with_fresh_database(|url| run(url, env_or("BENCH_USERS", 32), env_or("BENCH_SECONDS", 10))).await
}

async fn run(url: String, users_n: usize, seconds: usize) -> anyhow::Result<()> {
    let config = support::config(url)?;
    let app = App::build_with_clock(config, Arc::new(SystemClock)).await?;
    let state = app.state.clone();
    let base = format!("http://{}/graphql", app.addr);
    tokio::spawn(app.run(std::future::pending()));

    // Setup (not measured): one paid plan with room for everyone, users with credit and tokens.
    let plan = support::create_bench_plan(&state, PlanType::Basic, PRICE, None, None).await?;
    let mut tokens = vec![];
    for user_id in support::create_users(&state, users_n).await? {
        support::give_credit(&state, user_id, CREDIT).await?;
        let t = state.auth.keys.issue(user_id, Role::User, 0, state.now(), Duration::from_secs(3600))?;
        tokens.push((user_id, t.token));
    }

    let http = reqwest::Client::builder().pool_max_idle_per_host(users_n).build()?;
    let subscribe = json!({ "query": "mutation($p: ID!) { subscribe(input: { planId: $p }) { id } }", "variables": { "p": plan.id.to_string() } });
    let deadline = Instant::now() + Duration::from_secs(seconds as u64);
    let started = Instant::now();
    let mut tasks = vec![];
    for (_, token) in &tokens {
        let (http, token, base, subscribe) = (http.clone(), token.clone(), base.clone(), subscribe.clone());
        tasks.push(tokio::spawn(async move {
            let (mut latencies, mut failures) = (vec![], 0usize);
            while Instant::now() < deadline {
                let t = Instant::now();
                let v: Value = http.post(&base).bearer_auth(&token).json(&subscribe).send().await?.json().await?;
                latencies.push(t.elapsed());
                let Some(id) = v["data"]["subscribe"]["id"].as_str() else {
                    failures += 1;
                    continue;
                };
                let cancel = json!({ "query": "mutation($id: ID!) { cancelSubscription(id: $id) { id } }", "variables": { "id": id } });
                let c: Value = http.post(&base).bearer_auth(&token).json(&cancel).send().await?.json().await?;
                if c.get("errors").is_some() {
                    failures += 1;
                }
            }
            anyhow::Ok((latencies, failures))
        }));
    }
    let (mut all, mut failures) = (vec![], 0);
    for t in tasks {
        let (l, f) = t.await??;
        all.extend(l);
        failures += f;
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort();
    let pct = |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)].as_secs_f64() * 1000.0;

    // The books: every user paid PRICE per subscribe; no slot is held after the last cancel.
    let mut charged = 0;
    for (id, _) in &tokens {
        let u = users::get(&state.db.conn, *id).await?;
        assert_eq!(u.balance + u.total_spent, CREDIT, "user {id}: balance + spent = credit");
        charged += u.total_spent / PRICE;
    }
    let plan_now = catalog::all_plans_of(&state.db.conn, plan.service_id).await?;
    assert_eq!(plan_now[0].used_quota, 0, "quota released by every cancel");
    assert_eq!(charged as usize, all.len() - failures, "one charge per successful subscribe");
    println!(
        "subscribe on PostgreSQL, {users_n} concurrent users, {elapsed:.1} s: {} subscribes ({:.0}/s, plus as many cancels), \
         p50 {:.1} ms, p99 {:.1} ms, failures {failures}; books checked",
        all.len(),
        all.len() as f64 / elapsed,
        pct(0.50),
        pct(0.99),
    );
    Ok(())
}
