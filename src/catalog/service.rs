//! Catalog use cases: public browsing and admin management.
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
    Select, Set,
    sea_query::{Expr, ExprTrait, Func},
};

use super::{
    entity::{category, plan, service},
    input::{self, limits},
};
use crate::{
    error::{AppError, AppResult, DbResultExt},
    pagination::{Page, PageArgs},
    state::AppState,
};

/// Active and public services in catalog order: featured first, then sortOrder, then name.
pub fn visible_services() -> Select<service::Entity> {
    ordered(
        service::Entity::find().filter(service::Column::IsActive.eq(true)).filter(service::Column::IsPublic.eq(true)),
    )
}

fn ordered(q: Select<service::Entity>) -> Select<service::Entity> {
    q.order_by_desc(service::Column::IsFeatured)
        .order_by_asc(service::Column::SortOrder)
        .order_by_asc(service::Column::Name)
        .order_by_asc(service::Column::Id)
}

pub async fn categories(db: &impl ConnectionTrait) -> AppResult<Vec<category::Model>> {
    Ok(category::Entity::find()
        .order_by_asc(category::Column::SortOrder)
        .order_by_asc(category::Column::Name)
        .all(db)
        .await?)
}

pub async fn category_by_slug(db: &impl ConnectionTrait, slug: &str) -> AppResult<Option<category::Model>> {
    Ok(category::Entity::find().filter(category::Column::Slug.eq(slug.trim())).one(db).await?)
}

#[derive(Default)]
pub struct ServiceFilter {
    pub category_slug: Option<String>,
    pub search: Option<String>,
    pub featured: Option<bool>,
    pub tag: Option<String>,
    /// Admin only: include inactive and private services.
    pub include_hidden: bool,
}

fn like_pattern(s: &str) -> String {
    format!("%{}%", s.to_lowercase().replace(['\\', '%', '_'], ""))
}

/// Services matching `filter`, paged by offset (the ordering is not unique enough for keysets).
pub async fn services(
    db: &impl ConnectionTrait,
    filter: &ServiceFilter,
    args: PageArgs,
) -> AppResult<Page<service::Model>> {
    let mut q = if filter.include_hidden { ordered(service::Entity::find()) } else { visible_services() };
    if let Some(slug) = &filter.category_slug {
        let slug = input::slug("categorySlug", slug)?;
        let Some(cat) = category_by_slug(db, &slug).await? else {
            return Ok(Page::new(vec![], args, 0));
        };
        q = q.filter(service::Column::CategoryId.eq(cat.id));
    }
    if let Some(search) = filter.search.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        if search.chars().count() > 100 {
            return Err(AppError::bad_input("search", "search must be at most 100 characters"));
        }
        let p = like_pattern(search);
        let lower = |c: service::Column| Expr::expr(Func::lower(Expr::col(c)));
        q = q.filter(
            lower(service::Column::Name)
                .like(p.clone())
                .or(lower(service::Column::Description).like(p.clone()))
                .or(Expr::expr(Func::lower(Expr::col(service::Column::Tags).cast_as("text"))).like(p)),
        );
    }
    if let Some(featured) = filter.featured {
        q = q.filter(service::Column::IsFeatured.eq(featured));
    }
    if let Some(tag) = &filter.tag {
        let tag = input::tags(std::slice::from_ref(tag))
            .map_err(|_| AppError::bad_input("tag", "tag must be 1-30 characters of a-z, 0-9 and '-'"))?;
        let needle = format!("%\"{}\"%", tag.first().map(String::as_str).unwrap_or_default());
        q = q.filter(Expr::col(service::Column::Tags).cast_as("text").like(needle));
    }
    let total = q.clone().count(db).await?;
    let offset = Ord::max(args.after.unwrap_or(0), 0) as u64;
    let rows = q.offset(offset).limit(args.first + 1).all(db).await?;
    Ok(Page::new(rows, args, total))
}

