//! A small closed-loop HTTP load generator for the gateway benchmarks.
//!
//! `cargo bench --bench load -- --label NAME --url URL --body FILE [--connections 64]
//!  [--seconds 10] [--header 'K: V']... [--expect TEXT]`
//!
//! Each connection sends the POST body again as soon as the previous answer arrives. A response
//! counts as an error unless it is HTTP 200, has no `"errors"` member and contains `--expect`.
//! Prints one JSON line: label, requests, errors, req/s, p50/p99 latency in ms.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

struct Args {
    label: String,
    url: String,
    body: String,
    connections: usize,
    seconds: u64,
    headers: Vec<(String, String)>,
    expect: Option<String>,
}

fn parse_args() -> Args {
    let mut it = std::env::args().skip(1).filter(|a| a != "--bench");
    let mut a = Args {
        label: "load".into(),
        url: String::new(),
        body: String::new(),
        connections: 64,
        seconds: 10,
        headers: vec![],
        expect: None,
    };
    while let Some(k) = it.next() {
        let v = it.next().unwrap_or_else(|| panic!("{k} needs a value"));
        match k.as_str() {
            "--label" => a.label = v,
            "--url" => a.url = v,
            "--body" => a.body = std::fs::read_to_string(&v).unwrap_or_else(|e| panic!("{v}: {e}")),
            "--connections" => a.connections = v.parse().unwrap(),
            "--seconds" => a.seconds = v.parse().unwrap(),
            "--header" => {
                let (h, val) = v.split_once(':').expect("header as 'Name: value'");
                a.headers.push((h.trim().to_string(), val.trim().to_string()));
            }
            "--expect" => a.expect = Some(v),
            other => panic!("unknown argument {other}"),
        }
    }
    assert!(!a.url.is_empty() && !a.body.is_empty(), "--url and --body are required");
    a
}

fn main() {
    let args = parse_args();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(run(args));
}

async fn run(args: Args) {
    let client = reqwest::Client::builder().pool_max_idle_per_host(args.connections).build().unwrap();
    let args = Arc::new(args);
    // Warm-up: check once that the request succeeds at all.
    let first = send(&client, &args).await;
    assert!(first.1, "warm-up request failed: {}", first.2.chars().take(500).collect::<String>());
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let started = Instant::now();
    let tasks: Vec<_> = (0..args.connections)
        .map(|_| {
            let client = client.clone();
            let args = args.clone();
            tokio::spawn(async move {
                let mut lat = Vec::with_capacity(100_000);
                let mut errors = 0u64;
                let mut sample = String::new();
                while Instant::now() < deadline {
                    let t = Instant::now();
                    let (_, ok, body) = send(&client, &args).await;
                    lat.push(t.elapsed().as_micros() as u64);
                    if !ok {
                        errors += 1;
                        if sample.is_empty() {
                            sample = body.chars().take(300).collect();
                        }
                    }
                }
                (lat, errors, sample)
            })
        })
        .collect();
    let mut all = Vec::new();
    let mut errors = 0;
    let mut sample = String::new();
    for t in tasks {
        let (l, e, s) = t.await.unwrap();
        all.extend(l);
        errors += e;
        if sample.is_empty() {
            sample = s;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort_unstable();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1))).copied().unwrap_or(0) as f64
            / 1000.0
    };
    println!(
        "{}",
        serde_json::json!({
            "label": args.label,
            "connections": args.connections,
            "seconds": (elapsed * 10.0).round() / 10.0,
            "requests": all.len(),
            "errors": errors,
            "rps": (all.len() as f64 / elapsed).round(),
            "p50_ms": pct(0.50),
            "p99_ms": pct(0.99),
            "error_sample": sample,
        })
    );
}

async fn send(client: &reqwest::Client, args: &Args) -> (u16, bool, String) {
    let mut req = client.post(&args.url).header("content-type", "application/json").body(args.body.clone());
    for (k, v) in &args.headers {
        req = req.header(k, v);
    }
    match req.send().await {
        Ok(resp) => {
            let status = resp.status().as_u16();
            let body = resp.bytes().await.unwrap_or_default();
            // SIMD substring search: the checks scan every byte of large answers, and the
            // client must not be what the benchmark measures.
            let ok = status == 200
                && memchr::memmem::find(&body, b"\"errors\"").is_none()
                && args.expect.as_deref().is_none_or(|e| memchr::memmem::find(&body, e.as_bytes()).is_some());
            let sample = if ok { String::new() } else { String::from_utf8_lossy(&body).into_owned() };
            (status, ok, sample)
        }
        Err(e) => (0, false, e.to_string()),
    }
}
