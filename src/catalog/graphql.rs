use std::sync::Arc;

use async_graphql::{
    Context, ContextSelectionSet, ID, InputObject, Json, Object, Result, Value, dataloader::DataLoader,
};

use super::{
    PlanType, ServiceProtocol,
    entity::{category, plan, service},
    input,
    loader::{CatalogLoader, CategoryId, PlansOfService, ServiceId, ServicesOfCategory},
    service as catalog,
    splice::{PlanQuota, QuotaField, QuotaHoles, Spliced},
};
use crate::{
    error::AppError,
    graphql::{
        ContextExt,
        flat::{Flat, Leaves},
    },
    pagination::{Conn, PageArgs, connection_by_offset, parse_id},
};

fn loader<'a>(ctx: &'a Context<'_>) -> &'a DataLoader<CatalogLoader> {
    // Inserted per request by the GraphQL handlers.
    ctx.data_unchecked::<DataLoader<CatalogLoader>>()
}

pub struct ServiceCategory(pub category::Model);

#[Object]
impl ServiceCategory {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    async fn slug(&self) -> &str {
        &self.0.slug
    }
    async fn description(&self) -> Option<&str> {
        self.0.description.as_deref()
    }
    async fn sort_order(&self) -> i32 {
        self.0.sort_order
    }
    /// Visible (active and public) services only.
    async fn services(&self, ctx: &Context<'_>) -> Result<Vec<Flat<Service>>> {
        let rows = loader(ctx).load_one(ServicesOfCategory(self.0.id)).await.map_err(AppError::from)?;
        let category = Arc::new(self.0.clone());
        Ok(rows
            .unwrap_or_default()
            .into_iter()
            .map(|(s, plans)| Flat(Service { model: s, plans: Some(plans), category: Some(category.clone()) }))
            .collect())
    }
}

impl Leaves for ServiceCategory {
    fn leaf(&self, _: &ContextSelectionSet<'_>, name: &str) -> Option<Value> {
        let c = &self.0;
        Some(match name {
            "id" => Value::String(c.id.to_string()),
            "name" => c.name.as_str().into(),
            "slug" => c.slug.as_str().into(),
            "description" => c.description.as_deref().into(),
            "sortOrder" => c.sort_order.into(),
            _ => return None,
        })
    }
}

/// A service, possibly with its plans and category already fetched by the parent level.
pub struct Service {
    pub model: service::Model,
    plans: Option<Arc<Vec<plan::Model>>>,
    category: Option<Arc<category::Model>>,
}

impl From<service::Model> for Service {
    fn from(model: service::Model) -> Self {
        Self { model, plans: None, category: None }
    }
}

impl Service {
    async fn active_plans(&self, ctx: &Context<'_>) -> Result<Arc<Vec<plan::Model>>> {
        if let Some(p) = &self.plans {
            return Ok(p.clone());
        }
        let p = loader(ctx).load_one(PlansOfService(self.model.id)).await.map_err(AppError::from)?;
        Ok(p.unwrap_or_default())
    }
}

#[Object]
impl Service {
    async fn id(&self) -> ID {
        ID(self.model.id.to_string())
    }
    async fn name(&self) -> &str {
        &self.model.name
    }
    async fn slug(&self) -> &str {
        &self.model.slug
    }
    async fn description(&self) -> Option<&str> {
        self.model.description.as_deref()
    }
    async fn long_description(&self) -> Option<&str> {
        self.model.long_description.as_deref()
    }
    async fn icon(&self) -> Option<&str> {
        self.model.icon.as_deref()
    }
    async fn version(&self) -> &str {
        &self.model.version
    }
    async fn tags(&self) -> Vec<String> {
        self.model.tags()
    }
    async fn documentation(&self) -> Option<&str> {
        self.model.documentation.as_deref()
    }
    async fn is_featured(&self) -> bool {
        self.model.is_featured
    }
    /// HTTP apps are served at their subdomain; TCP apps (databases) at an endpoint.
    async fn protocol(&self) -> ServiceProtocol {
        self.model.protocol
    }
    async fn category(&self, ctx: &Context<'_>) -> Result<ServiceCategory> {
        if let Some(c) = &self.category {
            return Ok(ServiceCategory(c.as_ref().clone()));
        }
        let c = loader(ctx).load_one(CategoryId(self.model.category_id)).await.map_err(AppError::from)?;
        Ok(ServiceCategory(c.ok_or(AppError::NotFound("category"))?))
    }
    /// Active plans, cheapest first.
    async fn plans(&self, ctx: &Context<'_>) -> Result<Vec<Flat<ServicePlan>>> {
        let plans = self.active_plans(ctx).await?;
        let parent = Arc::new(self.model.clone());
        Ok(plans.iter().map(|p| Flat(ServicePlan { model: p.clone(), service: Some(parent.clone()) })).collect())
    }
    /// The cheapest active plan's monthly price (IDR); null without active plans.
    async fn starting_price(&self, ctx: &Context<'_>) -> Result<Option<i64>> {
        Ok(starting_price(&self.active_plans(ctx).await?))
    }

