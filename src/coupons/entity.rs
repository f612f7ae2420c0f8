//! Coupons, the per-user use counters, redemptions, and recorded welcome-bonus failures.
pub mod coupon {
    use sea_orm::entity::prelude::*;

    use crate::{
        catalog::PlanType,
        coupons::{CouponType, DiscountType},
    };

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "coupons")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        /// Upper-case (`coupons::Code`).
        #[sea_orm(unique)]
        pub code: String,
        pub name: String,
        pub description: Option<String>,
        #[sea_orm(column_name = "type")]
        pub kind: CouponType,
        pub discount_type: Option<DiscountType>,
        /// Credit for CREDIT_TOPUP and WELCOME_BONUS; the amount off for a FIXED_AMOUNT discount.
        pub credit_amount: Option<i64>,
        pub discount_percent: Option<i32>,
        pub max_uses: i32,
        pub used_count: i32,
        pub max_uses_per_user: i32,
        pub service_id: Option<i64>,
        pub plan_type: Option<PlanType>,
        pub valid_from: DateTimeUtc,
        pub valid_until: Option<DateTimeUtc>,
        pub enabled: bool,
        /// The administrator who created it; None for the seed.
        pub created_by: Option<i64>,
        pub created_at: DateTimeUtc,
        pub updated_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// How often each user has used each coupon: the counter `maxUsesPerUser` is checked against.
pub mod user_use {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "coupon_user_uses")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub coupon_id: i64,
        #[sea_orm(primary_key, auto_increment = false)]
        pub user_id: i64,
        pub uses: i32,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod redemption {
    use sea_orm::{QueryFilter, Select, entity::prelude::*};

    use crate::coupons::RedemptionContext;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "coupon_redemptions")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub coupon_id: i64,
        pub user_id: i64,
        pub context: RedemptionContext,
        /// Credit given to the wallet.
        pub credit_amount: Option<i64>,
        /// Taken off a first period at checkout.
        pub discount_amount: Option<i64>,
        /// The COUPON_REDEMPTION credit, or the discounted SUBSCRIPTION charge.
        #[sea_orm(unique)]
        pub transaction_id: Option<i64>,
        pub subscription_id: Option<i64>,
        pub redeemed_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {
        #[sea_orm(belongs_to = "super::coupon::Entity", from = "Column::CouponId", to = "super::coupon::Column::Id")]
        Coupon,
    }

    impl ActiveModelBehavior for ActiveModel {}

    /// The user's own redemptions; every user-facing read starts here.
    pub fn owned_by(user_id: i64) -> Select<Entity> {
        Entity::find().filter(Column::UserId.eq(user_id))
    }
}

/// A welcome bonus that could not be given: logged, and kept here for administrators.
pub mod failure {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "coupon_failures")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub user_id: Option<i64>,
        pub context: String,
        pub message: String,
        pub created_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
