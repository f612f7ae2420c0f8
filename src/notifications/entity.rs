//! Notifications, email preferences and the email outbox. User-facing reads start from
//! `notification::owned_by`, so a missing `user_id = …` cannot happen.
pub mod notification {
    use sea_orm::entity::prelude::*;

    use crate::notifications::NotificationKind;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "notifications")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub user_id: i64,
        pub kind: NotificationKind,
        pub title: String,
        pub body: String,
        pub subscription_id: Option<i64>,
        pub transaction_id: Option<i64>,
        pub instance_id: Option<i64>,
        /// `KIND:subject:period`, unique per user: the same event never notifies twice.
        pub event_key: String,
        pub created_at: DateTimeUtc,
        pub read_at: Option<DateTimeUtc>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}

    pub fn owned_by(user_id: i64) -> Select<Entity> {
        Entity::find().filter(Column::UserId.eq(user_id))
    }
}

pub mod preference {
    use sea_orm::entity::prelude::*;

    use crate::notifications::NotificationKind;

    /// A user's choice for one kind; kinds without a row use the kind's default.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "notification_preferences")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub user_id: i64,
        #[sea_orm(primary_key, auto_increment = false)]
        pub kind: NotificationKind,
        pub email: bool,
        pub updated_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod outbox {
    use sea_orm::entity::prelude::*;

    use crate::notifications::EmailStatus;

    /// One email to send, written with its notification; the sender claims it with a lease.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "email_outbox")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub notification_id: i64,
        pub recipient: String,
        pub subject: String,
        pub text_body: String,
        pub html_body: String,
        pub status: EmailStatus,
        pub attempts: i32,
        pub next_attempt_at: DateTimeUtc,
        /// Set while a sender works on the row; a crashed sender's lease runs out.
        pub lease_until: Option<DateTimeUtc>,
        pub last_error: Option<String>,
        pub created_at: DateTimeUtc,
        pub sent_at: Option<DateTimeUtc>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
