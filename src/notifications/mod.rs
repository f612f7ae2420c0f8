//! Notifications: what happened to a user's money and apps, stored per user, announced live
//! (`notificationAdded`, across replicas) and, where the user wants it, sent by email through
//! an outbox written in the same transaction as the event.
pub mod entity;
pub mod graphql;
pub mod hub;
pub mod mailer;
pub mod notice;
pub mod outbox;
pub mod service;

use sea_orm::{DeriveActiveEnum, EnumIter, Iterable, sea_query::StringLen};

#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, async_graphql::Enum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(30))")]
pub enum NotificationKind {
    /// The balance will not cover a renewal due soon.
    #[sea_orm(string_value = "LOW_CREDIT")]
    LowCredit,
    #[sea_orm(string_value = "RENEWED")]
    Renewed,
    /// A renewal could not be charged; the grace period started.
    #[sea_orm(string_value = "GRACE_STARTED")]
    GraceStarted,
    /// The grace period ends soon.
    #[sea_orm(string_value = "GRACE_REMINDER")]
    GraceReminder,
    #[sea_orm(string_value = "SUSPENDED")]
    Suspended,
    #[sea_orm(string_value = "EXPIRED")]
    Expired,
    #[sea_orm(string_value = "TOP_UP_SETTLED")]
    TopUpSettled,
    #[sea_orm(string_value = "TOP_UP_FAILED")]
    TopUpFailed,
    #[sea_orm(string_value = "INSTANCE_RUNNING")]
    InstanceRunning,
    #[sea_orm(string_value = "INSTANCE_ERROR")]
    InstanceError,
    /// A notice from the operators (maintenance and the like).
    #[sea_orm(string_value = "ANNOUNCEMENT")]
    Announcement,
}

impl NotificationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::LowCredit => "LOW_CREDIT",
            Self::Renewed => "RENEWED",
            Self::GraceStarted => "GRACE_STARTED",
            Self::GraceReminder => "GRACE_REMINDER",
            Self::Suspended => "SUSPENDED",
            Self::Expired => "EXPIRED",
            Self::TopUpSettled => "TOP_UP_SETTLED",
            Self::TopUpFailed => "TOP_UP_FAILED",
            Self::InstanceRunning => "INSTANCE_RUNNING",
            Self::InstanceError => "INSTANCE_ERROR",
            Self::Announcement => "ANNOUNCEMENT",
        }
    }

    /// Whether email is on for a user who never chose: on for what costs money or stops an
    /// app, off for the merely informative.
    pub fn email_by_default(self) -> bool {
        !matches!(self, Self::Renewed | Self::TopUpSettled | Self::InstanceRunning)
    }

    pub fn all() -> impl Iterator<Item = Self> {
        Self::iter()
    }
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, async_graphql::Enum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(10))")]
pub enum EmailStatus {
    /// Waiting for its first or next attempt.
    #[sea_orm(string_value = "QUEUED")]
    Queued,
    #[sea_orm(string_value = "SENT")]
    Sent,
    /// Given up after the last attempt (or refused permanently by the server).
    #[sea_orm(string_value = "FAILED")]
    Failed,
}
