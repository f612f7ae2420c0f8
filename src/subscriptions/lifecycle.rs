//! The one place that says which user and admin actions are legal for a subscription, given
//! where it stands, and where a paid renewal starts. Use cases ask `check`; they do not spell
//! out status lists of their own. Pure, so the whole table is unit-tested beside it.
use chrono::{DateTime, Duration, Utc};

use super::{SubscriptionStatus, entity::subscription};
use crate::error::{AppError, AppResult};

/// Days before the period end from which the owner may pay the next period early.
pub const EARLY_RENEWAL_DAYS: i64 = 7;

/// Where a subscription stands for the actions below.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Phase {
    /// ACTIVE, and the current period is paid and not over.
    Paid { renewable_early: bool },
    /// ACTIVE, but the period end has passed without a renewal: the grace period after a failed
    /// charge, or the wait for expiry when auto-renew is off. The service still runs.
    Lapsed,
    /// SUSPENDED for non-payment; the slot is held until the retention ends.
    Suspended,
    /// CANCELLED, EXPIRED or a pending state: no user action applies.
    Other(SubscriptionStatus),
}

pub fn phase(sub: &subscription::Model, now: DateTime<Utc>) -> Phase {
    match sub.status {
        SubscriptionStatus::Active if sub.period_end <= now || sub.grace_period_end.is_some() => Phase::Lapsed,
        SubscriptionStatus::Active => {
            Phase::Paid { renewable_early: sub.period_end - now <= Duration::days(EARLY_RENEWAL_DAYS) }
        }
        SubscriptionStatus::Suspended => Phase::Suspended,
        other => Phase::Other(other),
    }
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Action {
    Upgrade,
    /// An administrator's move to any other plan of the service, up or down.
    ChangePlan,
    /// An administrator ends the subscription now.
    Expire,
    Renew,
    Cancel,
    SetAutoRenew,
    Extend,
}

/// The transition table: `Ok` when `action` is legal in `phase`, else why not (CONFLICT).
pub fn allowed(action: Action, phase: Phase) -> Result<(), String> {
    use Action as A;
    use Phase as P;
    match (action, phase) {
        // An upgrade is charged pro rata over the rest of a paid period; with the period over
        // that would be free, so the next period must be paid first.
        (A::Upgrade | A::ChangePlan, P::Paid { .. }) => Ok(()),
        (A::Upgrade | A::ChangePlan, P::Lapsed) => {
            Err("the current period is not paid: renew first, then change the plan".into())
        }
        (A::Upgrade | A::ChangePlan, P::Suspended) => {
            Err("a SUSPENDED subscription cannot change its plan: renew first".into())
        }
        (A::Renew, P::Paid { renewable_early: true } | P::Lapsed | P::Suspended) => Ok(()),
        (A::Renew, P::Paid { renewable_early: false }) => Err(format!(
            "renewal is possible during a grace period or within {EARLY_RENEWAL_DAYS} days of the period end"
        )),
        (A::Cancel | A::SetAutoRenew | A::Extend | A::Expire, P::Paid { .. } | P::Lapsed | P::Suspended) => Ok(()),
        (action, P::Other(status)) => Err(format!("a {} subscription cannot {}", status.as_str(), verb(action))),
    }
}

fn verb(action: Action) -> &'static str {
    match action {
        Action::Upgrade => "be upgraded",
        Action::ChangePlan => "change its plan",
        Action::Expire => "be expired",
        Action::Renew => "be renewed",
        Action::Cancel => "be cancelled",
        Action::SetAutoRenew => "change auto-renew",
        Action::Extend => "be extended",
    }
}

/// `allowed` for a loaded subscription, as the CONFLICT the API answers.
pub fn check(action: Action, sub: &subscription::Model, now: DateTime<Utc>) -> AppResult<Phase> {
    let p = phase(sub, now);
    allowed(action, p).map_err(AppError::Conflict)?;
    Ok(p)
}

