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
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
