//! Invitations: an administrator creates an account without a password and hands the user a
//! single-use token; `acceptInvitation` sets the first password. Only the SHA-256 of the token
//! is stored, so a copy of the database does not let anyone take over an invited account.
use chrono::{DateTime, Duration, Utc};
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set, sea_query::Expr};
use sha2::{Digest, Sha256};

use crate::error::{AppError, AppResult};

/// How long an invitation token can be used. A week covers a weekend and a slow inbox; longer
/// leaves a bearer secret lying around.
pub const INVITATION_TTL: Duration = Duration::days(7);

pub mod entity {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "user_invitations")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub user_id: i64,
        /// Hex SHA-256 of the token; the token itself is only ever in the admin's answer.
        #[sea_orm(unique)]
        pub token_hash: String,
        pub expires_at: DateTimeUtc,
        /// Set once, by the conditional update that redeems it.
        pub accepted_at: Option<DateTimeUtc>,
        pub created_by: i64,
        pub created_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.trim().as_bytes()))
}

/// A new invitation for `user_id`: returns the token (shown once) and its expiry.
pub async fn create(
    db: &impl ConnectionTrait,
    user_id: i64,
    admin_id: i64,
    now: DateTime<Utc>,
) -> AppResult<(String, DateTime<Utc>)> {
    let token = hex::encode(rand::random::<[u8; 32]>());
    let expires_at = now + INVITATION_TTL;
    entity::ActiveModel {
        user_id: Set(user_id),
        token_hash: Set(hash_token(&token)),
        expires_at: Set(expires_at),
        accepted_at: Set(None),
        created_by: Set(admin_id),
        created_at: Set(now),
        ..Default::default()
    }
    .insert(db)
    .await?;
    Ok((token, expires_at))
}

pub fn unusable() -> AppError {
    AppError::bad_input("token", "the invitation is invalid, already used or expired")
}

/// Marks the invitation accepted and returns its user id. A conditional update, so two
/// concurrent redemptions cannot both succeed; unknown, used and expired tokens get one answer.
pub async fn redeem(db: &impl ConnectionTrait, token: &str, now: DateTime<Utc>) -> AppResult<i64> {
    let hash = hash_token(token);
    let Some(row) = entity::Entity::find().filter(entity::Column::TokenHash.eq(&hash)).one(db).await? else {
        return Err(unusable());
    };
    let updated = entity::Entity::update_many()
        .col_expr(entity::Column::AcceptedAt, Expr::value(now))
        .filter(entity::Column::Id.eq(row.id))
        .filter(entity::Column::AcceptedAt.is_null())
        .filter(entity::Column::ExpiresAt.gt(now))
        .exec(db)
        .await?;
    if updated.rows_affected != 1 {
        return Err(unusable());
    }
    Ok(row.user_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_stored_as_hashes() {
        let h = hash_token("abc");
        assert_eq!(h.len(), 64);
        assert_ne!(h, "abc");
        assert_eq!(h, hash_token(" abc "), "surrounding spaces from a paste do not matter");
    }
}
