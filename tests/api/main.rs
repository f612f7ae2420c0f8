//! Integration tests: the real gateway over HTTP and WebSocket, one fresh database per test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../support/mod.rs"]
mod support;

mod auth;
mod billing_jobs;
mod catalog;
mod cluster;
mod foundation;
mod helpers;
mod provisioning;
mod subscriptions;
mod topups;
mod users;
mod wallet;
mod wallet_updates;
