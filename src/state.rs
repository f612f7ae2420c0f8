use std::sync::Arc;

use crate::{auth::AuthCore, clock::SharedClock, cluster::Cluster, config::Config, db::Db};

/// Everything a request or job needs, cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub config: Arc<Config>,
    pub clock: SharedClock,
    pub auth: Arc<AuthCore>,
    /// The Kubernetes cluster (possibly absent) and its shared metric pollers.
    pub cluster: Arc<Cluster>,
}

impl AppState {
    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.clock.now()
    }
}
