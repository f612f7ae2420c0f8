//! Sign-up, sign-in and session use cases.
use chrono::{DateTime, Utc};
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set, sea_query::Expr};
use sha2::{Digest, Sha256};

use super::{Viewer, entity as tokens};
use crate::auth::revocations::Revocation;
use crate::{
    error::{AppError, AppResult},
    state::AppState,
    users::{
        Email, Name, Password, Phone, Role, entity as users,
        service::{self as user_service, NewUser},
    },
};

pub struct AuthPayload {
    pub access_token: String,
    pub access_token_expires_at: DateTime<Utc>,
    pub refresh_token: String,
    pub user: users::Model,
}

pub struct Registration<'a> {
    pub name: &'a str,
    pub email: &'a str,
    pub password: &'a str,
    pub phone: Option<&'a str>,
}

fn bad_credentials() -> AppError {
    AppError::Unauthenticated("invalid email or password".into())
}

fn bad_refresh_token() -> AppError {
    AppError::Unauthenticated("invalid or expired refresh token".into())
}

fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Per address, then per (email, address), then the per-email ceiling. An attempt refused by an
/// earlier bucket does not count in a later one, so an address that spends its own budget on
/// someone's email adds at most that budget to the ceiling, and the owner's own address still
/// gets in.
fn throttle(state: &AppState, ip: Option<&str>, email: &str) -> AppResult<()> {
    let limits = &state.auth;
    if let Some(ip) = ip {
        limits.ip_limiter.hit(ip)?;
    }
    limits.email_ip_limiter.hit(&format!("{email} {}", ip.unwrap_or("-")))?;
    limits.email_limiter.hit(email)
}

#[tracing::instrument(skip_all)]
pub async fn register(state: &AppState, input: Registration<'_>, ip: Option<&str>) -> AppResult<AuthPayload> {
    let email = Email::parse(input.email)?;
    throttle(state, ip, email.as_str())?;
    let new_user = NewUser {
        name: Name::parse(input.name)?,
        email,
        password_hash: user_service::hash_password(state, &Password::parse(input.password, "password")?).await?,
        phone: input.phone.filter(|p| !p.trim().is_empty()).map(Phone::parse).transpose()?,
        role: Role::User,
        must_change_password: false,
        avatar: None,
    };
    let tx = state.db.begin().await?;
    let user = user_service::create_user(state, new_user, &*tx).await?;
    // In the account's transaction; a failure is recorded for administrators, not fatal.
    let bonus = crate::coupons::welcome::grant(&tx, user.id, state.now()).await?;
    let user = if bonus > 0 { user_service::get(&*tx, user.id).await? } else { user };
    let payload = issue_session(state, &*tx, user, None).await?;
    tx.commit().await?;
    Ok(payload)
}

#[tracing::instrument(skip_all)]
pub async fn login(state: &AppState, email: &str, password: &str, ip: Option<&str>) -> AppResult<AuthPayload> {
    // A malformed email cannot belong to an account: same answer as a wrong password.
    let email = Email::parse(email).map_err(|_| bad_credentials())?;
    throttle(state, ip, email.as_str())?;
    let user = user_service::find_by_email(&state.db.conn, &email).await?;
    let ok = state.auth.hasher.verify(password, user.as_ref().map(|u| u.password_hash.as_str())).await?;
    let user = match user {
        Some(u) if ok && u.is_active => u,
        _ => return Err(bad_credentials()),
    };
    let tx = state.db.begin().await?;
    let payload = issue_session(state, &*tx, user, None).await?;
    tx.commit().await?;
    Ok(payload)
}

/// Redeems an invitation: sets the first password and signs the user in. The token works once
/// and until it expires; one refusal covers unknown, used and expired tokens, and accounts
/// deactivated or anonymized since the invitation.
#[tracing::instrument(skip_all)]
pub async fn accept_invitation(state: &AppState, token: &str, password: &str) -> AppResult<AuthPayload> {
    let password = Password::parse(password, "password")?;
    // Hashed before the transaction (argon2 is slow); wasted only on a bad token.
    let hash = state.auth.hasher.hash(password.expose()).await?;
    let now = state.now();
    let tx = state.db.begin().await?;
    let user_id = crate::users::invitations::redeem(&*tx, token, now).await?;
    let user = user_service::get(&*tx, user_id).await?;
    if !user.is_active || user.anonymized_at.is_some() {
        return Err(crate::users::invitations::unusable());
    }
    let mut active: users::ActiveModel = user.into();
    active.password_hash = Set(hash);
    active.must_change_password = Set(false);
    active.updated_at = Set(now);
    let user = active.update(&*tx).await?;
    let payload = issue_session(state, &*tx, user, None).await?;
    tx.commit().await?;
    Ok(payload)
}

