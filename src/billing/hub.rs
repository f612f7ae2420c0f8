//! Fan-out of wallet changes to `walletUpdates` subscribers. On PostgreSQL every change goes
//! through NOTIFY and each replica LISTENs, so a webhook handled by one replica reaches a
//! subscriber connected to another; on SQLite (one process) a broadcast channel is enough.
use std::sync::{Arc, Mutex};

use sea_orm::{ConnectionTrait, DatabaseBackend, Statement};
use tokio::{sync::broadcast, task::AbortHandle};

use crate::db::Db;

const CHANNEL: &str = "minispod_wallet";

/// "Transaction `transaction_id` of user `user_id` changed"; subscribers re-read the row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WalletEvent {
    pub user_id: i64,
    pub transaction_id: i64,
}

#[derive(Clone)]
pub struct WalletHub {
    local: broadcast::Sender<WalletEvent>,
    via_postgres: bool,
    listener: Arc<Mutex<Option<AbortHandle>>>,
}

impl WalletHub {
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
                None => tracing::warn!(payload, "ignoring malformed wallet notification"),
            })
            .await?;
            if let Ok(mut slot) = hub.listener.lock() {
                *slot = Some(handle);
            }
        }
        Ok(hub)
    }

    pub fn subscribe(&self) -> broadcast::Receiver<WalletEvent> {
        self.local.subscribe()
    }

    /// Live `walletUpdates` streams on this replica (tests wait for theirs to be registered).
    pub fn subscribers(&self) -> usize {
        self.local.receiver_count()
    }

    /// Announces a committed change. Best effort: a lost event only delays a live view, the
    /// ledger itself is already committed.
    pub async fn publish(&self, db: &Db, user_id: i64, transaction_id: i64) {
        let ev = WalletEvent { user_id, transaction_id };
        if !self.via_postgres {
            let _ = self.local.send(ev);
            return;
        }
        let stmt = Statement::from_sql_and_values(
            DatabaseBackend::Postgres,
            "SELECT pg_notify($1, $2)",
            [CHANNEL.into(), format!("{user_id}:{transaction_id}").into()],
        );
        if let Err(e) = db.conn.execute_raw(stmt).await {
            tracing::warn!(error = %e, "cannot publish wallet event");
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

fn parse_payload(p: &str) -> Option<WalletEvent> {
    let (u, t) = p.split_once(':')?;
    Some(WalletEvent { user_id: u.parse().ok()?, transaction_id: t.parse().ok()? })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_round_trip() {
        assert_eq!(parse_payload("7:42"), Some(WalletEvent { user_id: 7, transaction_id: 42 }));
        assert_eq!(parse_payload("7"), None);
        assert_eq!(parse_payload("x:1"), None);
    }
}
