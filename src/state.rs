use std::sync::Arc;

use crate::{auth::AuthCore, clock::SharedClock, config::Config, db::Db};

/// Everything a request or job needs, cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub config: Arc<Config>,
    pub clock: SharedClock,
    pub auth: Arc<AuthCore>,
}

impl AppState {
    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.clock.now()
    }
}
