//! Admin wallet views: thin resolvers over `billing::overview`.
use async_graphql::{
    Context, InputObject, Object, Result, SimpleObject,
    connection::{Connection, Edge},
};

use super::overview::{self, Direction, WalletFilter, WalletSort};
use crate::{
    graphql::ContextExt,
    pagination::{PageArgs, encode_cursor},
    users::{entity as users, graphql::User},
};

/// One user's wallet figures (whole IDR).
pub struct UserWallet(users::Model);

#[Object]
impl UserWallet {
    async fn user(&self) -> User {
        User(self.0.clone())
    }
    async fn balance(&self) -> i64 {
        self.0.balance
    }
    async fn total_top_up(&self) -> i64 {
        self.0.total_top_up
    }
    async fn total_spent(&self) -> i64 {
        self.0.total_spent
    }
}

#[derive(SimpleObject)]
pub struct WalletOverviewTotals {
    /// Users matching the filter.
    total_count: u64,
    /// Sum of the balances of every user matching the filter (all pages): credit the platform
    /// owes as service.
    total_credit_outstanding: i64,
}

pub type WalletConnection = Connection<String, UserWallet, WalletOverviewTotals>;

#[derive(InputObject, Default)]
pub struct WalletOverviewFilter {
    min_balance: Option<i64>,
    max_balance: Option<i64>,
    /// Name or email contains (case-insensitive).
    search: Option<String>,
}

#[derive(SimpleObject)]
pub struct LowBalanceUser {
    user: User,
    balance: i64,
    /// What the renewals in the window will charge together.
    due: i64,
    /// due - balance: the top-up needed for every renewal to go through.
    shortfall: i64,
    renewals: i64,
    next_renewal_at: chrono::DateTime<chrono::Utc>,
}

#[derive(Default)]
pub struct WalletAdminQuery;

#[Object]
impl WalletAdminQuery {
    /// Admin: every wallet, filtered and sorted (ties by id), with the credit outstanding.
    async fn wallet_overview(
        &self,
        ctx: &Context<'_>,
        filter: Option<WalletOverviewFilter>,
        #[graphql(default_with = "Some(WalletSort::Balance)")] sort: Option<WalletSort>,
        #[graphql(default_with = "Some(Direction::Desc)")] order: Option<Direction>,
        #[graphql(default = 20)] first: Option<i32>,
        after: Option<String>,
    ) -> Result<WalletConnection> {
        ctx.auth().admin()?;
        let args = PageArgs::parse(first, after.as_deref())?;
        let f = filter.unwrap_or_default();
        let filter = WalletFilter { min_balance: f.min_balance, max_balance: f.max_balance, search: f.search };
        let result = overview::wallet_overview(
            &ctx.state().db.conn,
            &filter,
            sort.unwrap_or(WalletSort::Balance),
            order.unwrap_or(Direction::Desc),
            args,
        )
        .await?;
        let totals = WalletOverviewTotals {
            total_count: result.page.total,
            total_credit_outstanding: result.credit_outstanding,
        };
        let mut conn = Connection::with_additional_fields(false, result.page.has_next, totals);
        conn.edges.extend(result.page.rows.into_iter().map(|u| Edge::new(encode_cursor(u.id), UserWallet(u))));
        Ok(conn)
    }

    /// Admin: users whose balance is below what their auto-renewing ACTIVE subscriptions due
    /// within `days` will charge, largest shortfall first (at most `first`).
    async fn low_balance_users(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 7)] days: Option<i32>,
        #[graphql(default = 50)] first: Option<i32>,
    ) -> Result<Vec<LowBalanceUser>> {
        ctx.auth().admin()?;
        let args = PageArgs::parse(first, None)?;
        let state = ctx.state();
        let rows = overview::low_balance_users(&state.db.conn, state.now(), days.unwrap_or(7), args.first).await?;
        Ok(rows
            .into_iter()
            .map(|r| LowBalanceUser {
                balance: r.user.balance,
                due: r.due,
                shortfall: r.shortfall(),
                renewals: r.renewals,
                next_renewal_at: r.next_renewal_at,
                user: User(r.user),
            })
            .collect())
    }
}