    /// Admin only (null and FORBIDDEN for others).
    async fn docker_image(&self, ctx: &Context<'_>) -> Option<&str> {
        ctx.null_unless(ctx.auth().admin()).map(|_| self.model.docker_image.as_str())
    }
    /// Admin only (null and FORBIDDEN for others).
    async fn default_port(&self, ctx: &Context<'_>) -> Option<i32> {
        ctx.null_unless(ctx.auth().admin()).map(|_| self.model.default_port)
    }
    /// Admin only.
    async fn env_template(&self, ctx: &Context<'_>) -> Result<Option<Json<serde_json::Value>>> {
        ctx.auth().admin()?;
        Ok(self.model.env_template.clone().map(Json))
    }
    /// Admin only: where the plan's volume is mounted in the container.
    async fn data_path(&self, ctx: &Context<'_>) -> Result<Option<&str>> {
        ctx.auth().admin()?;
        Ok(self.model.data_path.as_deref())
    }
    /// Admin only: the HTTP probe path; null means TCP probes on the app port.
    async fn health_path(&self, ctx: &Context<'_>) -> Result<Option<&str>> {
        ctx.auth().admin()?;
        Ok(self.model.health_path.as_deref())
    }
    /// Admin only (null and FORBIDDEN for others).
    async fn is_active(&self, ctx: &Context<'_>) -> Option<bool> {
        ctx.null_unless(ctx.auth().admin()).map(|_| self.model.is_active)
    }
    /// Admin only (null and FORBIDDEN for others).
    async fn is_public(&self, ctx: &Context<'_>) -> Option<bool> {
        ctx.null_unless(ctx.auth().admin()).map(|_| self.model.is_public)
    }
    /// Admin only (null and FORBIDDEN for others): every plan, including inactive ones.
    async fn all_plans(&self, ctx: &Context<'_>) -> Result<Option<Vec<ServicePlan>>> {
        if ctx.null_unless(ctx.auth().admin()).is_none() {
            return Ok(None);
        }
        Ok(Some(
            catalog::all_plans_of(&ctx.state().db.conn, self.model.id)
                .await?
                .into_iter()
                .map(ServicePlan::from)
                .collect(),
        ))
    }
}

fn starting_price(plans: &[plan::Model]) -> Option<i64> {
    plans.iter().map(|p| p.monthly_price).min()
}

impl Leaves for Service {
    fn leaf(&self, _: &ContextSelectionSet<'_>, name: &str) -> Option<Value> {
        let s = &self.model;
        Some(match name {
            "id" => Value::String(s.id.to_string()),
            "name" => s.name.as_str().into(),
            "slug" => s.slug.as_str().into(),
            "description" => s.description.as_deref().into(),
            "longDescription" => s.long_description.as_deref().into(),
            "icon" => s.icon.as_deref().into(),
            "version" => s.version.as_str().into(),
            "tags" => s.tags().into(),
            "documentation" => s.documentation.as_deref().into(),
            "isFeatured" => s.is_featured.into(),
            "protocol" => async_graphql::resolver_utils::enum_value(s.protocol),
            // Known here when the parent level fetched the plans.
            "startingPrice" => starting_price(self.plans.as_ref()?).into(),
            _ => return None,
        })
    }
}

/// A plan, possibly with its service already known from the parent level.
pub struct ServicePlan {
    pub model: plan::Model,
    service: Option<Arc<service::Model>>,
}

impl From<plan::Model> for ServicePlan {
    fn from(model: plan::Model) -> Self {
        Self { model, service: None }
    }
}

