//! Administrator use cases on accounts: create (with a temporary password or an invitation),
//! edit someone's profile, and anonymize (the right to erasure, without erasing money history).
use base64::Engine;
use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QuerySelect, Set,
    sea_query::{Expr, ExprTrait},
};

use super::{
    Email, Name, Password, Phone, Role, entity as users, invitations,
    service::{self as user_service, NewUser, ensure_other_active_admin, unique_violation},
};
use crate::{
    auth::{Viewer, password::NO_PASSWORD, revocations::Revocation},
    error::{AppError, AppResult, DbResultExt},
    notifications::{EmailStatus, entity as notifications},
    state::AppState,
    subscriptions::{SubscriptionStatus, entity::subscription},
};

/// How a new account gets its first password.
#[derive(Copy, Clone, Debug, PartialEq, Eq, async_graphql::Enum)]
pub enum CreationMode {
    /// A random password, returned once to the administrator. The account is flagged
    /// `mustChangePassword` until the user changes it (clients should insist; the API does not
    /// block other operations).
    TemporaryPassword,
    /// No password yet: a single-use token, valid for 7 days, lets the user choose one with
    /// `acceptInvitation`. Nobody, the administrator included, ever knows the password.
    Invitation,
}

pub struct NewAccount {
    pub name: Name,
    pub email: Email,
    pub phone: Option<Phone>,
    pub avatar: Option<String>,
    pub role: Role,
    pub mode: CreationMode,
}

pub struct CreatedAccount {
    pub user: users::Model,
    /// Only for `TemporaryPassword`; never stored or logged.
    pub temporary_password: Option<String>,
    /// Only for `Invitation`: the token (never stored, only its hash) and its expiry.
    pub invitation: Option<(String, DateTime<Utc>)>,
}

/// 16 URL-safe characters from 96 random bits: typeable, and beyond guessing.
fn temporary_password() -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 12]>())
}

/// Creates an account for someone else. No welcome bonus: the balance starts at zero. A
/// duplicate email or phone is CONFLICT, from the unique indexes.
#[tracing::instrument(skip_all, fields(admin_id = admin.id))]
pub async fn create(state: &AppState, admin: Viewer, input: NewAccount) -> AppResult<CreatedAccount> {
    let temporary_password = match input.mode {
        CreationMode::TemporaryPassword => Some(temporary_password()),
        CreationMode::Invitation => None,
    };
    // Hashed before the transaction: argon2 takes ~50 ms that no lock should wait for.
    let password_hash = match &temporary_password {
        Some(p) => user_service::hash_password(state, &Password::parse(p, "password")?).await?,
        None => NO_PASSWORD.to_string(),
    };
    let new_user = NewUser {
        name: input.name,
        email: input.email,
        password_hash,
        phone: input.phone,
        role: input.role,
        must_change_password: temporary_password.is_some(),
        avatar: input.avatar,
    };
    let now = state.now();
    let tx = state.db.begin().await?;
    let user = user_service::create_user(state, new_user, &*tx).await?;
    let invitation = match input.mode {
        CreationMode::Invitation => Some(invitations::create(&*tx, user.id, admin.id, now).await?),
        CreationMode::TemporaryPassword => None,
    };
    tx.commit().await?;
    tracing::info!(admin_id = admin.id, user_id = user.id, mode = ?input.mode, "account created by an administrator");
    Ok(CreatedAccount { user, temporary_password, invitation })
}

/// What an administrator may change in someone's profile; `None` leaves a field as it is.
pub struct AccountChanges {
    pub name: Option<Name>,
    pub email: Option<Email>,
    /// `Some(None)` clears the phone number.
    pub phone: Option<Option<Phone>>,
    pub avatar: Option<Option<String>>,
}

/// Edits a profile. The email is parsed like at registration and stays unique (CONFLICT); an
/// anonymized account cannot be edited, so personal data cannot come back through this door.
#[tracing::instrument(skip_all, fields(admin_id = admin.id, user_id))]
pub async fn update(state: &AppState, admin: Viewer, user_id: i64, changes: AccountChanges) -> AppResult<users::Model> {
    let tx = state.db.begin().await?;
    let user = user_service::get(&*tx, user_id).await?;
    if user.anonymized_at.is_some() {
        return Err(AppError::Conflict("the account is anonymized and cannot be edited".into()));
    }
    let mut active: users::ActiveModel = user.into();
    if let Some(name) = changes.name {
        active.name = Set(name.into_inner());
    }
    if let Some(email) = changes.email {
        active.email = Set(email.into_inner());
    }
    if let Some(phone) = changes.phone {
        active.phone = Set(phone.map(Phone::into_inner));
    }
    if let Some(avatar) = changes.avatar {
        active.avatar = Set(avatar);
    }
    active.updated_at = Set(state.now());
    let user = active.update(&*tx).await.on_unique_violation(unique_violation)?;
    tx.commit().await?;
    tracing::info!(admin_id = admin.id, user_id, "profile changed by an administrator");
    Ok(user)
}

