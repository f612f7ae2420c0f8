//! Coupons: credit codes, checkout discounts, a free first month, and the welcome bonus.
//! Every use goes through `service::claim`, which takes one use from the coupon's counter and
//! one from the user's counter with conditional updates in the caller's transaction, so the
//! limits hold under any concurrency; the redemption row and its ledger entry commit with them.
pub mod admin;
pub mod admin_graphql;
pub mod entity;
pub mod graphql;
pub mod service;
pub mod welcome;

use chrono::{DateTime, Utc};
use sea_orm::{DeriveActiveEnum, EnumIter, sea_query::StringLen};

use crate::error::{AppError, AppResult};

#[derive(
    Copy, Clone, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, async_graphql::Enum, serde::Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(30))")]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CouponType {
    /// Credit to the wallet, redeemed with `redeemCoupon`.
    #[sea_orm(string_value = "CREDIT_TOPUP")]
    CreditTopup,
    /// Less to pay for the first period at checkout (fixed amount or percentage).
    #[sea_orm(string_value = "SUBSCRIPTION_DISCOUNT")]
    SubscriptionDiscount,
    /// The first period of a subscription to the coupon's service is free.
    #[sea_orm(string_value = "FREE_SERVICE")]
    FreeService,
    /// Credit given on registration (and redeemable like CREDIT_TOPUP).
    #[sea_orm(string_value = "WELCOME_BONUS")]
    WelcomeBonus,
}

impl CouponType {
    /// Credit coupons go to the wallet; the others apply at checkout.
    pub fn gives_credit(self) -> bool {
        matches!(self, Self::CreditTopup | Self::WelcomeBonus)
    }
}

#[derive(
    Copy, Clone, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, async_graphql::Enum, serde::Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(20))")]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DiscountType {
    #[sea_orm(string_value = "FIXED_AMOUNT")]
    FixedAmount,
    #[sea_orm(string_value = "PERCENTAGE")]
    Percentage,
}

/// How a coupon reads now. Only DISABLED is stored (`enabled = false`); EXPIRED and USED_UP
/// follow from the clock and the counter, so they can never be stale.
#[derive(Copy, Clone, Debug, PartialEq, Eq, async_graphql::Enum)]
pub enum CouponStatus {
    Active,
    /// Valid from a future date.
    Scheduled,
    Expired,
    UsedUp,
    Disabled,
}

/// Why a coupon cannot be used, in the order the checks run: the first that fails is given.
#[derive(Copy, Clone, Debug, PartialEq, Eq, async_graphql::Enum)]
pub enum CouponRejection {
    /// No coupon has this code (or the text cannot be a code).
    UnknownCode,
    Disabled,
    /// Past `validUntil`.
    Expired,
    /// Before `validFrom`.
    NotYetValid,
    /// Every use (`maxUses`) is taken.
    UsedUp,
    /// This user has used it `maxUsesPerUser` times.
    PerUserLimitReached,
    /// Only for subscriptions to another service.
    WrongService,
    /// Only for plans of another type.
    WrongPlanType,
    /// A checkout coupon (discount or free month): give it to `subscribe`, not `redeemCoupon`.
    CheckoutOnly,
    /// A credit coupon: redeem it with `redeemCoupon`, it does not apply at checkout.
    NotForCheckout,
}

impl CouponRejection {
    pub fn message(self) -> &'static str {
        match self {
            Self::UnknownCode => "invalid coupon code",
            Self::Disabled => "this coupon is not active",
            Self::Expired => "this coupon has expired",
            Self::NotYetValid => "this coupon is not valid yet",
            Self::UsedUp => "this coupon has been used up",
            Self::PerUserLimitReached => "you have already used this coupon as often as allowed",
            Self::WrongService => "this coupon is not valid for this service",
            Self::WrongPlanType => "this coupon is not valid for this plan",
            Self::CheckoutOnly => "this coupon applies at checkout: give it when subscribing",
            Self::NotForCheckout => "this coupon gives credit: redeem it in the wallet instead",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::UnknownCode => "UNKNOWN_CODE",
            Self::Disabled => "DISABLED",
            Self::Expired => "EXPIRED",
            Self::NotYetValid => "NOT_YET_VALID",
            Self::UsedUp => "USED_UP",
            Self::PerUserLimitReached => "PER_USER_LIMIT_REACHED",
            Self::WrongService => "WRONG_SERVICE",
            Self::WrongPlanType => "WRONG_PLAN_TYPE",
            Self::CheckoutOnly => "CHECKOUT_ONLY",
            Self::NotForCheckout => "NOT_FOR_CHECKOUT",
        }
    }

    /// The refusal of a mutation that was given this coupon in `field`.
    pub fn into_error(self, field: &'static str) -> AppError {
        AppError::Rejected { field, reason: self.as_str(), message: self.message().to_string() }
    }
}

