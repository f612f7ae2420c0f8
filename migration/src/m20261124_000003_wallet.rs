//! The wallet ledger: one row per money movement (or top-up intent), plus the postings table
//! whose primary key makes each credit or reversal of a payment happen at most once.
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Transactions {
    Table,
    Id,
    UserId,
    Type,
    Status,
    Amount,
    BalanceBefore,
    BalanceAfter,
    PaymentMethod,
    Description,
    SubscriptionId,
    Metadata,
    ProcessedBy,
    IdempotencyKey,
    OrderId,
    SnapToken,
    RedirectUrl,
    ExpiresAt,
    ProviderStatus,
    CreatedAt,
    UpdatedAt,
    CompletedAt,
}

#[derive(DeriveIden)]
enum LedgerPostings {
    Table,
    Key,
    TransactionId,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Transactions::Table)
                    .if_not_exists()
                    // AUTOINCREMENT on SQLite, BIGSERIAL on PostgreSQL: ids are never reused, so
                    // the reference TXMP-<id + 100> is unique and increasing.
                    .col(big_pk_auto(Transactions::Id))
                    .col(big_integer(Transactions::UserId))
                    .col(string_len(Transactions::Type, 20))
                    .col(string_len(Transactions::Status, 20))
                    .col(big_integer(Transactions::Amount))
                    .col(big_integer(Transactions::BalanceBefore))
                    .col(big_integer(Transactions::BalanceAfter))
                    .col(string_len_null(Transactions::PaymentMethod, 20))
                    .col(string_len(Transactions::Description, 500))
                    .col(big_integer_null(Transactions::SubscriptionId))
                    .col(json_null(Transactions::Metadata))
                    .col(big_integer_null(Transactions::ProcessedBy))
                    .col(string_len_null(Transactions::IdempotencyKey, 100).unique_key())
                    .col(string_len_null(Transactions::OrderId, 50).unique_key())
                    .col(string_len_null(Transactions::SnapToken, 100))
                    .col(string_len_null(Transactions::RedirectUrl, 500))
                    .col(timestamp_with_time_zone_null(Transactions::ExpiresAt))
                    .col(string_len_null(Transactions::ProviderStatus, 40))
                    .col(timestamp_with_time_zone(Transactions::CreatedAt))
                    .col(timestamp_with_time_zone(Transactions::UpdatedAt))
                    .col(timestamp_with_time_zone_null(Transactions::CompletedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_transactions_user")
                            .from(Transactions::Table, Transactions::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_transactions_user")
                    .table(Transactions::Table)
                    .col(Transactions::UserId)
                    .col(Transactions::Id)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_transactions_status_created")
                    .table(Transactions::Table)
                    .col(Transactions::Status)
                    .col(Transactions::CreatedAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(LedgerPostings::Table)
                    .if_not_exists()
                    .col(string_len(LedgerPostings::Key, 100).primary_key())
                    .col(big_integer(LedgerPostings::TransactionId))
                    .col(timestamp_with_time_zone(LedgerPostings::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_ledger_postings_transaction")
                            .from(LedgerPostings::Table, LedgerPostings::TransactionId)
                            .to(Transactions::Table, Transactions::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(LedgerPostings::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(Transactions::Table).to_owned()).await
    }
}
