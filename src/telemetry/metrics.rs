//! Every Prometheus series of the gateway: names, labels, help texts and buckets are here, and
//! call sites use the typed methods below. Values owned elsewhere (database pool, catalog cache,
//! statement count) are sampled at scrape time by `render`.
use std::{
    collections::HashSet,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use metrics::{Counter, Gauge, Histogram, Key, Label, Metadata, Recorder, SharedString, Unit};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder};
use sea_orm::DatabaseBackend;

use crate::state::AppState;

const METADATA: Metadata<'static> = Metadata::new("minispod_gateway", metrics::Level::INFO, None);

/// Request latencies: 1 ms to 30 s.
const LATENCY_BUCKETS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];
/// Background job passes: 10 ms to 10 min.
const JOB_BUCKETS: &[f64] = &[0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0];

/// Distinct GraphQL operation names kept as label values; later ones are counted as `other`.
/// Names are chosen by clients, and every value is a series that lives until restart.
const MAX_OPERATION_NAMES: usize = 200;

pub const HTTP_REQUESTS: &str = "minispod_http_requests_total";
pub const HTTP_DURATION: &str = "minispod_http_request_duration_seconds";
pub const GRAPHQL_OPERATIONS: &str = "minispod_graphql_operations_total";
pub const GRAPHQL_DURATION: &str = "minispod_graphql_operation_duration_seconds";
pub const GRAPHQL_ERRORS: &str = "minispod_graphql_errors_total";
pub const GRAPHQL_SUBSCRIPTIONS_LIVE: &str = "minispod_graphql_subscriptions_live";
pub const WS_CONNECTIONS: &str = "minispod_ws_connections";
pub const WS_CONNECTIONS_TOTAL: &str = "minispod_ws_connections_total";
pub const WEBHOOKS: &str = "minispod_webhooks_total";
pub const JOB_RUNS: &str = "minispod_job_runs_total";
pub const JOB_DURATION: &str = "minispod_job_duration_seconds";
pub const JOB_ITEMS: &str = "minispod_job_items_total";
pub const JOB_LAST_SUCCESS: &str = "minispod_job_last_success_timestamp_seconds";
pub const UPSTREAM_REQUESTS: &str = "minispod_upstream_requests_total";
pub const UPSTREAM_DURATION: &str = "minispod_upstream_request_duration_seconds";
pub const DB_STATEMENTS: &str = "minispod_db_statements_total";
pub const DB_POOL_CONNECTIONS: &str = "minispod_db_pool_connections";
pub const DB_POOL_MAX: &str = "minispod_db_pool_max_connections";
pub const DB_WRITERS_WAITING: &str = "minispod_db_writers_waiting";
pub const CACHE_HITS: &str = "minispod_catalog_cache_hits_total";
pub const CACHE_MISSES: &str = "minispod_catalog_cache_misses_total";
pub const CACHE_ENTRIES: &str = "minispod_catalog_cache_entries";
pub const CACHE_BYTES: &str = "minispod_catalog_cache_bytes";
pub const CACHE_WAITING: &str = "minispod_catalog_cache_waiting";
pub const CACHE_QUOTA_READS: &str = "minispod_catalog_quota_reads_total";
pub const CATALOG_VERSION: &str = "minispod_catalog_version";
pub const EMAILS: &str = "minispod_emails_total";

