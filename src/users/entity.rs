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
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
