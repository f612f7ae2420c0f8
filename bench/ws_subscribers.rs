//! Load benchmark: N concurrent graphql-transport-ws clients subscribed to
//! `podMetrics(namespace: "shop", intervalSeconds: 1)` on a gateway process that polls the fake
//! cluster (in this process, so its request counters are at hand).
//!
//! Reports upstream requests per tick, tick-to-client latency p50/p99 (tick = the sample's
//! `timestamp`, taken by the gateway when its poller fires) and gateway RSS per subscriber.
//! Run through `bench/ws_subscribers.sh`, which builds the release binaries and raises the
//! file-descriptor limit.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/support/fake_k8s.rs"]
mod fake_k8s;

use std::{
    collections::HashSet,
    process::Stdio,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest, http::HeaderValue};

const METRICS_PATH: &str = "/apis/metrics.k8s.io/v1beta1/namespaces/shop/pods";
const QUERY: &str = "subscription { podMetrics(namespace: \"shop\", intervalSeconds: 1) { timestamp pods { name usage { cpuMillicores memoryBytes } containers { name usage { cpuMillicores memoryBytes } } } } }";

struct Args {
    subscribers: Vec<usize>,
    measure: Duration,
    gateway_bin: String,
}

fn args() -> Args {
    let mut a = Args {
        subscribers: vec![1_000],
        measure: Duration::from_secs(20),
        gateway_bin: std::env::var("GATEWAY_BIN").unwrap_or_else(|_| "target/release/minispod".into()),
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    for pair in argv.chunks(2) {
        match (pair[0].as_str(), pair.get(1)) {
            ("--subscribers", Some(v)) => a.subscribers = v.split(',').map(|n| n.parse().unwrap()).collect(),
            ("--seconds", Some(v)) => a.measure = Duration::from_secs(v.parse().unwrap()),
            ("--gateway", Some(v)) => a.gateway_bin = v.clone(),
            _ => panic!("usage: ws_subscribers [--subscribers 1000,5000] [--seconds 20] [--gateway path]"),
        }
    }
    a
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[derive(Default)]
struct Shared {
    recording: std::sync::atomic::AtomicBool,
    subscribed: AtomicUsize,
    errors: AtomicUsize,
}

/// What one client saw while recording: tick-to-client latencies (ms) and tick timestamps.
#[derive(Default)]
struct Seen {
    latencies: Vec<f64>,
    ticks: HashSet<String>,
}

/// The sample's tick timestamp, found without building a JSON tree: the client must stay cheap
/// next to the gateway it measures (both share the machine).
fn tick_of(text: &str) -> Option<&str> {
    let start = text.find("\"timestamp\":\"")? + "\"timestamp\":\"".len();
    let len = text[start..].find('"')?;
    Some(&text[start..start + len])
}

async fn subscriber(
    ws_url: String,
    token: String,
    shared: Arc<Shared>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Seen {
    let mut seen = Seen::default();
    let mut req = ws_url.into_client_request().unwrap();
    req.headers_mut().insert("Sec-WebSocket-Protocol", HeaderValue::from_static("graphql-transport-ws"));
    let Ok((mut ws, _)) = tokio_tungstenite::connect_async(req).await else {
        shared.errors.fetch_add(1, Ordering::Relaxed);
        return seen;
    };
    let init = json!({ "type": "connection_init", "payload": { "Authorization": format!("Bearer {token}") } });
    let sub = json!({ "id": "1", "type": "subscribe", "payload": { "query": QUERY } });
    if ws.send(Message::text(init.to_string())).await.is_err() || ws.send(Message::text(sub.to_string())).await.is_err()
    {
        shared.errors.fetch_add(1, Ordering::Relaxed);
        return seen;
    }
    let mut counted = false;
    loop {
        let msg = tokio::select! {
            m = ws.next() => m,
            _ = stop.changed() => break,
        };
        let text = match msg {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(_)) => continue,
            _ => {
                shared.errors.fetch_add(1, Ordering::Relaxed);
                return seen;
            }
        };
        let received = chrono::Utc::now();
        if !text.starts_with("{\"type\":\"next\"") && !text.contains("\"type\":\"next\"") {
            continue;
        }
        let Some(stamp) = tick_of(&text) else {
            shared.errors.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        if !counted {
            counted = true;
            shared.subscribed.fetch_add(1, Ordering::Relaxed);
        }
        if !shared.recording.load(Ordering::Relaxed) {
            continue;
        }
        if let Ok(t) = chrono::DateTime::parse_from_rfc3339(stamp) {
            let ms = (received - t.with_timezone(&chrono::Utc)).num_microseconds().unwrap_or(0) as f64 / 1000.0;
            seen.latencies.push(ms);
            if !seen.ticks.contains(stamp) {
                seen.ticks.insert(stamp.to_string());
            }
        }
    }
    let _ = ws.close(None).await;
    seen
}

/// User + system CPU seconds of a process so far.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may contain spaces) start at ") ".
    let fields: Vec<&str> = stat.rsplit_once(") ").map(|(_, r)| r.split(' ').collect()).unwrap_or_default();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 (1-based), i.e. 11 and 12 after the name; 100 Hz.
    (ticks(11) + ticks(12)) / 100.0
}

async fn run(n: usize, args: &Args) -> String {
    let fake = fake_k8s::FakeCluster::start().await;
    let db = std::env::temp_dir().join(format!("minispod-bench-{}.db", uuid::Uuid::new_v4().simple()));
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let password = "bench-admin-password";
    let mut gateway = tokio::process::Command::new(&args.gateway_bin)
        .arg("serve")
        .env("MINISPOD_LISTEN", format!("127.0.0.1:{port}"))
        .env("DATABASE_URL", format!("sqlite://{}?mode=rwc", db.display()))
        .env("MINISPOD_KUBECONFIG", &fake.kubeconfig)
        .env("MINISPOD_ADMIN_PASSWORD", password)
        .env("MINISPOD_SEED_DEMO", "false")
        // Every subscriber is the one admin.
        .env("MINISPOD_WS_MAX_CONNECTIONS_PER_USER", "10000")
        .env("JWT_SECRET", "bench-secret-0123456789abcdef0123456789abcdef")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("gateway binary runs (build it with cargo build --release)");
    let pid = gateway.id().unwrap();
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    for _ in 0..200 {
        if http.get(format!("{base}/readyz")).send().await.is_ok_and(|r| r.status().is_success()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let login: Value = http
        .post(format!("{base}/graphql"))
        .json(&json!({
            "query": "mutation($p: String!) { login(email: \"admin@minispod.local\", password: $p) { accessToken } }",
            "variables": { "p": password }
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = login["data"]["login"]["accessToken"].as_str().expect("admin login").to_string();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_before = rss_kib(pid);

    let out = Arc::new(Shared::default());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let ws_url = format!("ws://127.0.0.1:{port}/graphql");
    let connect_started = std::time::Instant::now();
    let mut tasks = Vec::with_capacity(n);
    // Connect in waves so the listen backlog is not the thing being measured.
    for chunk in 0..n.div_ceil(250) {
        for _ in 0..250.min(n - chunk * 250) {
            tasks.push(tokio::spawn(subscriber(ws_url.clone(), token.clone(), out.clone(), stop_rx.clone())));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    while out.subscribed.load(Ordering::Relaxed) + out.errors.load(Ordering::Relaxed) < n {
        if connect_started.elapsed() > Duration::from_secs(120) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let connected = out.subscribed.load(Ordering::Relaxed);
    let connect_secs = connect_started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(2)).await;

    let hits_before = fake.hits(METRICS_PATH);
    let cpu_before = cpu_secs(pid);
    out.recording.store(true, Ordering::Relaxed);
    tokio::time::sleep(args.measure).await;
    out.recording.store(false, Ordering::Relaxed);
    let hits = fake.hits(METRICS_PATH) - hits_before;
    let gateway_cpu = cpu_secs(pid) - cpu_before;
    let rss_after = rss_kib(pid);

    let _ = stop_tx.send(true);
    let mut lat = Vec::new();
    let mut all_ticks = HashSet::new();
    for t in tasks {
        if let Ok(seen) = t.await {
            lat.extend(seen.latencies);
            all_ticks.extend(seen.ticks);
        }
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let hits_after_leaving = fake.hits(METRICS_PATH);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let poller_stopped = fake.hits(METRICS_PATH) == hits_after_leaving;

    lat.sort_by(|a, b| a.total_cmp(b));
    let ticks = all_ticks.len();
    let cpu_us_per_sample = gateway_cpu * 1e6 / lat.len().max(1) as f64;
    let expected = connected * ticks;
    let _ = gateway.kill().await;
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    let per_sub = (rss_after.saturating_sub(rss_before)) as f64 / connected.max(1) as f64;
    let stopped = if poller_stopped { "yes" } else { "NO" };
    format!(
        "| {n} | {connected} ({connect_secs:.1} s) | {ticks} | {hits} | {:.2} | {} / {} | {:.1} | {:.1} | {:.1} | {} | {:.1} | {:.1} | {per_sub:.1} | {cpu_us_per_sample:.0} | {stopped} |",
        hits as f64 / ticks.max(1) as f64,
        lat.len(),
        expected,
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        lat.last().copied().unwrap_or(f64::NAN),
        out.errors.load(Ordering::Relaxed),
        rss_before as f64 / 1024.0,
        rss_after as f64 / 1024.0,
    )
}

#[tokio::main]
async fn main() {
    minispod_gateway::app::init_crypto();
    let args = args();
    println!(
        "| subscribers | subscribed (time) | ticks | upstream requests | requests/tick | samples received / expected | p50 ms | p99 ms | max ms | errors | RSS before MiB | RSS after MiB | RSS KiB/subscriber | gateway CPU µs/sample | poller stopped after |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for &n in &args.subscribers {
        println!("{}", run(n, &args).await);
    }
}
