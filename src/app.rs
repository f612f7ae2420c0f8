//! Builds the running gateway: database, state, schema, router, listener.
use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context as _;
use axum::{
    Json, Router,
    extract::State,
    http::{HeaderName, HeaderValue, Method, StatusCode},
    response::{IntoResponse, Redirect},
    routing::{get, post},
};
use tokio::net::TcpListener;
use tower_http::{
    cors::{AllowOrigin, CorsLayer},
    limit::RequestBodyLimitLayer,
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    trace::TraceLayer,
};

use crate::{
    auth::AuthCore,
    billing::hub::WalletHub,
    catalog::cache::CatalogCache,
    clock::{SharedClock, SystemClock},
    cluster::Cluster,
    config::Config,
    db::Db,
    graphql::{self, AppSchema},
    jobs,
    payments::midtrans::{MidtransClient, webhook},
    seed, settings,
    state::AppState,
};

pub struct App {
    pub state: AppState,
    pub addr: SocketAddr,
    listener: TcpListener,
    router: Router,
}

/// Installs the process-wide rustls provider (ring); idempotent.
pub fn init_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Connects and migrates the database, and prepares state shared by requests and jobs.
pub async fn build_state(config: Config, clock: SharedClock) -> anyhow::Result<AppState> {
    init_crypto();
    let db = Db::connect(&config.database_url).await.with_context(|| "cannot connect to DATABASE_URL".to_string())?;
    db.migrate().await.context("database migration failed")?;
    let secret = settings::jwt_secret(&db, config.jwt_secret.as_ref().map(|s| s.expose())).await?;
    let auth = AuthCore::new(&config, &secret)?;
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .user_agent(concat!("minispod-gateway/", env!("CARGO_PKG_VERSION")))
        .build()
        .context("cannot build the HTTP client")?;
    let midtrans = Arc::new(MidtransClient::new(http.clone(), config.midtrans.clone()));
    let wallet_hub = WalletHub::start(&db).await.context("cannot start the wallet event hub")?;
    let revocations =
        crate::auth::revocations::RevocationHub::start(&db).await.context("cannot start the revocation hub")?;
    let catalog_cache =
        CatalogCache::start(&db, config.graphql.catalog_cache_bytes).await.context("cannot start the catalog cache")?;
    let instance_hub =
        crate::instances::hub::InstanceHub::start(&db).await.context("cannot start the instance event hub")?;
    // Never fails: without a reachable cluster only the cluster fields are unavailable.
    let cluster = Cluster::connect(&config.kube, clock.clone()).await;
    Ok(AppState {
        db,
        config: Arc::new(config),
        clock,
        auth: Arc::new(auth),
        http,
        midtrans,
        wallet_hub,
        revocations,
        ws_connections: Default::default(),
        catalog_cache,
        cluster: Arc::new(cluster),
        instance_hub,
    })
}

impl App {
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        Self::build_with_clock(config, Arc::new(SystemClock)).await
    }

    pub async fn build_with_clock(config: Config, clock: SharedClock) -> anyhow::Result<Self> {
        let state = build_state(config, clock).await?;
        let first_start = seed::is_empty(&state).await?;
        seed::ensure_admin(&state).await?;
        if first_start && state.config.seed_demo {
            seed::seed_demo(&state).await?;
        }
        let schema = graphql::build_schema(Some(state.clone()));
        let router = router(state.clone(), schema);
        let listener = TcpListener::bind(state.config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", state.config.listen))?;
        let addr = listener.local_addr()?;
        Ok(Self { state, addr, listener, router })
    }

    /// Serves until `shutdown` resolves, then lets in-flight requests finish.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let reconciler = self
            .state
            .config
            .payment_reconcile_interval
            .map(|i| jobs::payments::spawn_reconciler(self.state.clone(), i));
        let billing = self.state.config.billing_interval.map(|i| jobs::billing::spawn_runner(self.state.clone(), i));
        let provisioning = crate::instances::spawn(&self.state);
        let served = axum::serve(self.listener, self.router.into_make_service_with_connect_info::<SocketAddr>())
            .with_graceful_shutdown(shutdown)
            .await;
        for job in [reconciler, billing].into_iter().flatten().chain(provisioning) {
            job.abort();
        }
        self.state.instance_hub.stop();
        self.state.wallet_hub.stop();
        self.state.revocations.stop();
        self.state.catalog_cache.stop();
        served?;
        Ok(())
    }
}

