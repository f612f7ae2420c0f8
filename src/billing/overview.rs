//! Admin views of money held: every wallet, sorted and filtered, with the total credit
//! outstanding (what the platform owes in unspent balances), and the users whose balance will
//! not cover the renewals due soon. Aggregates are computed by the database, never by loading
//! every row.
use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, EntityTrait, Order, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
    sea_query::{Expr, ExprTrait, Query},
};

use crate::{
    error::{AppError, AppResult},
    pagination::{Page, PageArgs},
    subscriptions::{SubscriptionStatus, entity::subscription},
    users::{entity as users, service::search_condition},
};

#[derive(Copy, Clone, Debug, PartialEq, Eq, async_graphql::Enum)]
pub enum WalletSort {
    Balance,
    TotalTopUp,
    TotalSpent,
    CreatedAt,
}

pub use crate::pagination::SortDirection as Direction;

#[derive(Default)]
pub struct WalletFilter {
    pub min_balance: Option<i64>,
    pub max_balance: Option<i64>,
    pub search: Option<String>,
}

pub struct WalletPage {
    pub page: Page<users::Model>,
    /// The sum of the balances of every user the filter matches (all pages).
    pub credit_outstanding: i64,
}

impl WalletSort {
    fn column(self) -> users::Column {
        match self {
            Self::Balance => users::Column::Balance,
            Self::TotalTopUp => users::Column::TotalTopUp,
            Self::TotalSpent => users::Column::TotalSpent,
            Self::CreatedAt => users::Column::CreatedAt,
        }
    }

    fn value_of(self, u: &users::Model) -> sea_orm::Value {
        match self {
            Self::Balance => u.balance.into(),
            Self::TotalTopUp => u.total_top_up.into(),
            Self::TotalSpent => u.total_spent.into(),
            Self::CreatedAt => u.created_at.into(),
        }
    }
}

/// Wallets sorted by `sort`, ties broken by id in the same direction. The cursor is the id of
/// the last user seen; the next page starts after that user's current position (keyset on
/// (value, id)), so a page never repeats or skips a row that did not move meanwhile.
pub async fn wallet_overview(
    db: &impl ConnectionTrait,
    filter: &WalletFilter,
    sort: WalletSort,
    direction: Direction,
    args: PageArgs,
) -> AppResult<WalletPage> {
    if let (Some(min), Some(max)) = (filter.min_balance, filter.max_balance)
        && min > max
    {
        return Err(AppError::bad_input("maxBalance", "maxBalance must not be below minBalance"));
    }
    let mut q = users::Entity::find();
    if let Some(c) = search_condition(filter.search.as_deref())? {
        q = q.filter(c);
    }
    if let Some(min) = filter.min_balance {
        q = q.filter(users::Column::Balance.gte(min));
    }
    if let Some(max) = filter.max_balance {
        q = q.filter(users::Column::Balance.lte(max));
    }
    let total = q.clone().count(db).await?;
    // SUM of a BIGINT is NUMERIC on PostgreSQL: cast back so both backends answer an i64.
    let credit_outstanding: Option<i64> = q
        .clone()
        .select_only()
        .expr_as(Expr::cust("CAST(COALESCE(SUM(balance), 0) AS BIGINT)"), "outstanding")
        .into_tuple()
        .one(db)
        .await?;
    let column = sort.column();
    if let Some(after) = args.after {
        let cursor = users::Entity::find_by_id(after)
            .one(db)
            .await?
            .ok_or_else(|| AppError::bad_input("after", "after is not a valid cursor"))?;
        let value = sort.value_of(&cursor);
        let (beyond, id_beyond) = match direction {
            Direction::Asc => (column.gt(value.clone()), users::Column::Id.gt(after)),
            Direction::Desc => (column.lt(value.clone()), users::Column::Id.lt(after)),
        };
        q = q.filter(Condition::any().add(beyond).add(Condition::all().add(column.eq(value)).add(id_beyond)));
    }
    let order = direction.order();
    let rows =
        q.order_by(column, order.clone()).order_by(users::Column::Id, order).limit(args.first + 1).all(db).await?;
    Ok(WalletPage { page: Page::new(rows, args, total), credit_outstanding: credit_outstanding.unwrap_or(0) })
}

