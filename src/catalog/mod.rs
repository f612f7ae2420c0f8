//! The service catalog: categories, services and priced plans with quotas.
pub mod cache;
pub mod entity;
pub mod graphql;
pub mod input;
pub mod loader;
pub mod service;
pub mod splice;

use sea_orm::{DeriveActiveEnum, EnumIter, sea_query::StringLen};

/// Plan tiers, lowest first; upgrades must go strictly up this order.
#[derive(
    Copy,
    Clone,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    EnumIter,
    DeriveActiveEnum,
    async_graphql::Enum,
    serde::Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(20))")]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PlanType {
    #[sea_orm(string_value = "FREE")]
    Free,
    #[sea_orm(string_value = "BASIC")]
    Basic,
    #[sea_orm(string_value = "PRO")]
    Pro,
    #[sea_orm(string_value = "PREMIUM")]
    Premium,
    #[sea_orm(string_value = "ENTERPRISE")]
    Enterprise,
}

impl PlanType {
    pub fn rank(self) -> u8 {
        self as u8
    }
}

/// How clients reach a service: HTTP services get an Ingress at their subdomain, TCP services
/// (databases) a Service of the configured type and an `endpoint`.
#[derive(
    Copy, Clone, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, async_graphql::Enum, serde::Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(10))")]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ServiceProtocol {
    #[sea_orm(string_value = "HTTP")]
    Http,
    #[sea_orm(string_value = "TCP")]
    Tcp,
}
