//! Users, refresh tokens and gateway settings (e.g. the generated JWT secret).
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    Name,
    Email,
    Phone,
    Avatar,
    PasswordHash,
    Role,
    IsActive,
    TokenVersion,
    Balance,
    TotalTopUp,
    TotalSpent,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum RefreshTokens {
    Table,
    Id,
    UserId,
    FamilyId,
    TokenHash,
    ExpiresAt,
    RotatedAt,
    RevokedAt,
    CreatedAt,
}

#[derive(DeriveIden)]
enum AppSettings {
    Table,
    Key,
    Value,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Users::Table)
                    .if_not_exists()
                    .col(big_pk_auto(Users::Id))
                    .col(string_len(Users::Name, 100))
                    .col(string_len_uniq(Users::Email, 254))
                    .col(string_len_null(Users::Phone, 20).unique_key())
                    .col(string_len_null(Users::Avatar, 500))
                    .col(string(Users::PasswordHash))
                    .col(string_len(Users::Role, 20).default("USER"))
                    .col(boolean(Users::IsActive).default(true))
                    .col(integer(Users::TokenVersion).default(0))
                    // Wallet columns: whole IDR. The balance may only be changed through the
                    // billing service's conditional updates.
                    .col(big_integer(Users::Balance).default(0))
                    .col(big_integer(Users::TotalTopUp).default(0))
                    .col(big_integer(Users::TotalSpent).default(0))
                    .col(timestamp_with_time_zone(Users::CreatedAt))
                    .col(timestamp_with_time_zone(Users::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_users_role_active")
                    .table(Users::Table)
                    .col(Users::Role)
                    .col(Users::IsActive)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(RefreshTokens::Table)
                    .if_not_exists()
                    .col(big_pk_auto(RefreshTokens::Id))
                    .col(big_integer(RefreshTokens::UserId))
                    .col(string_len(RefreshTokens::FamilyId, 64))
                    .col(string_len_uniq(RefreshTokens::TokenHash, 64))
                    .col(timestamp_with_time_zone(RefreshTokens::ExpiresAt))
                    .col(timestamp_with_time_zone_null(RefreshTokens::RotatedAt))
                    .col(timestamp_with_time_zone_null(RefreshTokens::RevokedAt))
                    .col(timestamp_with_time_zone(RefreshTokens::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_refresh_tokens_user")
                            .from(RefreshTokens::Table, RefreshTokens::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        for (name, col) in
            [("idx_refresh_tokens_user", RefreshTokens::UserId), ("idx_refresh_tokens_family", RefreshTokens::FamilyId)]
        {
            manager.create_index(Index::create().name(name).table(RefreshTokens::Table).col(col).to_owned()).await?;
        }

        manager
            .create_table(
                Table::create()
                    .table(AppSettings::Table)
                    .if_not_exists()
                    .col(string_len(AppSettings::Key, 100).primary_key())
                    .col(text(AppSettings::Value))
                    .col(timestamp_with_time_zone(AppSettings::UpdatedAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(AppSettings::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(RefreshTokens::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(Users::Table).to_owned()).await
    }
}
