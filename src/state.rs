use std::sync::Arc;

use crate::{
    auth::AuthCore, billing::hub::WalletHub, clock::SharedClock, config::Config, db::Db,
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
    /// Bumped after every committed change to what the public catalog shows (including quota).
    pub catalog_version: Arc<std::sync::atomic::AtomicU64>,
}

impl AppState {
    /// Call after committing a change to categories, services, plans or quota.
    pub fn catalog_changed(&self) {
        self.catalog_version.fetch_add(1, std::sync::atomic::Ordering::Release);
    }

    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.clock.now()
    }
}
