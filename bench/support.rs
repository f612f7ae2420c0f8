//! Shared by the in-process benchmarks: knobs from the environment and a throw-away database.
#![allow(dead_code)]

pub fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Runs `body` against a fresh PostgreSQL database (BENCH_DATABASE_URL names the server) and
/// drops the database afterwards, whatever the outcome.
pub async fn with_fresh_database<F, Fut>(body: F) -> anyhow::Result<()>
where
    F: FnOnce(String) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    use sea_orm::ConnectionTrait;
    let admin_url = std::env::var("BENCH_DATABASE_URL").unwrap_or("postgres://postgres@127.0.0.1:5432/test".into());
    let name = format!("minispod_bench_{}", uuid::Uuid::new_v4().simple());
    let admin = sea_orm::Database::connect(admin_url.as_str()).await?;
    admin.execute_unprepared(&format!("CREATE DATABASE \"{name}\"")).await?;
    let base = admin_url.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin_url).to_string();
    let result = body(format!("{base}/{name}")).await;
    admin.execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")).await?;
    result
}

/// `n` users named `bench<i>@example.com` (no password: benchmarks mint tokens directly).
pub async fn create_users(state: &minispod_gateway::state::AppState, n: usize) -> anyhow::Result<Vec<i64>> {
    use minispod_gateway::users::{
        Email, Name, Role,
        service::{self as users, NewUser},
    };
    let mut ids = vec![];
    for i in 0..n {
        let input = NewUser {
            name: Name::parse(&format!("Bench {i}"))?,
            email: Email::parse(&format!("bench{i}@example.com"))?,
            password_hash: "not-a-login".into(),
            phone: None,
            role: Role::User,
        };
        ids.push(users::create_user(state, input, &state.db.conn).await?.id);
    }
    Ok(ids)
}
