use async_graphql::{Context, ID, Object, Result};
use chrono::{DateTime, Utc};

use super::{InstanceStatus, entity as instance};
use crate::{
    graphql::ContextExt,
    pagination::parse_id,
    subscriptions::{graphql::Subscription, service as subscriptions},
};

pub struct ServiceInstance(pub instance::Model);

#[Object]
impl ServiceInstance {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    async fn subdomain(&self) -> &str {
        &self.0.subdomain
    }
    async fn public_url(&self) -> Option<&str> {
        self.0.public_url.as_deref()
    }
    async fn status(&self) -> InstanceStatus {
        self.0.status
    }
    async fn health_status(&self) -> Option<&str> {
        self.0.health_status.as_deref()
    }
    async fn last_error(&self) -> Option<&str> {
        self.0.last_error.as_deref()
    }
    /// `host:port` for TCP services (databases); null for HTTP services and until provisioned.
    async fn endpoint(&self) -> Option<&str> {
        self.0.endpoint.as_deref()
    }
    async fn namespace(&self) -> &str {
        &self.0.namespace
    }
    async fn deployment_name(&self) -> &str {
        &self.0.deployment_name
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn last_started_at(&self) -> Option<DateTime<Utc>> {
        self.0.last_started_at
    }
    async fn last_stopped_at(&self) -> Option<DateTime<Utc>> {
        self.0.last_stopped_at
    }
    async fn subscription(&self, ctx: &Context<'_>) -> Result<Subscription> {
        let viewer = ctx.auth().viewer()?;
        Ok(Subscription(subscriptions::visible(&ctx.state().db.conn, viewer, self.0.subscription_id).await?))
    }
}

#[derive(Default)]
pub struct InstanceQuery;

#[Object]
impl InstanceQuery {
    /// Owner or admin; anyone else gets NOT_FOUND.
    async fn instance(&self, ctx: &Context<'_>, id: ID) -> Result<Option<ServiceInstance>> {
        let viewer = ctx.auth().viewer()?;
        let id = parse_id(&id, "instance")?;
        Ok(Some(ServiceInstance(super::service::visible(&ctx.state().db.conn, viewer, id).await?)))
    }
}