/// The placeholder address of an anonymized account: unique (the id), and under `.invalid`,
/// which `Email::parse` refuses, so no live account can hold it.
pub fn anonymized_email(user_id: i64) -> String {
    format!("deleted-{user_id}@anonymized.invalid")
}

pub const ANONYMIZED_NAME: &str = "Deleted user";

/// Replaces the personal data of an account (name, email, phone, avatar, the recipient of its
/// past emails), makes its password unusable, deactivates it and ends every session. The
/// ledger, balances and subscription history stay: money history is never deleted, and the
/// rows keep pointing at the (now anonymous) user id.
///
/// Refused with CONFLICT: for the administrator's own account, for the last active
/// administrator, and while the user has a live subscription (ACTIVE, SUSPENDED or pending):
/// those still bill and run apps in the user's name, so an administrator cancels them first
/// (with or without a refund) and decides about the money. A second call returns the
/// anonymized account unchanged.
#[tracing::instrument(skip_all, fields(admin_id = admin.id, user_id))]
pub async fn anonymize(state: &AppState, admin: Viewer, user_id: i64, reason: &str) -> AppResult<users::Model> {
    if user_id == admin.id {
        return Err(AppError::Conflict("you cannot anonymize your own account".into()));
    }
    let now = state.now();
    let tx = state.db.begin().await?;
    // Locked first (PostgreSQL): a subscription insert still in flight holds a key-share lock
    // on this row, so we wait for it and count it below. (One that starts after this lock waits
    // and lands after the commit; `subscribe` checking the owner under the lock would close that.)
    let user =
        users::Entity::find_by_id(user_id).lock_exclusive().one(&*tx).await?.ok_or(AppError::NotFound("user"))?;
    if user.anonymized_at.is_some() {
        return Ok(user);
    }
    if user.role == Role::Administrator && user.is_active {
        ensure_other_active_admin(&*tx, user.id).await?;
    }
    let live = subscription::owned_by(user_id)
        .filter(subscription::Column::Status.is_in(SubscriptionStatus::live()))
        .count(&*tx)
        .await?;
    if live > 0 {
        return Err(AppError::Conflict(format!(
            "the user has {live} live subscription(s): cancel them before anonymizing the account"
        )));
    }
    let placeholder = anonymized_email(user_id);
    let mut active: users::ActiveModel = user.into();
    active.name = Set(ANONYMIZED_NAME.into());
    active.email = Set(placeholder.clone());
    active.phone = Set(None);
    active.avatar = Set(None);
    active.password_hash = Set(NO_PASSWORD.into());
    active.role = Set(Role::User);
    active.is_active = Set(false);
    active.must_change_password = Set(false);
    active.anonymized_at = Set(Some(now));
    active.updated_at = Set(now);
    let user = active.update(&*tx).await?;
    crate::auth::service::revoke_all_sessions(&*tx, user_id, now).await?;
    // Open invitations would otherwise let someone set a password on the anonymous account.
    invitations::entity::Entity::update_many()
        .col_expr(invitations::entity::Column::ExpiresAt, Expr::value(now))
        .filter(invitations::entity::Column::UserId.eq(user_id))
        .filter(invitations::entity::Column::AcceptedAt.is_null())
        .exec(&*tx)
        .await?;
    scrub_email_outbox(&*tx, user_id, &placeholder).await?;
    tx.commit().await?;
    state.revocations.publish(&state.db, Revocation(user_id)).await;
    // The reason is an operator's record, not the user's data; it goes to the audit log.
    tracing::info!(admin_id = admin.id, user_id, reason, "account anonymized");
    Ok(user)
}

/// Past and queued emails name their recipient: the address goes, and mail not yet sent is
/// given up rather than delivered to an address the user asked us to forget.
async fn scrub_email_outbox(db: &impl sea_orm::ConnectionTrait, user_id: i64, placeholder: &str) -> AppResult<()> {
    let of_user = sea_orm::sea_query::Query::select()
        .column(notifications::notification::Column::Id)
        .from(notifications::notification::Entity)
        .and_where(Expr::col(notifications::notification::Column::UserId).eq(user_id))
        .to_owned();
    use notifications::outbox;
    outbox::Entity::update_many()
        .col_expr(outbox::Column::Status, Expr::value(EmailStatus::Failed))
        .col_expr(outbox::Column::LastError, Expr::value("recipient anonymized"))
        .col_expr(outbox::Column::LeaseUntil, Expr::value(Option::<DateTime<Utc>>::None))
        .filter(outbox::Column::NotificationId.in_subquery(of_user.clone()))
        .filter(outbox::Column::Status.eq(EmailStatus::Queued))
        .exec(db)
        .await?;
    outbox::Entity::update_many()
        .col_expr(outbox::Column::Recipient, Expr::value(placeholder))
        .filter(outbox::Column::NotificationId.in_subquery(of_user))
        .exec(db)
        .await?;
    Ok(())
}