/// Where a redemption happened.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, async_graphql::Enum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(20))")]
pub enum RedemptionContext {
    /// `redeemCoupon`: credit to the wallet.
    #[sea_orm(string_value = "WALLET")]
    Wallet,
    /// `subscribe` with a coupon code: a discount or a free first period.
    #[sea_orm(string_value = "CHECKOUT")]
    Checkout,
    /// Given automatically on registration.
    #[sea_orm(string_value = "WELCOME_BONUS")]
    WelcomeBonus,
}

/// A coupon code: trimmed, upper-case, 3–50 of `A-Z 0-9 _ -`. Codes are case-insensitive
/// because they are stored and looked up in this form only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Code(String);

impl Code {
    pub fn parse(raw: &str) -> Option<Self> {
        let code = raw.trim().to_ascii_uppercase();
        let ok = (3..=50).contains(&code.len())
            && code.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        ok.then_some(Self(code))
    }

    /// For an administrator's input: BAD_USER_INPUT naming `field` when malformed.
    pub fn parse_input(raw: &str, field: &'static str) -> AppResult<Self> {
        Self::parse(raw).ok_or_else(|| {
            AppError::bad_input(field, "code must be 3-50 characters of A-Z, 0-9, '_' and '-' (any case)")
        })
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What a checkout coupon takes off `price` (whole IDR, never more than the price).
pub fn discount(
    kind: CouponType,
    discount_type: Option<DiscountType>,
    amount: Option<i64>,
    percent: Option<i32>,
    price: i64,
) -> i64 {
    let price = price.max(0);
    let off = match (kind, discount_type) {
        (CouponType::FreeService, _) => price,
        (CouponType::SubscriptionDiscount, Some(DiscountType::FixedAmount)) => amount.unwrap_or(0),
        // Rounded down: the customer never pays a fraction more than the percentage says.
        (CouponType::SubscriptionDiscount, Some(DiscountType::Percentage)) => {
            (i128::from(price) * i128::from(percent.unwrap_or(0).clamp(0, 100)) / 100) as i64
        }
        _ => 0,
    };
    off.clamp(0, price)
}

/// The status a coupon reads as at `now`; disabled first, then the calendar, then the counter.
pub fn status_at(c: &entity::coupon::Model, now: DateTime<Utc>) -> CouponStatus {
    if !c.enabled {
        CouponStatus::Disabled
    } else if c.valid_until.is_some_and(|u| u <= now) {
        CouponStatus::Expired
    } else if c.valid_from > now {
        CouponStatus::Scheduled
    } else if c.used_count >= c.max_uses {
        CouponStatus::UsedUp
    } else {
        CouponStatus::Active
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_normalised_and_checked() {
        assert_eq!(Code::parse("  welcome-2025 ").unwrap().as_str(), "WELCOME-2025");
        assert_eq!(Code::parse("save_20").unwrap().as_str(), "SAVE_20");
        assert!(Code::parse("ab").is_none(), "too short");
        assert!(Code::parse(&"A".repeat(51)).is_none(), "too long");
        assert!(Code::parse(&"A".repeat(50)).is_some());
        assert!(Code::parse("SAVE 20").is_none(), "no spaces inside");
        assert!(Code::parse("SÄVE20").is_none(), "ASCII only");
        assert!(Code::parse("SAVE%").is_none());
    }

    #[test]
    fn discounts_never_exceed_the_price() {
        use CouponType::*;
        use DiscountType::*;
        assert_eq!(discount(SubscriptionDiscount, Some(FixedAmount), Some(30_000), None, 90_000), 30_000);
        assert_eq!(discount(SubscriptionDiscount, Some(FixedAmount), Some(30_000), None, 20_000), 20_000);
        assert_eq!(discount(SubscriptionDiscount, Some(Percentage), None, Some(20), 90_000), 18_000);
        // 33% of 99,999 = 32,999.67 → 32,999 (rounded down).
        assert_eq!(discount(SubscriptionDiscount, Some(Percentage), None, Some(33), 99_999), 32_999);
        assert_eq!(discount(SubscriptionDiscount, Some(Percentage), None, Some(100), 90_000), 90_000);
        assert_eq!(discount(FreeService, None, None, None, 150_000), 150_000);
        assert_eq!(discount(CreditTopup, None, Some(50_000), None, 90_000), 0, "credit is not a discount");
        assert_eq!(discount(SubscriptionDiscount, Some(Percentage), None, Some(50), 0), 0, "free plan");
    }
}
