//! Gateway-wide settings kept in the database (currently the generated JWT signing secret).
use sea_orm::{ConnectionTrait, EntityTrait, Set, sea_query::OnConflict};

use crate::{db::Db, error::AppResult};

pub mod entity {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "app_settings")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub key: String,
        pub value: String,
        pub updated_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

const JWT_SECRET_KEY: &str = "jwt_secret";

/// Returns the stored value for `key`, inserting `make()` first if there is none. Concurrent
/// first starts agree on one value: the insert does nothing on conflict and everyone re-reads.
pub async fn get_or_insert(
    db: &impl ConnectionTrait,
    key: &str,
    make: impl FnOnce() -> String,
) -> AppResult<(String, bool)> {
    if let Some(row) = entity::Entity::find_by_id(key.to_string()).one(db).await? {
        return Ok((row.value, false));
    }
    entity::Entity::insert(entity::ActiveModel {
        key: Set(key.to_string()),
        value: Set(make()),
        updated_at: Set(chrono::Utc::now()),
    })
    .on_conflict(OnConflict::column(entity::Column::Key).do_nothing().to_owned())
    .exec_without_returning(db)
    .await?;
    let row = entity::Entity::find_by_id(key.to_string())
        .one(db)
        .await?
        .ok_or_else(|| crate::error::AppError::internal(anyhow::anyhow!("setting {key} vanished")))?;
    Ok((row.value, true))
}

/// The JWT signing secret: from config when set, otherwise generated once and kept in the
/// database so tokens survive restarts.
pub async fn jwt_secret(db: &Db, configured: Option<&str>) -> AppResult<Vec<u8>> {
    if let Some(s) = configured {
        return Ok(s.as_bytes().to_vec());
    }
    let (secret, created) = get_or_insert(&db.conn, JWT_SECRET_KEY, || hex::encode(rand::random::<[u8; 32]>())).await?;
    if created {
        tracing::info!("JWT_SECRET is not set: generated a signing secret and stored it in the database");
    } else {
        tracing::info!("JWT_SECRET is not set: using the signing secret stored in the database");
    }
    Ok(secret.into_bytes())
}
