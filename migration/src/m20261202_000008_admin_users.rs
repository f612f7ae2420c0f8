//! Admin user operations: invitations (a single-use token, stored hashed, that lets a user set
//! their first password), the flag that asks a user to replace a temporary password, and the
//! time an account was anonymized (its ledger and subscriptions stay; its personal data goes).
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    MustChangePassword,
    AnonymizedAt,
}

#[derive(DeriveIden)]
enum UserInvitations {
    Table,
    Id,
    UserId,
    TokenHash,
    ExpiresAt,
    AcceptedAt,
    CreatedBy,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite's ALTER TABLE adds one at a time.
        manager
            .alter_table(
                Table::alter()
                    .table(Users::Table)
                    .add_column(boolean(Users::MustChangePassword).default(false))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Users::Table)
                    .add_column(timestamp_with_time_zone_null(Users::AnonymizedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(UserInvitations::Table)
                    .if_not_exists()
                    .col(big_pk_auto(UserInvitations::Id))
                    .col(big_integer(UserInvitations::UserId))
                    .col(string_len_uniq(UserInvitations::TokenHash, 64))
                    .col(timestamp_with_time_zone(UserInvitations::ExpiresAt))
                    .col(timestamp_with_time_zone_null(UserInvitations::AcceptedAt))
                    .col(big_integer(UserInvitations::CreatedBy))
                    .col(timestamp_with_time_zone(UserInvitations::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_user_invitations_user")
                            .from(UserInvitations::Table, UserInvitations::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_user_invitations_user")
                    .table(UserInvitations::Table)
                    .col(UserInvitations::UserId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(UserInvitations::Table).if_exists().to_owned()).await?;
        manager.alter_table(Table::alter().table(Users::Table).drop_column(Users::AnonymizedAt).to_owned()).await?;
        manager.alter_table(Table::alter().table(Users::Table).drop_column(Users::MustChangePassword).to_owned()).await
    }
}
