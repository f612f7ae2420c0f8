//! Request-scoped batch loading for every catalog relation: one SQL statement per relation and
//! nesting level, however many rows the level has.
use std::{collections::HashMap, sync::Arc};

use async_graphql::dataloader::{DataLoader, Loader};
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder};

use super::entity::{category, plan, service};
use crate::db::Db;

pub struct CatalogLoader {
    db: Db,
}

pub fn new(db: &Db) -> DataLoader<CatalogLoader> {
    DataLoader::new(CatalogLoader { db: db.clone() }, tokio::spawn)
}

/// Visible (active and public) services of a category, in catalog order.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ServicesOfCategory(pub i64);
/// Active plans of a service, cheapest first.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PlansOfService(pub i64);
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ServiceId(pub i64);
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CategoryId(pub i64);
/// Any plan, active or not (a subscription keeps its plan after deactivation).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PlanId(pub i64);

type LoadResult<K, V> = Result<HashMap<K, V>, Arc<DbErr>>;

/// Active plans of the given services, cheapest first, grouped by service (every id present).
pub async fn active_plans_of(
    db: &impl ConnectionTrait,
    service_ids: &[i64],
) -> Result<HashMap<i64, Arc<Vec<plan::Model>>>, DbErr> {
    let rows = plan::Entity::find()
        .filter(plan::Column::ServiceId.is_in(service_ids.iter().copied()))
        .filter(plan::Column::IsActive.eq(true))
        .order_by_asc(plan::Column::MonthlyPrice)
        .order_by_asc(plan::Column::SortOrder)
        .order_by_asc(plan::Column::Id)
        .all(db)
        .await?;
    let mut grouped: HashMap<i64, Vec<plan::Model>> = service_ids.iter().map(|id| (*id, Vec::new())).collect();
    for p in rows {
        grouped.entry(p.service_id).or_default().push(p);
    }
    Ok(grouped.into_iter().map(|(k, v)| (k, Arc::new(v))).collect())
}

/// Services of a category arrive with their plans: the next nesting level is fetched in the same
/// batch, so a whole catalog costs one statement per level regardless of timing.
impl Loader<ServicesOfCategory> for CatalogLoader {
    type Value = Vec<(service::Model, Arc<Vec<plan::Model>>)>;
    type Error = Arc<DbErr>;

    async fn load(&self, keys: &[ServicesOfCategory]) -> LoadResult<ServicesOfCategory, Self::Value> {
        let rows = super::service::visible_services()
            .filter(service::Column::CategoryId.is_in(keys.iter().map(|k| k.0)))
            .all(&self.db.conn)
            .await?;
        let ids: Vec<i64> = rows.iter().map(|s| s.id).collect();
        let mut plans = if ids.is_empty() { HashMap::new() } else { active_plans_of(&self.db.conn, &ids).await? };
        let mut out: HashMap<_, Vec<_>> = keys.iter().map(|k| (*k, Vec::new())).collect();
        for s in rows {
            let p = plans.remove(&s.id).unwrap_or_default();
            out.entry(ServicesOfCategory(s.category_id)).or_default().push((s, p));
        }
        Ok(out)
    }
}

impl Loader<PlansOfService> for CatalogLoader {
    type Value = Arc<Vec<plan::Model>>;
    type Error = Arc<DbErr>;

    async fn load(&self, keys: &[PlansOfService]) -> LoadResult<PlansOfService, Self::Value> {
        let ids: Vec<i64> = keys.iter().map(|k| k.0).collect();
        Ok(active_plans_of(&self.db.conn, &ids).await?.into_iter().map(|(k, v)| (PlansOfService(k), v)).collect())
    }
}

impl Loader<ServiceId> for CatalogLoader {
    type Value = service::Model;
    type Error = Arc<DbErr>;

    async fn load(&self, keys: &[ServiceId]) -> LoadResult<ServiceId, Self::Value> {
        let rows = service::Entity::find()
            .filter(service::Column::Id.is_in(keys.iter().map(|k| k.0)))
            .all(&self.db.conn)
            .await?;
        Ok(rows.into_iter().map(|s| (ServiceId(s.id), s)).collect())
    }
}

impl Loader<PlanId> for CatalogLoader {
    type Value = plan::Model;
    type Error = Arc<DbErr>;

    async fn load(&self, keys: &[PlanId]) -> LoadResult<PlanId, Self::Value> {
        let rows =
            plan::Entity::find().filter(plan::Column::Id.is_in(keys.iter().map(|k| k.0))).all(&self.db.conn).await?;
        Ok(rows.into_iter().map(|p| (PlanId(p.id), p)).collect())
    }
}

impl Loader<CategoryId> for CatalogLoader {
    type Value = category::Model;
    type Error = Arc<DbErr>;

    async fn load(&self, keys: &[CategoryId]) -> LoadResult<CategoryId, Self::Value> {
        let rows = category::Entity::find()
            .filter(category::Column::Id.is_in(keys.iter().map(|k| k.0)))
            .all(&self.db.conn)
            .await?;
        Ok(rows.into_iter().map(|c| (CategoryId(c.id), c)).collect())
    }
}
