use async_graphql::{Context, InputObject, Object, Result};
use chrono::{DateTime, Utc};

use super::service::{self, Registration};
use crate::{graphql::ContextExt, users::graphql::User};

pub struct AuthPayload(service::AuthPayload);

#[Object]
impl AuthPayload {
    async fn access_token(&self) -> &str {
        &self.0.access_token
    }
    async fn access_token_expires_at(&self) -> DateTime<Utc> {
        self.0.access_token_expires_at
    }
    /// Opaque; valid for 30 days and for one use (each refresh returns a new one).
    async fn refresh_token(&self) -> &str {
        &self.0.refresh_token
    }
    async fn user(&self) -> User {
        User(self.0.user.clone())
    }
}

#[derive(InputObject)]
pub struct RegisterInput {
    name: String,
    email: String,
    password: String,
    phone: Option<String>,
}

#[derive(Default)]
pub struct AuthMutation;

#[Object]
impl AuthMutation {
    async fn register(&self, ctx: &Context<'_>, input: RegisterInput) -> Result<AuthPayload> {
        let reg = Registration {
            name: &input.name,
            email: &input.email,
            password: &input.password,
            phone: input.phone.as_deref(),
        };
        Ok(AuthPayload(service::register(ctx.state(), reg, ctx.client_ip()).await?))
    }

    async fn login(&self, ctx: &Context<'_>, email: String, password: String) -> Result<AuthPayload> {
        Ok(AuthPayload(service::login(ctx.state(), &email, &password, ctx.client_ip()).await?))
    }

    /// Sets the first password of an invited account and signs in. The invitation token works
    /// once and for 7 days; a used, expired or unknown token is BAD_USER_INPUT on `token`.
    async fn accept_invitation(&self, ctx: &Context<'_>, token: String, password: String) -> Result<AuthPayload> {
        Ok(AuthPayload(service::accept_invitation(ctx.state(), &token, &password).await?))
    }

    /// Rotates: the refresh token passed in stops working.
    async fn refresh_token(&self, ctx: &Context<'_>, refresh_token: String) -> Result<AuthPayload> {
        Ok(AuthPayload(service::refresh(ctx.state(), &refresh_token).await?))
    }

    async fn logout(&self, ctx: &Context<'_>, refresh_token: String) -> Result<bool> {
        service::logout(ctx.state(), &refresh_token).await?;
        Ok(true)
    }

    /// Ends every session of the viewer, including access tokens already issued.
    async fn logout_all(&self, ctx: &Context<'_>) -> Result<bool> {
        service::logout_all(ctx.state(), ctx.auth().viewer()?).await?;
        Ok(true)
    }

    /// Changes the password and ends every session; sign in again afterwards.
    async fn change_password(&self, ctx: &Context<'_>, current_password: String, new_password: String) -> Result<bool> {
        let viewer = ctx.auth().viewer()?;
        service::change_password(ctx.state(), viewer, &current_password, &new_password).await?;
        Ok(true)
    }
}