/// (name, kind, unit, help) of every series, for `# HELP` lines.
const DESCRIPTIONS: &[(&str, Kind, Option<Unit>, &str)] = &[
    (HTTP_REQUESTS, Kind::Counter, None, "HTTP requests by method, matched route and status."),
    (HTTP_DURATION, Kind::Histogram, Some(Unit::Seconds), "HTTP request latency by method and matched route."),
    (GRAPHQL_OPERATIONS, Kind::Counter, None, "GraphQL operations by name, type and result (ok or error)."),
    (GRAPHQL_DURATION, Kind::Histogram, Some(Unit::Seconds), "GraphQL query and mutation latency by name and type."),
    (GRAPHQL_ERRORS, Kind::Counter, None, "GraphQL errors by operation name, type and extensions.code."),
    (GRAPHQL_SUBSCRIPTIONS_LIVE, Kind::Gauge, None, "Running GraphQL subscriptions by operation name."),
    (WS_CONNECTIONS, Kind::Gauge, None, "Open GraphQL WebSocket connections."),
    (WS_CONNECTIONS_TOTAL, Kind::Counter, None, "GraphQL WebSocket connections accepted."),
    (WEBHOOKS, Kind::Counter, None, "Payment webhooks received, by provider and result."),
    (JOB_RUNS, Kind::Counter, None, "Background job passes by job and result (ok or error)."),
    (JOB_DURATION, Kind::Histogram, Some(Unit::Seconds), "Background job pass duration by job."),
    (JOB_ITEMS, Kind::Counter, None, "Items a job pass acted on (succeeded) or failed on, by job."),
    (JOB_LAST_SUCCESS, Kind::Gauge, Some(Unit::Seconds), "Unix time of the last successful pass, by job."),
    (UPSTREAM_REQUESTS, Kind::Counter, None, "Calls to Kubernetes and Midtrans by operation and outcome."),
    (UPSTREAM_DURATION, Kind::Histogram, Some(Unit::Seconds), "Upstream call latency (until response headers)."),
    (DB_STATEMENTS, Kind::Counter, None, "SQL statements executed."),
    (DB_POOL_CONNECTIONS, Kind::Gauge, None, "Database pool connections by state (in_use, idle)."),
    (DB_POOL_MAX, Kind::Gauge, None, "Database pool size limit."),
    (DB_WRITERS_WAITING, Kind::Gauge, None, "Transactions waiting for the SQLite writer (0 on PostgreSQL)."),
    (CACHE_HITS, Kind::Counter, None, "Public catalog answers served from the cache."),
    (CACHE_MISSES, Kind::Counter, None, "Cacheable catalog requests that were executed."),
    (CACHE_ENTRIES, Kind::Gauge, None, "Cached catalog answers."),
    (CACHE_BYTES, Kind::Gauge, Some(Unit::Bytes), "Bytes held by cached catalog answers and their keys."),
    (CACHE_WAITING, Kind::Gauge, None, "Requests waiting for another request to fill their entry."),
    (CACHE_QUOTA_READS, Kind::Counter, None, "Reads of every plan's quota for the stored catalog answers."),
    (CATALOG_VERSION, Kind::Counter, None, "Catalog changes seen by this replica."),
    (EMAILS, Kind::Counter, None, "Email attempts by this replica's sender, by result (sent, retried, failed)."),
];

#[derive(Clone, Copy)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// The gateway's metrics registry; cheap to clone.
#[derive(Clone)]
pub struct Metrics(Arc<Inner>);

