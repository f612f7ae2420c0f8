//! Notification use cases. `notify` is called inside the transaction of the event it reports
//! (a renewal, a settled top-up, an instance coming up), so the notice, its email and the event
//! commit together or not at all; the unique (user, event key) makes a repeated event a no-op.
use chrono::{DateTime, Utc};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Set,
    sea_query::{Expr, OnConflict, Query},
};

use super::{
    EmailStatus, NotificationKind,
    entity::{notification, outbox, preference},
    notice::{AppName, Notice},
};
use crate::{
    auth::Viewer,
    error::{AppError, AppResult},
    pagination::{Page, PageArgs},
    state::AppState,
    users::{Role, entity as users},
};

/// A notification that was recorded (not a repeat); hand it to `Notifier::announce` after
/// the commit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Notified {
    /// None: a broadcast to many users.
    pub user_id: Option<i64>,
    pub email_queued: bool,
}

/// Most ids one `markNotificationsRead` takes.
pub const MAX_MARK_IDS: usize = 500;
pub const MAX_TITLE_CHARS: usize = 200;
pub const MAX_BODY_CHARS: usize = 4_000;

/// Records `notice` for `user_id` in the caller's transaction, with its email when mail is
/// configured and the user wants this kind by email. Returns None when this event was already
/// recorded.
pub async fn notify(
    db: &impl ConnectionTrait,
    state: &AppState,
    user_id: i64,
    notice: &Notice,
) -> AppResult<Option<Notified>> {
    let now = state.now();
    let kind = notice.kind();
    let text = notice.text();
    let links = notice.links();
    let key = notice.event_key();
    let inserted = notification::Entity::insert(notification::ActiveModel {
        user_id: Set(user_id),
        kind: Set(kind),
        title: Set(text.title),
        body: Set(text.body),
        subscription_id: Set(links.subscription_id),
        transaction_id: Set(links.transaction_id),
        instance_id: Set(links.instance_id),
        event_key: Set(key.clone()),
        created_at: Set(now),
        read_at: Set(None),
        ..Default::default()
    })
    .on_conflict(
        OnConflict::columns([notification::Column::UserId, notification::Column::EventKey]).do_nothing().to_owned(),
    )
    .exec_without_returning(db)
    .await?;
    if inserted == 0 {
        return Ok(None);
    }
    let mut email_queued = false;
    if state.config.notifications.mail.is_some() && wants_email(db, user_id, kind).await? {
        let id: Option<i64> = notification::owned_by(user_id)
            .filter(notification::Column::EventKey.eq(key))
            .select_only()
            .column(notification::Column::Id)
            .into_tuple()
            .one(db)
            .await?;
        let recipient: Option<String> = users::Entity::find_by_id(user_id)
            .filter(users::Column::IsActive.eq(true))
            .select_only()
            .column(users::Column::Email)
            .into_tuple()
            .one(db)
            .await?;
        if let (Some(id), Some(recipient)) = (id, recipient) {
            queue_email(db, id, recipient, notice, now).await?;
            email_queued = true;
        }
    }
    Ok(Some(Notified { user_id: Some(user_id), email_queued }))
}

async fn wants_email(db: &impl ConnectionTrait, user_id: i64, kind: NotificationKind) -> AppResult<bool> {
    let chosen = preference::Entity::find_by_id((user_id, kind)).one(db).await?;
    Ok(chosen.map_or_else(|| kind.email_by_default(), |p| p.email))
}

async fn queue_email(
    db: &impl ConnectionTrait,
    notification_id: i64,
    recipient: String,
    notice: &Notice,
    now: DateTime<Utc>,
) -> AppResult<()> {
    let email = notice.email();
    outbox::Entity::insert(outbox::ActiveModel {
        notification_id: Set(notification_id),
        recipient: Set(recipient),
        subject: Set(email.subject),
        text_body: Set(email.text),
        html_body: Set(email.html),
        status: Set(EmailStatus::Queued),
        attempts: Set(0),
        next_attempt_at: Set(now),
        lease_until: Set(None),
        last_error: Set(None),
        created_at: Set(now),
        sent_at: Set(None),
        ..Default::default()
    })
    .exec_without_returning(db)
    .await?;
    Ok(())
}

/// A trimmed, non-empty text of at most `max` characters.
pub fn parse_text(field: &'static str, raw: &str, max: usize) -> AppResult<String> {
    let s = crate::text::nfkc(raw.trim());
    if s.is_empty() {
        return Err(AppError::bad_input(field, format!("{field} must not be empty")));
    }
    if s.chars().count() > max {
        return Err(AppError::bad_input(field, format!("{field} must be at most {max} characters")));
    }
    Ok(s)
}