fn router(state: AppState, schema: AppSchema) -> Router {
    let x_request_id = HeaderName::from_static("x-request-id");
    let body_limit = state.config.graphql.max_body_bytes;
    let gql = Router::new()
        .route("/graphql", get(graphql::graphql_get).post(graphql::graphql_post))
        .layer(RequestBodyLimitLayer::new(body_limit))
        .with_state((state.clone(), schema));
    let mut router = Router::new()
        .route("/", get(|| async { Redirect::temporary("/graphiql") }))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/webhooks/midtrans", post(webhook::midtrans_webhook).layer(RequestBodyLimitLayer::new(64 * 1024)))
        .with_state(state.clone())
        .merge(gql)
        .merge(crate::graphiql::routes())
        .fallback(graphql::not_found)
        .layer(TraceLayer::new_for_http().make_span_with(|req: &axum::http::Request<_>| {
            let id = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("-");
            tracing::info_span!("http", method = %req.method(), path = %req.uri().path(), request_id = %id)
        }))
        .layer(PropagateRequestIdLayer::new(x_request_id.clone()))
        .layer(SetRequestIdLayer::new(x_request_id, MakeRequestUuid));
    if !state.config.cors_origins.is_empty() {
        let origins: Vec<HeaderValue> =
            state.config.cors_origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()).collect();
        router = router.layer(
            CorsLayer::new()
                .allow_origin(AllowOrigin::list(origins))
                .allow_methods([Method::GET, Method::POST])
                .allow_headers([axum::http::header::AUTHORIZATION, axum::http::header::CONTENT_TYPE])
                .max_age(Duration::from_secs(3600)),
        );
    }
    router
}

/// Ready means the database answers. The cluster is reported beside it but never fails
/// readiness: the gateway serves everything else without it.
async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let db = async { tokio::time::timeout(Duration::from_secs(3), state.db.ping()).await.is_ok_and(|r| r.is_ok()) };
    let (db_ok, cluster) = tokio::join!(db, state.cluster.health(Duration::from_secs(2)));
    let status = if db_ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let body = serde_json::json!({
        "database": if db_ok { "ok" } else { "unavailable" },
        "cluster": cluster.as_str(),
    });
    (status, Json(body))
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutdown signal received; draining requests");
}

/// Prometheus text format: a few gauges and counters an operator watches first.
async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let cache = state.catalog_cache.stats();
    let (hits, misses, entries, bytes, waiting) = (cache.hits, cache.misses, cache.entries, cache.bytes, cache.waiting);
    let body = format!(
        "# HELP minispod_db_statements_total SQL statements executed.\n\
         # TYPE minispod_db_statements_total counter\n\
         minispod_db_statements_total {}\n\
         # HELP minispod_catalog_cache_hits_total Public catalog answers served from the cache.\n\
         # TYPE minispod_catalog_cache_hits_total counter\n\
         minispod_catalog_cache_hits_total {hits}\n\
         # HELP minispod_catalog_cache_misses_total Cacheable catalog requests that were executed.\n\
         # TYPE minispod_catalog_cache_misses_total counter\n\
         minispod_catalog_cache_misses_total {misses}\n\
         # HELP minispod_catalog_cache_entries Cached catalog answers.\n\
         # TYPE minispod_catalog_cache_entries gauge\n\
         minispod_catalog_cache_entries {entries}\n\
         # HELP minispod_catalog_cache_bytes Bytes held by cached catalog answers and their keys.\n\
         # TYPE minispod_catalog_cache_bytes gauge\n\
         minispod_catalog_cache_bytes {bytes}\n\
         # HELP minispod_catalog_cache_waiting Requests waiting for another request to fill their entry.\n\
         # TYPE minispod_catalog_cache_waiting gauge\n\
         minispod_catalog_cache_waiting {waiting}\n\
         # HELP minispod_catalog_version Catalog changes seen by this replica.\n\
         # TYPE minispod_catalog_version counter\n\
         minispod_catalog_version {}\n",
        state.db.statement_count(),
        state.catalog_cache.version(),
    );
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], body)
}
