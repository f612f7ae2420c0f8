use async_graphql::{Context, ID, Object, Result};

use super::topup;
use crate::{billing::PaymentMethod, billing::graphql::Transaction, graphql::ContextExt, pagination::parse_id};

/// A created top-up: open `redirectUrl`, or call `snap.pay(snapToken)` with snap.js.
pub struct TopUp(topup::TopUpCreated);

#[Object]
impl TopUp {
    async fn transaction(&self) -> Transaction {
        Transaction(self.0.transaction.clone())
    }
    async fn snap_token(&self) -> &str {
        &self.0.snap_token
    }
    async fn redirect_url(&self) -> &str {
        &self.0.redirect_url
    }
    async fn expires_at(&self) -> chrono::DateTime<chrono::Utc> {
        self.0.expires_at
    }
}

#[derive(Default)]
pub struct PaymentMutation;

#[Object]
impl PaymentMutation {
    /// Starts a Midtrans payment of 10,000–10,000,000 IDR; the wallet is credited when Midtrans
    /// confirms it (webhook, syncTopUp or the reconciler).
    async fn create_top_up(
        &self,
        ctx: &Context<'_>,
        amount: i64,
        payment_method: Option<PaymentMethod>,
    ) -> Result<TopUp> {
        let viewer = ctx.auth().viewer()?;
        Ok(TopUp(topup::create_top_up(ctx.state(), viewer, amount, payment_method).await?))
    }

    /// Cancels a PENDING top-up (at Midtrans too).
    async fn cancel_top_up(&self, ctx: &Context<'_>, transaction_id: ID) -> Result<Transaction> {
        let viewer = ctx.auth().viewer()?;
        let id = parse_id(&transaction_id, "transaction")?;
        Ok(Transaction(topup::cancel_top_up(ctx.state(), viewer, id).await?))
    }

    /// Asks Midtrans for the status of a top-up and applies it.
    async fn sync_top_up(&self, ctx: &Context<'_>, transaction_id: ID) -> Result<Transaction> {
        let viewer = ctx.auth().viewer()?;
        let id = parse_id(&transaction_id, "transaction")?;
        Ok(Transaction(topup::sync_top_up(ctx.state(), viewer, id).await?))
    }
}
