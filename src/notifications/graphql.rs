use async_graphql::{Context, ID, InputObject, Object, Result, SimpleObject, Subscription};
use chrono::{DateTime, Utc};
use futures::Stream;
use tokio::sync::broadcast::error::RecvError;

use super::{
    EmailStatus, NotificationKind,
    entity::{self, notification},
    outbox,
    service::{self, MAX_BODY_CHARS, MAX_TITLE_CHARS},
};
use crate::{
    graphql::ContextExt,
    pagination::{Conn, PageArgs, connection, parse_id},
    users::Role,
};

/// One of the viewer's notifications. Only built from rows the owner-scoped queries of
/// `service` returned, so no resolver can hand out someone else's.
pub struct Notification(notification::Model);

#[Object]
impl Notification {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn kind(&self) -> NotificationKind {
        self.0.kind
    }
    async fn title(&self) -> &str {
        &self.0.title
    }
    async fn body(&self) -> &str {
        &self.0.body
    }
    async fn read(&self) -> bool {
        self.0.read_at.is_some()
    }
    async fn read_at(&self) -> Option<DateTime<Utc>> {
        self.0.read_at
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    /// The subscription it is about, if any.
    async fn subscription_id(&self) -> Option<ID> {
        self.0.subscription_id.map(|i| ID(i.to_string()))
    }
    /// The wallet transaction it is about, if any.
    async fn transaction_id(&self) -> Option<ID> {
        self.0.transaction_id.map(|i| ID(i.to_string()))
    }
    /// The app instance it is about, if any.
    async fn instance_id(&self) -> Option<ID> {
        self.0.instance_id.map(|i| ID(i.to_string()))
    }
}

/// Whether the viewer gets notices of one kind by email as well.
#[derive(SimpleObject)]
pub struct NotificationPreference {
    pub kind: NotificationKind,
    pub email: bool,
}

#[derive(InputObject)]
pub struct NotificationPreferenceInput {
    pub kind: NotificationKind,
    pub email: bool,
}

fn preferences(list: Vec<(NotificationKind, bool)>) -> Vec<NotificationPreference> {
    list.into_iter().map(|(kind, email)| NotificationPreference { kind, email }).collect()
}

#[derive(Default)]
pub struct NotificationQuery;

#[Object]
impl NotificationQuery {
    /// The viewer's notifications, newest first.
    async fn notifications(
        &self,
        ctx: &Context<'_>,
        #[graphql(default_with = "Some(false)")] unread_only: Option<bool>,
        #[graphql(default = 20)] first: Option<i32>,
        after: Option<String>,
    ) -> Result<Conn<Notification>> {
        let viewer = ctx.auth().viewer()?;
        let args = PageArgs::parse(first, after.as_deref())?;
        let page = service::list(&ctx.state().db.conn, viewer, unread_only.unwrap_or(false), args).await?;
        Ok(connection(page, |n| n.id, Notification))
    }

    async fn unread_notification_count(&self, ctx: &Context<'_>) -> Result<u64> {
        let viewer = ctx.auth().viewer()?;
        Ok(service::unread_count(&ctx.state().db.conn, viewer).await?)
    }

    /// Every kind, with whether the viewer also gets it by email. Email goes out only when the
    /// operators configured a mail server.
    async fn notification_preferences(&self, ctx: &Context<'_>) -> Result<Vec<NotificationPreference>> {
        let viewer = ctx.auth().viewer()?;
        Ok(preferences(service::preferences(&ctx.state().db.conn, viewer).await?))
    }

    /// Admin: the email outbox, newest first, optionally of one status (FAILED: what needs a
    /// look).
    async fn email_deliveries(
        &self,
        ctx: &Context<'_>,
        status: Option<EmailStatus>,
        #[graphql(default = 20)] first: Option<i32>,
        after: Option<String>,
    ) -> Result<Conn<EmailDelivery>> {
        ctx.auth().admin()?;
        let args = PageArgs::parse(first, after.as_deref())?;
        let page = outbox::list(&ctx.state().db.conn, status, args).await?;
        Ok(connection(page, |d| d.id, EmailDelivery))
    }
}

/// One email of the outbox, for administrators.
pub struct EmailDelivery(entity::outbox::Model);

#[Object]
impl EmailDelivery {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn notification_id(&self) -> ID {
        ID(self.0.notification_id.to_string())
    }
    async fn recipient(&self) -> &str {
        &self.0.recipient
    }
    async fn subject(&self) -> &str {
        &self.0.subject
    }
    async fn status(&self) -> EmailStatus {
        self.0.status
    }
    /// Attempts made so far (claimed by a sender).
    async fn attempts(&self) -> i32 {
        self.0.attempts
    }
    /// The server's answer (or the connection failure) of the last failed attempt.
    async fn last_error(&self) -> Option<&str> {
        self.0.last_error.as_deref()
    }
    /// When a QUEUED email is tried next.
    async fn next_attempt_at(&self) -> DateTime<Utc> {
        self.0.next_attempt_at
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn sent_at(&self) -> Option<DateTime<Utc>> {
        self.0.sent_at
    }
}

#[derive(Default)]
pub struct NotificationMutation;

#[Object]
impl NotificationMutation {
    /// Marks the viewer's notifications among `ids` read (others' ids change nothing). Returns
    /// how many were unread.
    async fn mark_notifications_read(&self, ctx: &Context<'_>, ids: Vec<ID>) -> Result<u64> {
        let viewer = ctx.auth().viewer()?;
        let ids = ids.iter().map(|id| parse_id(id, "notification")).collect::<Result<Vec<_>, _>>()?;
        Ok(service::mark_read(ctx.state(), viewer, &ids).await?)
    }

