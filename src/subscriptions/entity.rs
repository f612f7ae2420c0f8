//! Subscriptions and their history. Queries are scoped by owner where a user asks.
pub mod subscription {
    use sea_orm::entity::prelude::*;

    use crate::subscriptions::SubscriptionStatus;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "subscriptions")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub user_id: i64,
        pub service_id: i64,
        pub plan_id: i64,
        pub status: SubscriptionStatus,
        /// The price of the current plan, charged at the next renewal.
        pub monthly_price: i64,
        pub period_start: DateTimeUtc,
        pub period_end: DateTimeUtc,
        pub next_billing_at: Option<DateTimeUtc>,
        pub auto_renew: bool,
        pub grace_period_end: Option<DateTimeUtc>,
        pub last_charge_amount: Option<i64>,
        pub failed_charges: i32,
        pub previous_plan_id: Option<i64>,
        pub idempotency_key: Option<String>,
        /// SHA-256 (hex) of the parameters sent with `idempotency_key`; NULL for rows created
        /// before it was recorded.
        pub idempotency_fingerprint: Option<String>,
        pub cancelled_at: Option<DateTimeUtc>,
        /// The checkout coupon of the first period, if any.
        pub coupon_id: Option<i64>,
        /// What that coupon took off the first period (0 without one); renewals pay
        /// `monthly_price` in full.
        pub discount_amount: i64,
        pub created_at: DateTimeUtc,
        pub updated_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}

    /// Subscriptions the user owns: every user-facing read starts here, so a missing
    /// `user_id = …` cannot happen.
    pub fn owned_by(user_id: i64) -> Select<Entity> {
        Entity::find().filter(Column::UserId.eq(user_id))
    }
}

pub mod event {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "subscription_events")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub subscription_id: i64,
        /// Who caused it; `None` for the system (renewal jobs).
        pub actor_id: Option<i64>,
        pub kind: String,
        pub from_status: Option<String>,
        pub to_status: String,
        pub reason: Option<String>,
        pub details: Option<Json>,
        pub created_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
