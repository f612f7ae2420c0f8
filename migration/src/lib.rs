//! Database migrations for MinisPod Gateway. Each domain adds its own file; the gateway runs
//! them at start-up, and `cargo run -p migration -- up|down|status|fresh` runs them by hand.
pub use sea_orm_migration::MigrationStatus;
pub use sea_orm_migration::prelude::*;

mod m20261124_000001_users;
mod m20261124_000002_catalog;
mod m20261124_000003_wallet;
mod m20261124_000004_subscriptions;
mod m20261201_000005_idempotency_fingerprint;
mod m20261201_000005_provisioning;
mod m20261202_000006_notifications;
mod m20261202_000007_analytics_indexes;
mod m20261202_000008_admin_users;
mod m20261202_000009_refunds;
mod m20261202_000010_ledger_hourly;
mod m20261202_000011_coupons;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261124_000001_users::Migration),
            Box::new(m20261124_000002_catalog::Migration),
            Box::new(m20261124_000003_wallet::Migration),
            Box::new(m20261124_000004_subscriptions::Migration),
            Box::new(m20261201_000005_idempotency_fingerprint::Migration),
            Box::new(m20261201_000005_provisioning::Migration),
            Box::new(m20261202_000006_notifications::Migration),
            Box::new(m20261202_000007_analytics_indexes::Migration),
            Box::new(m20261202_000008_admin_users::Migration),
            Box::new(m20261202_000009_refunds::Migration),
            Box::new(m20261202_000010_ledger_hourly::Migration),
            Box::new(m20261202_000011_coupons::Migration),
        ]
    }
}
