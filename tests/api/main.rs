//! Integration tests: the real gateway over HTTP and WebSocket, one fresh database per test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../support/mod.rs"]
mod support;

mod admin_users;
mod analytics;
mod auth;
mod billing_jobs;
mod catalog;
mod catalog_cache;
mod clients;
mod cluster;
mod coupons;
mod deploy;
mod document_limits;
mod examples;
mod foundation;
mod graphiql;
mod helpers;
mod image;
mod input;
mod instance_live;
mod notification_email;
mod notifications;
mod observability;
mod production;
mod provisioning;
mod startup;
mod subscriptions;
mod support_ops;
mod topup_amounts;
mod topups;
mod transport;
mod users;
mod wallet;
mod wallet_updates;
mod ws_limits;
