//! Seeding through the domain services (never through migrations). Every step is idempotent:
//! running it twice changes nothing.
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde::Deserialize;

use crate::{
    error::{AppError, AppResult},
    state::AppState,
    users::{
        Email, Name, Password, Phone, Role, entity as users,
        service::{self as user_service, NewUser},
    },
};

const DEMO_USERS: &str = include_str!("../seed/users.json");

#[derive(Deserialize)]
struct DemoUsers {
    users: Vec<DemoUser>,
}

#[derive(Deserialize)]
struct DemoUser {
    name: String,
    email: String,
    password: String,
    phone: Option<String>,
}

pub async fn is_empty(state: &AppState) -> AppResult<bool> {
    Ok(users::Entity::find().count(&state.db.conn).await? == 0)
}

/// Makes sure an administrator exists. The password comes from `MINISPOD_ADMIN_PASSWORD`, or is
/// generated and printed once (it is not stored anywhere in clear).
pub async fn ensure_admin(state: &AppState) -> AppResult<()> {
    let admins =
        users::Entity::find().filter(users::Column::Role.eq(Role::Administrator)).count(&state.db.conn).await?;
    if admins > 0 {
        return Ok(());
    }
    let (password, generated) = match &state.config.admin_password {
        Some(p) => (p.expose().to_string(), false),
        None => (hex::encode(rand::random::<[u8; 12]>()), true),
    };
    let email = Email::parse(&state.config.admin_email)?;
    let input = NewUser {
        name: Name::parse("Administrator")?,
        email: email.clone(),
        password_hash: user_service::hash_password(state, &Password::parse(&password, "password")?).await?,
        phone: None,
        role: Role::Administrator,
    };
    let tx = state.db.begin().await?;
    user_service::create_user(state, input, &*tx).await?;
    tx.commit().await?;
    if generated {
        // Printed, not logged: it must reach the operator once and never a log store.
        println!(
            "\n  Administrator account created: {}\n  Generated password (shown once): {password}\n  Set MINISPOD_ADMIN_PASSWORD to choose it yourself.\n",
            email.as_str()
        );
    } else {
        tracing::info!(email = email.as_str(), "administrator account created");
    }
    Ok(())
}

/// Demo users (and, with later capabilities, the demo catalog).
pub async fn seed_demo(state: &AppState) -> AppResult<()> {
    let demo: DemoUsers = serde_json::from_str(DEMO_USERS).map_err(AppError::internal)?;
    let mut created = 0;
    for u in demo.users {
        let email = Email::parse(&u.email)?;
        if user_service::find_by_email(&state.db.conn, &email).await?.is_some() {
            continue;
        }
        let input = NewUser {
            name: Name::parse(&u.name)?,
            email,
            password_hash: user_service::hash_password(state, &Password::parse(&u.password, "password")?).await?,
            phone: u.phone.as_deref().map(Phone::parse).transpose()?,
            role: Role::User,
        };
        let tx = state.db.begin().await?;
        user_service::create_user(state, input, &*tx).await?;
        tx.commit().await?;
        created += 1;
    }
    if created > 0 {
        tracing::warn!(
            created,
            "demo users seeded with public passwords (see seed/users.json); disable with MINISPOD_SEED_DEMO=false"
        );
    }
    Ok(())
}
