//! A fake Kubernetes cluster to try the admin views without one.
//!
//! ```sh
//! cargo run --example fake-cluster                 # API server on 127.0.0.1:6443, ./fake-kubeconfig.yaml
//! MINISPOD_KUBECONFIG=fake-kubeconfig.yaml cargo run   # the gateway, in another terminal
//! ```
//! Metrics drift every second and one pod writes a log line per second, so the live
//! subscriptions (podMetrics, nodeMetrics, podLogs) have something to show.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/support/fake_k8s.rs"]
mod fake_k8s;

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use fake_k8s::{FakeCluster, Fixtures};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let listen: SocketAddr = std::env::var("FAKE_K8S_LISTEN").unwrap_or_else(|_| "127.0.0.1:6443".into()).parse()?;
    let kubeconfig = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "fake-kubeconfig.yaml".into()));
    let fake = FakeCluster::start_with(Fixtures::demo(), listen, Some(kubeconfig.clone())).await;
    println!("fake Kubernetes API server on {}", fake.url);
    println!("kubeconfig written to {}", kubeconfig.display());
    println!("start the gateway with:  MINISPOD_KUBECONFIG={} cargo run", kubeconfig.display());
    println!(
        "then open http://127.0.0.1:8080/graphiql and sign in as the administrator (see docs/admin-monitoring.md)"
    );

    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut n: u64 = 0;
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = tick.tick() => {}
        }
        n += 1;
        // Deterministic drift: enough movement to see the live view change.
        let wave = |base: u64, spread: u64| base + (n * 7919 + base) % spread;
        fake.update(|f| {
            if let Some(m) = &mut f.pod_metrics {
                for pod in m.iter_mut() {
                    for c in pod["containers"].as_array_mut().into_iter().flatten() {
                        c["usage"]["cpu"] = format!("{}m", wave(5, 120)).into();
                        c["usage"]["memory"] = format!("{}Mi", wave(40, 30)).into();
                    }
                }
            }
            if let Some(m) = &mut f.node_metrics {
                for node in m.iter_mut() {
                    node["usage"]["cpu"] = format!("{}m", wave(300, 1500)).into();
                }
            }
        });
        fake.log("shop", "web-7d9f8c-1", &format!("10.0.0.{} - - \"GET /products/{n} HTTP/1.1\" 200 512", n % 250));
    }
    drop(fake);
    println!("stopped; kubeconfig removed");
    Ok(())
}
