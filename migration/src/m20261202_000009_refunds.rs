//! Partial refunds of a charge: each charge counts what has been refunded of it, so a
//! conditional update (`refunded + amount <= amount`) can refuse refunding more than was
//! charged, and each refund names the charge it returns.
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Transactions {
    Table,
    RefundedAmount,
    RefundOf,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite alters one column per statement.
        manager
            .alter_table(
                Table::alter()
                    .table(Transactions::Table)
                    .add_column(big_integer(Transactions::RefundedAmount).default(0))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Transactions::Table)
                    .add_column(big_integer_null(Transactions::RefundOf))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_transactions_refund_of")
                    .table(Transactions::Table)
                    .col(Transactions::RefundOf)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(Index::drop().name("idx_transactions_refund_of").table(Transactions::Table).to_owned())
            .await?;
        for col in [Transactions::RefundOf, Transactions::RefundedAmount] {
            manager.alter_table(Table::alter().table(Transactions::Table).drop_column(col).to_owned()).await?;
        }
        Ok(())
    }
}
