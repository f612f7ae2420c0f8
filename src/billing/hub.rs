//! Wallet changes for `walletUpdates` subscribers, across replicas (see `crate::hub`).
use crate::hub::{Announcement, Hub};

/// "Transaction `transaction_id` of user `user_id` changed"; subscribers re-read the row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WalletEvent {
    pub user_id: i64,
    pub transaction_id: i64,
}

pub type WalletHub = Hub<WalletEvent>;

impl WalletHub {
    /// Call after committing a change to one of the user's transactions.
    pub async fn announce(&self, db: &crate::db::Db, user_id: i64, transaction_id: i64) {
        self.publish(db, WalletEvent { user_id, transaction_id }).await;
    }
}

impl Announcement for WalletEvent {
    const CHANNEL: &'static str = "minispod_wallet";

    fn encode(&self) -> String {
        format!("{}:{}", self.user_id, self.transaction_id)
    }

    fn decode(p: &str) -> Option<Self> {
        let (u, t) = p.split_once(':')?;
        Some(WalletEvent { user_id: u.parse().ok()?, transaction_id: t.parse().ok()? })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_round_trip() {
        let ev = WalletEvent { user_id: 7, transaction_id: 42 };
        assert_eq!(WalletEvent::decode(&ev.encode()), Some(ev));
        assert_eq!(WalletEvent::decode("7"), None);
        assert_eq!(WalletEvent::decode("x:1"), None);
    }
}
