//! Request-scoped batch loading for a subscription's relations.
use std::{collections::HashMap, sync::Arc};

use async_graphql::dataloader::{DataLoader, Loader};
use sea_orm::{ColumnTrait, DbErr, EntityTrait, QueryFilter, QueryOrder};

use super::entity::subscription;
use crate::{
    billing::entity as transactions, coupons::entity::coupon, db::Db, instances::entity as instance,
    users::entity as users,
};

pub struct SubscriptionLoader {
    db: Db,
}

pub fn new(db: &Db) -> DataLoader<SubscriptionLoader> {
    DataLoader::new(SubscriptionLoader { db: db.clone() }, tokio::spawn)
}

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct InstancesOf(pub i64);
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TransactionsOf(pub i64);
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct UserId(pub i64);
/// A subscription by id, unchecked: the caller decides who may see it.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SubscriptionId(pub i64);
/// A coupon's code by coupon id (a subscription's checkout coupon).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CouponCode(pub i64);
/// A ledger row by id, unchecked: the caller decides who may see it.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TransactionId(pub i64);

type LoadResult<K, V> = Result<HashMap<K, V>, Arc<DbErr>>;

fn group<K: std::hash::Hash + Eq + Copy, V>(keys: &[K], rows: Vec<V>, key: impl Fn(&V) -> K) -> HashMap<K, Vec<V>> {
    let mut out: HashMap<K, Vec<V>> = keys.iter().map(|k| (*k, Vec::new())).collect();
    for r in rows {
        out.entry(key(&r)).or_default().push(r);
    }
    out
}

impl Loader<InstancesOf> for SubscriptionLoader {
    type Value = Vec<instance::Model>;
    type Error = Arc<DbErr>;

    async fn load(&self, keys: &[InstancesOf]) -> LoadResult<InstancesOf, Self::Value> {
        let rows = instance::Entity::find()
            .filter(instance::Column::SubscriptionId.is_in(keys.iter().map(|k| k.0)))
            .order_by_asc(instance::Column::Id)
            .all(&self.db.conn)
            .await?;
        Ok(group(keys, rows, |r| InstancesOf(r.subscription_id)))
    }
}

impl Loader<TransactionsOf> for SubscriptionLoader {
    type Value = Vec<transactions::Model>;
    type Error = Arc<DbErr>;

    async fn load(&self, keys: &[TransactionsOf]) -> LoadResult<TransactionsOf, Self::Value> {
        let rows = transactions::Entity::find()
            .filter(transactions::Column::SubscriptionId.is_in(keys.iter().map(|k| k.0)))
            .order_by_asc(transactions::Column::Id)
            .all(&self.db.conn)
            .await?;
        Ok(group(keys, rows, |r| TransactionsOf(r.subscription_id.unwrap_or_default())))
    }
}

impl Loader<UserId> for SubscriptionLoader {
    type Value = users::Model;
    type Error = Arc<DbErr>;

    async fn load(&self, keys: &[UserId]) -> LoadResult<UserId, Self::Value> {
        let rows =
            users::Entity::find().filter(users::Column::Id.is_in(keys.iter().map(|k| k.0))).all(&self.db.conn).await?;
        Ok(rows.into_iter().map(|u| (UserId(u.id), u)).collect())
    }
}

impl Loader<SubscriptionId> for SubscriptionLoader {
    type Value = subscription::Model;
    type Error = Arc<DbErr>;

    async fn load(&self, keys: &[SubscriptionId]) -> LoadResult<SubscriptionId, Self::Value> {
        let rows = subscription::Entity::find()
            .filter(subscription::Column::Id.is_in(keys.iter().map(|k| k.0)))
            .all(&self.db.conn)
            .await?;
        Ok(rows.into_iter().map(|s| (SubscriptionId(s.id), s)).collect())
    }
}

impl Loader<CouponCode> for SubscriptionLoader {
    type Value = String;
    type Error = Arc<DbErr>;

    async fn load(&self, keys: &[CouponCode]) -> LoadResult<CouponCode, Self::Value> {
        let rows = coupon::Entity::find()
            .filter(coupon::Column::Id.is_in(keys.iter().map(|k| k.0)))
            .all(&self.db.conn)
            .await?;
        Ok(rows.into_iter().map(|c| (CouponCode(c.id), c.code)).collect())
    }
}

impl Loader<TransactionId> for SubscriptionLoader {
    type Value = transactions::Model;
    type Error = Arc<DbErr>;

    async fn load(&self, keys: &[TransactionId]) -> LoadResult<TransactionId, Self::Value> {
        let rows = transactions::Entity::find()
            .filter(transactions::Column::Id.is_in(keys.iter().map(|k| k.0)))
            .all(&self.db.conn)
            .await?;
        Ok(rows.into_iter().map(|t| (TransactionId(t.id), t)).collect())
    }
}
