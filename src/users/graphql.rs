use async_graphql::{Context, ID, InputObject, MaybeUndefined, Object, Result};

use super::{Name, Phone, Role, entity as users, service};
use crate::subscriptions::{SubscriptionStatus, graphql::Subscription};
use crate::{
    graphql::ContextExt,
    pagination::{Conn, PageArgs, connection, parse_id},
};

pub struct User(pub users::Model);

#[Object]
impl User {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    async fn email(&self) -> &str {
        &self.0.email
    }
    async fn phone(&self) -> Option<&str> {
        self.0.phone.as_deref()
    }
    async fn avatar(&self) -> Option<&str> {
        self.0.avatar.as_deref()
    }
    async fn role(&self) -> Role {
        self.0.role
    }
    async fn is_active(&self) -> bool {
        self.0.is_active
    }
    async fn created_at(&self) -> chrono::DateTime<chrono::Utc> {
        self.0.created_at
    }
    /// The account still has the temporary password an administrator set: ask for a new one
    /// (changePassword clears this).
    async fn must_change_password(&self) -> bool {
        self.0.must_change_password
    }
    /// When an administrator anonymized the account; its personal fields are placeholders.
    async fn anonymized_at(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        self.0.anonymized_at
    }
    /// Owner or administrator only (null and FORBIDDEN for others).
    async fn wallet(&self, ctx: &Context<'_>) -> Option<crate::billing::graphql::Wallet> {
        ctx.null_unless(self.owner_or_admin(ctx, "a wallet")).map(|_| crate::billing::graphql::Wallet(self.0.clone()))
    }
    /// Owner or administrator only (null and FORBIDDEN for others); newest first.
    async fn subscriptions(
        &self,
        ctx: &Context<'_>,
        status: Option<SubscriptionStatus>,
    ) -> Result<Option<Vec<Subscription>>> {
        if ctx.null_unless(self.owner_or_admin(ctx, "subscriptions")).is_none() {
            return Ok(None);
        }
        let rows = crate::subscriptions::service::list_own(&ctx.state().db.conn, self.0.id, status).await?;
        let look = ctx.look_ahead();
        Ok(Some(crate::subscriptions::graphql::with_relations(ctx, rows, |f| look.field(f).exists()).await?))
    }
}

impl User {
    fn owner_or_admin(&self, ctx: &Context<'_>, what: &str) -> crate::error::AppResult<()> {
        let viewer = ctx.auth().viewer()?;
        if viewer.id != self.0.id && !viewer.is_admin() {
            return Err(crate::error::AppError::Forbidden(format!(
                "only the owner or an administrator can see {what}"
            )));
        }
        Ok(())
    }
}

#[derive(InputObject)]
pub struct UpdateProfileInput {
    name: Option<String>,
    /// null or "" clears the phone number.
    phone: MaybeUndefined<String>,
    /// null or "" clears the avatar.
    avatar: MaybeUndefined<String>,
}

#[derive(Default)]
pub struct UserQuery;

#[Object]
impl UserQuery {
    /// The signed-in user; null without a token (anonymous). A token that cannot be used gives
    /// null and UNAUTHENTICATED with `extensions.reason` (expired, invalid or revoked).
    async fn me(&self, ctx: &Context<'_>) -> Result<Option<User>> {
        let viewer = match ctx.auth() {
            crate::auth::Auth::Anonymous => return Ok(None),
            auth => match ctx.null_unless(auth.viewer()) {
                Some(viewer) => viewer,
                None => return Ok(None),
            },
        };
        Ok(service::find(&ctx.state().db.conn, viewer.id).await?.map(User))
    }

    /// Admin: users, newest first, optionally filtered by a name/email search and role.
    async fn users(
        &self,
        ctx: &Context<'_>,
        search: Option<String>,
        role: Option<Role>,
        #[graphql(default = 20)] first: Option<i32>,
        after: Option<String>,
    ) -> Result<Conn<User>> {
        ctx.auth().admin()?;
        let args = PageArgs::parse(first, after.as_deref())?;
        let page = service::list(&ctx.state().db.conn, search.as_deref(), role, args).await?;
        Ok(connection(page, |u| u.id, User))
    }

    /// Admin: one user by id.
    async fn user(&self, ctx: &Context<'_>, id: ID) -> Result<Option<User>> {
        ctx.auth().admin()?;
        let Ok(id) = parse_id(&id, "user") else {
            return Ok(None);
        };
        Ok(service::find(&ctx.state().db.conn, id).await?.map(User))
    }
}

#[derive(Default)]
pub struct UserMutation;

pub(crate) fn clearable<T>(
    v: MaybeUndefined<String>,
    parse: impl FnOnce(&str) -> crate::error::AppResult<Option<T>>,
) -> crate::error::AppResult<Option<Option<T>>> {
    match v {
        MaybeUndefined::Undefined => Ok(None),
        MaybeUndefined::Null => Ok(Some(None)),
        MaybeUndefined::Value(s) if s.trim().is_empty() => Ok(Some(None)),
        MaybeUndefined::Value(s) => parse(&s).map(Some),
    }
}

#[Object]
impl UserMutation {
    async fn update_profile(&self, ctx: &Context<'_>, input: UpdateProfileInput) -> Result<User> {
        let viewer = ctx.auth().viewer()?;
        let changes = service::ProfileChanges {
            name: input.name.as_deref().map(Name::parse).transpose()?,
            phone: clearable(input.phone, |s| Phone::parse(s).map(Some))?,
            avatar: clearable(input.avatar, service::parse_avatar)?,
        };
        Ok(User(service::update_profile(ctx.state(), viewer, changes).await?))
    }

    /// Admin: change a user's role. The last active administrator cannot be demoted.
    async fn set_user_role(&self, ctx: &Context<'_>, user_id: ID, role: Role) -> Result<User> {
        let admin = ctx.auth().admin()?;
        let id = parse_id(&user_id, "user")?;
        Ok(User(service::set_role(ctx.state(), admin, id, role).await?))
    }

    /// Admin: (de)activate a user. Deactivation ends all of the user's sessions at once.
    async fn set_user_active(&self, ctx: &Context<'_>, user_id: ID, active: bool) -> Result<User> {
        let admin = ctx.auth().admin()?;
        let id = parse_id(&user_id, "user")?;
        Ok(User(service::set_active(ctx.state(), admin, id, active).await?))
    }
}