struct Inner {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    operation_names: Mutex<HashSet<String>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        // Both only fail on an empty bucket list (then histograms would render as summaries).
        let builder = PrometheusBuilder::new()
            .set_buckets(LATENCY_BUCKETS)
            .and_then(|b| b.set_buckets_for_metric(Matcher::Full(JOB_DURATION.into()), JOB_BUCKETS))
            .unwrap_or_else(|_| PrometheusBuilder::new());
        let recorder = builder.build_recorder();
        for (name, kind, unit, help) in DESCRIPTIONS {
            let (name, help) = ((*name).into(), SharedString::const_str(help));
            match kind {
                Kind::Counter => recorder.describe_counter(name, *unit, help),
                Kind::Gauge => recorder.describe_gauge(name, *unit, help),
                Kind::Histogram => recorder.describe_histogram(name, *unit, help),
            }
        }
        let handle = recorder.handle();
        Self(Arc::new(Inner { recorder, handle, operation_names: Mutex::default() }))
    }

    fn key(name: &'static str, labels: &[(&'static str, &str)]) -> Key {
        let labels: Vec<Label> = labels.iter().map(|(k, v)| Label::new(*k, v.to_string())).collect();
        Key::from_parts(name, labels)
    }

    pub fn counter(&self, name: &'static str, labels: &[(&'static str, &str)]) -> Counter {
        self.0.recorder.register_counter(&Self::key(name, labels), &METADATA)
    }

    pub fn gauge(&self, name: &'static str, labels: &[(&'static str, &str)]) -> Gauge {
        self.0.recorder.register_gauge(&Self::key(name, labels), &METADATA)
    }

    pub fn histogram(&self, name: &'static str, labels: &[(&'static str, &str)]) -> Histogram {
        self.0.recorder.register_histogram(&Self::key(name, labels), &METADATA)
    }

    /// One finished HTTP request. `route` is the matched route (never the raw path).
    pub fn http_request(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        let status = status.to_string();
        self.counter(HTTP_REQUESTS, &[("method", method), ("route", route), ("status", &status)]).increment(1);
        self.histogram(HTTP_DURATION, &[("method", method), ("route", route)]).record(elapsed);
    }

    /// The label value for a client-chosen operation name: bounded in length and in number.
    pub fn operation_label(&self, name: Option<&str>) -> String {
        let Some(name) = name.filter(|n| !n.is_empty()) else {
            return "anonymous".into();
        };
        let valid = name.len() <= 64
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            && !name.as_bytes()[0].is_ascii_digit();
        if !valid {
            return "other".into();
        }
        let mut names = self.0.operation_names.lock().unwrap_or_else(PoisonError::into_inner);
        if names.contains(name) || names.len() < MAX_OPERATION_NAMES && names.insert(name.to_string()) {
            name.to_string()
        } else {
            "other".into()
        }
    }

    /// One GraphQL operation: `elapsed` is `None` for subscriptions (counted when they start),
    /// `codes` are the `extensions.code` of its errors.
    pub fn graphql_operation<'a>(
        &self,
        operation: &str,
        ty: &str,
        elapsed: Option<Duration>,
        codes: impl IntoIterator<Item = &'a str>,
    ) {
        let mut failed = false;
        for code in codes {
            failed = true;
            self.graphql_error(operation, ty, code);
        }
        let result = if failed { "error" } else { "ok" };
        self.counter(GRAPHQL_OPERATIONS, &[("operation", operation), ("type", ty), ("result", result)]).increment(1);
        if let Some(elapsed) = elapsed {
            self.histogram(GRAPHQL_DURATION, &[("operation", operation), ("type", ty)]).record(elapsed);
        }
    }

    pub fn graphql_error(&self, operation: &str, ty: &str, code: &str) {
        self.counter(GRAPHQL_ERRORS, &[("operation", operation), ("type", ty), ("code", code)]).increment(1);
    }

    /// Counts a running subscription until the guard is dropped.
    pub fn live_subscription(&self, operation: &str) -> GaugeGuard {
        GaugeGuard::new(self.gauge(GRAPHQL_SUBSCRIPTIONS_LIVE, &[("operation", operation)]))
    }

    /// Counts an open WebSocket connection until the guard is dropped.
    pub fn ws_connection(&self) -> GaugeGuard {
        self.counter(WS_CONNECTIONS_TOTAL, &[]).increment(1);
        GaugeGuard::new(self.gauge(WS_CONNECTIONS, &[]))
    }

    pub fn webhook(&self, provider: &str, result: &str) {
        self.counter(WEBHOOKS, &[("provider", provider), ("result", result)]).increment(1);
    }

    /// One job pass; `items` is (succeeded, failed) when it completed.
    pub fn job_run(&self, job: &str, items: Option<(usize, usize)>, elapsed: Duration, now_unix: i64) {
        let result = if items.is_some() { "ok" } else { "error" };
        self.counter(JOB_RUNS, &[("job", job), ("result", result)]).increment(1);
        self.histogram(JOB_DURATION, &[("job", job)]).record(elapsed);
        if let Some((succeeded, failed)) = items {
            self.counter(JOB_ITEMS, &[("job", job), ("outcome", "succeeded")]).increment(succeeded as u64);
            self.counter(JOB_ITEMS, &[("job", job), ("outcome", "failed")]).increment(failed as u64);
            self.gauge(JOB_LAST_SUCCESS, &[("job", job)]).set(now_unix as f64);
        }
    }

    /// One call to an upstream service. `outcome` is the status class (`2xx`, `4xx`, `5xx`) or
    /// `error` (connection failure, timeout).
    pub fn upstream(&self, upstream: &str, operation: &str, outcome: &str, elapsed: Duration) {
        let labels = [("upstream", upstream), ("operation", operation), ("outcome", outcome)];
        self.counter(UPSTREAM_REQUESTS, &labels).increment(1);
        self.histogram(UPSTREAM_DURATION, &labels[..2]).record(elapsed);
    }

    /// One email attempt: `sent`, `retried` (a transient failure) or `failed` (given up).
    pub fn email(&self, result: &str) {
        self.counter(EMAILS, &[("result", result)]).increment(1);
    }

    /// Samples what other parts own, then renders the Prometheus text format.
    pub fn render(&self, state: &AppState) -> String {
        self.sample(state);
        self.0.handle.run_upkeep();
        self.0.handle.render()
    }

    fn sample(&self, state: &AppState) {
        self.counter(DB_STATEMENTS, &[]).absolute(state.db.statement_count());
        let (size, idle, max) = match state.db.backend() {
            DatabaseBackend::Postgres => {
                let pool = state.db.conn.get_postgres_connection_pool();
                (pool.size(), pool.num_idle(), pool.options().get_max_connections())
            }
            DatabaseBackend::Sqlite => {
                let pool = state.db.conn.get_sqlite_connection_pool();
                (pool.size(), pool.num_idle(), pool.options().get_max_connections())
            }
            _ => (0, 0, 0),
        };
        let in_use = (size as usize).saturating_sub(idle);
        self.gauge(DB_POOL_CONNECTIONS, &[("state", "in_use")]).set(in_use as f64);
        self.gauge(DB_POOL_CONNECTIONS, &[("state", "idle")]).set(idle as f64);
        self.gauge(DB_POOL_MAX, &[]).set(max as f64);
        self.gauge(DB_WRITERS_WAITING, &[]).set(state.db.writers_waiting() as f64);
        let cache = state.catalog_cache.stats();
        self.counter(CACHE_HITS, &[]).absolute(cache.hits);
        self.counter(CACHE_MISSES, &[]).absolute(cache.misses);
        self.gauge(CACHE_ENTRIES, &[]).set(cache.entries as f64);
        self.gauge(CACHE_BYTES, &[]).set(cache.bytes as f64);
        self.gauge(CACHE_WAITING, &[]).set(cache.waiting as f64);
        self.counter(CACHE_QUOTA_READS, &[]).absolute(cache.quota_reads);
        self.counter(CATALOG_VERSION, &[]).absolute(state.catalog_cache.version());
    }
}

