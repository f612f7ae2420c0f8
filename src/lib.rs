//! MinisPod Gateway: one GraphQL API for the MinisPod app platform.
pub mod app;
pub mod auth;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod db;
pub mod error;
pub mod graphql;
pub mod pagination;
pub mod seed;
pub mod settings;
pub mod state;
pub mod users;
