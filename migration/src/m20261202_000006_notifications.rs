//! Notifications: one row per event a user is told about (unique per user and event key, so a
//! re-run job or a replayed webhook cannot notify twice), the user's per-kind email choice, and
//! the email outbox written in the same transaction as the notification it carries.
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Notifications {
    Table,
    Id,
    UserId,
    Kind,
    Title,
    Body,
    SubscriptionId,
    TransactionId,
    InstanceId,
    EventKey,
    CreatedAt,
    ReadAt,
}

#[derive(DeriveIden)]
enum NotificationPreferences {
    Table,
    UserId,
    Kind,
    Email,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum EmailOutbox {
    Table,
    Id,
    NotificationId,
    Recipient,
    Subject,
    TextBody,
    HtmlBody,
    Status,
    Attempts,
    NextAttemptAt,
    LeaseUntil,
    LastError,
    CreatedAt,
    SentAt,
}

fn user_fk(table: impl IntoIden, col: impl IntoIden) -> ForeignKeyCreateStatement {
    ForeignKey::create().from(table, col).to(Users::Table, Users::Id).on_delete(ForeignKeyAction::Cascade).to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Notifications::Table)
                    .if_not_exists()
                    .col(big_pk_auto(Notifications::Id))
                    .col(big_integer(Notifications::UserId))
                    .col(string_len(Notifications::Kind, 30))
                    .col(string_len(Notifications::Title, 200))
                    .col(text(Notifications::Body))
                    .col(big_integer_null(Notifications::SubscriptionId))
                    .col(big_integer_null(Notifications::TransactionId))
                    .col(big_integer_null(Notifications::InstanceId))
                    .col(string_len(Notifications::EventKey, 200))
                    .col(timestamp_with_time_zone(Notifications::CreatedAt))
                    .col(timestamp_with_time_zone_null(Notifications::ReadAt))
                    .foreign_key(user_fk(Notifications::Table, Notifications::UserId).name("fk_notifications_user"))
                    .to_owned(),
            )
            .await?;
        // The exactly-once rule: one notification per user and event.
        manager
            .create_index(
                Index::create()
                    .name("uq_notifications_user_event")
                    .table(Notifications::Table)
                    .col(Notifications::UserId)
                    .col(Notifications::EventKey)
                    .unique()
                    .to_owned(),
            )
            .await?;
        // The newest-first list and the unread count.
        manager
            .create_index(
                Index::create()
                    .name("idx_notifications_user_id")
                    .table(Notifications::Table)
                    .col(Notifications::UserId)
                    .col(Notifications::Id)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_notifications_user_read")
                    .table(Notifications::Table)
                    .col(Notifications::UserId)
                    .col(Notifications::ReadAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(NotificationPreferences::Table)
                    .if_not_exists()
                    .col(big_integer(NotificationPreferences::UserId))
                    .col(string_len(NotificationPreferences::Kind, 30))
                    .col(boolean(NotificationPreferences::Email))
                    .col(timestamp_with_time_zone(NotificationPreferences::UpdatedAt))
                    .primary_key(
                        Index::create().col(NotificationPreferences::UserId).col(NotificationPreferences::Kind),
                    )
                    .foreign_key(
                        user_fk(NotificationPreferences::Table, NotificationPreferences::UserId)
                            .name("fk_notification_preferences_user"),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(EmailOutbox::Table)
                    .if_not_exists()
                    .col(big_pk_auto(EmailOutbox::Id))
                    .col(big_integer(EmailOutbox::NotificationId).unique_key())
                    .col(string_len(EmailOutbox::Recipient, 320))
                    .col(string_len(EmailOutbox::Subject, 300))
                    .col(text(EmailOutbox::TextBody))
                    .col(text(EmailOutbox::HtmlBody))
                    .col(string_len(EmailOutbox::Status, 10))
                    .col(integer(EmailOutbox::Attempts).default(0))
                    .col(timestamp_with_time_zone(EmailOutbox::NextAttemptAt))
                    .col(timestamp_with_time_zone_null(EmailOutbox::LeaseUntil))
                    .col(text_null(EmailOutbox::LastError))
                    .col(timestamp_with_time_zone(EmailOutbox::CreatedAt))
                    .col(timestamp_with_time_zone_null(EmailOutbox::SentAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_email_outbox_notification")
                            .from(EmailOutbox::Table, EmailOutbox::NotificationId)
                            .to(Notifications::Table, Notifications::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // The sender's claim: queued mail that is due.
        manager
            .create_index(
                Index::create()
                    .name("idx_email_outbox_due")
                    .table(EmailOutbox::Table)
                    .col(EmailOutbox::Status)
                    .col(EmailOutbox::NextAttemptAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for t in [
            EmailOutbox::Table.into_iden(),
            NotificationPreferences::Table.into_iden(),
            Notifications::Table.into_iden(),
        ] {
            manager.drop_table(Table::drop().table(t).if_exists().to_owned()).await?;
        }
        Ok(())
    }
}
