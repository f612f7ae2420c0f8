//! Payments: Midtrans top-ups. The ledger side (crediting, reversing) goes through `billing`.
pub mod graphql;
pub mod midtrans;
pub mod topup;
