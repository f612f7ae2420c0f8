//! Padded cache flood (issue 9, item 2): FLOOD_REQUESTS (default 500) requests of
//! `{ __typename }`, each padded with a unique comment of FLOOD_PAD_BYTES (default 1,000,000),
//! FLOOD_CONCURRENCY (default 8) at a time. A cache keyed by request text pins every padded
//! request; reports the cache's entries and bytes from /metrics when the gateway exports them.
use anyhow::bail;
use futures::{StreamExt, stream};
use serde_json::{Value, json};

use crate::{Target, env_or};

pub async fn run(target: &Target) -> anyhow::Result<String> {
    let requests = env_or("FLOOD_REQUESTS", 500usize);
    let pad = env_or("FLOOD_PAD_BYTES", 1_000_000usize);
    let concurrency = env_or("FLOOD_CONCURRENCY", 8usize);
    let sent = stream::iter(0..requests)
        .map(|i| async move {
            // Unique from the first byte, so no prefix is shared either.
            let query = format!("# {i:08} {}\n{{ __typename }}", "x".repeat(pad));
            let v: Value =
                target.http.post(target.graphql()).json(&json!({ "query": query })).send().await?.json().await?;
            anyhow::Ok(v["data"]["__typename"] == "QueryRoot")
        })
        .buffer_unordered(concurrency)
        .collect::<Vec<_>>()
        .await;
    let ok = sent.iter().filter(|r| matches!(r, Ok(true))).count();
    if let Some(Err(e)) = sent.iter().find(|r| r.is_err()) {
        bail!("{ok}/{requests} answered; first failure: {e:#}");
    }
    let entries = target.metric("minispod_catalog_cache_entries").await;
    let bytes = target.metric("minispod_catalog_cache_bytes").await;
    let show = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.0}"));
    Ok(format!(
        "{ok}/{requests} answered, {:.1} MB sent; cache entries {}, cache bytes {}",
        (requests * pad) as f64 / 1e6,
        show(entries),
        show(bytes)
    ))
}
