use std::sync::Arc;

use crate::{
    auth::AuthCore, billing::hub::WalletHub, clock::SharedClock, cluster::Cluster, config::Config, db::Db,
    payments::midtrans::MidtransClient,
};

/// Everything a request or job needs, cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub config: Arc<Config>,
    pub clock: SharedClock,
    pub auth: Arc<AuthCore>,
    /// Outbound HTTP (rustls/ring), shared by every provider client.
    pub http: reqwest::Client,
    pub midtrans: Arc<MidtransClient>,
    /// walletUpdates fan-out (PostgreSQL LISTEN/NOTIFY across replicas).
    pub wallet_hub: WalletHub,
    /// Announcements that a user's rights changed, for open WebSocket connections.
    pub revocations: crate::auth::revocations::RevocationHub,
    /// Open WebSocket connections per signed-in user (`MINISPOD_WS_MAX_CONNECTIONS_PER_USER`).
    pub ws_connections: Arc<crate::ws::ConnectionCounts>,
    /// Public catalog answers, invalidated by every committed catalog or quota change.
    pub catalog_cache: Arc<crate::catalog::cache::CatalogCache>,
    /// The Kubernetes cluster (possibly absent) and its shared metric pollers.
    pub cluster: Arc<Cluster>,
    /// instanceUpdates fan-out (across replicas on PostgreSQL).
    pub instance_hub: crate::instances::hub::InstanceHub,
    /// Held while this process runs a reconcile pass (the periodic one and `runBillingJob` may
    /// overlap); across replicas the PostgreSQL advisory lock decides.
    pub reconcile_pass: Arc<tokio::sync::Mutex<()>>,
    /// Registered APQ documents and the persisted query manifest.
    pub persisted: Arc<crate::graphql::persisted::PersistedQueries>,
    /// notificationAdded fan-out (across replicas) and the email sender's wake-up.
    pub notices: crate::notifications::hub::Notifier,
    /// Prometheus series of this app (`crate::telemetry::metrics`).
    pub metrics: crate::telemetry::Metrics,
}

impl AppState {
    /// Call after committing a change to categories, services or plans.
    pub async fn catalog_changed(&self) {
        self.catalog_cache.changed(&self.db).await;
    }

    /// Call after committing a change of plans' used quota (subscribe, cancel, upgrade, expiry).
    pub async fn quota_changed(&self) {
        self.catalog_cache.quota_changed(&self.db).await;
    }

    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.clock.now()
    }
}
