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
    tracing::info!(database = %crate::db::redact_url(&config.database_url), "connecting to the database");
    let db = Db::connect_within(&config.database_url, config.db_connect_timeout).await?;
    prepare_schema(&db, config.migrate_on_start).await?;
    let secret = settings::jwt_secret(&db, config.jwt_secret.as_ref().map(|s| s.expose())).await?;
    let auth = AuthCore::new(&config, &secret)?;
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .user_agent(concat!("minispod-gateway/", env!("CARGO_PKG_VERSION")))
        .build()
        .context("cannot build the HTTP client")?;
    let metrics = crate::telemetry::Metrics::new();
    let midtrans = Arc::new(MidtransClient::new(http.clone(), config.midtrans.clone(), metrics.clone()));
    let wallet_hub = WalletHub::start(&db).await.context("cannot start the wallet event hub")?;
    let revocations =
        crate::auth::revocations::RevocationHub::start(&db).await.context("cannot start the revocation hub")?;
    let catalog_cache =
        CatalogCache::start(&db, config.graphql.catalog_cache_bytes).await.context("cannot start the catalog cache")?;
    let instance_hub =
        crate::instances::hub::InstanceHub::start(&db).await.context("cannot start the instance event hub")?;
    let notices = crate::notifications::hub::Notifier::start(&db).await.context("cannot start the notification hub")?;
    let persisted = Arc::new(crate::graphql::persisted::PersistedQueries::load(&config.persisted_queries)?);
    // Never fails: without a reachable cluster only the cluster fields are unavailable.
    let cluster = Cluster::connect(&config.kube, clock.clone(), &metrics).await;
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
        reconcile_pass: Default::default(),
        persisted,
        notices,
        metrics,
    })
}

/// Applies pending migrations under the start-up lock, or (`migrate_on_start` off) refuses to
/// run on a schema that a migration Job has not brought up to date yet.
async fn prepare_schema(db: &Db, migrate_on_start: bool) -> anyhow::Result<()> {
    if migrate_on_start {
        let lock = db.startup_lock().await.context("cannot take the start-up lock")?;
        db.migrate().await.context("database migration failed")?;
        return lock.release().await;
    }
    let pending = crate::migrations::pending(db).await.context("cannot read the migration status")?;
    if !pending.is_empty() {
        anyhow::bail!(
            "the database schema is behind: {} pending migration(s) ({}); run `minispod migrate up` (MINISPOD_MIGRATE_ON_START=false)",
            pending.len(),
            pending.join(", ")
        );
    }
    Ok(())
}

/// Creates the administrator, and on a first start the demo data, once across replicas.
async fn seed_first_start(state: &AppState) -> anyhow::Result<()> {
    let lock = state.db.startup_lock().await.context("cannot take the start-up lock")?;
    let first_start = seed::is_empty(state).await?;
    seed::ensure_admin(state).await?;
    if first_start && state.config.seed_demo {
        seed::seed_demo(state).await?;
    }
    lock.release().await
}

impl App {
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        Self::build_with_clock(config, Arc::new(SystemClock)).await
    }

    /// Binds first: a taken port fails before the database is touched. Connections that arrive
    /// while the database is prepared wait in the listen backlog.
    pub async fn build_with_clock(config: Config, clock: SharedClock) -> anyhow::Result<Self> {
        let listen = config.listen;
        let listener =
            TcpListener::bind(listen).await.with_context(|| format!("cannot listen on {listen} (MINISPOD_LISTEN)"))?;
        let addr = listener.local_addr()?;
        let state = build_state(config, clock).await?;
        seed_first_start(&state).await?;
        let schema = graphql::build_schema(Some(state.clone()));
        let router = router(state.clone(), schema);
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
        let mail = crate::notifications::outbox::spawn_sender(self.state.clone());
        let served = axum::serve(self.listener, self.router.into_make_service_with_connect_info::<SocketAddr>())
            .with_graceful_shutdown(shutdown)
            .await;
        for job in [reconciler, billing, mail].into_iter().flatten().chain(provisioning) {
            job.abort();
        }
        self.state.instance_hub.stop();
        self.state.notices.stop();
        self.state.wallet_hub.stop();
        self.state.revocations.stop();
        self.state.catalog_cache.stop();
        served?;
        Ok(())
    }
}

fn router(state: AppState, schema: AppSchema) -> Router {
    let body_limit = state.config.graphql.max_body_bytes;
    let gql = Router::new()
        .route("/graphql", get(graphql::graphql_get).post(graphql::graphql_post))
        // The handler reads the body itself and answers 413 as a GraphQL error.
        .layer(axum::extract::DefaultBodyLimit::max(body_limit))
        .with_state((state.clone(), schema));
    let mut router = Router::new()
        .route("/", get(|| async { Redirect::temporary("/graphiql") }))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(crate::telemetry::http::metrics))
        .route("/webhooks/midtrans", post(webhook::midtrans_webhook).layer(RequestBodyLimitLayer::new(64 * 1024)))
        .with_state(state.clone())
        .merge(gql)
        .merge(crate::graphiql::routes())
        .fallback(graphql::transport::not_found)
        .layer(axum::middleware::map_response(graphql::transport::json_errors))
        // After routing (the matched route labels the metrics): request id, span, metrics.
        .layer(axum::middleware::from_fn_with_state(state.clone(), crate::telemetry::http::observe));
    if let Some(cors) = cors(&state.config.cors_origins) {
        router = router.layer(cors);
    }
    router
}

/// Browsers on the configured origins may call the API with the headers Apollo and urql send.
/// No credentials: tokens travel in `Authorization`, never in cookies, which is also what
/// lets `*` mean any origin.
fn cors(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let allow_origin = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    let header = HeaderName::from_static;
    Some(
        CorsLayer::new()
            .allow_origin(allow_origin)
            .allow_methods([Method::GET, Method::POST])
            .allow_headers([
                axum::http::header::AUTHORIZATION,
                axum::http::header::CONTENT_TYPE,
                axum::http::header::ACCEPT,
                header("apollographql-client-name"),
                header("apollographql-client-version"),
                header("apollo-require-preflight"),
                header("x-apollo-operation-name"),
                header("x-request-id"),
            ])
            .expose_headers([header("x-request-id")])
            // Chromium caps preflight caching at two hours.
            .max_age(Duration::from_secs(7200)),
    )
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