/// Admin: one ANNOUNCEMENT to every active user (of `role`, when given), with their emails,
/// in one transaction of two statements whatever the number of users. Returns the recipients.
#[tracing::instrument(skip_all, fields(admin_id = admin.id))]
pub async fn broadcast(
    state: &AppState,
    admin: Viewer,
    title: String,
    body: String,
    role: Option<Role>,
) -> AppResult<u64> {
    let now = state.now();
    let notice =
        Notice::Announcement { broadcast: format!("b{}", hex::encode(rand::random::<[u8; 12]>())), title, body };
    let text = notice.text();
    let key = notice.event_key();
    let mut recipients = Query::select();
    recipients
        .column(users::Column::Id)
        .expr(Expr::val(NotificationKind::Announcement.as_str()))
        .expr(Expr::val(text.title))
        .expr(Expr::val(text.body))
        .expr(Expr::val(key.clone()))
        .expr(Expr::val(now))
        .from(users::Entity)
        .and_where(users::Column::IsActive.eq(true));
    if let Some(role) = role {
        recipients.and_where(users::Column::Role.eq(role.as_str()));
    }
    let insert = Query::insert()
        .into_table(notification::Entity)
        .columns([
            notification::Column::UserId,
            notification::Column::Kind,
            notification::Column::Title,
            notification::Column::Body,
            notification::Column::EventKey,
            notification::Column::CreatedAt,
        ])
        .select_from(recipients)
        .map_err(|e| AppError::internal(anyhow::anyhow!(e)))?
        .to_owned();
    let tx = state.db.begin().await?;
    let count = tx.execute(&insert).await?.rows_affected();
    let mut emails = 0;
    if state.config.notifications.mail.is_some() && count > 0 {
        emails = queue_broadcast_emails(&*tx, &notice, &key, now).await?;
    }
    tx.commit().await?;
    tracing::info!(recipients = count, emails, ?role, "announcement sent");
    state.notices.announce(&state.db, Some(Notified { user_id: None, email_queued: emails > 0 })).await;
    Ok(count)
}

/// The emails of a broadcast, for recipients who did not turn announcements off.
async fn queue_broadcast_emails(
    db: &impl ConnectionTrait,
    notice: &Notice,
    key: &str,
    now: DateTime<Utc>,
) -> AppResult<u64> {
    use sea_orm::sea_query::{Alias, ExprTrait, Func, JoinType};
    let email = notice.email();
    let (n, u, p) = (Alias::new("n"), Alias::new("u"), Alias::new("p"));
    let kind = NotificationKind::Announcement;
    let mut select = Query::select();
    select
        .column((n.clone(), notification::Column::Id))
        .column((u.clone(), users::Column::Email))
        .expr(Expr::val(email.subject))
        .expr(Expr::val(email.text))
        .expr(Expr::val(email.html))
        .expr(Expr::val("QUEUED"))
        .expr(Expr::val(0))
        .expr(Expr::val(now))
        .expr(Expr::val(now))
        .from_as(notification::Entity, n.clone())
        .join_as(
            JoinType::InnerJoin,
            users::Entity,
            u.clone(),
            Expr::col((u.clone(), users::Column::Id)).equals((n.clone(), notification::Column::UserId)),
        )
        .join_as(
            JoinType::LeftJoin,
            preference::Entity,
            p.clone(),
            Expr::col((p.clone(), preference::Column::UserId))
                .equals((n.clone(), notification::Column::UserId))
                .and(Expr::col((p.clone(), preference::Column::Kind)).eq(kind.as_str())),
        )
        .and_where(Expr::col((n.clone(), notification::Column::EventKey)).eq(key))
        .and_where(
            Expr::expr(Func::coalesce([
                Expr::col((p.clone(), preference::Column::Email)),
                Expr::val(kind.email_by_default()),
            ]))
            .eq(true),
        );
    let insert = Query::insert()
        .into_table(outbox::Entity)
        .columns([
            outbox::Column::NotificationId,
            outbox::Column::Recipient,
            outbox::Column::Subject,
            outbox::Column::TextBody,
            outbox::Column::HtmlBody,
            outbox::Column::Status,
            outbox::Column::Attempts,
            outbox::Column::NextAttemptAt,
            outbox::Column::CreatedAt,
        ])
        .select_from(select)
        .map_err(|e| AppError::internal(anyhow::anyhow!(e)))?
        .to_owned();
    Ok(db.execute(&insert).await?.rows_affected())
}

/// The viewer's notifications, newest first.
pub async fn list(
    db: &impl ConnectionTrait,
    viewer: Viewer,
    unread_only: bool,
    args: PageArgs,
) -> AppResult<Page<notification::Model>> {
    let mut q = notification::owned_by(viewer.id);
    if unread_only {
        q = q.filter(notification::Column::ReadAt.is_null());
    }
    crate::pagination::newest_first(db, q, notification::Column::Id, args).await
}

pub async fn unread_count(db: &impl ConnectionTrait, viewer: Viewer) -> AppResult<u64> {
    Ok(notification::owned_by(viewer.id).filter(notification::Column::ReadAt.is_null()).count(db).await?)
}