#[Object]
impl ServicePlan {
    async fn id(&self) -> ID {
        ID(self.model.id.to_string())
    }
    async fn name(&self) -> &str {
        &self.model.name
    }
    async fn plan_type(&self) -> PlanType {
        self.model.plan_type
    }
    async fn description(&self) -> Option<&str> {
        self.model.description.as_deref()
    }
    /// IDR per month.
    async fn monthly_price(&self) -> i64 {
        self.model.monthly_price
    }
    async fn cpu_milli(&self) -> i32 {
        self.model.cpu_milli
    }
    async fn memory_mb(&self) -> i32 {
        self.model.memory_mb
    }
    async fn storage_gb(&self) -> i32 {
        self.model.storage_gb
    }
    async fn bandwidth_gb(&self) -> i32 {
        self.model.bandwidth_gb
    }
    async fn features(&self) -> Vec<String> {
        self.model.features()
    }
    async fn max_instances_per_user(&self) -> i32 {
        self.model.max_instances_per_user
    }
    async fn total_quota(&self) -> i32 {
        self.model.total_quota
    }
    async fn used_quota(&self, ctx: &Context<'_>) -> Spliced<i32> {
        Spliced::new(self.quota(ctx.data_opt(), QuotaField::Used))
    }
    async fn available_quota(&self, ctx: &Context<'_>) -> Spliced<i32> {
        Spliced::new(self.quota(ctx.data_opt(), QuotaField::Available))
    }
    async fn is_available(&self, ctx: &Context<'_>) -> Spliced<bool> {
        Spliced::new(self.quota(ctx.data_opt(), QuotaField::IsAvailable))
    }
    async fn is_popular(&self) -> bool {
        self.model.is_popular
    }
    async fn service(&self, ctx: &Context<'_>) -> Result<Service> {
        if let Some(s) = &self.service {
            return Ok(Service::from(s.as_ref().clone()));
        }
        let s = loader(ctx).load_one(ServiceId(self.model.service_id)).await.map_err(AppError::from)?;
        Ok(Service::from(s.ok_or(AppError::NotFound("service"))?))
    }
    /// Admin only (null and FORBIDDEN for others).
    async fn is_active(&self, ctx: &Context<'_>) -> Option<bool> {
        ctx.null_unless(ctx.auth().admin()).map(|_| self.model.is_active)
    }
}

impl ServicePlan {
    /// A quota field's value, or its placeholder while the catalog cache is being filled.
    fn quota(&self, holes: Option<&QuotaHoles>, field: QuotaField) -> Value {
        match holes {
            Some(h) => h.hole(self.model.id, field),
            None => PlanQuota::of(&self.model).value(field),
        }
    }
}

impl Leaves for ServicePlan {
    fn leaf(&self, ctx: &ContextSelectionSet<'_>, name: &str) -> Option<Value> {
        let p = &self.model;
        Some(match name {
            "id" => Value::String(p.id.to_string()),
            "name" => p.name.as_str().into(),
            "planType" => async_graphql::resolver_utils::enum_value(p.plan_type),
            "description" => p.description.as_deref().into(),
            "monthlyPrice" => p.monthly_price.into(),
            "cpuMilli" => p.cpu_milli.into(),
            "memoryMb" => p.memory_mb.into(),
            "storageGb" => p.storage_gb.into(),
            "bandwidthGb" => p.bandwidth_gb.into(),
            "features" => p.features().into(),
            "maxInstancesPerUser" => p.max_instances_per_user.into(),
            "totalQuota" => p.total_quota.into(),
            "usedQuota" => self.quota(ctx.data_opt(), QuotaField::Used),
            "availableQuota" => self.quota(ctx.data_opt(), QuotaField::Available),
            "isAvailable" => self.quota(ctx.data_opt(), QuotaField::IsAvailable),
            "isPopular" => p.is_popular.into(),
            _ => return None,
        })
    }
}

#[derive(InputObject, Default)]
pub struct ServiceFilter {
    category_slug: Option<String>,
    /// Case-insensitive match on name, description and tags.
    search: Option<String>,
    featured: Option<bool>,
    tag: Option<String>,
    /// Admin only: also list inactive and private services.
    #[graphql(default)]
    include_hidden: bool,
}

#[derive(Default)]
pub struct CatalogQuery;

#[Object]
impl CatalogQuery {
    async fn categories(&self, ctx: &Context<'_>) -> Result<Vec<Flat<ServiceCategory>>> {
        Ok(catalog::categories(&ctx.state().db.conn).await?.into_iter().map(|c| Flat(ServiceCategory(c))).collect())
    }

    async fn category(&self, ctx: &Context<'_>, slug: String) -> Result<Option<ServiceCategory>> {
        Ok(catalog::category_by_slug(&ctx.state().db.conn, &slug).await?.map(ServiceCategory))
    }

