//! Analytics: indexes for the admin reports, and `job_runs` (each job's last pass, shared by
//! all replicas).
//!
//! The reports aggregate COMPLETED ledger rows of some kinds by `completed_at`: `revenue` sums
//! `amount` per bucket and `type` (and per service through `subscription_id`), `topSpenders`
//! per `user_id`. With `(status, type, completed_at)` leading, each (bucket, kind) sum is one
//! contiguous range of the index, and a range over a few kinds is a few ranges; the trailing
//! columns make it covering, so neither database reads the table's rows (1,000,000 ledger rows:
//! a 90-day range is ~250,000 index entries, not 250,000 random heap reads).
//! SQLite has no `INCLUDE`, so the covered columns are plain trailing key columns, and the same
//! statement serves both databases; PostgreSQL needs the visibility map current (autovacuum)
//! for its index-only scans. The old `(status, created_at)` index stays for the top-up lists.
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum JobRuns {
    Table,
    Job,
    StartedAt,
    FinishedAt,
    Ok,
    Processed,
    Succeeded,
    Failed,
    Error,
}

const INDEXES: [(&str, &str); 3] = [
    (
        "idx_transactions_completed_cover",
        "ON transactions (status, type, completed_at, amount, user_id, subscription_id)",
    ),
    // userGrowth's new users per bucket: a range of created_at.
    ("idx_users_created", "ON users (created_at)"),
    // billingStatus's failed renewals this month: one kind of event in a time range.
    ("idx_subscription_events_kind_created", "ON subscription_events (kind, created_at)"),
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        for (name, on) in INDEXES {
            db.execute_unprepared(&format!("CREATE INDEX IF NOT EXISTS {name} {on}")).await?;
        }
        manager
            .create_table(
                Table::create()
                    .table(JobRuns::Table)
                    .if_not_exists()
                    .col(string_len(JobRuns::Job, 40).primary_key())
                    .col(timestamp_with_time_zone(JobRuns::StartedAt))
                    .col(timestamp_with_time_zone(JobRuns::FinishedAt))
                    .col(boolean(JobRuns::Ok))
                    .col(integer(JobRuns::Processed))
                    .col(integer(JobRuns::Succeeded))
                    .col(integer(JobRuns::Failed))
                    .col(text_null(JobRuns::Error))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(JobRuns::Table).to_owned()).await?;
        let db = manager.get_connection();
        for (name, _) in INDEXES {
            db.execute_unprepared(&format!("DROP INDEX IF EXISTS {name}")).await?;
        }
        Ok(())
    }
}