pub async fn service_by_slug(
    db: &impl ConnectionTrait,
    slug: &str,
    include_hidden: bool,
) -> AppResult<Option<service::Model>> {
    let s = service::Entity::find().filter(service::Column::Slug.eq(slug.trim())).one(db).await?;
    Ok(s.filter(|s| include_hidden || s.is_visible()))
}

/// A plan as the public sees it: active, of a visible service.
pub async fn plan_by_id(db: &impl ConnectionTrait, id: i64, include_hidden: bool) -> AppResult<Option<plan::Model>> {
    let Some(p) = plan::Entity::find_by_id(id).one(db).await? else {
        return Ok(None);
    };
    if include_hidden {
        return Ok(Some(p));
    }
    let visible =
        p.is_active && service::Entity::find_by_id(p.service_id).one(db).await?.is_some_and(|s| s.is_visible());
    Ok(visible.then_some(p))
}

/// Plans of a service including inactive ones (admin view), cheapest first.
pub async fn all_plans_of(db: &impl ConnectionTrait, service_id: i64) -> AppResult<Vec<plan::Model>> {
    Ok(plan::Entity::find()
        .filter(plan::Column::ServiceId.eq(service_id))
        .order_by_asc(plan::Column::MonthlyPrice)
        .order_by_asc(plan::Column::Id)
        .all(db)
        .await?)
}

fn conflict_on_unique(what: &'static str) -> impl FnOnce(&str) -> AppError {
    move |detail| {
        if detail.contains("plan_type") || detail.contains("uq_service_plans") {
            AppError::Conflict("this service already has a plan of that type".into())
        } else if detail.contains("name") {
            AppError::Conflict(format!("a {what} with that name already exists"))
        } else {
            AppError::Conflict(format!("a {what} with that slug already exists"))
        }
    }
}

/// Deletes refused by a foreign key (a service under a category, a subscription on a plan).
fn in_use(e: sea_orm::DbErr, what: &str) -> AppError {
    if crate::error::is_foreign_key_violation(&e) {
        AppError::Conflict(format!("this {what} is still in use; deactivate it instead"))
    } else {
        e.into()
    }
}

// ------------------------------------------------------------------ categories

pub async fn create_category(state: &AppState, i: input::CreateCategoryInput) -> AppResult<category::Model> {
    let now = state.now();
    let am = category::ActiveModel {
        name: Set(input::text("name", &i.name, 100)?),
        slug: Set(input::slug("slug", &i.slug)?),
        description: Set(input::opt_text("description", i.description.as_deref(), 2_000)?),
        sort_order: Set(input::range("sortOrder", i.sort_order, limits::SORT.0, limits::SORT.1)?),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    };
    let tx = state.db.begin().await?;
    let c = am.insert(&*tx).await.on_unique_violation(conflict_on_unique("category"))?;
    tx.commit().await?;
    state.catalog_changed().await;
    Ok(c)
}

pub async fn update_category(state: &AppState, id: i64, i: input::UpdateCategoryInput) -> AppResult<category::Model> {
    let tx = state.db.begin().await?;
    let c = category::Entity::find_by_id(id).one(&*tx).await?.ok_or(AppError::NotFound("category"))?;
    let mut am: category::ActiveModel = c.into();
    if let Some(n) = i.name {
        am.name = Set(input::text("name", &n, 100)?);
    }
    if let Some(s) = i.slug {
        am.slug = Set(input::slug("slug", &s)?);
    }
    if let Some(d) = maybe(i.description) {
        am.description = Set(input::opt_text("description", d.as_deref(), 2_000)?);
    }
    if let Some(s) = i.sort_order {
        am.sort_order = Set(input::range("sortOrder", s, limits::SORT.0, limits::SORT.1)?);
    }
    am.updated_at = Set(state.now());
    let c = am.update(&*tx).await.on_unique_violation(conflict_on_unique("category"))?;
    tx.commit().await?;
    state.catalog_changed().await;
    Ok(c)
}

pub async fn delete_category(state: &AppState, id: i64) -> AppResult<()> {
    let tx = state.db.begin().await?;
    let res = category::Entity::delete_by_id(id).exec(&*tx).await.map_err(|e| in_use(e, "category"))?;
    if res.rows_affected == 0 {
        return Err(AppError::NotFound("category"));
    }
    tx.commit().await?;
    state.catalog_changed().await;
    Ok(())
}

