use async_graphql::{Context, ID, Json, Object, Result, Subscription as GqlSubscription};
use chrono::{DateTime, Utc};
use futures::Stream;
use sea_orm::EntityTrait;
use tokio::sync::broadcast::error::RecvError;

use super::{InstanceStatus, entity as instance, lifecycle::Action, live, service};
use crate::{
    cluster::{metrics::ResourceUsage, service::parse_tail_lines},
    graphql::ContextExt,
    pagination::{Conn, PageArgs, connection, parse_id},
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
    /// Owner only: the generated secrets of the app (e.g. the database password), read from the
    /// cluster; null when the app has none.
    async fn credentials(&self, ctx: &Context<'_>) -> Result<Option<Json<serde_json::Value>>> {
        let viewer = ctx.auth().viewer()?;
        Ok(service::credentials(ctx.state(), viewer, self.0.id).await?.map(Json))
    }
    /// Live CPU and memory of the app from metrics.k8s.io (summed over its pods); null while it
    /// is stopped, before the metrics server's first sample, or without a metrics server.
    async fn usage(&self, ctx: &Context<'_>) -> Result<Option<ResourceUsage>> {
        Ok(live::usage(ctx.state(), &self.0).await?)
    }
    /// Owner only: the last `tailLines` (1-5000) lines of the app's log; empty while nothing runs.
    async fn logs(&self, ctx: &Context<'_>, #[graphql(default = 100)] tail_lines: i32) -> Result<Option<Vec<String>>> {
        let viewer = ctx.auth().viewer()?;
        let tail = parse_tail_lines(tail_lines, 1)?;
        Ok(Some(live::logs(ctx.state(), viewer, self.0.id, tail).await?))
    }
    async fn subscription(&self, ctx: &Context<'_>) -> Result<Subscription> {
        let viewer = ctx.auth().viewer()?;
        Ok(Subscription::from(subscriptions::visible(&ctx.state().db.conn, viewer, self.0.subscription_id).await?))
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

    /// Admin: every instance, newest first.
    async fn all_instances(
        &self,
        ctx: &Context<'_>,
        status: Option<InstanceStatus>,
        #[graphql(default = 20)] first: Option<i32>,
        after: Option<String>,
    ) -> Result<Conn<ServiceInstance>> {
        ctx.auth().admin()?;
        let args = PageArgs::parse(first, after.as_deref())?;
        let page = service::list_all(&ctx.state().db.conn, status, args).await?;
        Ok(connection(page, |i| i.id, ServiceInstance))
    }
}

async fn act(ctx: &Context<'_>, id: ID, action: Action) -> Result<ServiceInstance> {
    let viewer = ctx.auth().viewer()?;
    let id = parse_id(&id, "instance")?;
    Ok(ServiceInstance(service::act(ctx.state(), viewer, id, action).await?))
}

#[derive(Default)]
pub struct InstanceMutation;

/// Owner or admin; anyone else gets NOT_FOUND. Illegal moves are CONFLICT naming the status.
#[Object]
impl InstanceMutation {
    /// STOPPED → STARTING: scales back to one replica.
    async fn start_instance(&self, ctx: &Context<'_>, id: ID) -> Result<ServiceInstance> {
        act(ctx, id, Action::Start).await
    }
    /// Scales to zero; the data volume stays.
    async fn stop_instance(&self, ctx: &Context<'_>, id: ID) -> Result<ServiceInstance> {
        act(ctx, id, Action::Stop).await
    }
    /// RUNNING → RESTARTING: a rolling restart.
    async fn restart_instance(&self, ctx: &Context<'_>, id: ID) -> Result<ServiceInstance> {
        act(ctx, id, Action::Restart).await
    }
    /// ERROR → PROVISIONING: re-applies the current manifests (e.g. after the image was fixed).
    async fn retry_provisioning(&self, ctx: &Context<'_>, id: ID) -> Result<ServiceInstance> {
        act(ctx, id, Action::Retry).await
    }
}

#[derive(Default)]
pub struct InstanceSubscription;

#[GqlSubscription]
impl InstanceSubscription {
    /// Owner only: follows the app's log, one line per event, starting with the last `tailLines`
    /// (0-5000). It moves to the new pod after a restart and ends when the app stops.
    async fn instance_logs(
        &self,
        ctx: &Context<'_>,
        id: ID,
        #[graphql(default = 100)] tail_lines: i32,
    ) -> Result<impl Stream<Item = String> + use<>> {
        let viewer = ctx.auth().viewer()?;
        let id = parse_id(&id, "instance")?;
        let tail = parse_tail_lines(tail_lines, 0)?;
        Ok(live::follow(ctx.state(), viewer, id, tail).await?)
    }

    /// Every status change of the viewer's own instances (optionally of one subscription).
    async fn instance_updates(
        &self,
        ctx: &Context<'_>,
        subscription_id: Option<ID>,
    ) -> Result<impl Stream<Item = ServiceInstance> + use<>> {
        let viewer = ctx.auth().viewer()?;
        let only = subscription_id.map(|s| parse_id(&s, "subscription")).transpose()?;
        let state = ctx.state().clone();
        let mut rx = state.instance_hub.subscribe();
        Ok(async_stream::stream! {
            loop {
                match rx.recv().await {
                    Ok(ev) => {
                        // Owner only: re-read the row and its subscription for every event.
                        let Ok(Some(inst)) = instance::Entity::find_by_id(ev.instance_id).one(&state.db.conn).await else { continue };
                        if only.is_some_and(|s| s != inst.subscription_id) {
                            continue;
                        }
                        let owned = subscriptions::owned(&state.db.conn, viewer.id, inst.subscription_id).await;
                        if owned.unwrap_or(false) {
                            yield ServiceInstance(inst);
                        }
                    }
                    Err(RecvError::Lagged(_)) => {}
                    Err(RecvError::Closed) => break,
                }
            }
        })
    }
}
