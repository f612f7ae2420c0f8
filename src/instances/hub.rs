//! Instance status changes for `instanceUpdates` subscribers, across replicas (see `crate::hub`).
use crate::hub::{Announcement, Hub};

/// "Instance `instance_id` changed"; subscribers re-read the row and check who may see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InstanceEvent {
    pub instance_id: i64,
}

pub type InstanceHub = Hub<InstanceEvent>;

impl InstanceHub {
    /// Call after committing a change to the instance.
    pub async fn announce(&self, db: &crate::db::Db, instance_id: i64) {
        self.publish(db, InstanceEvent { instance_id }).await;
    }
}

impl Announcement for InstanceEvent {
    const CHANNEL: &'static str = "minispod_instances";

    fn encode(&self) -> String {
        self.instance_id.to_string()
    }

    fn decode(p: &str) -> Option<Self> {
        Some(InstanceEvent { instance_id: p.parse().ok()? })
    }
}