/// `MaybeUndefined` → `None` (leave alone) or `Some(None)` (clear) or `Some(Some(v))`.
fn maybe<T>(v: async_graphql::MaybeUndefined<T>) -> Option<Option<T>> {
    match v {
        async_graphql::MaybeUndefined::Undefined => None,
        async_graphql::MaybeUndefined::Null => Some(None),
        async_graphql::MaybeUndefined::Value(v) => Some(Some(v)),
    }
}

// ------------------------------------------------------------------ services

async fn existing_category(db: &impl ConnectionTrait, id: &async_graphql::ID) -> AppResult<i64> {
    let bad = || AppError::bad_input("categoryId", "no such category");
    let id = id.parse::<i64>().map_err(|_| bad())?;
    category::Entity::find_by_id(id).one(db).await?.map(|c| c.id).ok_or_else(bad)
}

pub async fn create_service(state: &AppState, i: input::CreateServiceInput) -> AppResult<service::Model> {
    let now = state.now();
    let tx = state.db.begin().await?;
    let am = service::ActiveModel {
        category_id: Set(existing_category(&*tx, &i.category_id).await?),
        name: Set(input::text("name", &i.name, 100)?),
        slug: Set(input::slug("slug", &i.slug)?),
        description: Set(input::opt_text("description", i.description.as_deref(), 2_000)?),
        long_description: Set(input::opt_text("longDescription", i.long_description.as_deref(), 20_000)?),
        icon: Set(input::opt_text("icon", i.icon.as_deref(), 500)?),
        version: Set(input::text("version", &i.version, 50)?),
        docker_image: Set(input::image("dockerImage", &i.docker_image)?),
        default_port: Set(input::range("defaultPort", i.default_port, limits::PORT.0, limits::PORT.1)?),
        env_template: Set(i.env_template.map(|j| input::env_template(&j.0)).transpose()?),
        tags: Set(serde_json::json!(input::tags(&i.tags)?)),
        documentation: Set(input::opt_text("documentation", i.documentation.as_deref(), 2_000)?),
        is_active: Set(i.is_active),
        is_public: Set(i.is_public),
        is_featured: Set(i.is_featured),
        sort_order: Set(input::range("sortOrder", i.sort_order, limits::SORT.0, limits::SORT.1)?),
        data_path: Set(i.data_path.as_deref().map(input::data_path).transpose()?),
        protocol: Set(i.protocol),
        health_path: Set(i.health_path.as_deref().map(input::health_path).transpose()?),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    };
    let s = am.insert(&*tx).await.on_unique_violation(conflict_on_unique("service"))?;
    tx.commit().await?;
    state.catalog_changed().await;
    Ok(s)
}

