//! Issue 9, item 2: the catalog answer cache is keyed by the normalised document, bounded by
//! bytes, and fills a missing entry once however many requests want it.
use std::time::Duration;

use futures::future::join_all;
use sea_orm::TransactionTrait;
use serde_json::json;

use crate::support::TestApp;

const CATALOG: &str = "{ categories { slug services { slug plans { name monthlyPrice } } } }";

async fn seeded_with(tweak: impl FnOnce(&mut minispod_gateway::config::Config)) -> TestApp {
    let app = TestApp::spawn_with(tweak).await;
    minispod_gateway::seed::seed_catalog(&app.state).await.unwrap();
    app
}

#[tokio::test]
async fn requests_that_differ_only_in_comments_and_whitespace_share_one_entry() {
    let app = seeded_with(|_| {}).await;
    let first = app.gql_ok(None, CATALOG, json!({})).await;
    let cache = || app.state.catalog_cache.stats();
    let (entries, bytes, statements) = (cache().entries, cache().bytes, app.state.db.statement_count());
    assert_eq!(entries, 1);

    let reformatted = "# the catalog page\n{\n  categories { slug , services {\n slug # the id\n plans { name monthlyPrice } } }\n}\n";
    assert_eq!(app.gql_ok(None, reformatted, json!({})).await, first);
    assert_eq!(app.state.db.statement_count(), statements, "served from the same entry, without SQL");

    // Unique 900 KB comments: every request is new text, none is a new entry or new bytes.
    let padded: Vec<_> = (0..20)
        .map(|i| {
            format!(
                "# {i} {}\n{{ categories {{ slug services {{ slug plans {{ name monthlyPrice }} }} }} }}",
                "x".repeat(900 * 1024)
            )
        })
        .collect();
    for q in &padded {
        assert_eq!(app.gql_ok(None, q, json!({})).await, first);
    }
    assert_eq!((cache().entries, cache().bytes), (entries, bytes));
    assert_eq!(app.state.db.statement_count(), statements);
    let metrics = app.http.get(format!("{}/metrics", app.url)).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains(&format!("minispod_catalog_cache_bytes {bytes}\n")), "{metrics}");

    // Invalidation still reaches every spelling of the query.
    app.state.catalog_changed().await;
    app.gql_ok(None, &padded[0], json!({})).await;
    assert!(app.state.db.statement_count() > statements, "rendered again after a change");
}

#[tokio::test]
async fn the_cache_is_bounded_by_bytes_and_evicts_the_least_recently_used() {
    const CAPACITY: usize = 4096;
    let app = seeded_with(|c| c.graphql.catalog_cache_bytes = CAPACITY).await;
    let query = |i: usize| format!("{{ category(slug: \"none-{i}\") {{ slug }} }}");
    for i in 0..60 {
        app.gql_ok(None, &query(i), json!({})).await;
        // Keep the first one recently used.
        app.gql_ok(None, &query(0), json!({})).await;
        let stats = app.state.catalog_cache.stats();
        assert!(stats.bytes <= CAPACITY, "{stats:?}");
    }
    let stats = app.state.catalog_cache.stats();
    assert!(stats.entries < 60 && stats.entries > 1, "{stats:?}");
    let statements = app.state.db.statement_count();
    // The recently used ones are still cached; the least recently used were evicted.
    app.gql_ok(None, &query(0), json!({})).await;
    app.gql_ok(None, &query(59), json!({})).await;
    assert_eq!(app.state.db.statement_count(), statements, "recently used answers are cached");
    app.gql_ok(None, &query(1), json!({})).await;
    assert!(app.state.db.statement_count() > statements, "the least recently used answer was evicted");
}

#[tokio::test]
async fn concurrent_misses_of_one_key_render_once() {
    const REQUESTS: u64 = 8;
    let app = seeded_with(|_| {}).await;
    // Hold every pooled database connection, so the first request cannot finish its render while
    // the others arrive: acquire until the pool has none left.
    let mut held = Vec::new();
    while let Ok(Ok(tx)) = tokio::time::timeout(Duration::from_millis(500), app.state.db.conn.begin()).await {
        held.push(tx);
    }
    assert!(!held.is_empty());
    let misses = app.state.catalog_cache.stats().misses;
    let requests: Vec<_> = (0..REQUESTS).map(|_| app.gql_ok(None, CATALOG, json!({}))).collect();
    let answers = async { join_all(requests).await };
    tokio::pin!(answers);
    // Drive the requests until every one but the leader waits for the leader's answer.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        tokio::select! {
            _ = &mut answers => panic!("answered while the database was held"),
            _ = tokio::time::sleep(Duration::from_millis(10)) => {}
        }
        if app.state.catalog_cache.stats().waiting == REQUESTS - 1 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "waiting: {:?}", app.state.catalog_cache.stats());
    }
    drop(held);
    let answers = answers.await;
    assert!(answers.iter().all(|a| a == &answers[0] && a["categories"].as_array().is_some_and(|c| !c.is_empty())));
    assert_eq!(app.state.catalog_cache.stats().misses - misses, 1, "one render for {REQUESTS} requests");
    assert_eq!(app.state.catalog_cache.stats().waiting, 0);
}
