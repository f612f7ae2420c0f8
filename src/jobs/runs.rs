//! The last pass of each job, in the database so that every replica (and the admin dashboard
//! behind any of them) sees the same thing; the in-process metrics only know their own runs.
use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, EntityTrait, QueryOrder, Statement};

use crate::error::AppResult;

pub mod entity {
    use sea_orm::entity::prelude::*;

    /// One row per job: its latest pass, whichever replica ran it.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "job_runs")]
    pub struct Model {
        /// `BillingJob::label()`.
        #[sea_orm(primary_key, auto_increment = false)]
        pub job: String,
        pub started_at: DateTimeUtc,
        pub finished_at: DateTimeUtc,
        /// False when the pass itself failed (not when single items failed).
        pub ok: bool,
        pub processed: i32,
        pub succeeded: i32,
        pub failed: i32,
        /// Why the pass failed, when it did.
        pub error: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub struct Run {
    pub job: &'static str,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    /// (processed, succeeded, failed) of a pass that completed; the error otherwise.
    pub result: Result<(usize, usize, usize), String>,
}

fn count(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// Records `run` as the job's last pass, unless a pass that started later is already recorded
/// (two replicas finishing out of order).
pub async fn record(db: &impl ConnectionTrait, run: Run) -> AppResult<()> {
    let (ok, (processed, succeeded, failed), error) = match run.result {
        Ok(n) => (true, n, None),
        Err(e) => (false, (0, 0, 0), Some(e.chars().take(1_000).collect::<String>())),
    };
    let sql = "INSERT INTO job_runs (job, started_at, finished_at, ok, processed, succeeded, failed, error) \
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
               ON CONFLICT (job) DO UPDATE SET started_at = excluded.started_at, finished_at = excluded.finished_at, \
               ok = excluded.ok, processed = excluded.processed, succeeded = excluded.succeeded, \
               failed = excluded.failed, error = excluded.error \
               WHERE job_runs.started_at <= excluded.started_at";
    let values: Vec<sea_orm::Value> = vec![
        run.job.into(),
        run.started_at.into(),
        run.finished_at.into(),
        ok.into(),
        count(processed).into(),
        count(succeeded).into(),
        count(failed).into(),
        error.into(),
    ];
    db.execute_raw(Statement::from_sql_and_values(db.get_database_backend(), sql, values)).await?;
    Ok(())
}

/// Every job's last recorded pass.
pub async fn last_runs(db: &impl ConnectionTrait) -> AppResult<Vec<entity::Model>> {
    Ok(entity::Entity::find().order_by_asc(entity::Column::Job).all(db).await?)
}