    async fn mark_all_notifications_read(&self, ctx: &Context<'_>) -> Result<u64> {
        let viewer = ctx.auth().viewer()?;
        Ok(service::mark_all_read(ctx.state(), viewer).await?)
    }

    /// Sets whether notices of the given kinds also come by email; kinds left out keep their
    /// setting. Returns every kind.
    async fn update_notification_preferences(
        &self,
        ctx: &Context<'_>,
        preferences: Vec<NotificationPreferenceInput>,
    ) -> Result<Vec<NotificationPreference>> {
        let viewer = ctx.auth().viewer()?;
        let choices: Vec<_> = preferences.into_iter().map(|p| (p.kind, p.email)).collect();
        Ok(self::preferences(service::set_preferences(ctx.state(), viewer, &choices).await?))
    }

    /// Admin: an announcement to every active user, or to those of one role. Returns the number
    /// of recipients.
    async fn broadcast_notification(
        &self,
        ctx: &Context<'_>,
        title: String,
        body: String,
        role: Option<Role>,
    ) -> Result<u64> {
        let admin = ctx.auth().admin()?;
        let title = service::parse_text("title", &title, MAX_TITLE_CHARS)?;
        let body = service::parse_text("body", &body, MAX_BODY_CHARS)?;
        Ok(service::broadcast(ctx.state(), admin, title, body, role).await?)
    }
}

#[derive(Default)]
pub struct NotificationSubscription;

#[Subscription]
impl NotificationSubscription {
    /// Each new notification of the viewer, from any replica, in the order they were recorded.
    async fn notification_added(&self, ctx: &Context<'_>) -> Result<impl Stream<Item = Notification> + use<>> {
        let viewer = ctx.auth().viewer()?;
        let state = ctx.state().clone();
        // Read the newest id first, then listen, then catch up once: a notice recorded between
        // the two is delivered rather than lost.
        let floor = service::latest_id(&state.db.conn, viewer).await?;
        let mut rx = state.notices.hub.subscribe();
        Ok(async_stream::stream! {
            let mut sent = Recent::new(floor);
            let mut wake = true;
            loop {
                let mut after = sent.floor();
                while wake {
                    match service::newer_than(&state.db.conn, viewer, after).await {
                        Ok(rows) => {
                            wake = rows.len() == service::NEWER_PAGE;
                            for row in rows {
                                after = row.id;
                                if sent.insert(row.id) {
                                    yield Notification(row);
                                }
                            }
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "notificationAdded: cannot load notifications");
                            wake = false;
                        }
                    }
                }
                wake = match rx.recv().await {
                    Ok(ev) => ev.user_id.is_none_or(|u| u == viewer.id),
                    Err(RecvError::Lagged(_)) => true,
                    Err(RecvError::Closed) => break,
                };
            }
        })
    }
}

/// The ids a `notificationAdded` stream sent lately. Ids come from a sequence, so a transaction
/// that took a lower id may commit after one with a higher id: each read looks back past the
/// last few ids sent and skips those already sent, instead of only after the newest.
struct Recent {
    start: i64,
    ids: std::collections::VecDeque<i64>,
}

impl Recent {
    const KEEP: usize = 32;

    fn new(start: i64) -> Self {
        Self { start, ids: Default::default() }
    }

    /// Rows after this id may still be unsent.
    fn floor(&self) -> i64 {
        if self.ids.len() < Self::KEEP { self.start } else { self.ids.iter().copied().min().unwrap_or(self.start) }
    }

    /// Records `id`; false when it was sent already.
    fn insert(&mut self, id: i64) -> bool {
        if id <= self.floor() || self.ids.contains(&id) {
            return false;
        }
        if self.ids.len() == Self::KEEP {
            self.ids.pop_front();
        }
        self.ids.push_back(id);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::Recent;

    #[test]
    fn a_late_commit_with_a_lower_id_is_still_sent_once() {
        let mut r = Recent::new(10);
        assert!(r.insert(12));
        assert!(!r.insert(12), "sent already");
        assert!(r.insert(11), "committed after 12");
        assert!(!r.insert(9), "before the stream started");
        for id in 13..13 + Recent::KEEP as i64 {
            assert!(r.insert(id));
        }
        assert!(r.floor() > 12, "the window moves on: {}", r.floor());
        assert!(!r.insert(12));
    }
}
