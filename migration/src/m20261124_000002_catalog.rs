//! The service catalog: categories → services → plans. Quota lives on the plan row and is only
//! changed by conditional updates; the CHECK constraints are the last line of defence.
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ServiceCategories {
    Table,
    Id,
    Name,
    Slug,
    Description,
    SortOrder,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Services {
    Table,
    Id,
    CategoryId,
    Name,
    Slug,
    Description,
    LongDescription,
    Icon,
    Version,
    DockerImage,
    DefaultPort,
    EnvTemplate,
    Tags,
    Documentation,
    IsActive,
    IsPublic,
    IsFeatured,
    SortOrder,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum ServicePlans {
    Table,
    Id,
    ServiceId,
    Name,
    PlanType,
    Description,
    MonthlyPrice,
    CpuMilli,
    MemoryMb,
    StorageGb,
    BandwidthGb,
    TotalQuota,
    UsedQuota,
    Features,
    MaxInstancesPerUser,
    IsActive,
    IsPopular,
    SortOrder,
    CreatedAt,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ServiceCategories::Table)
                    .if_not_exists()
                    .col(big_pk_auto(ServiceCategories::Id))
                    .col(string_len_uniq(ServiceCategories::Name, 100))
                    .col(string_len_uniq(ServiceCategories::Slug, 50))
                    .col(text_null(ServiceCategories::Description))
                    .col(integer(ServiceCategories::SortOrder).default(0))
                    .col(timestamp_with_time_zone(ServiceCategories::CreatedAt))
                    .col(timestamp_with_time_zone(ServiceCategories::UpdatedAt))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Services::Table)
                    .if_not_exists()
                    .col(big_pk_auto(Services::Id))
                    .col(big_integer(Services::CategoryId))
                    .col(string_len(Services::Name, 100))
                    .col(string_len_uniq(Services::Slug, 50))
                    .col(text_null(Services::Description))
                    .col(text_null(Services::LongDescription))
                    .col(string_len_null(Services::Icon, 500))
                    .col(string_len(Services::Version, 50))
                    .col(string_len(Services::DockerImage, 255))
                    .col(integer(Services::DefaultPort))
                    .col(json_binary_null(Services::EnvTemplate))
                    .col(json_binary(Services::Tags))
                    .col(text_null(Services::Documentation))
                    .col(boolean(Services::IsActive).default(true))
                    .col(boolean(Services::IsPublic).default(true))
                    .col(boolean(Services::IsFeatured).default(false))
                    .col(integer(Services::SortOrder).default(0))
                    .col(timestamp_with_time_zone(Services::CreatedAt))
                    .col(timestamp_with_time_zone(Services::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_services_category")
                            .from(Services::Table, Services::CategoryId)
                            .to(ServiceCategories::Table, ServiceCategories::Id)
                            .on_delete(ForeignKeyAction::Restrict),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_services_category")
                    .table(Services::Table)
                    .col(Services::CategoryId)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(ServicePlans::Table)
                    .if_not_exists()
                    .col(big_pk_auto(ServicePlans::Id))
                    .col(big_integer(ServicePlans::ServiceId))
                    .col(string_len(ServicePlans::Name, 100))
                    .col(string_len(ServicePlans::PlanType, 20))
                    .col(text_null(ServicePlans::Description))
                    .col(big_integer(ServicePlans::MonthlyPrice))
                    .col(integer(ServicePlans::CpuMilli))
                    .col(integer(ServicePlans::MemoryMb))
                    .col(integer(ServicePlans::StorageGb))
                    .col(integer(ServicePlans::BandwidthGb).default(0))
                    .col(integer(ServicePlans::TotalQuota))
                    .col(integer(ServicePlans::UsedQuota).default(0))
                    .col(json_binary(ServicePlans::Features))
                    .col(integer(ServicePlans::MaxInstancesPerUser).default(1))
                    .col(boolean(ServicePlans::IsActive).default(true))
                    .col(boolean(ServicePlans::IsPopular).default(false))
                    .col(integer(ServicePlans::SortOrder).default(0))
                    .col(timestamp_with_time_zone(ServicePlans::CreatedAt))
                    .col(timestamp_with_time_zone(ServicePlans::UpdatedAt))
                    .check(Expr::col(ServicePlans::UsedQuota).gte(0))
                    .check(Expr::col(ServicePlans::UsedQuota).lte(Expr::col(ServicePlans::TotalQuota)))
                    .check(Expr::col(ServicePlans::MonthlyPrice).gte(0))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_service_plans_service")
                            .from(ServicePlans::Table, ServicePlans::ServiceId)
                            .to(Services::Table, Services::Id)
                            .on_delete(ForeignKeyAction::Restrict),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("uq_service_plans_service_type")
                    .table(ServicePlans::Table)
                    .col(ServicePlans::ServiceId)
                    .col(ServicePlans::PlanType)
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(ServicePlans::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(Services::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(ServiceCategories::Table).to_owned()).await
    }
}
