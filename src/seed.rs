//! Seeding through the domain services (never through migrations). Every step is idempotent:
//! running it twice changes nothing.
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde::Deserialize;

use async_graphql::{ID, Json, MaybeUndefined};

use crate::{
    billing::{
        TransactionType,
        service::{self as ledger, Entry},
    },
    catalog::{
        PlanType, ServiceProtocol,
        input::{CreateCategoryInput, CreatePlanInput, CreateServiceInput, UpdateServiceInput},
        service as catalog,
    },
    error::{AppError, AppResult},
    state::AppState,
    users::{
        Email, Name, Password, Phone, Role, entity as users,
        service::{self as user_service, NewUser},
    },
};

// Compiled in, so the release binary alone (the container image) seeds without seed/ on disk.
const DEMO_USERS: &str = include_str!("../seed/users.json");
const CATALOG: &str = include_str!("../seed/catalog.json");
const DEMO_COUPONS: &str = include_str!("../seed/coupons.json");

#[derive(Deserialize)]
struct DemoCoupons {
    coupons: Vec<DemoCoupon>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DemoCoupon {
    code: String,
    name: String,
    description: Option<String>,
    #[serde(rename = "type")]
    kind: crate::coupons::CouponType,
    discount_type: Option<crate::coupons::DiscountType>,
    credit_amount: Option<i64>,
    discount_percent: Option<i32>,
    max_uses: i32,
    max_uses_per_user: i32,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SeedCatalog {
    categories: Vec<SeedCategory>,
    services: Vec<SeedService>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SeedCategory {
    name: String,
    slug: String,
    description: Option<String>,
    sort_order: i32,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SeedService {
    category_slug: String,
    name: String,
    slug: String,
    description: Option<String>,
    long_description: Option<String>,
    icon: Option<String>,
    version: String,
    docker_image: String,
    default_port: i32,
    env_template: Option<serde_json::Value>,
    tags: Vec<String>,
    documentation: Option<String>,
    is_featured: bool,
    sort_order: i32,
    data_path: Option<String>,
    protocol: ServiceProtocol,
    health_path: Option<String>,
    plans: Vec<SeedPlan>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SeedPlan {
    name: String,
    plan_type: PlanType,
    monthly_price: i64,
    cpu_milli: i32,
    memory_mb: i32,
    storage_gb: i32,
    bandwidth_gb: i32,
    total_quota: i32,
    features: Vec<String>,
    #[serde(default = "one")]
    max_instances_per_user: i32,
    #[serde(default)]
    is_popular: bool,
}

fn one() -> i32 {
    1
}

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
    /// Demo credit (IDR), booked as an ADMIN_ADJUSTMENT through the ledger.
    #[serde(default)]
    credit: i64,
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
        must_change_password: false,
        avatar: None,
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

/// The demo catalog, created through the catalog service; existing slugs and plan types are
/// left as they are.
pub async fn seed_catalog(state: &AppState) -> AppResult<()> {
    let seed: SeedCatalog = serde_json::from_str(CATALOG).map_err(AppError::internal)?;
    let db = &state.db.conn;
    for c in seed.categories {
        if catalog::category_by_slug(db, &c.slug).await?.is_none() {
            let input = CreateCategoryInput {
                name: c.name,
                slug: c.slug,
                description: c.description,
                sort_order: c.sort_order,
            };
            catalog::create_category(state, input).await?;
        }
    }
    for s in seed.services {
        let service = match catalog::service_by_slug(db, &s.slug, true).await? {
            // Catalogs seeded before services knew how they run get those fields once; a
            // service whose data path is set (by the seed or an admin) is left as it is.
            Some(existing) if existing.data_path.is_none() && s.data_path.is_some() => {
                let input = UpdateServiceInput {
                    data_path: s.data_path.clone().map_or(MaybeUndefined::Undefined, MaybeUndefined::Value),
                    protocol: Some(s.protocol),
                    health_path: s.health_path.clone().map_or(MaybeUndefined::Undefined, MaybeUndefined::Value),
                    ..UpdateServiceInput::default()
                };
                catalog::update_service(state, existing.id, input).await?
            }
            Some(existing) => existing,
            None => {
                let category = catalog::category_by_slug(db, &s.category_slug)
                    .await?
                    .ok_or_else(|| AppError::internal(anyhow::anyhow!("seed: unknown category {}", s.category_slug)))?;
                let input = CreateServiceInput {
                    category_id: ID(category.id.to_string()),
                    name: s.name,
                    slug: s.slug,
                    description: s.description,
                    long_description: s.long_description,
                    icon: s.icon,
                    version: s.version,
                    docker_image: s.docker_image,
                    default_port: s.default_port,
                    env_template: s.env_template.map(Json),
                    tags: s.tags,
                    documentation: s.documentation,
                    is_active: true,
                    is_public: true,
                    is_featured: s.is_featured,
                    sort_order: s.sort_order,
                    data_path: s.data_path,
                    protocol: s.protocol,
                    health_path: s.health_path,
                };
                catalog::create_service(state, input).await?
            }
        };
        let existing: Vec<PlanType> =
            catalog::all_plans_of(db, service.id).await?.iter().map(|p| p.plan_type).collect();
        for p in s.plans.into_iter().filter(|p| !existing.contains(&p.plan_type)) {
            let input = CreatePlanInput {
                name: p.name,
                plan_type: p.plan_type,
                description: None,
                monthly_price: p.monthly_price,
                cpu_milli: p.cpu_milli,
                memory_mb: p.memory_mb,
                storage_gb: p.storage_gb,
                bandwidth_gb: p.bandwidth_gb,
                total_quota: p.total_quota,
                features: p.features,
                max_instances_per_user: p.max_instances_per_user,
                is_active: true,
                is_popular: p.is_popular,
                sort_order: 0,
            };
            catalog::create_plan(state, service.id, input).await?;
        }
    }
    Ok(())
}

fn demo_banner(accounts: &[(String, String)]) -> String {
    let width = accounts.iter().map(|(email, _)| email.len()).max().unwrap_or(0);
    let mut out = String::from("\n  Demo accounts (public passwords; MINISPOD_SEED_DEMO=false turns them off):\n");
    for (email, password) in accounts {
        out.push_str(&format!("    {email:<width$}  {password}\n"));
    }
    out
}

/// Demo coupons, valid from now (demo data only): a welcome bonus and a discount code.
/// Seeded after the demo users, so those are not counted as new registrations.
async fn seed_coupons(state: &AppState) -> AppResult<()> {
    use crate::coupons::{Code, admin, service as coupons};
    let demo: DemoCoupons = serde_json::from_str(DEMO_COUPONS).map_err(AppError::internal)?;
    for c in demo.coupons {
        if coupons::find_by_code(&state.db.conn, &Code::parse_input(&c.code, "code")?).await?.is_some() {
            continue;
        }
        let input = admin::NewCoupon {
            code: c.code,
            name: c.name,
            description: c.description,
            kind: c.kind,
            discount_type: c.discount_type,
            credit_amount: c.credit_amount,
            discount_percent: c.discount_percent,
            max_uses: Some(c.max_uses),
            max_uses_per_user: Some(c.max_uses_per_user),
            service_id: None,
            plan_type: None,
            valid_from: None,
            valid_until: None,
        };
        admin::create(state, None, input).await?;
    }
    Ok(())
}

/// Demo users, the demo catalog and the demo coupons.
pub async fn seed_demo(state: &AppState) -> AppResult<()> {
    seed_catalog(state).await?;
    let demo: DemoUsers = serde_json::from_str(DEMO_USERS).map_err(AppError::internal)?;
    let mut created: Vec<(String, String)> = Vec::new();
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
            must_change_password: false,
            avatar: None,
        };
        let tx = state.db.begin().await?;
        let user = user_service::create_user(state, input, &*tx).await?;
        if u.credit > 0 {
            let entry = Entry::new(user.id, TransactionType::AdminAdjustment, u.credit, "Demo credit");
            ledger::credit(&*tx, entry, state.now()).await?;
        }
        tx.commit().await?;
        created.push((u.email, u.password));
    }
    if !created.is_empty() {
        tracing::warn!(
            created = created.len(),
            "demo users seeded with public passwords; disable with MINISPOD_SEED_DEMO=false"
        );
        // Printed like the administrator's password: the binary alone has no seed/ to look in.
        println!("{}", demo_banner(&created));
    }
    seed_coupons(state).await
}
