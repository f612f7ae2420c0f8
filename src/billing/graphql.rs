use async_graphql::{Context, ID, InputObject, Object, Result, Subscription, dataloader::DataLoader};
use futures::Stream;
use tokio::sync::broadcast::error::RecvError;

use super::{PaymentMethod, TransactionStatus, TransactionType, entity as transactions, service};
use crate::{
    error::AppError,
    graphql::ContextExt,
    pagination::{Conn, PageArgs, connection, parse_id},
    subscriptions::loader::{SubscriptionId, SubscriptionLoader, UserId},
    users::{entity as users, graphql::User, service as user_service},
};

pub struct Transaction(pub transactions::Model);

#[Object]
impl Transaction {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// Human-facing, unique and increasing, e.g. TXMP-101.
    async fn reference(&self) -> String {
        super::reference(self.0.id)
    }
    #[graphql(name = "type")]
    async fn kind(&self) -> TransactionType {
        self.0.kind
    }
    async fn status(&self) -> TransactionStatus {
        self.0.status
    }
    /// Always positive; the direction is balanceAfter - balanceBefore.
    async fn amount(&self) -> i64 {
        self.0.amount
    }
    /// Equal to balanceAfter while PENDING.
    async fn balance_before(&self) -> i64 {
        self.0.balance_before
    }
    async fn balance_after(&self) -> i64 {
        self.0.balance_after
    }
    async fn payment_method(&self) -> Option<PaymentMethod> {
        self.0.payment_method
    }
    /// Charges: how much of this charge has been refunded (adminRefund).
    async fn refunded_amount(&self) -> i64 {
        self.0.refunded_amount
    }
    /// Refunds: the charge this refund returns.
    async fn refund_of(&self) -> Option<ID> {
        self.0.refund_of.map(|id| ID(id.to_string()))
    }
    async fn description(&self) -> &str {
        &self.0.description
    }
    async fn created_at(&self) -> chrono::DateTime<chrono::Utc> {
        self.0.created_at
    }
    async fn completed_at(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        self.0.completed_at
    }
    /// Top-ups: the Snap page to (re)open while PENDING.
    async fn redirect_url(&self) -> Option<&str> {
        self.0.redirect_url.as_deref()
    }
    /// Top-ups: the Snap token for `snap.pay(token)` while PENDING.
    async fn snap_token(&self) -> Option<&str> {
        self.0.snap_token.as_deref()
    }
    /// Top-ups: when the payment page stops accepting payment.
    async fn expires_at(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        self.0.expires_at
    }
    async fn user(&self, ctx: &Context<'_>) -> Result<User> {
        Ok(User(user_of(ctx, self.0.user_id).await?.ok_or(AppError::NotFound("user"))?))
    }
    /// The subscription a charge, upgrade, renewal or refund belongs to.
    async fn subscription(&self, ctx: &Context<'_>) -> Result<Option<crate::subscriptions::graphql::Subscription>> {
        let Some(id) = self.0.subscription_id else {
            return Ok(None);
        };
        let viewer = ctx.auth().viewer()?;
        let sub = loader(ctx).load_one(SubscriptionId(id)).await.map_err(AppError::from)?;
        // The owner's or an administrator's, as `subscriptions::service::visible` decides.
        match sub {
            Some(s) if s.user_id == viewer.id || viewer.is_admin() => {
                Ok(Some(crate::subscriptions::graphql::Subscription::from(s)))
            }
            _ => Err(AppError::NotFound("subscription").into()),
        }
    }
    /// Admin only (null for others): the administrator who made an adjustment.
    async fn processed_by(&self, ctx: &Context<'_>) -> Result<Option<User>> {
        let (Some(admin_id), Ok(viewer)) = (self.0.processed_by, ctx.auth().viewer()) else {
            return Ok(None);
        };
        if !viewer.is_admin() {
            return Ok(None);
        }
        Ok(user_of(ctx, admin_id).await?.map(User))
    }
}

/// Per-request batching: a page of transactions loads its users and subscriptions in one
/// statement each, not one per row.
fn loader<'a>(ctx: &'a Context<'_>) -> &'a DataLoader<SubscriptionLoader> {
    // Inserted per request by the GraphQL handlers (HTTP and WebSocket).
    ctx.data_unchecked::<DataLoader<SubscriptionLoader>>()
}

async fn user_of(ctx: &Context<'_>, id: i64) -> Result<Option<users::Model>> {
    Ok(loader(ctx).load_one(UserId(id)).await.map_err(AppError::from)?)
}

/// A user's wallet; only reachable by the owner or an administrator.
pub struct Wallet(pub users::Model);

#[derive(InputObject, Default)]
#[graphql(name = "TransactionFilter")]
pub struct TransactionFilter {
    #[graphql(name = "type")]
    kind: Option<TransactionType>,
    status: Option<TransactionStatus>,
    /// Created at or after.
    from: Option<chrono::DateTime<chrono::Utc>>,
    /// Created before.
    to: Option<chrono::DateTime<chrono::Utc>>,
}