/// Increments a gauge now and decrements it when dropped.
pub struct GaugeGuard(Gauge);

impl GaugeGuard {
    fn new(gauge: Gauge) -> Self {
        gauge.increment(1.0);
        Self(gauge)
    }
}

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_names_are_bounded() {
        let m = Metrics::new();
        assert_eq!(m.operation_label(None), "anonymous");
        assert_eq!(m.operation_label(Some("Me")), "Me");
        assert_eq!(m.operation_label(Some("has space")), "other");
        assert_eq!(m.operation_label(Some(&"a".repeat(65))), "other");
        for i in 0..MAX_OPERATION_NAMES {
            m.operation_label(Some(&format!("Op{i}")));
        }
        assert_eq!(m.operation_label(Some("OneTooMany")), "other");
        assert_eq!(m.operation_label(Some("Me")), "Me");
    }

    #[test]
    fn histograms_render_as_buckets() {
        let m = Metrics::new();
        m.http_request("GET", "/healthz", 200, Duration::from_millis(3));
        m.job_run("renewals", Some((2, 1)), Duration::from_secs(2), 1_700_000_000);
        let text = m.0.handle.render();
        assert!(
            text.contains(
                r#"minispod_http_request_duration_seconds_bucket{method="GET",route="/healthz",le="0.005"} 1"#
            ),
            "{text}"
        );
        assert!(text.contains(r#"minispod_job_duration_seconds_bucket{job="renewals",le="5"} 1"#), "{text}");
        assert!(text.contains(r#"minispod_job_items_total{job="renewals",outcome="failed"} 1"#), "{text}");
        assert!(text.contains("# HELP minispod_http_requests_total"), "{text}");
    }
}
