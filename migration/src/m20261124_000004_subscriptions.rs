//! Subscriptions, their state history, and the app instances they own.
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
enum ServicePlans {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Subscriptions {
    Table,
    Id,
    UserId,
    ServiceId,
    PlanId,
    Status,
    MonthlyPrice,
    PeriodStart,
    PeriodEnd,
    NextBillingAt,
    AutoRenew,
    GracePeriodEnd,
    LastChargeAmount,
    FailedCharges,
    PreviousPlanId,
    IdempotencyKey,
    CancelledAt,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum SubscriptionEvents {
    Table,
    Id,
    SubscriptionId,
    ActorId,
    Kind,
    FromStatus,
    ToStatus,
    Reason,
    Details,
    CreatedAt,
}

#[derive(DeriveIden)]
enum ServiceInstances {
    Table,
    Id,
    SubscriptionId,
    Name,
    Subdomain,
    Status,
    HealthStatus,
    LastError,
    Namespace,
    DeploymentName,
    PublicUrl,
    LastStartedAt,
    LastStoppedAt,
    CreatedAt,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Subscriptions::Table)
                    .if_not_exists()
                    .col(big_pk_auto(Subscriptions::Id))
                    .col(big_integer(Subscriptions::UserId))
                    .col(big_integer(Subscriptions::ServiceId))
                    .col(big_integer(Subscriptions::PlanId))
                    .col(string_len(Subscriptions::Status, 20))
                    .col(big_integer(Subscriptions::MonthlyPrice))
                    .col(timestamp_with_time_zone(Subscriptions::PeriodStart))
                    .col(timestamp_with_time_zone(Subscriptions::PeriodEnd))
                    .col(timestamp_with_time_zone_null(Subscriptions::NextBillingAt))
                    .col(boolean(Subscriptions::AutoRenew).default(true))
                    .col(timestamp_with_time_zone_null(Subscriptions::GracePeriodEnd))
                    .col(big_integer_null(Subscriptions::LastChargeAmount))
                    .col(integer(Subscriptions::FailedCharges).default(0))
                    .col(big_integer_null(Subscriptions::PreviousPlanId))
                    .col(string_len_null(Subscriptions::IdempotencyKey, 100))
                    .col(timestamp_with_time_zone_null(Subscriptions::CancelledAt))
                    .col(timestamp_with_time_zone(Subscriptions::CreatedAt))
                    .col(timestamp_with_time_zone(Subscriptions::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_subscriptions_user")
                            .from(Subscriptions::Table, Subscriptions::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Restrict),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_subscriptions_service")
                            .from(Subscriptions::Table, Subscriptions::ServiceId)
                            .to(Services::Table, Services::Id)
                            .on_delete(ForeignKeyAction::Restrict),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_subscriptions_plan")
                            .from(Subscriptions::Table, Subscriptions::PlanId)
                            .to(ServicePlans::Table, ServicePlans::Id)
                            .on_delete(ForeignKeyAction::Restrict),
                    )
                    .to_owned(),
            )
            .await?;
        let db = manager.get_connection();
        // One live subscription per user and service; EXPIRED and CANCELLED ones do not count.
        // Partial unique indexes: the same statement works on SQLite and PostgreSQL.
        db.execute_unprepared(
            "CREATE UNIQUE INDEX IF NOT EXISTS uq_subscriptions_live ON subscriptions (user_id, service_id) \
             WHERE status IN ('ACTIVE', 'SUSPENDED', 'PENDING_UPGRADE', 'PENDING_PAYMENT')",
        )
        .await?;
        db.execute_unprepared(
            "CREATE UNIQUE INDEX IF NOT EXISTS uq_subscriptions_idempotency ON subscriptions (user_id, idempotency_key) \
             WHERE idempotency_key IS NOT NULL",
        )
        .await?;
        for (name, col) in [
            ("idx_subscriptions_user", Subscriptions::UserId),
            ("idx_subscriptions_plan", Subscriptions::PlanId),
            ("idx_subscriptions_status_billing", Subscriptions::NextBillingAt),
        ] {
            manager.create_index(Index::create().name(name).table(Subscriptions::Table).col(col).to_owned()).await?;
        }

        manager
            .create_table(
                Table::create()
                    .table(SubscriptionEvents::Table)
                    .if_not_exists()
                    .col(big_pk_auto(SubscriptionEvents::Id))
                    .col(big_integer(SubscriptionEvents::SubscriptionId))
                    .col(big_integer_null(SubscriptionEvents::ActorId))
                    .col(string_len(SubscriptionEvents::Kind, 30))
                    .col(string_len_null(SubscriptionEvents::FromStatus, 20))
                    .col(string_len(SubscriptionEvents::ToStatus, 20))
                    .col(text_null(SubscriptionEvents::Reason))
                    .col(json_binary_null(SubscriptionEvents::Details))
                    .col(timestamp_with_time_zone(SubscriptionEvents::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_subscription_events_subscription")
                            .from(SubscriptionEvents::Table, SubscriptionEvents::SubscriptionId)
                            .to(Subscriptions::Table, Subscriptions::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_subscription_events_subscription")
                    .table(SubscriptionEvents::Table)
                    .col(SubscriptionEvents::SubscriptionId)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(ServiceInstances::Table)
                    .if_not_exists()
                    .col(big_pk_auto(ServiceInstances::Id))
                    .col(big_integer(ServiceInstances::SubscriptionId))
                    .col(string_len(ServiceInstances::Name, 40))
                    .col(string_len_uniq(ServiceInstances::Subdomain, 63))
                    .col(string_len(ServiceInstances::Status, 20))
                    .col(string_len_null(ServiceInstances::HealthStatus, 200))
                    .col(text_null(ServiceInstances::LastError))
                    .col(string_len(ServiceInstances::Namespace, 63))
                    .col(string_len(ServiceInstances::DeploymentName, 63))
                    .col(string_len_null(ServiceInstances::PublicUrl, 300))
                    .col(timestamp_with_time_zone_null(ServiceInstances::LastStartedAt))
                    .col(timestamp_with_time_zone_null(ServiceInstances::LastStoppedAt))
                    .col(timestamp_with_time_zone(ServiceInstances::CreatedAt))
                    .col(timestamp_with_time_zone(ServiceInstances::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_service_instances_subscription")
                            .from(ServiceInstances::Table, ServiceInstances::SubscriptionId)
                            .to(Subscriptions::Table, Subscriptions::Id)
                            .on_delete(ForeignKeyAction::Restrict),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_service_instances_subscription")
                    .table(ServiceInstances::Table)
                    .col(ServiceInstances::SubscriptionId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(ServiceInstances::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(SubscriptionEvents::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(Subscriptions::Table).to_owned()).await
    }
}
