//! Subscriptions: a user's plan of a service, paid from credit, holding one quota slot.
pub mod admin;
pub mod checkout;
pub mod entity;
pub mod graphql;
pub mod lifecycle;
pub mod loader;
pub mod refunds;
pub mod renewal;
pub mod service;
pub mod subscribers;

use chrono::{DateTime, Months, Utc};
use sea_orm::{DeriveActiveEnum, EnumIter, sea_query::StringLen};

#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, async_graphql::Enum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(20))")]
pub enum SubscriptionStatus {
    #[sea_orm(string_value = "ACTIVE")]
    Active,
    #[sea_orm(string_value = "SUSPENDED")]
    Suspended,
    #[sea_orm(string_value = "CANCELLED")]
    Cancelled,
    #[sea_orm(string_value = "EXPIRED")]
    Expired,
    #[sea_orm(string_value = "PENDING_UPGRADE")]
    PendingUpgrade,
    #[sea_orm(string_value = "PENDING_PAYMENT")]
    PendingPayment,
}

impl SubscriptionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "ACTIVE",
            Self::Suspended => "SUSPENDED",
            Self::Cancelled => "CANCELLED",
            Self::Expired => "EXPIRED",
            Self::PendingUpgrade => "PENDING_UPGRADE",
            Self::PendingPayment => "PENDING_PAYMENT",
        }
    }

    /// Live subscriptions hold a quota slot and block another one for the same service.
    pub fn is_live(self) -> bool {
        !matches!(self, Self::Cancelled | Self::Expired)
    }

    /// The statuses `is_live` accepts, for `status IN (…)` filters.
    pub fn live() -> Vec<Self> {
        <Self as sea_orm::Iterable>::iter().filter(|s| s.is_live()).collect()
    }
}

/// The end of a billing period that starts at `start`: one calendar month later, clamped to the
/// last day of a shorter month (Jan 31 → Feb 28/29).
pub fn period_end(start: DateTime<Utc>) -> DateTime<Utc> {
    start.checked_add_months(Months::new(1)).unwrap_or(start)
}

/// `round(amount × remaining / period)` over seconds, with `remaining` clamped to the period;
/// integer arithmetic, halves round up.
pub fn prorate(amount: i64, period_start: DateTime<Utc>, period_end: DateTime<Utc>, now: DateTime<Utc>) -> i64 {
    let period = (period_end - period_start).num_seconds().max(1) as i128;
    let remaining = ((period_end - now).num_seconds() as i128).clamp(0, period);
    let scaled = amount as i128 * remaining;
    let rounded =
        if scaled >= 0 { (2 * scaled + period) / (2 * period) } else { -((-2 * scaled + period) / (2 * period)) };
    rounded as i64
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn at(y: i32, m: u32, d: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, 10, 30, 0).unwrap()
    }

    #[test]
    fn months_are_calendar_months_clamped() {
        assert_eq!(period_end(at(2026, 1, 31)), at(2026, 2, 28));
        assert_eq!(period_end(at(2028, 1, 31)), at(2028, 2, 29));
        assert_eq!(period_end(at(2026, 3, 31)), at(2026, 4, 30));
        assert_eq!(period_end(at(2026, 12, 15)), at(2027, 1, 15));
    }

    #[test]
    fn proration_rounds_and_clamps() {
        let (s, e) = (at(2026, 4, 1), at(2026, 5, 1)); // 30 days
        assert_eq!(prorate(100_000, s, e, s), 100_000);
        assert_eq!(prorate(100_000, s, e, at(2026, 4, 16)), 50_000);
        assert_eq!(prorate(100_000, s, e, e), 0);
        assert_eq!(prorate(100_000, s, e, at(2026, 6, 1)), 0, "after the end");
        assert_eq!(prorate(100_000, s, e, at(2026, 3, 1)), 100_000, "before the start");
        // 1/3 of the period: 33,333.33 → 33,333; 2/3: 66,666.67 → 66,667.
        assert_eq!(prorate(100_000, s, e, at(2026, 4, 21)), 33_333);
        assert_eq!(prorate(100_000, s, e, at(2026, 4, 11)), 66_667);
    }
}