/// A user whose balance is below what their renewals due in the window will charge.
pub struct LowBalance {
    pub user: users::Model,
    /// The sum of the monthly prices of those renewals.
    pub due: i64,
    pub renewals: i64,
    pub next_renewal_at: DateTime<Utc>,
}

impl LowBalance {
    pub fn shortfall(&self) -> i64 {
        self.due - self.user.balance
    }
}

pub const MAX_LOW_BALANCE_DAYS: i32 = 366;

/// Users whose balance is below the sum of their ACTIVE, auto-renewing, paid subscriptions
/// whose next charge falls before `now + days` (already overdue ones, in a grace period,
/// included: they will be charged too). One grouped statement finds them, largest shortfall
/// first; a second loads those users.
pub async fn low_balance_users(
    db: &impl ConnectionTrait,
    now: DateTime<Utc>,
    days: i32,
    limit: u64,
) -> AppResult<Vec<LowBalance>> {
    if !(1..=MAX_LOW_BALANCE_DAYS).contains(&days) {
        return Err(AppError::bad_input("days", format!("days must be between 1 and {MAX_LOW_BALANCE_DAYS}")));
    }
    let until = now + Duration::days(i64::from(days));
    let (subs, user) = (subscription::Entity, users::Entity);
    let due_sum = "CAST(SUM(subscriptions.monthly_price) AS BIGINT)";
    let stmt = Query::select()
        .column((subs, subscription::Column::UserId))
        .expr_as(Expr::cust(due_sum), "due")
        .expr_as(Expr::cust("CAST(COUNT(*) AS BIGINT)"), "renewals")
        .expr_as(Expr::col((subs, subscription::Column::NextBillingAt)).min(), "next_renewal_at")
        .from(subs)
        .inner_join(user, Expr::col((user, users::Column::Id)).equals((subs, subscription::Column::UserId)))
        .and_where(Expr::col((subs, subscription::Column::Status)).eq(SubscriptionStatus::Active.as_str()))
        .and_where(Expr::col((subs, subscription::Column::AutoRenew)).eq(true))
        .and_where(Expr::col((subs, subscription::Column::MonthlyPrice)).gt(0))
        .and_where(Expr::col((subs, subscription::Column::NextBillingAt)).lte(until))
        .group_by_col((subs, subscription::Column::UserId))
        .group_by_col((user, users::Column::Balance))
        .and_having(Expr::col((user, users::Column::Balance)).lt(Expr::cust(due_sum)))
        .order_by_expr(Expr::cust(format!("{due_sum} - users.balance")), Order::Desc)
        .order_by((subs, subscription::Column::UserId), Order::Asc)
        .limit(limit)
        .to_owned();
    let mut found = Vec::new();
    for row in db.query_all(&stmt).await? {
        let user_id: i64 = row.try_get("", "user_id")?;
        let due: i64 = row.try_get("", "due")?;
        let renewals: i64 = row.try_get("", "renewals")?;
        let next: DateTime<Utc> = row.try_get("", "next_renewal_at")?;
        found.push((user_id, due, renewals, next));
    }
    let mut by_id: HashMap<i64, users::Model> = users::Entity::find()
        .filter(users::Column::Id.is_in(found.iter().map(|f| f.0)))
        .all(db)
        .await?
        .into_iter()
        .map(|u| (u.id, u))
        .collect();
    Ok(found
        .into_iter()
        .filter_map(|(id, due, renewals, next_renewal_at)| {
            by_id.remove(&id).map(|user| LowBalance { user, due, renewals, next_renewal_at })
        })
        .collect())
}
