//! Administrator mutations on accounts: thin resolvers over `users::admin`.
use async_graphql::{Context, ID, InputObject, MaybeUndefined, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};

use super::{
    Email, Name, Phone, Role,
    admin::{self, AccountChanges, CreationMode, NewAccount},
    graphql::{User, clearable},
    service::parse_avatar,
};
use crate::{graphql::ContextExt, pagination::parse_id};

#[derive(InputObject)]
pub struct AdminCreateUserInput {
    name: String,
    email: String,
    phone: Option<String>,
    avatar: Option<String>,
    /// USER when absent.
    role: Option<Role>,
    mode: CreationMode,
}

#[derive(InputObject)]
pub struct AdminUpdateUserInput {
    name: Option<String>,
    /// Validated and normalised as at registration; unique (CONFLICT).
    email: Option<String>,
    /// null or "" clears the phone number.
    phone: MaybeUndefined<String>,
    /// null or "" clears the avatar.
    avatar: MaybeUndefined<String>,
}

/// The new account, with its first credential. Shown once: neither the temporary password nor
/// the invitation token is stored in a readable form.
#[derive(SimpleObject)]
pub struct AdminCreateUserPayload {
    user: User,
    /// TEMPORARY_PASSWORD only.
    temporary_password: Option<String>,
    /// INVITATION only: give it to the user, who calls acceptInvitation(token, password).
    invitation_token: Option<String>,
    invitation_expires_at: Option<DateTime<Utc>>,
}

#[derive(Default)]
pub struct AdminUserMutation;

#[Object]
impl AdminUserMutation {
    /// Admin: create an account, with a temporary password or an invitation (see CreationMode).
    /// A duplicate email or phone is CONFLICT. No welcome bonus.
    async fn admin_create_user(
        &self,
        ctx: &Context<'_>,
        input: AdminCreateUserInput,
    ) -> Result<AdminCreateUserPayload> {
        let admin = ctx.auth().admin()?;
        let account = NewAccount {
            name: Name::parse(&input.name)?,
            email: Email::parse(&input.email)?,
            phone: input.phone.as_deref().filter(|p| !p.trim().is_empty()).map(Phone::parse).transpose()?,
            avatar: input.avatar.as_deref().map(parse_avatar).transpose()?.flatten(),
            role: input.role.unwrap_or(Role::User),
            mode: input.mode,
        };
        let created = admin::create(ctx.state(), admin, account).await?;
        let (invitation_token, invitation_expires_at) = created.invitation.unzip();
        Ok(AdminCreateUserPayload {
            user: User(created.user),
            temporary_password: created.temporary_password,
            invitation_token,
            invitation_expires_at,
        })
    }

    /// Admin: edit a user's profile. Anonymized accounts are CONFLICT.
    async fn admin_update_user(&self, ctx: &Context<'_>, user_id: ID, input: AdminUpdateUserInput) -> Result<User> {
        let admin = ctx.auth().admin()?;
        let id = parse_id(&user_id, "user")?;
        let changes = AccountChanges {
            name: input.name.as_deref().map(Name::parse).transpose()?,
            email: input.email.as_deref().map(Email::parse).transpose()?,
            phone: clearable(input.phone, |s| Phone::parse(s).map(Some))?,
            avatar: clearable(input.avatar, parse_avatar)?,
        };
        Ok(User(admin::update(ctx.state(), admin, id, changes).await?))
    }

    /// Admin: replace a user's personal data with placeholders, deactivate the account and end
    /// its sessions; the ledger, balance and subscription history stay. CONFLICT for your own
    /// account, the last active administrator, and a user with live subscriptions (cancel them
    /// first). Calling it again returns the anonymized account.
    async fn anonymize_user(&self, ctx: &Context<'_>, user_id: ID, reason: String) -> Result<User> {
        let admin = ctx.auth().admin()?;
        let id = parse_id(&user_id, "user")?;
        let reason = crate::billing::service::parse_reason(&reason)?;
        Ok(User(admin::anonymize(ctx.state(), admin, id, &reason).await?))
    }
}
