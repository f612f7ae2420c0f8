use sea_orm::{QueryFilter, Select, entity::prelude::*};

use super::{PaymentMethod, TransactionStatus, TransactionType};

/// One ledger row. `amount` is always positive; the direction is `balance_after - balance_before`
/// (equal while a top-up is PENDING).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "transactions")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub user_id: i64,
    #[sea_orm(column_name = "type")]
    pub kind: TransactionType,
    pub status: TransactionStatus,
    pub amount: i64,
    pub balance_before: i64,
    pub balance_after: i64,
    pub payment_method: Option<PaymentMethod>,
    pub description: String,
    pub subscription_id: Option<i64>,
    pub metadata: Option<Json>,
    /// The administrator who made an adjustment.
    pub processed_by: Option<i64>,
    /// Caller-chosen key that makes a debit or credit happen at most once.
    #[sea_orm(unique)]
    pub idempotency_key: Option<String>,
    /// Midtrans order id of a top-up.
    #[sea_orm(unique)]
    pub order_id: Option<String>,
    pub snap_token: Option<String>,
    pub redirect_url: Option<String>,
    pub expires_at: Option<DateTimeUtc>,
    /// The last Midtrans `transaction_status` seen for a top-up.
    pub provider_status: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub completed_at: Option<DateTimeUtc>,
    /// Of a charge: how much of it has been refunded so far (never above `amount`).
    pub refunded_amount: i64,
    /// Of a refund: the charge it returns.
    pub refund_of: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

impl Entity {
    /// The ledger of one user; every user-facing query starts here.
    pub fn owned_by(user_id: i64) -> Select<Entity> {
        Entity::find().filter(Column::UserId.eq(user_id))
    }
}

pub mod posting {
    use sea_orm::entity::prelude::*;

    /// A money movement that may happen once per key (`credit:<id>`, `reversal:<id>`): the
    /// primary key turns a duplicate into a constraint violation instead of a second credit.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "ledger_postings")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub key: String,
        pub transaction_id: i64,
        pub created_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
