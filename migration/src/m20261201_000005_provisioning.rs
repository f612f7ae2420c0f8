//! Provisioning: how a catalog service runs (data path, protocol, health path) and what the
//! instance lifecycle needs (a version for optimistic concurrency, the owner's wish to keep it
//! stopped, the TCP endpoint, when provisioning started). SQLite alters one column at a time.
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Services {
    Table,
    DataPath,
    Protocol,
    HealthPath,
}

#[derive(DeriveIden)]
enum ServiceInstances {
    Table,
    Version,
    OwnerStopped,
    Endpoint,
    ProvisionStartedAt,
    StatusChangedAt,
}

async fn add(manager: &SchemaManager<'_>, table: impl IntoIden, col: &mut ColumnDef) -> Result<(), DbErr> {
    manager.alter_table(Table::alter().table(table).add_column(&mut *col).to_owned()).await
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        add(manager, Services::Table, &mut string_len_null(Services::DataPath, 255)).await?;
        add(manager, Services::Table, string_len(Services::Protocol, 10).default("HTTP")).await?;
        add(manager, Services::Table, &mut string_len_null(Services::HealthPath, 255)).await?;
        add(manager, ServiceInstances::Table, integer(ServiceInstances::Version).default(0)).await?;
        add(manager, ServiceInstances::Table, boolean(ServiceInstances::OwnerStopped).default(false)).await?;
        add(manager, ServiceInstances::Table, &mut string_len_null(ServiceInstances::Endpoint, 300)).await?;
        add(manager, ServiceInstances::Table, &mut timestamp_with_time_zone_null(ServiceInstances::ProvisionStartedAt))
            .await?;
        add(manager, ServiceInstances::Table, &mut timestamp_with_time_zone_null(ServiceInstances::StatusChangedAt))
            .await?;
        // The reconciler and the admin list select by status.
        manager
            .create_index(
                Index::create()
                    .name("idx_service_instances_status")
                    .table(ServiceInstances::Table)
                    .col(Alias::new("status"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(Index::drop().name("idx_service_instances_status").table(ServiceInstances::Table).to_owned())
            .await?;
        for col in [
            ServiceInstances::StatusChangedAt,
            ServiceInstances::ProvisionStartedAt,
            ServiceInstances::Endpoint,
            ServiceInstances::OwnerStopped,
            ServiceInstances::Version,
        ] {
            manager.alter_table(Table::alter().table(ServiceInstances::Table).drop_column(col).to_owned()).await?;
        }
        for col in [Services::HealthPath, Services::Protocol, Services::DataPath] {
            manager.alter_table(Table::alter().table(Services::Table).drop_column(col).to_owned()).await?;
        }
        Ok(())
    }
}