/// Issues an access token and a new refresh token (in `family`, or a new family for a login).
async fn issue_session(
    state: &AppState,
    db: &impl ConnectionTrait,
    user: users::Model,
    family: Option<String>,
) -> AppResult<AuthPayload> {
    let now = state.now();
    let access = state.auth.keys.issue(user.id, user.role, user.token_version, now, state.config.access_token_ttl)?;
    let refresh_token = hex::encode(rand::random::<[u8; 32]>());
    let ttl = chrono::Duration::from_std(state.config.refresh_token_ttl).map_err(AppError::internal)?;
    tokens::ActiveModel {
        user_id: Set(user.id),
        family_id: Set(family.unwrap_or_else(|| uuid::Uuid::new_v4().to_string())),
        token_hash: Set(hash_token(&refresh_token)),
        expires_at: Set(now + ttl),
        rotated_at: Set(None),
        revoked_at: Set(None),
        created_at: Set(now),
        ..Default::default()
    }
    .insert(db)
    .await?;
    Ok(AuthPayload { access_token: access.token, access_token_expires_at: access.expires_at, refresh_token, user })
}

/// Exchanges a refresh token for a new pair. The old token is marked rotated by a conditional
/// update, so two concurrent uses cannot both succeed; presenting a rotated token again means it
/// was stolen, and the whole family is revoked.
#[tracing::instrument(skip_all)]
pub async fn refresh(state: &AppState, refresh_token: &str) -> AppResult<AuthPayload> {
    let now = state.now();
    let hash = hash_token(refresh_token.trim());
    let tx = state.db.begin().await?;
    let Some(token) = tokens::Entity::find().filter(tokens::Column::TokenHash.eq(&hash)).one(&*tx).await? else {
        return Err(bad_refresh_token());
    };
    let rotated = tokens::Entity::update_many()
        .col_expr(tokens::Column::RotatedAt, Expr::value(now))
        .filter(tokens::Column::Id.eq(token.id))
        .filter(tokens::Column::RotatedAt.is_null())
        .filter(tokens::Column::RevokedAt.is_null())
        .filter(tokens::Column::ExpiresAt.gt(now))
        .exec(&*tx)
        .await?;
    if rotated.rows_affected != 1 {
        if token.rotated_at.is_some() && token.revoked_at.is_none() {
            tracing::warn!(user_id = token.user_id, family = %token.family_id, "refresh token reuse: family revoked");
            revoke_family(&*tx, &token.family_id, now).await?;
            tx.commit().await?;
        }
        return Err(bad_refresh_token());
    }
    let user = user_service::get(&*tx, token.user_id).await?;
    if !user.is_active {
        return Err(bad_refresh_token());
    }
    let payload = issue_session(state, &*tx, user, Some(token.family_id)).await?;
    tx.commit().await?;
    Ok(payload)
}

async fn revoke_family(db: &impl ConnectionTrait, family: &str, now: DateTime<Utc>) -> AppResult<()> {
    tokens::Entity::update_many()
        .col_expr(tokens::Column::RevokedAt, Expr::value(now))
        .filter(tokens::Column::FamilyId.eq(family))
        .filter(tokens::Column::RevokedAt.is_null())
        .exec(db)
        .await?;
    Ok(())
}

/// Ends one session (the refresh token's family). Unknown tokens are fine: logging out twice is
/// not an error.
pub async fn logout(state: &AppState, refresh_token: &str) -> AppResult<()> {
    let hash = hash_token(refresh_token.trim());
    let tx = state.db.begin().await?;
    if let Some(t) = tokens::Entity::find().filter(tokens::Column::TokenHash.eq(hash)).one(&*tx).await? {
        revoke_family(&*tx, &t.family_id, state.now()).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Revokes every refresh token and every access token issued so far.
pub async fn revoke_all_sessions(db: &impl ConnectionTrait, user_id: i64, now: DateTime<Utc>) -> AppResult<()> {
    tokens::Entity::update_many()
        .col_expr(tokens::Column::RevokedAt, Expr::value(now))
        .filter(tokens::Column::UserId.eq(user_id))
        .filter(tokens::Column::RevokedAt.is_null())
        .exec(db)
        .await?;
    user_service::bump_token_version(db, user_id).await
}

pub async fn logout_all(state: &AppState, viewer: Viewer) -> AppResult<()> {
    let tx = state.db.begin().await?;
    revoke_all_sessions(&*tx, viewer.id, state.now()).await?;
    tx.commit().await?;
    state.revocations.publish(&state.db, Revocation(viewer.id)).await;
    Ok(())
}

#[tracing::instrument(skip_all, fields(user_id = viewer.id))]
pub async fn change_password(state: &AppState, viewer: Viewer, current: &str, new: &str) -> AppResult<()> {
    let new = Password::parse(new, "newPassword")?;
    // A stolen access token must not become an oracle for the password.
    state.auth.password_change_limiter.hit(&viewer.id.to_string())?;
    let user = user_service::get(&state.db.conn, viewer.id).await?;
    if !state.auth.hasher.verify(current, Some(&user.password_hash)).await? {
        return Err(AppError::bad_input("currentPassword", "current password is wrong"));
    }
    let hash = state.auth.hasher.hash(new.expose()).await?;
    let tx = state.db.begin().await?;
    users::Entity::update_many()
        .col_expr(users::Column::PasswordHash, Expr::value(hash))
        .col_expr(users::Column::MustChangePassword, Expr::value(false))
        .col_expr(users::Column::UpdatedAt, Expr::value(state.now()))
        .filter(users::Column::Id.eq(viewer.id))
        .exec(&*tx)
        .await?;
    revoke_all_sessions(&*tx, viewer.id, state.now()).await?;
    tx.commit().await?;
    state.revocations.publish(&state.db, Revocation(viewer.id)).await;
    Ok(())
}
