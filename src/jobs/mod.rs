//! Background jobs. Each runs on every replica; each is idempotent, so no leader is needed.
pub mod billing;
pub mod graphql;
pub mod payments;
