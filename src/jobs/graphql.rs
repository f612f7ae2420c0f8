use async_graphql::{Context, Object, Result, SimpleObject};

use super::billing::{self, BillingJob};
use crate::graphql::ContextExt;

#[derive(SimpleObject)]
pub struct BillingRunReport {
    job: BillingJob,
    /// Items looked at.
    processed: i32,
    /// Items acted on (renewed, suspended, expired, warned, reconciled).
    succeeded: i32,
    /// Items refused (e.g. insufficient credit) or in error.
    failed: i32,
    details: Vec<String>,
}

fn count(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

#[derive(Default)]
pub struct JobMutation;

#[Object]
impl JobMutation {
    /// Admin: runs one billing job now, exactly as the background runner does.
    async fn run_billing_job(&self, ctx: &Context<'_>, job: BillingJob) -> Result<BillingRunReport> {
        ctx.auth().admin()?;
        let r = billing::run(ctx.state(), job).await?;
        Ok(BillingRunReport {
            job,
            processed: count(r.processed),
            succeeded: count(r.succeeded),
            failed: count(r.failed),
            details: r.details,
        })
    }
}
