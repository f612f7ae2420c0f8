//! New notifications for `notificationAdded` subscribers, across replicas (see `crate::hub`),
//! and the wake-up call for this replica's email sender.
use std::sync::Arc;

use super::service::Notified;
use crate::hub::{Announcement, Hub};

/// "User `user_id` has new notifications" (`None`: everyone, after a broadcast). Subscribers
/// read their rows newer than the last one they sent, so a lost or merged event loses nothing
/// that the next one does not bring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NoticeEvent {
    pub user_id: Option<i64>,
}

impl Announcement for NoticeEvent {
    const CHANNEL: &'static str = "minispod_notifications";

    fn encode(&self) -> String {
        self.user_id.map_or_else(|| "*".into(), |u| u.to_string())
    }

    fn decode(p: &str) -> Option<Self> {
        if p == "*" {
            return Some(Self { user_id: None });
        }
        Some(Self { user_id: Some(p.parse().ok()?) })
    }
}

#[derive(Clone)]
pub struct Notifier {
    pub hub: Hub<NoticeEvent>,
    /// Woken when this replica queued an email, so it goes out without waiting for the poll.
    pub mail_queued: Arc<tokio::sync::Notify>,
}

impl Notifier {
    pub async fn start(db: &crate::db::Db) -> anyhow::Result<Self> {
        Ok(Self { hub: Hub::start(db).await?, mail_queued: Arc::new(tokio::sync::Notify::new()) })
    }

    /// Call after committing the transaction that recorded `notified`.
    pub async fn announce(&self, db: &crate::db::Db, notified: Option<Notified>) {
        let Some(n) = notified else { return };
        if n.email_queued {
            self.mail_queued.notify_one();
        }
        self.hub.publish(db, NoticeEvent { user_id: n.user_id }).await;
    }

    pub fn stop(&self) {
        self.hub.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_round_trip() {
        for ev in [NoticeEvent { user_id: Some(7) }, NoticeEvent { user_id: None }] {
            assert_eq!(NoticeEvent::decode(&ev.encode()), Some(ev));
        }
        assert_eq!(NoticeEvent::decode("x"), None);
    }
}
