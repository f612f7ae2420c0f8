//! Fan-out of instance status changes to `instanceUpdates` subscribers, across replicas on
//! PostgreSQL (NOTIFY/LISTEN) as for walletUpdates; a broadcast channel on SQLite.
use std::sync::{Arc, Mutex};

use sea_orm::{ConnectionTrait, DatabaseBackend, Statement};
use tokio::{sync::broadcast, task::AbortHandle};

use crate::db::Db;

const CHANNEL: &str = "minispod_instances";

/// "Instance `instance_id` changed"; subscribers re-read the row and check who may see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InstanceEvent {
    pub instance_id: i64,
}

#[derive(Clone)]
pub struct InstanceHub {
    local: broadcast::Sender<InstanceEvent>,
    via_postgres: bool,
    listener: Arc<Mutex<Option<AbortHandle>>>,
}

impl InstanceHub {
    /// On PostgreSQL, LISTENs before returning so no event published afterwards is missed.
    pub async fn start(db: &Db) -> anyhow::Result<Self> {
        let (local, _) = broadcast::channel(1024);
        let via_postgres = db.backend() == DatabaseBackend::Postgres;
        let hub = Self { local, via_postgres, listener: Arc::new(Mutex::new(None)) };
        if via_postgres {
            let sender = hub.local.clone();
            let handle = crate::db::listen(db, CHANNEL, move |payload| match parse_payload(payload) {
                Some(ev) => {
                    let _ = sender.send(ev);
                }
                None => tracing::warn!(payload, "ignoring malformed instance notification"),
            })
            .await?;
            if let Ok(mut slot) = hub.listener.lock() {
                *slot = Some(handle);
            }
        }
        Ok(hub)
    }

    pub fn subscribe(&self) -> broadcast::Receiver<InstanceEvent> {
        self.local.subscribe()
    }

    /// Live instanceUpdates streams on this replica (tests wait for their subscribers with it).
    pub fn subscribers(&self) -> usize {
        self.local.receiver_count()
    }

    /// Announces a committed change. Best effort: a lost event only delays a live view.
    pub async fn publish(&self, db: &Db, instance_id: i64) {
        let ev = InstanceEvent { instance_id };
        if !self.via_postgres {
            let _ = self.local.send(ev);
            return;
        }
        let stmt = Statement::from_sql_and_values(
            DatabaseBackend::Postgres,
            "SELECT pg_notify($1, $2)",
            [CHANNEL.into(), instance_id.to_string().into()],
        );
        if let Err(e) = db.conn.execute_raw(stmt).await {
            tracing::warn!(error = %e, "cannot publish instance event");
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

fn parse_payload(p: &str) -> Option<InstanceEvent> {
    Some(InstanceEvent { instance_id: p.parse().ok()? })
}
