//! Replays the denial-of-service attacks of issue 9 against a running gateway on loopback, each
//! with bounded loops, and prints for each its time and the gateway's memory (VmRSS, VmHWM)
//! before and after. Run through `bench/attacks.sh`, which starts the gateway binary under test.
//!
//! Usage: attacks --url http://127.0.0.1:PORT --pid PID [--gateway BIN] [--attacks fragment-bomb,…]
//! Each attack is a module with `pub async fn run(&Target) -> anyhow::Result<String>` (its
//! summary line); add one by adding the module and its name to `ATTACKS` and `run`. The socket
//! attacks start a gateway of their own from `--gateway` (they need short timeouts) and print
//! their own lines.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cache_flood;
mod fragment_bomb;
mod gateway;
mod revoked_sockets;
mod silent_sockets;

pub use gateway::Gateway;

use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// Attack names, in the order they run by default.
const ATTACKS: &[&str] = &["fragment-bomb", "cache-flood", "silent-sockets", "revoked-sockets"];

async fn run(name: &str, target: &Target) -> anyhow::Result<String> {
    match name {
        "fragment-bomb" => fragment_bomb::run(target).await,
        "cache-flood" => cache_flood::run(target).await,
        "silent-sockets" | "revoked-sockets" => {
            let bin = target.gateway.as_deref().context("--gateway BIN is required for the socket attacks")?;
            match name {
                "silent-sockets" => silent_sockets::run(bin).await,
                _ => revoked_sockets::run(bin).await,
            }
            Ok("(own gateway; lines above)".into())
        }
        other => bail!("unknown attack {other:?}; known: {}", ATTACKS.join(", ")),
    }
}

/// The gateway under attack.
pub struct Target {
    /// e.g. `http://127.0.0.1:18090`; the GraphQL endpoint is `{url}/graphql`.
    pub url: String,
    pub pid: u32,
    pub http: reqwest::Client,
    /// The binary under test, for attacks that start a gateway of their own.
    pub gateway: Option<String>,
}

impl Target {
    pub fn graphql(&self) -> String {
        format!("{}/graphql", self.url)
    }

    pub fn ws(&self) -> String {
        self.graphql().replacen("http", "ws", 1)
    }

    /// One sample of a gauge or counter from /metrics (None when the gateway lacks it).
    pub async fn metric(&self, name: &str) -> Option<f64> {
        let text = self.http.get(format!("{}/metrics", self.url)).send().await.ok()?.text().await.ok()?;
        text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
    }
}

/// (VmRSS, VmHWM) of a process in MiB.
fn memory_mib(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map_or(f64::NAN, |kib| kib / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let (mut url, mut pid, mut gateway, mut names) = (None, None, None, ATTACKS.join(","));
    for pair in argv.chunks(2) {
        match (pair[0].as_str(), pair.get(1)) {
            ("--url", Some(v)) => url = Some(v.clone()),
            ("--pid", Some(v)) => pid = Some(v.parse::<u32>().context("--pid")?),
            ("--attacks", Some(v)) => names = v.clone(),
            ("--gateway", Some(v)) => gateway = Some(v.clone()),
            _ => bail!("usage: attacks --url URL --pid PID [--attacks {}]", ATTACKS.join(",")),
        }
    }
    let url = url.context("--url is required")?;
    minispod_gateway::app::init_crypto();
    if !(url.starts_with("http://127.") || url.starts_with("http://[::1]") || url.starts_with("http://localhost")) {
        bail!("attacks run on loopback only, not {url}");
    }
    let target = Target {
        url,
        pid: pid.context("--pid is required")?,
        gateway,
        http: reqwest::Client::builder().timeout(Duration::from_secs(env_or("ATTACK_TIMEOUT_SECS", 120))).build()?,
    };
    println!("{:<14} {:>9} {:>22} {:>22}  result", "attack", "time", "RSS/HWM before (MiB)", "RSS/HWM after (MiB)");
    for name in names.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let before = memory_mib(target.pid);
        let started = Instant::now();
        let outcome = run(name, &target).await.unwrap_or_else(|e| format!("FAILED: {e:#}"));
        let elapsed = started.elapsed();
        let after = memory_mib(target.pid);
        println!(
            "{name:<14} {:>8.2}s {:>10.1} / {:>9.1} {:>10.1} / {:>9.1}  {outcome}",
            elapsed.as_secs_f64(),
            before.0,
            before.1,
            after.0,
            after.1
        );
    }
    Ok(())
}
