//! Announcements of committed changes to live subscribers (wallet events, revocations, instance
//! status). On PostgreSQL every announcement goes through NOTIFY and each replica LISTENs, so a
//! change made on one replica reaches a subscriber connected to another; on SQLite (one process)
//! a broadcast channel is enough. Best effort by design: the change itself is already committed,
//! and a lost announcement only delays a live view.
use std::sync::{Arc, Mutex};

use sea_orm::{ConnectionTrait, DatabaseBackend, Statement};
use tokio::{sync::broadcast, task::AbortHandle};

use crate::db::Db;

/// What a hub carries: its NOTIFY channel and its text form on that channel.
pub trait Announcement: Clone + Send + Sync + 'static {
    const CHANNEL: &'static str;
    fn encode(&self) -> String;
    fn decode(payload: &str) -> Option<Self>;
}

#[derive(Clone)]
pub struct Hub<E> {
    local: broadcast::Sender<E>,
    via_postgres: bool,
    listener: Arc<Mutex<Option<AbortHandle>>>,
}

impl<E: Announcement> Hub<E> {
    /// On PostgreSQL, LISTENs before returning so no announcement made afterwards is missed.
    pub async fn start(db: &Db) -> anyhow::Result<Self> {
        let (local, _) = broadcast::channel(1024);
        let via_postgres = db.backend() == DatabaseBackend::Postgres;
        let hub = Self { local, via_postgres, listener: Arc::new(Mutex::new(None)) };
        if via_postgres {
            let sender = hub.local.clone();
            let handle = crate::db::listen(db, E::CHANNEL, move |payload| match E::decode(payload) {
                Some(ev) => {
                    let _ = sender.send(ev);
                }
                None => tracing::warn!(payload, channel = E::CHANNEL, "ignoring a malformed notification"),
            })
            .await?;
            if let Ok(mut slot) = hub.listener.lock() {
                *slot = Some(handle);
            }
        }
        Ok(hub)
    }

    pub fn subscribe(&self) -> broadcast::Receiver<E> {
        self.local.subscribe()
    }

    /// Live subscribers on this replica (tests wait for theirs to be registered).
    pub fn subscribers(&self) -> usize {
        self.local.receiver_count()
    }

    /// Announces a committed change to every replica.
    pub async fn publish(&self, db: &Db, ev: E) {
        if !self.via_postgres {
            let _ = self.local.send(ev);
            return;
        }
        let stmt = Statement::from_sql_and_values(
            DatabaseBackend::Postgres,
            "SELECT pg_notify($1, $2)",
            [E::CHANNEL.into(), ev.encode().into()],
        );
        if let Err(e) = db.conn.execute_raw(stmt).await {
            tracing::warn!(error = %e, channel = E::CHANNEL, "cannot publish a notification");
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