/// Rows one `newer_than` call returns at most.
pub const NEWER_PAGE: usize = 100;

/// The viewer's notifications after `after_id`, oldest first (what `notificationAdded` sends).
pub async fn newer_than(
    db: &impl ConnectionTrait,
    viewer: Viewer,
    after_id: i64,
) -> AppResult<Vec<notification::Model>> {
    Ok(notification::owned_by(viewer.id)
        .filter(notification::Column::Id.gt(after_id))
        .order_by_asc(notification::Column::Id)
        .limit(NEWER_PAGE as u64)
        .all(db)
        .await?)
}

/// The id of the viewer's newest notification (0 when none).
pub async fn latest_id(db: &impl ConnectionTrait, viewer: Viewer) -> AppResult<i64> {
    let id: Option<Option<i64>> = notification::owned_by(viewer.id)
        .select_only()
        .column_as(notification::Column::Id.max(), "max_id")
        .into_tuple()
        .one(db)
        .await?;
    Ok(id.flatten().unwrap_or(0))
}

/// Marks the viewer's notifications among `ids` read; other users' ids change nothing.
/// Returns how many were unread before.
pub async fn mark_read(state: &AppState, viewer: Viewer, ids: &[i64]) -> AppResult<u64> {
    if ids.len() > MAX_MARK_IDS {
        return Err(AppError::bad_input("ids", format!("at most {MAX_MARK_IDS} ids at a time")));
    }
    if ids.is_empty() {
        return Ok(0);
    }
    mark(state, viewer, Some(ids)).await
}

pub async fn mark_all_read(state: &AppState, viewer: Viewer) -> AppResult<u64> {
    mark(state, viewer, None).await
}

async fn mark(state: &AppState, viewer: Viewer, ids: Option<&[i64]>) -> AppResult<u64> {
    let mut q = notification::Entity::update_many()
        .col_expr(notification::Column::ReadAt, Expr::val(state.now()))
        .filter(notification::Column::UserId.eq(viewer.id))
        .filter(notification::Column::ReadAt.is_null());
    if let Some(ids) = ids {
        q = q.filter(notification::Column::Id.is_in(ids.iter().copied()));
    }
    let tx = state.db.begin().await?;
    let marked = q.exec(&*tx).await?.rows_affected;
    tx.commit().await?;
    Ok(marked)
}

/// Each kind with whether the viewer gets it by email.
pub async fn preferences(db: &impl ConnectionTrait, viewer: Viewer) -> AppResult<Vec<(NotificationKind, bool)>> {
    let chosen = preference::Entity::find().filter(preference::Column::UserId.eq(viewer.id)).all(db).await?;
    Ok(NotificationKind::all()
        .map(|k| (k, chosen.iter().find(|p| p.kind == k).map_or_else(|| k.email_by_default(), |p| p.email)))
        .collect())
}

/// Sets the viewer's email choice for the kinds given; the others keep theirs.
pub async fn set_preferences(
    state: &AppState,
    viewer: Viewer,
    choices: &[(NotificationKind, bool)],
) -> AppResult<Vec<(NotificationKind, bool)>> {
    let now = state.now();
    // One upsert cannot change a row twice (PostgreSQL refuses it): a kind named twice is a
    // mistake of the caller, not ours.
    for (i, (kind, _)) in choices.iter().enumerate() {
        if choices[..i].iter().any(|(k, _)| k == kind) {
            return Err(AppError::bad_input("preferences", format!("{} is listed twice", kind.as_str())));
        }
    }
    if !choices.is_empty() {
        let rows = choices.iter().map(|(kind, email)| preference::ActiveModel {
            user_id: Set(viewer.id),
            kind: Set(*kind),
            email: Set(*email),
            updated_at: Set(now),
        });
        let tx = state.db.begin().await?;
        preference::Entity::insert_many(rows)
            .on_conflict(
                OnConflict::columns([preference::Column::UserId, preference::Column::Kind])
                    .update_columns([preference::Column::Email, preference::Column::UpdatedAt])
                    .to_owned(),
            )
            .exec_without_returning(&*tx)
            .await?;
        tx.commit().await?;
    }
    preferences(&state.db.conn, viewer).await
}

/// The service and plan names the owner knows a subscription by.
pub async fn app_name(db: &impl ConnectionTrait, service_id: i64, plan_id: i64) -> AppResult<AppName> {
    use crate::catalog::entity::{plan, service};
    let service: Option<String> = service::Entity::find_by_id(service_id)
        .select_only()
        .column(service::Column::Name)
        .into_tuple()
        .one(db)
        .await?;
    let plan: Option<String> =
        plan::Entity::find_by_id(plan_id).select_only().column(plan::Column::Name).into_tuple().one(db).await?;
    Ok(AppName {
        service: service.unwrap_or_else(|| format!("service {service_id}")),
        plan: plan.unwrap_or_else(|| format!("plan {plan_id}")),
    })
}
