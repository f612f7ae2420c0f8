//! Billing: the wallet balance and its ledger. Balances change only through `service::credit`
//! and `service::debit` (conditional updates plus one ledger row, in the caller's transaction).
pub mod admin_graphql;
pub mod entity;
pub mod graphql;
pub mod hub;
pub mod overview;
pub mod service;

use sea_orm::{DeriveActiveEnum, EnumIter, sea_query::StringLen};

#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, async_graphql::Enum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(20))")]
pub enum TransactionType {
    #[sea_orm(string_value = "TOP_UP")]
    TopUp,
    #[sea_orm(string_value = "SUBSCRIPTION")]
    Subscription,
    #[sea_orm(string_value = "UPGRADE")]
    Upgrade,
    #[sea_orm(string_value = "RENEWAL")]
    Renewal,
    #[sea_orm(string_value = "REFUND")]
    Refund,
    #[sea_orm(string_value = "ADMIN_ADJUSTMENT")]
    AdminAdjustment,
    #[sea_orm(string_value = "REVERSAL")]
    Reversal,
    /// Credit from a coupon (a code redeemed, or the welcome bonus): neither money paid in nor
    /// revenue, so it moves neither lifetime total.
    #[sea_orm(string_value = "COUPON_REDEMPTION")]
    CouponRedemption,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, async_graphql::Enum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(20))")]
pub enum TransactionStatus {
    #[sea_orm(string_value = "PENDING")]
    Pending,
    #[sea_orm(string_value = "COMPLETED")]
    Completed,
    #[sea_orm(string_value = "FAILED")]
    Failed,
    #[sea_orm(string_value = "CANCELLED")]
    Cancelled,
    #[sea_orm(string_value = "EXPIRED")]
    Expired,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, async_graphql::Enum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(20))")]
pub enum PaymentMethod {
    #[sea_orm(string_value = "BANK_TRANSFER")]
    BankTransfer,
    #[sea_orm(string_value = "E_WALLET")]
    EWallet,
    #[sea_orm(string_value = "CREDIT_CARD")]
    CreditCard,
    #[sea_orm(string_value = "QRIS")]
    Qris,
    #[sea_orm(string_value = "ADMIN_MANUAL")]
    AdminManual,
}

/// Top-up limits in whole IDR.
pub const MIN_TOP_UP: i64 = 10_000;
pub const MAX_TOP_UP: i64 = 10_000_000;

/// The human-facing reference of a ledger row: ids are never reused, so it is unique and
/// increasing, starting at TXMP-101.
pub fn reference(id: i64) -> String {
    format!("TXMP-{}", id + 100)
}
