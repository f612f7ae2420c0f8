//! Instance reads scoped by ownership (through the owning subscription).
use sea_orm::{ConnectionTrait, EntityTrait};

use super::entity as instance;
use crate::{
    auth::Viewer,
    error::{AppError, AppResult},
    subscriptions::service as subscriptions,
};

/// The instance if the viewer owns its subscription or is an administrator; NOT_FOUND otherwise,
/// exactly as for ids that do not exist.
pub async fn visible(db: &impl ConnectionTrait, viewer: Viewer, id: i64) -> AppResult<instance::Model> {
    let inst = instance::Entity::find_by_id(id).one(db).await?.ok_or(AppError::NotFound("instance"))?;
    match subscriptions::visible(db, viewer, inst.subscription_id).await {
        Ok(_) => Ok(inst),
        Err(AppError::NotFound(_)) => Err(AppError::NotFound("instance")),
        Err(e) => Err(e),
    }
}
