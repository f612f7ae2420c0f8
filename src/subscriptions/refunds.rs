//! What may still be given back of a subscription's charges. Every refund, whether an
//! administrator's partial refund of one charge or the prorated refund of a downgrade or an
//! admin cancellation, is counted in the charges' `refunded_amount` by a conditional update
//! (`refunded_amount + x <= amount`), so no charge is ever refunded beyond what was paid: not by
//! concurrent refunds, and not after a discounted or free first period.
use chrono::{DateTime, Utc};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    sea_query::{Expr, ExprTrait},
};

use crate::{
    billing::{TransactionStatus, TransactionType, entity as transactions},
    error::AppResult,
};

/// The ledger rows that can be refunded: completed charges for a plan.
pub const REFUNDABLE: [TransactionType; 3] =
    [TransactionType::Subscription, TransactionType::Upgrade, TransactionType::Renewal];

/// Counts `amount` against what is left of charge `charge_id` to refund, in the statement that
/// checks it. False when too little is left.
pub async fn claim(db: &impl ConnectionTrait, charge_id: i64, amount: i64) -> AppResult<bool> {
    let res = transactions::Entity::update_many()
        .col_expr(transactions::Column::RefundedAmount, Expr::col(transactions::Column::RefundedAmount).add(amount))
        .filter(transactions::Column::Id.eq(charge_id))
        .filter(
            Expr::col(transactions::Column::RefundedAmount).add(amount).lte(Expr::col(transactions::Column::Amount)),
        )
        .exec(db)
        .await?;
    Ok(res.rows_affected == 1)
}

/// What a period refund of `wanted` may give: claimed from the charges made for the period that
/// began at `period_start`, newest first, up to what each has left. Returns the amount claimed
/// and the charges it came from. A free first period has no charge, so it gives nothing back.
pub async fn claim_from_period(
    db: &impl ConnectionTrait,
    subscription_id: i64,
    period_start: DateTime<Utc>,
    wanted: i64,
) -> AppResult<(i64, Vec<i64>)> {
    let charges = transactions::Entity::find()
        .filter(transactions::Column::SubscriptionId.eq(subscription_id))
        .filter(transactions::Column::Status.eq(TransactionStatus::Completed))
        .filter(transactions::Column::Kind.is_in(REFUNDABLE))
        .filter(transactions::Column::CompletedAt.gte(period_start))
        .order_by_desc(transactions::Column::Id)
        .all(db)
        .await?;
    let (mut claimed, mut from) = (0, Vec::new());
    for c in charges {
        let take = Ord::min(wanted - claimed, c.amount - c.refunded_amount);
        if take <= 0 {
            continue;
        }
        // A concurrent refund of this charge may have taken it meanwhile: then less is given.
        if claim(db, c.id, take).await? {
            claimed += take;
            from.push(c.id);
        }
        if claimed == wanted {
            break;
        }
    }
    Ok((claimed, from))
}
