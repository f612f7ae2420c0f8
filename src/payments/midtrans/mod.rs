//! Midtrans Snap + Core API: HTTP client, notification signature, status mapping, webhook.
pub mod client;
pub mod signature;
pub mod status;
pub mod webhook;

pub use client::MidtransClient;
