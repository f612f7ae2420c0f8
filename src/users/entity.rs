use sea_orm::entity::prelude::*;

use super::Role;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "users")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub name: String,
    #[sea_orm(unique)]
    pub email: String,
    pub phone: Option<String>,
    pub avatar: Option<String>,
    pub password_hash: String,
    pub role: Role,
    pub is_active: bool,
    /// Bumped to invalidate every access token issued before (logoutAll, password change).
    pub token_version: i32,
    pub balance: i64,
    pub total_top_up: i64,
    pub total_spent: i64,
    /// Set for an account created with a temporary password; cleared by changePassword. Clients
    /// should send the user to a password change first (the API does not block other calls).
    pub must_change_password: bool,
    /// When an administrator replaced the personal data (see `users::admin::anonymize`).
    pub anonymized_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
