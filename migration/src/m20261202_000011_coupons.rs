//! Coupons and the welcome bonus. `coupons.used_count` and `coupon_user_uses.uses` are the
//! counters that conditional updates (`used_count < max_uses`, `uses < max_uses_per_user`)
//! take from, so neither limit can be passed by concurrent redemptions; there is deliberately
//! no unique (coupon, user) pair, which would cap every coupon at one use per user.
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Services {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Subscriptions {
    Table,
    CouponId,
    DiscountAmount,
}

#[derive(DeriveIden)]
enum Coupons {
    Table,
    Id,
    Code,
    Name,
    Description,
    Type,
    DiscountType,
    CreditAmount,
    DiscountPercent,
    MaxUses,
    UsedCount,
    MaxUsesPerUser,
    ServiceId,
    PlanType,
    ValidFrom,
    ValidUntil,
    Enabled,
    CreatedBy,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum CouponUserUses {
    Table,
    CouponId,
    UserId,
    Uses,
}

#[derive(DeriveIden)]
enum CouponRedemptions {
    Table,
    Id,
    CouponId,
    UserId,
    Context,
    CreditAmount,
    DiscountAmount,
    TransactionId,
    SubscriptionId,
    RedeemedAt,
}

#[derive(DeriveIden)]
enum CouponFailures {
    Table,
    Id,
    UserId,
    Context,
    Message,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Coupons::Table)
                    .if_not_exists()
                    .col(big_pk_auto(Coupons::Id))
                    .col(string_len_uniq(Coupons::Code, 50))
                    .col(string_len(Coupons::Name, 100))
                    .col(string_len_null(Coupons::Description, 500))
                    .col(string_len(Coupons::Type, 30))
                    .col(string_len_null(Coupons::DiscountType, 20))
                    .col(big_integer_null(Coupons::CreditAmount))
                    .col(integer_null(Coupons::DiscountPercent))
                    .col(integer(Coupons::MaxUses))
                    .col(integer(Coupons::UsedCount).default(0))
                    .col(integer(Coupons::MaxUsesPerUser))
                    .col(big_integer_null(Coupons::ServiceId))
                    .col(string_len_null(Coupons::PlanType, 20))
                    .col(timestamp_with_time_zone(Coupons::ValidFrom))
                    .col(timestamp_with_time_zone_null(Coupons::ValidUntil))
                    .col(boolean(Coupons::Enabled).default(true))
                    .col(big_integer_null(Coupons::CreatedBy))
                    .col(timestamp_with_time_zone(Coupons::CreatedAt))
                    .col(timestamp_with_time_zone(Coupons::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_coupons_service")
                            .from(Coupons::Table, Coupons::ServiceId)
                            .to(Services::Table, Services::Id)
                            .on_delete(ForeignKeyAction::Restrict),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_coupons_type")
                    .table(Coupons::Table)
                    .col(Coupons::Type)
                    .col(Coupons::Id)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(CouponUserUses::Table)
                    .if_not_exists()
                    .col(big_integer(CouponUserUses::CouponId))
                    .col(big_integer(CouponUserUses::UserId))
                    .col(integer(CouponUserUses::Uses))
                    .primary_key(Index::create().col(CouponUserUses::CouponId).col(CouponUserUses::UserId))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_coupon_user_uses_coupon")
                            .from(CouponUserUses::Table, CouponUserUses::CouponId)
                            .to(Coupons::Table, Coupons::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_coupon_user_uses_user")
                            .from(CouponUserUses::Table, CouponUserUses::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(CouponRedemptions::Table)
                    .if_not_exists()
                    .col(big_pk_auto(CouponRedemptions::Id))
                    .col(big_integer(CouponRedemptions::CouponId))
                    .col(big_integer(CouponRedemptions::UserId))
                    .col(string_len(CouponRedemptions::Context, 20))
                    .col(big_integer_null(CouponRedemptions::CreditAmount))
                    .col(big_integer_null(CouponRedemptions::DiscountAmount))
                    .col(big_integer_null(CouponRedemptions::TransactionId).unique_key())
                    .col(big_integer_null(CouponRedemptions::SubscriptionId))
                    .col(timestamp_with_time_zone(CouponRedemptions::RedeemedAt))
                    // A coupon with redemptions cannot be deleted: the database refuses it.
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_coupon_redemptions_coupon")
                            .from(CouponRedemptions::Table, CouponRedemptions::CouponId)
                            .to(Coupons::Table, Coupons::Id)
                            .on_delete(ForeignKeyAction::Restrict),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_coupon_redemptions_user")
                            .from(CouponRedemptions::Table, CouponRedemptions::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        for (name, col) in [
            ("idx_coupon_redemptions_coupon", CouponRedemptions::CouponId),
            ("idx_coupon_redemptions_user", CouponRedemptions::UserId),
            ("idx_coupon_redemptions_redeemed", CouponRedemptions::RedeemedAt),
        ] {
            manager
                .create_index(
                    Index::create()
                        .name(name)
                        .table(CouponRedemptions::Table)
                        .col(col)
                        .col(CouponRedemptions::Id)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_table(
                Table::create()
                    .table(CouponFailures::Table)
                    .if_not_exists()
                    .col(big_pk_auto(CouponFailures::Id))
                    .col(big_integer_null(CouponFailures::UserId))
                    .col(string_len(CouponFailures::Context, 20))
                    .col(text(CouponFailures::Message))
                    .col(timestamp_with_time_zone(CouponFailures::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_coupon_failures_user")
                            .from(CouponFailures::Table, CouponFailures::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::SetNull),
                    )
                    .to_owned(),
            )
            .await?;
        // What a checkout's coupon took off the first period (0 without one); renewals charge
        // `monthly_price` as before. One column per statement for SQLite.
        manager
            .alter_table(
                Table::alter()
                    .table(Subscriptions::Table)
                    .add_column(big_integer_null(Subscriptions::CouponId))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Subscriptions::Table)
                    .add_column(big_integer(Subscriptions::DiscountAmount).default(0))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for col in [Subscriptions::DiscountAmount, Subscriptions::CouponId] {
            manager.alter_table(Table::alter().table(Subscriptions::Table).drop_column(col).to_owned()).await?;
        }
        manager.drop_table(Table::drop().table(CouponFailures::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(CouponRedemptions::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(CouponUserUses::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(Coupons::Table).to_owned()).await
    }
}