    async fn services(
        &self,
        ctx: &Context<'_>,
        filter: Option<ServiceFilter>,
        #[graphql(default = 20)] first: Option<i32>,
        after: Option<String>,
    ) -> Result<Conn<Service>> {
        let f = filter.unwrap_or_default();
        if f.include_hidden {
            ctx.auth().admin()?;
        }
        let args = PageArgs::parse(first, after.as_deref())?;
        let filter = catalog::ServiceFilter {
            category_slug: f.category_slug,
            search: f.search,
            featured: f.featured,
            tag: f.tag,
            include_hidden: f.include_hidden,
        };
        let db = &ctx.state().db.conn;
        let page = catalog::services(db, &filter, args).await?;
        // Fetch the next level with the page when the query asks for it (one statement).
        let node = ctx.look_ahead().field("edges").field("node");
        let mut plans = if node.field("plans").exists() || node.field("startingPrice").exists() {
            let ids: Vec<i64> = page.rows.iter().map(|s| s.id).collect();
            super::loader::active_plans_of(db, &ids).await.map_err(AppError::from)?
        } else {
            Default::default()
        };
        Ok(connection_by_offset(page, args, |s| {
            let p = plans.remove(&s.id);
            Service { model: s, plans: p, category: None }
        }))
    }

    /// Admins also see inactive and private services here.
    async fn service(&self, ctx: &Context<'_>, slug: String) -> Result<Option<Service>> {
        let admin = ctx.auth().admin().is_ok();
        Ok(catalog::service_by_slug(&ctx.state().db.conn, &slug, admin).await?.map(Service::from))
    }

    async fn plan(&self, ctx: &Context<'_>, id: ID) -> Result<Option<ServicePlan>> {
        let Ok(id) = parse_id(&id, "plan") else {
            return Ok(None);
        };
        let admin = ctx.auth().admin().is_ok();
        Ok(catalog::plan_by_id(&ctx.state().db.conn, id, admin).await?.map(ServicePlan::from))
    }
}

#[derive(Default)]
pub struct CatalogMutation;

#[Object]
impl CatalogMutation {
    async fn create_category(&self, ctx: &Context<'_>, input: input::CreateCategoryInput) -> Result<ServiceCategory> {
        ctx.auth().admin()?;
        Ok(ServiceCategory(catalog::create_category(ctx.state(), input).await?))
    }
    async fn update_category(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: input::UpdateCategoryInput,
    ) -> Result<ServiceCategory> {
        ctx.auth().admin()?;
        Ok(ServiceCategory(catalog::update_category(ctx.state(), parse_id(&id, "category")?, input).await?))
    }
    /// Refused with CONFLICT while services belong to the category.
    async fn delete_category(&self, ctx: &Context<'_>, id: ID) -> Result<bool> {
        ctx.auth().admin()?;
        catalog::delete_category(ctx.state(), parse_id(&id, "category")?).await?;
        Ok(true)
    }
    async fn create_service(&self, ctx: &Context<'_>, input: input::CreateServiceInput) -> Result<Service> {
        ctx.auth().admin()?;
        Ok(Service::from(catalog::create_service(ctx.state(), input).await?))
    }
    async fn update_service(&self, ctx: &Context<'_>, id: ID, input: input::UpdateServiceInput) -> Result<Service> {
        ctx.auth().admin()?;
        Ok(Service::from(catalog::update_service(ctx.state(), parse_id(&id, "service")?, input).await?))
    }
    /// Deletes the service and its plans; refused with CONFLICT once subscriptions reference
    /// them (deactivate instead).
    async fn delete_service(&self, ctx: &Context<'_>, id: ID) -> Result<bool> {
        ctx.auth().admin()?;
        catalog::delete_service(ctx.state(), parse_id(&id, "service")?).await?;
        Ok(true)
    }
    async fn create_plan(
        &self,
        ctx: &Context<'_>,
        service_id: ID,
        input: input::CreatePlanInput,
    ) -> Result<ServicePlan> {
        ctx.auth().admin()?;
        Ok(ServicePlan::from(catalog::create_plan(ctx.state(), parse_id(&service_id, "service")?, input).await?))
    }
    async fn update_plan(&self, ctx: &Context<'_>, id: ID, input: input::UpdatePlanInput) -> Result<ServicePlan> {
        ctx.auth().admin()?;
        Ok(ServicePlan::from(catalog::update_plan(ctx.state(), parse_id(&id, "plan")?, input).await?))
    }
    /// Refused with CONFLICT once subscriptions reference the plan (deactivate instead).
    async fn delete_plan(&self, ctx: &Context<'_>, id: ID) -> Result<bool> {
        ctx.auth().admin()?;
        catalog::delete_plan(ctx.state(), parse_id(&id, "plan")?).await?;
        Ok(true)
    }
}
