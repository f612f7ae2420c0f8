//! The users who spent the most credit in a range.
use chrono::{DateTime, Utc};
use sea_orm::ConnectionTrait;

use super::{
    period,
    sql::{CHARGES, Query, completed, int, list, lit},
};
use crate::{
    billing::TransactionType,
    error::{AppError, AppResult},
};

pub const MAX_FIRST: i32 = 100;

pub struct Spender {
    pub user_id: i64,
    pub name: String,
    pub email: String,
    /// Charges (first periods, upgrades, renewals) minus refunds completed in the range.
    pub spent: i64,
    pub charges: i64,
    pub refunds: i64,
}

/// The `first` users by credit spent in `[from, to)`, largest first (ties by user id); users
/// whose refunds cancel their charges (spent ≤ 0) are left out.
#[tracing::instrument(skip_all, err)]
pub async fn top_spenders(
    db: &impl ConnectionTrait,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    first: i32,
) -> AppResult<Vec<Spender>> {
    period::check_range(from, to)?;
    if !(1..=MAX_FIRST).contains(&first) {
        return Err(AppError::bad_input("first", format!("first must be between 1 and {MAX_FIRST}")));
    }
    let mut q = Query::default();
    let (lo, hi, limit) = (q.bind(from), q.bind(to), q.bind(i64::from(first)));
    let refund = lit(TransactionType::Refund);
    // The aggregate reads only the covering index (status, type, completed_at, amount, user_id…);
    // users are joined for the few rows that remain.
    let sql = format!(
        "WITH spent AS (SELECT t.user_id AS user_id, \
           CAST(SUM(CASE WHEN t.type = {refund} THEN 0 ELSE t.amount END) AS BIGINT) AS charges, \
           CAST(SUM(CASE WHEN t.type = {refund} THEN t.amount ELSE 0 END) AS BIGINT) AS refunds \
         FROM transactions t \
         WHERE t.status = {completed} AND t.completed_at >= {lo} AND t.completed_at < {hi} AND t.type IN ({kinds}) \
         GROUP BY t.user_id), \
         top AS (SELECT user_id, charges, refunds, charges - refunds AS spent FROM spent \
           WHERE charges - refunds > 0 ORDER BY charges - refunds DESC, user_id LIMIT {limit}) \
         SELECT top.user_id AS user_id, u.name AS name, u.email AS email, top.spent AS spent, \
           top.charges AS charges, top.refunds AS refunds \
         FROM top JOIN users u ON u.id = top.user_id ORDER BY top.spent DESC, top.user_id",
        completed = completed(),
        kinds = list(CHARGES.into_iter().chain([TransactionType::Refund])),
    );
    q.all(db, &sql)
        .await?
        .iter()
        .map(|r| {
            Ok(Spender {
                user_id: int(r, "user_id")?,
                name: r.try_get("", "name")?,
                email: r.try_get("", "email")?,
                spent: int(r, "spent")?,
                charges: int(r, "charges")?,
                refunds: int(r, "refunds")?,
            })
        })
        .collect()
}
