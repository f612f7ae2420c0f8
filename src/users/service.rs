//! User use cases: create (register and seed), profile changes, admin role/activation changes.
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QuerySelect, Set,
    sea_query::{Expr, ExprTrait},
};

use super::{Email, Name, Password, Phone, Role, entity as users};
use crate::auth::revocations::Revocation;
use crate::{
    auth::Viewer,
    error::{AppError, AppResult, DbResultExt},
    pagination::{Page, PageArgs},
    state::AppState,
};

pub struct NewUser {
    pub name: Name,
    pub email: Email,
    /// An argon2 hash from `hash_password`, computed before any transaction begins.
    pub password_hash: String,
    pub phone: Option<Phone>,
    pub role: Role,
    /// A temporary password set by an administrator: the user is asked to replace it.
    pub must_change_password: bool,
    pub avatar: Option<String>,
}

pub(crate) fn unique_violation(detail: &str) -> AppError {
    if detail.contains("phone") {
        AppError::Conflict("phone number is already registered".into())
    } else {
        AppError::Conflict("email address is already registered".into())
    }
}

/// Inserts a user; the database's unique indexes decide duplicates (no pre-check).
#[tracing::instrument(skip_all)]
pub async fn create_user(state: &AppState, input: NewUser, db: &impl ConnectionTrait) -> AppResult<users::Model> {
    let now = state.now();
    users::ActiveModel {
        name: Set(input.name.into_inner()),
        email: Set(input.email.into_inner()),
        phone: Set(input.phone.map(Phone::into_inner)),
        avatar: Set(input.avatar),
        password_hash: Set(input.password_hash),
        role: Set(input.role),
        is_active: Set(true),
        token_version: Set(0),
        balance: Set(0),
        total_top_up: Set(0),
        total_spent: Set(0),
        must_change_password: Set(input.must_change_password),
        anonymized_at: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
    .insert(db)
    .await
    .on_unique_violation(unique_violation)
}

pub async fn hash_password(state: &AppState, password: &Password) -> AppResult<String> {
    state.auth.hasher.hash(password.expose()).await
}

pub async fn find(db: &impl ConnectionTrait, id: i64) -> AppResult<Option<users::Model>> {
    Ok(users::Entity::find_by_id(id).one(db).await?)
}

pub async fn get(db: &impl ConnectionTrait, id: i64) -> AppResult<users::Model> {
    find(db, id).await?.ok_or(AppError::NotFound("user"))
}

pub async fn find_by_email(db: &impl ConnectionTrait, email: &Email) -> AppResult<Option<users::Model>> {
    Ok(users::Entity::find().filter(users::Column::Email.eq(email.as_str())).one(db).await?)
}

pub struct ProfileChanges {
    pub name: Option<Name>,
    /// `Some(None)` clears the phone number.
    pub phone: Option<Option<Phone>>,
    pub avatar: Option<Option<String>>,
}

pub fn parse_avatar(raw: &str) -> AppResult<Option<String>> {
    let s = raw.trim();
    if s.is_empty() {
        return Ok(None);
    }
    if s.len() > 500 || !(s.starts_with("https://") || s.starts_with("http://")) || s.contains(char::is_whitespace) {
        return Err(AppError::bad_input("avatar", "avatar must be an http(s) URL of at most 500 characters"));
    }
    Ok(Some(s.to_string()))
}

#[tracing::instrument(skip_all, fields(user_id = viewer.id))]
pub async fn update_profile(state: &AppState, viewer: Viewer, changes: ProfileChanges) -> AppResult<users::Model> {
    let tx = state.db.begin().await?;
    let user = get(&*tx, viewer.id).await?;
    let mut active: users::ActiveModel = user.into();
    if let Some(name) = changes.name {
        active.name = Set(name.into_inner());
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
    Ok(user)
}

/// Name or email contains `search` (any case, `%` and `_` as text); None for no search.
pub fn search_condition(search: Option<&str>) -> AppResult<Option<sea_orm::sea_query::SimpleExpr>> {
    Ok(crate::text::search_pattern(search)?.map(|pattern| {
        Expr::expr(sea_orm::sea_query::Func::lower(Expr::col((users::Entity, users::Column::Name))))
            .like(pattern.clone())
            .or(Expr::col((users::Entity, users::Column::Email)).like(pattern))
    }))
}

pub async fn list(
    db: &impl ConnectionTrait,
    search: Option<&str>,
    role: Option<Role>,
    args: PageArgs,
) -> AppResult<Page<users::Model>> {
    let mut q = users::Entity::find();
    if let Some(condition) = search_condition(search)? {
        q = q.filter(condition);
    }
    if let Some(r) = role {
        q = q.filter(users::Column::Role.eq(r));
    }
    crate::pagination::newest_first(db, q, users::Column::Id, args).await
}

/// Refuses a change that would leave no active administrator. On PostgreSQL the active admins
/// are locked first, so two admins demoting each other at once cannot both succeed.
pub(crate) async fn ensure_other_active_admin(db: &impl ConnectionTrait, changing: i64) -> AppResult<()> {
    let admins = users::Entity::find()
        .filter(users::Column::Role.eq(Role::Administrator))
        .filter(users::Column::IsActive.eq(true))
        .lock_exclusive()
        .all(db)
        .await?;
    if !admins.iter().any(|a| a.id != changing) {
        return Err(AppError::Conflict("cannot remove the last active administrator".into()));
    }
    Ok(())
}

#[tracing::instrument(skip_all, fields(admin_id = admin.id, user_id))]
pub async fn set_role(state: &AppState, admin: Viewer, user_id: i64, role: Role) -> AppResult<users::Model> {
    let tx = state.db.begin().await?;
    let user = get(&*tx, user_id).await?;
    if user.role == Role::Administrator && role != Role::Administrator && user.is_active {
        ensure_other_active_admin(&*tx, user.id).await?;
    }
    let mut active: users::ActiveModel = user.into();
    active.role = Set(role);
    active.updated_at = Set(state.now());
    let user = active.update(&*tx).await?;
    tx.commit().await?;
    state.revocations.publish(&state.db, Revocation(user_id)).await;
    tracing::info!(admin_id = admin.id, user_id, role = role.as_str(), "role changed");
    Ok(user)
}

#[tracing::instrument(skip_all, fields(admin_id = admin.id, user_id))]
pub async fn set_active(state: &AppState, admin: Viewer, user_id: i64, active_flag: bool) -> AppResult<users::Model> {
    let tx = state.db.begin().await?;
    let user = get(&*tx, user_id).await?;
    if !active_flag && user.role == Role::Administrator && user.is_active {
        ensure_other_active_admin(&*tx, user.id).await?;
    }
    let revoke = user.is_active && !active_flag;
    let mut active: users::ActiveModel = user.into();
    active.is_active = Set(active_flag);
    active.updated_at = Set(state.now());
    let user = active.update(&*tx).await?;
    if revoke {
        crate::auth::service::revoke_all_sessions(&*tx, user_id, state.now()).await?;
    }
    tx.commit().await?;
    if revoke {
        state.revocations.publish(&state.db, Revocation(user_id)).await;
    }
    tracing::info!(admin_id = admin.id, user_id, active = active_flag, "activation changed");
    Ok(user)
}

/// Bumps the token version so every access token issued so far stops working.
pub async fn bump_token_version(db: &impl ConnectionTrait, user_id: i64) -> AppResult<()> {
    users::Entity::update_many()
        .col_expr(users::Column::TokenVersion, Expr::col(users::Column::TokenVersion).add(1))
        .filter(users::Column::Id.eq(user_id))
        .exec(db)
        .await?;
    Ok(())
}
