//! Snapshot counts: subscriptions by status, instances by status and health.
use sea_orm::{ConnectionTrait, EntityTrait, QueryOrder, QuerySelect, sea_query::Expr};

use crate::{
    error::AppResult,
    instances::{InstanceStatus, entity as instance},
    subscriptions::{SubscriptionStatus, entity::subscription},
};

/// Every status with its count, zeros included, in declaration order.
pub async fn subscriptions_by_status(db: &impl ConnectionTrait) -> AppResult<Vec<(SubscriptionStatus, i64)>> {
    let rows: Vec<(SubscriptionStatus, i64)> = subscription::Entity::find()
        .select_only()
        .column(subscription::Column::Status)
        .column_as(Expr::cust("CAST(COUNT(*) AS BIGINT)"), "n")
        .group_by(subscription::Column::Status)
        .into_tuple()
        .all(db)
        .await?;
    Ok(<SubscriptionStatus as sea_orm::Iterable>::iter()
        .map(|s| (s, rows.iter().find(|(r, _)| *r == s).map_or(0, |(_, n)| *n)))
        .collect())
}

/// (status, health, count) for each combination that occurs; `health` is the last reported
/// health text, None when nothing was reported.
pub async fn instances_by_status(db: &impl ConnectionTrait) -> AppResult<Vec<(InstanceStatus, Option<String>, i64)>> {
    Ok(instance::Entity::find()
        .select_only()
        .column(instance::Column::Status)
        .column(instance::Column::HealthStatus)
        .column_as(Expr::cust("CAST(COUNT(*) AS BIGINT)"), "n")
        .group_by(instance::Column::Status)
        .group_by(instance::Column::HealthStatus)
        .order_by_asc(instance::Column::Status)
        .order_by_asc(instance::Column::HealthStatus)
        .into_tuple()
        .all(db)
        .await?)
}