pub async fn update_service(state: &AppState, id: i64, i: input::UpdateServiceInput) -> AppResult<service::Model> {
    let tx = state.db.begin().await?;
    let s = service::Entity::find_by_id(id).one(&*tx).await?.ok_or(AppError::NotFound("service"))?;
    let mut am: service::ActiveModel = s.into();
    if let Some(c) = &i.category_id {
        am.category_id = Set(existing_category(&*tx, c).await?);
    }
    if let Some(v) = i.name {
        am.name = Set(input::text("name", &v, 100)?);
    }
    if let Some(v) = i.slug {
        am.slug = Set(input::slug("slug", &v)?);
    }
    if let Some(v) = maybe(i.description) {
        am.description = Set(input::opt_text("description", v.as_deref(), 2_000)?);
    }
    if let Some(v) = maybe(i.long_description) {
        am.long_description = Set(input::opt_text("longDescription", v.as_deref(), 20_000)?);
    }
    if let Some(v) = maybe(i.icon) {
        am.icon = Set(input::opt_text("icon", v.as_deref(), 500)?);
    }
    if let Some(v) = i.version {
        am.version = Set(input::text("version", &v, 50)?);
    }
    if let Some(v) = i.docker_image {
        am.docker_image = Set(input::image("dockerImage", &v)?);
    }
    if let Some(v) = i.default_port {
        am.default_port = Set(input::range("defaultPort", v, limits::PORT.0, limits::PORT.1)?);
    }
    if let Some(v) = maybe(i.env_template) {
        am.env_template = Set(v.map(|j| input::env_template(&j.0)).transpose()?);
    }
    if let Some(v) = i.tags {
        am.tags = Set(serde_json::json!(input::tags(&v)?));
    }
    if let Some(v) = maybe(i.documentation) {
        am.documentation = Set(input::opt_text("documentation", v.as_deref(), 2_000)?);
    }
    if let Some(v) = i.is_active {
        am.is_active = Set(v);
    }
    if let Some(v) = i.is_public {
        am.is_public = Set(v);
    }
    if let Some(v) = i.is_featured {
        am.is_featured = Set(v);
    }
    if let Some(v) = i.sort_order {
        am.sort_order = Set(input::range("sortOrder", v, limits::SORT.0, limits::SORT.1)?);
    }
    if let Some(v) = maybe(i.data_path) {
        am.data_path = Set(v.as_deref().map(input::data_path).transpose()?);
    }
    if let Some(v) = i.protocol {
        am.protocol = Set(v);
    }
    if let Some(v) = maybe(i.health_path) {
        am.health_path = Set(v.as_deref().map(input::health_path).transpose()?);
    }
    am.updated_at = Set(state.now());
    let s = am.update(&*tx).await.on_unique_violation(conflict_on_unique("service"))?;
    tx.commit().await?;
    state.catalog_changed().await;
    Ok(s)
}

/// Deletes a service and its plans; refused (CONFLICT) once anything references them.
pub async fn delete_service(state: &AppState, id: i64) -> AppResult<()> {
    let tx = state.db.begin().await?;
    plan::Entity::delete_many()
        .filter(plan::Column::ServiceId.eq(id))
        .exec(&*tx)
        .await
        .map_err(|e| in_use(e, "service"))?;
    let res = service::Entity::delete_by_id(id).exec(&*tx).await.map_err(|e| in_use(e, "service"))?;
    if res.rows_affected == 0 {
        return Err(AppError::NotFound("service"));
    }
    tx.commit().await?;
    state.catalog_changed().await;
    Ok(())
}

// ------------------------------------------------------------------ plans

pub async fn create_plan(state: &AppState, service_id: i64, i: input::CreatePlanInput) -> AppResult<plan::Model> {
    let now = state.now();
    let tx = state.db.begin().await?;
    service::Entity::find_by_id(service_id).one(&*tx).await?.ok_or(AppError::NotFound("service"))?;
    let am = plan::ActiveModel {
        service_id: Set(service_id),
        name: Set(input::text("name", &i.name, 100)?),
        plan_type: Set(i.plan_type),
        description: Set(input::opt_text("description", i.description.as_deref(), 2_000)?),
        monthly_price: Set(input::range("monthlyPrice", i.monthly_price, limits::PRICE.0, limits::PRICE.1)?),
        cpu_milli: Set(input::range("cpuMilli", i.cpu_milli, limits::CPU_MILLI.0, limits::CPU_MILLI.1)?),
        memory_mb: Set(input::range("memoryMb", i.memory_mb, limits::MEMORY_MB.0, limits::MEMORY_MB.1)?),
        storage_gb: Set(input::range("storageGb", i.storage_gb, limits::STORAGE_GB.0, limits::STORAGE_GB.1)?),
        bandwidth_gb: Set(input::range("bandwidthGb", i.bandwidth_gb, limits::BANDWIDTH_GB.0, limits::BANDWIDTH_GB.1)?),
        total_quota: Set(input::range("totalQuota", i.total_quota, limits::QUOTA.0, limits::QUOTA.1)?),
        used_quota: Set(0),
        features: Set(serde_json::json!(input::features(&i.features)?)),
        max_instances_per_user: Set(input::range(
            "maxInstancesPerUser",
            i.max_instances_per_user,
            limits::MAX_INSTANCES.0,
            limits::MAX_INSTANCES.1,
        )?),
        is_active: Set(i.is_active),
        is_popular: Set(i.is_popular),
        sort_order: Set(input::range("sortOrder", i.sort_order, limits::SORT.0, limits::SORT.1)?),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    };
    let p = am.insert(&*tx).await.on_unique_violation(conflict_on_unique("plan"))?;
    tx.commit().await?;
    state.catalog_changed().await;
    Ok(p)
}

