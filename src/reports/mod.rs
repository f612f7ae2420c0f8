//! Admin reports computed from the ledger and the catalog (aggregates run in SQL).
pub mod graphql;
pub mod service;