/// Where a paid renewal's new period starts. Early and in grace: at the old period end, as the
/// billing job does, because the days until now were served. From SUSPENDED: now, because
/// the service was stopped. Should the old end lie more than a period back (the billing jobs
/// were off), the new period starts now rather than being over before it begins.
pub fn renewal_start(sub: &subscription::Model, phase: Phase, now: DateTime<Utc>) -> DateTime<Utc> {
    match phase {
        Phase::Paid { .. } | Phase::Lapsed if super::period_end(sub.period_end) > now => sub.period_end,
        _ => now,
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn sub(status: SubscriptionStatus, end: DateTime<Utc>, grace: Option<DateTime<Utc>>) -> subscription::Model {
        let start = end - Duration::days(30);
        subscription::Model {
            id: 1,
            user_id: 1,
            service_id: 1,
            plan_id: 1,
            status,
            monthly_price: 30_000,
            period_start: start,
            period_end: end,
            next_billing_at: Some(end),
            auto_renew: true,
            grace_period_end: grace,
            last_charge_amount: None,
            failed_charges: 0,
            previous_plan_id: None,
            idempotency_key: None,
            idempotency_fingerprint: None,
            cancelled_at: None,
            coupon_id: None,
            discount_amount: 0,
            created_at: start,
            updated_at: start,
        }
    }

    fn at(d: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 5, d, 12, 0, 0).unwrap()
    }

    #[test]
    fn phases() {
        let end = at(20);
        assert_eq!(phase(&sub(SubscriptionStatus::Active, end, None), at(1)), Phase::Paid { renewable_early: false });
        assert_eq!(phase(&sub(SubscriptionStatus::Active, end, None), at(15)), Phase::Paid { renewable_early: true });
        assert_eq!(phase(&sub(SubscriptionStatus::Active, end, None), at(20)), Phase::Lapsed);
        assert_eq!(phase(&sub(SubscriptionStatus::Active, end, Some(at(27))), at(21)), Phase::Lapsed);
        assert_eq!(phase(&sub(SubscriptionStatus::Suspended, end, Some(at(27))), at(28)), Phase::Suspended);
        let c = SubscriptionStatus::Cancelled;
        assert_eq!(phase(&sub(c, end, None), at(1)), Phase::Other(c));
    }

    #[test]
    fn the_table() {
        use Action::*;
        let paid = Phase::Paid { renewable_early: false };
        let early = Phase::Paid { renewable_early: true };
        let closed = Phase::Other(SubscriptionStatus::Expired);
        assert!(allowed(Upgrade, paid).is_ok());
        assert!(allowed(Upgrade, early).is_ok());
        assert!(allowed(Upgrade, Phase::Lapsed).unwrap_err().contains("renew first"));
        assert!(allowed(Upgrade, Phase::Suspended).is_err());
        assert!(allowed(Renew, paid).is_err());
        for p in [early, Phase::Lapsed, Phase::Suspended] {
            assert!(allowed(Renew, p).is_ok(), "{p:?}");
        }
        for a in [Cancel, SetAutoRenew, Extend, Expire] {
            for p in [paid, Phase::Lapsed, Phase::Suspended] {
                assert!(allowed(a, p).is_ok(), "{a:?} {p:?}");
            }
        }
        assert!(allowed(ChangePlan, paid).is_ok());
        assert!(allowed(ChangePlan, Phase::Lapsed).is_err());
        for a in [Upgrade, ChangePlan, Renew, Cancel, SetAutoRenew, Extend, Expire] {
            assert!(allowed(a, closed).unwrap_err().contains("EXPIRED"), "{a:?}");
        }
    }

    #[test]
    fn renewals_start_at_the_old_end_unless_suspended() {
        let end = at(20);
        let s = sub(SubscriptionStatus::Active, end, Some(at(27)));
        assert_eq!(renewal_start(&s, Phase::Lapsed, at(25)), end, "grace days were served");
        assert_eq!(renewal_start(&s, Phase::Paid { renewable_early: true }, at(15)), end);
        assert_eq!(renewal_start(&s, Phase::Suspended, at(28)), at(28));
        let long_ago = sub(SubscriptionStatus::Active, at(1) - Duration::days(60), None);
        assert_eq!(renewal_start(&long_ago, Phase::Lapsed, at(1)), at(1));
    }
}
