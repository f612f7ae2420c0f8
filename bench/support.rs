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
            must_change_password: false,
            avatar: None,
        };
        ids.push(users::create_user(state, input, &state.db.conn).await?.id);
    }
    Ok(ids)
}

/// One category, one service running `nginx:1` and one plan with room for everyone: the catalog
/// the in-process benchmarks subscribe to.
pub async fn create_bench_plan(
    state: &minispod_gateway::state::AppState,
    plan_type: minispod_gateway::catalog::PlanType,
    monthly_price: i64,
    data_path: Option<&str>,
    health_path: Option<&str>,
) -> anyhow::Result<minispod_gateway::catalog::entity::plan::Model> {
    use minispod_gateway::catalog::{
        ServiceProtocol,
        input::{CreateCategoryInput, CreatePlanInput, CreateServiceInput},
        service as catalog,
    };
    let cat = catalog::create_category(
        state,
        CreateCategoryInput { name: "Bench".into(), slug: "bench".into(), description: None, sort_order: 0 },
    )
    .await?;
    let svc = catalog::create_service(
        state,
        CreateServiceInput {
            category_id: async_graphql::ID(cat.id.to_string()),
            name: "Bench app".into(),
            slug: "bench-app".into(),
            description: None,
            long_description: None,
            icon: None,
            version: "1".into(),
            docker_image: "nginx:1".into(),
            default_port: 80,
            env_template: None,
            tags: vec![],
            documentation: None,
            is_active: true,
            is_public: true,
            is_featured: false,
            sort_order: 0,
            data_path: data_path.map(Into::into),
            protocol: ServiceProtocol::Http,
            health_path: health_path.map(Into::into),
        },
    )
    .await?;
    let plan = catalog::create_plan(
        state,
        svc.id,
        CreatePlanInput {
            name: format!("{plan_type:?}"),
            plan_type,
            description: None,
            monthly_price,
            cpu_milli: 250,
            memory_mb: 256,
            storage_gb: 1,
            bandwidth_gb: 10,
            total_quota: 1_000_000,
            features: vec![],
            max_instances_per_user: 1,
            is_active: true,
            is_popular: false,
            sort_order: 0,
        },
    )
    .await?;
    Ok(plan)
}

/// A gateway config for the in-process benchmarks: port 0, the given database, fixed secrets,
/// no demo data, and no periodic jobs (a benchmark runs what it measures itself).
pub fn config(database_url: String) -> anyhow::Result<minispod_gateway::config::Config> {
    use minispod_gateway::config::{Config, SecretString};
    Ok(Config {
        listen: "127.0.0.1:0".parse()?,
        database_url,
        jwt_secret: Some(SecretString::new("bench-secret-0123456789abcdef0123456789")),
        admin_password: Some(SecretString::new("bench-password")),
        seed_demo: false,
        payment_reconcile_interval: None,
        billing_interval: None,
        ..Default::default()
    })
}

/// Gives `user_id` `amount` IDR of credit (an admin adjustment), in its own transaction.
pub async fn give_credit(state: &minispod_gateway::state::AppState, user_id: i64, amount: i64) -> anyhow::Result<()> {
    use minispod_gateway::billing::{
        TransactionType,
        service::{self as ledger, Entry},
    };
    let tx = state.db.begin().await?;
    ledger::credit(&*tx, Entry::new(user_id, TransactionType::AdminAdjustment, amount, "bench credit"), state.now())
        .await?;
    tx.commit().await?;
    Ok(())
}