impl TransactionFilter {
    fn into_filter(self, user_id: Option<i64>) -> service::Filter {
        service::Filter { kind: self.kind, status: self.status, from: self.from, to: self.to, user_id }
    }
}

#[Object]
impl Wallet {
    async fn balance(&self) -> i64 {
        self.0.balance
    }
    async fn total_top_up(&self) -> i64 {
        self.0.total_top_up
    }
    async fn total_spent(&self) -> i64 {
        self.0.total_spent
    }
    /// This wallet's spending (charges, refunds) and top-ups per calendar month of `[from, to)`
    /// in `timeZone` (IANA, default Asia/Jakarta), and spending per service over the range.
    async fn statistics(
        &self,
        ctx: &Context<'_>,
        from: chrono::DateTime<chrono::Utc>,
        to: chrono::DateTime<chrono::Utc>,
        time_zone: Option<String>,
    ) -> Result<crate::reports::analytics::RevenueReport> {
        use crate::reports::{period, revenue};
        let tz = period::zone(time_zone.as_deref())?;
        let db = &ctx.state().db.conn;
        Ok(revenue::revenue(db, from, to, period::Bucket::Month, tz, Some(self.0.id)).await?.into())
    }
    /// Newest first.
    async fn transactions(
        &self,
        ctx: &Context<'_>,
        filter: Option<TransactionFilter>,
        #[graphql(default = 20)] first: Option<i32>,
        after: Option<String>,
    ) -> Result<Conn<Transaction>> {
        let args = PageArgs::parse(first, after.as_deref())?;
        let filter = filter.unwrap_or_default().into_filter(Some(self.0.id));
        let page = service::list(&ctx.state().db.conn, &filter, args).await?;
        Ok(connection(page, |t| t.id, Transaction))
    }
}

#[derive(Default)]
pub struct WalletQuery;

#[Object]
impl WalletQuery {
    /// The signed-in user's wallet.
    async fn wallet(&self, ctx: &Context<'_>) -> Result<Wallet> {
        let viewer = ctx.auth().viewer()?;
        Ok(Wallet(user_service::get(&ctx.state().db.conn, viewer.id).await?))
    }

    /// One transaction of the viewer (any, for an administrator); null otherwise.
    async fn transaction(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Transaction>> {
        let viewer = ctx.auth().viewer()?;
        let Ok(id) = parse_id(&id, "transaction") else {
            return Ok(None);
        };
        Ok(service::find_visible(&ctx.state().db.conn, viewer, id).await?.map(Transaction))
    }

    /// Admin: every transaction, newest first, optionally of one user.
    async fn all_transactions(
        &self,
        ctx: &Context<'_>,
        filter: Option<TransactionFilter>,
        user_id: Option<ID>,
        #[graphql(default = 20)] first: Option<i32>,
        after: Option<String>,
    ) -> Result<Conn<Transaction>> {
        ctx.auth().admin()?;
        let args = PageArgs::parse(first, after.as_deref())?;
        let user_id = user_id.map(|id| parse_id(&id, "user")).transpose()?;
        let filter = filter.unwrap_or_default().into_filter(user_id);
        let page = service::list(&ctx.state().db.conn, &filter, args).await?;
        Ok(connection(page, |t| t.id, Transaction))
    }
}

#[derive(Default)]
pub struct WalletMutation;

#[Object]
impl WalletMutation {
    /// Admin: add (positive) or remove (negative) credit with a reason; never below zero.
    async fn adjust_credit(&self, ctx: &Context<'_>, user_id: ID, amount: i64, reason: String) -> Result<Transaction> {
        let admin = ctx.auth().admin()?;
        let user_id = parse_id(&user_id, "user")?;
        let reason = service::parse_reason(&reason)?;
        Ok(Transaction(service::adjust_credit(ctx.state(), admin, user_id, amount, reason).await?))
    }
}

#[derive(Default)]
pub struct WalletSubscription;

#[Subscription]
impl WalletSubscription {
    /// Every change of the viewer's transactions (a settled top-up, a charge, an adjustment).
    async fn wallet_updates(&self, ctx: &Context<'_>) -> Result<impl Stream<Item = Transaction> + use<>> {
        let viewer = ctx.auth().viewer()?;
        let state = ctx.state().clone();
        let mut rx = state.wallet_hub.subscribe();
        Ok(async_stream::stream! {
            loop {
                match rx.recv().await {
                    Ok(ev) if ev.user_id == viewer.id => {
                        match service::find(&state.db.conn, ev.transaction_id).await {
                            Ok(Some(row)) if row.user_id == viewer.id => yield Transaction(row),
                            Ok(_) => {}
                            Err(e) => tracing::warn!(error = %e, "walletUpdates: cannot load transaction"),
                        }
                    }
                    Ok(_) | Err(RecvError::Lagged(_)) => {}
                    Err(RecvError::Closed) => break,
                }
            }
        })
    }
}