pub async fn update_plan(state: &AppState, id: i64, i: input::UpdatePlanInput) -> AppResult<plan::Model> {
    let tx = state.db.begin().await?;
    // Locked: a concurrent subscribe must not take a slot between the quota check and the write.
    let p = plan::Entity::find_by_id(id).lock_exclusive().one(&*tx).await?.ok_or(AppError::NotFound("plan"))?;
    let used = p.used_quota;
    let mut am: plan::ActiveModel = p.into();
    if let Some(v) = i.name {
        am.name = Set(input::text("name", &v, 100)?);
    }
    if let Some(v) = i.plan_type {
        am.plan_type = Set(v);
    }
    if let Some(v) = maybe(i.description) {
        am.description = Set(input::opt_text("description", v.as_deref(), 2_000)?);
    }
    if let Some(v) = i.monthly_price {
        am.monthly_price = Set(input::range("monthlyPrice", v, limits::PRICE.0, limits::PRICE.1)?);
    }
    if let Some(v) = i.cpu_milli {
        am.cpu_milli = Set(input::range("cpuMilli", v, limits::CPU_MILLI.0, limits::CPU_MILLI.1)?);
    }
    if let Some(v) = i.memory_mb {
        am.memory_mb = Set(input::range("memoryMb", v, limits::MEMORY_MB.0, limits::MEMORY_MB.1)?);
    }
    if let Some(v) = i.storage_gb {
        am.storage_gb = Set(input::range("storageGb", v, limits::STORAGE_GB.0, limits::STORAGE_GB.1)?);
    }
    if let Some(v) = i.bandwidth_gb {
        am.bandwidth_gb = Set(input::range("bandwidthGb", v, limits::BANDWIDTH_GB.0, limits::BANDWIDTH_GB.1)?);
    }
    if let Some(v) = i.total_quota {
        let v = input::range("totalQuota", v, limits::QUOTA.0, limits::QUOTA.1)?;
        if v < used {
            return Err(AppError::bad_input(
                "totalQuota",
                format!("totalQuota cannot be below the {used} slots in use"),
            ));
        }
        am.total_quota = Set(v);
    }
    if let Some(v) = i.features {
        am.features = Set(serde_json::json!(input::features(&v)?));
    }
    if let Some(v) = i.max_instances_per_user {
        am.max_instances_per_user =
            Set(input::range("maxInstancesPerUser", v, limits::MAX_INSTANCES.0, limits::MAX_INSTANCES.1)?);
    }
    if let Some(v) = i.is_active {
        am.is_active = Set(v);
    }
    if let Some(v) = i.is_popular {
        am.is_popular = Set(v);
    }
    if let Some(v) = i.sort_order {
        am.sort_order = Set(input::range("sortOrder", v, limits::SORT.0, limits::SORT.1)?);
    }
    am.updated_at = Set(state.now());
    let p = am.update(&*tx).await.on_unique_violation(conflict_on_unique("plan"))?;
    tx.commit().await?;
    state.catalog_changed().await;
    Ok(p)
}

pub async fn delete_plan(state: &AppState, id: i64) -> AppResult<()> {
    let tx = state.db.begin().await?;
    let res = plan::Entity::delete_by_id(id).exec(&*tx).await.map_err(|e| in_use(e, "plan"))?;
    if res.rows_affected == 0 {
        return Err(AppError::NotFound("plan"));
    }
    tx.commit().await?;
    state.catalog_changed().await;
    Ok(())
}
