//! Who holds the slots of a plan: its live subscriptions (the ones counted in its quota), with
//! their users, for the admin's quota details.
use async_graphql::{Context, ID, Object, Result};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};

use super::{
    SubscriptionStatus,
    entity::subscription,
    graphql::{Subscription, with_relations},
};
use crate::{
    error::{AppError, AppResult},
    graphql::ContextExt,
    pagination::{Conn, Page, PageArgs, connection, parse_id},
};

/// The live subscriptions of `plan_id`, newest first. NOT_FOUND for an unknown plan (hidden
/// and inactive plans included: their subscribers still hold slots).
pub async fn live_of_plan(
    db: &impl ConnectionTrait,
    plan_id: i64,
    args: PageArgs,
) -> AppResult<Page<subscription::Model>> {
    crate::catalog::service::plan_by_id(db, plan_id, true).await?.ok_or(AppError::NotFound("plan"))?;
    let q = subscription::Entity::find()
        .filter(subscription::Column::PlanId.eq(plan_id))
        .filter(subscription::Column::Status.is_in(SubscriptionStatus::live()));
    crate::pagination::newest_first(db, q, subscription::Column::Id, args).await
}

#[derive(Default)]
pub struct PlanSubscribersQuery;

#[Object]
impl PlanSubscribersQuery {
    /// Admin: the live subscriptions (ACTIVE, SUSPENDED, pending) holding slots of a plan,
    /// newest first, with their users; `totalCount` is the number of slots held.
    async fn plan_subscribers(
        &self,
        ctx: &Context<'_>,
        plan_id: ID,
        #[graphql(default = 20)] first: Option<i32>,
        after: Option<String>,
    ) -> Result<Conn<Subscription>> {
        ctx.auth().admin()?;
        let args = PageArgs::parse(first, after.as_deref())?;
        let plan_id = parse_id(&plan_id, "plan")?;
        let page = live_of_plan(&ctx.state().db.conn, plan_id, args).await?;
        let look = ctx.look_ahead();
        let (nodes, edges) = (look.field("nodes"), look.field("edges").field("node"));
        let rows = with_relations(ctx, page.rows, |f| nodes.field(f).exists() || edges.field(f).exists()).await?;
        let page = Page { rows, has_next: page.has_next, total: page.total };
        Ok(connection(page, |s| s.0.id, |s| s))
    }
}
