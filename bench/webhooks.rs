//! Benchmark: signed Midtrans settlement notifications per second through the real gateway
//! (HTTP, signature, ledger) on PostgreSQL, with every balance checked at the end.
//!
//! `cargo bench --profile dev --bench webhooks` (see bench/README.md for the knobs).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support.rs"]
mod support;

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use minispod_gateway::{
    app::{App, init_crypto},
    billing::{PaymentMethod, TransactionStatus, TransactionType, entity as transactions},
    clock::SystemClock,
    config::SecretString,
    payments::midtrans::signature::signature,
    users::service as users,
};
use sea_orm::{ActiveModelTrait, Set};
use serde_json::json;
use support::env_or;

const KEY: &str = "SB-Mid-server-bench";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    init_crypto();
    let orders = env_or("BENCH_ORDERS", 2_000);
    let users_n = env_or("BENCH_USERS", 50);
    let concurrency = env_or("BENCH_CONCURRENCY", 32);
    let deliveries = env_or("BENCH_DELIVERIES", 2); // each settlement is sent this many times
    support::with_fresh_database(|url| run(url, orders, users_n, concurrency, deliveries)).await
}

async fn run(url: String, orders: usize, users_n: usize, concurrency: usize, deliveries: usize) -> anyhow::Result<()> {
    let mut config = support::config(url)?;
    config.midtrans.server_key = Some(SecretString::new(KEY));
    let app = App::build_with_clock(config, Arc::new(SystemClock)).await?;
    let state = app.state.clone();
    let base = format!("http://{}", app.addr);
    tokio::spawn(app.run(std::future::pending()));

    // Setup (not measured): users and PENDING top-ups, as createTopUp leaves them.
    let user_ids = support::create_users(&state, users_n).await?;
    let mut expected = vec![0i64; users_n];
    let mut work = vec![];
    let now = chrono::Utc::now();
    for i in 0..orders {
        let u = i % users_n;
        let amount = 10_000 + (i as i64 % 50) * 1_000;
        let order_id = format!("topup-bench-{i}");
        transactions::ActiveModel {
            user_id: Set(user_ids[u]),
            kind: Set(TransactionType::TopUp),
            status: Set(TransactionStatus::Pending),
            amount: Set(amount),
            balance_before: Set(0),
            balance_after: Set(0),
            payment_method: Set(Some(PaymentMethod::BankTransfer)),
            description: Set("bench".into()),
            order_id: Set(Some(order_id.clone())),
            created_at: Set(now),
            updated_at: Set(now),
            ..Default::default()
        }
        .insert(&state.db.conn)
        .await?;
        expected[u] += amount;
        let gross = format!("{amount}.00");
        let body = json!({
            "order_id": order_id, "status_code": "200", "gross_amount": gross,
            "transaction_status": "settlement", "payment_type": "bank_transfer",
            "signature_key": signature(&order_id, "200", &gross, KEY),
        });
        for _ in 0..deliveries {
            work.push(body.clone());
        }
    }
    // Deterministic shuffle (xorshift + Fisher-Yates) so duplicates race their originals.
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    for i in (1..work.len()).rev() {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        work.swap(i, (seed % (i as u64 + 1)) as usize);
    }

    let http = reqwest::Client::builder().pool_max_idle_per_host(concurrency).build()?;
    let work = Arc::new(work);
    let next = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = vec![];
    for _ in 0..concurrency {
        let (http, work, next, failures, url) =
            (http.clone(), work.clone(), next.clone(), failures.clone(), format!("{base}/webhooks/midtrans"));
        tasks.push(tokio::spawn(async move {
            let mut latencies = vec![];
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(body) = work.get(i) else { break };
                let t = Instant::now();
                match http.post(&url).json(body).send().await {
                    Ok(r) if r.status().is_success() => {}
                    _ => {
                        failures.fetch_add(1, Ordering::Relaxed);
                    }
                }
                latencies.push(t.elapsed());
            }
            latencies
        }));
    }
    let mut latencies: Vec<Duration> = vec![];
    for t in tasks {
        latencies.extend(t.await?);
    }
    let elapsed = started.elapsed();
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() as f64 - 1.0) * p) as usize];

    // Check: every user got exactly the sum of their orders, once.
    let mut wrong = 0;
    for (u, id) in user_ids.iter().enumerate() {
        let user = users::get(&state.db.conn, *id).await?;
        if user.balance != expected[u] || user.total_top_up != expected[u] {
            wrong += 1;
            eprintln!("user {id}: balance {} expected {}", user.balance, expected[u]);
        }
    }
    let n = latencies.len();
    println!("webhook benchmark (PostgreSQL, {} build)", if cfg!(debug_assertions) { "debug" } else { "release" });
    println!(
        "  notifications: {n} ({orders} orders x {deliveries} deliveries), concurrency {concurrency}, users {users_n}"
    );
    println!("  elapsed: {:.2} s  ->  {:.0} notifications/s", elapsed.as_secs_f64(), n as f64 / elapsed.as_secs_f64());
    println!("  latency p50 {:?}  p95 {:?}  p99 {:?}  max {:?}", pct(0.5), pct(0.95), pct(0.99), pct(1.0));
    println!("  non-2xx answers: {}", failures.load(Ordering::Relaxed));
    println!("  balances: {} of {users_n} users correct", users_n - wrong);
    anyhow::ensure!(wrong == 0 && failures.load(Ordering::Relaxed) == 0, "benchmark check failed");
    Ok(())
}
