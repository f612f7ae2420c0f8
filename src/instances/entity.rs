use sea_orm::entity::prelude::*;

use super::InstanceStatus;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "service_instances")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub subscription_id: i64,
    pub name: String,
    #[sea_orm(unique)]
    pub subdomain: String,
    pub status: InstanceStatus,
    pub health_status: Option<String>,
    pub last_error: Option<String>,
    pub namespace: String,
    pub deployment_name: String,
    pub public_url: Option<String>,
    pub last_started_at: Option<DateTimeUtc>,
    pub last_stopped_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    /// Bumped by every status change: writers update `WHERE version = <what they read>`.
    pub version: i32,
    /// The owner stopped it: reactivation and the reconciler keep it at zero replicas.
    pub owner_stopped: bool,
    /// `host:port` of a TCP service.
    pub endpoint: Option<String>,
    /// When the current (re-)provisioning began; the provision timeout counts from here.
    pub provision_started_at: Option<DateTimeUtc>,
    pub status_changed_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
