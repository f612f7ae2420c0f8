//! Announces "the rights of user N changed" (deactivation, logout everywhere, password or role
//! change) to open WebSocket connections, which re-check their viewer and close when it no
//! longer holds. Like wallet events: PostgreSQL NOTIFY reaches every replica; on SQLite (one
//! process) a broadcast channel is enough.
use std::sync::{Arc, Mutex};

use sea_orm::{ConnectionTrait, DatabaseBackend, Statement};
use tokio::{sync::broadcast, task::AbortHandle};

use crate::db::Db;

const CHANNEL: &str = "minispod_revocations";

#[derive(Clone)]
pub struct RevocationHub {
    local: broadcast::Sender<i64>,
    via_postgres: bool,
    listener: Arc<Mutex<Option<AbortHandle>>>,
}

impl RevocationHub {
    /// On PostgreSQL, LISTENs before returning so no announcement made afterwards is missed.
    pub async fn start(db: &Db) -> anyhow::Result<Self> {
        let (local, _) = broadcast::channel(1024);
        let via_postgres = db.backend() == DatabaseBackend::Postgres;
        let hub = Self { local, via_postgres, listener: Arc::new(Mutex::new(None)) };
        if via_postgres {
            let sender = hub.local.clone();
            let handle = crate::db::listen(db, CHANNEL, move |payload| match payload.parse::<i64>() {
                Ok(user_id) => {
                    let _ = sender.send(user_id);
                }
                Err(_) => tracing::warn!(payload, "ignoring malformed revocation notification"),
            })
            .await?;
            if let Ok(mut slot) = hub.listener.lock() {
                *slot = Some(handle);
            }
        }
        Ok(hub)
    }

    pub fn subscribe(&self) -> broadcast::Receiver<i64> {
        self.local.subscribe()
    }

    /// Call after committing a change to a user's rights. Best effort: a lost announcement is
    /// caught by the connection's next `subscribe` check or its token's expiry.
    pub async fn publish(&self, db: &Db, user_id: i64) {
        if !self.via_postgres {
            let _ = self.local.send(user_id);
            return;
        }
        let stmt = Statement::from_sql_and_values(
            DatabaseBackend::Postgres,
            "SELECT pg_notify($1, $2)",
            [CHANNEL.into(), user_id.to_string().into()],
        );
        if let Err(e) = db.conn.execute_raw(stmt).await {
            tracing::warn!(error = %e, "cannot publish revocation");
        }
    }

    /// Stops the LISTEN task (graceful shutdown).
    pub fn stop(&self) {
        if let Ok(mut slot) = self.listener.lock()
            && let Some(h) = slot.take()
        {
            h.abort();
        }
    }
}
