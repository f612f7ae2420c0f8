//! Admin reports computed from the ledger and the catalog (aggregates run in SQL).
pub mod analytics;
pub mod billing_status;
pub mod counts;
pub mod graphql;
pub mod growth;
mod hourly;
pub mod period;
pub mod rates;
pub mod revenue;
pub mod service;
pub mod spenders;
mod sql;
