//! Catalog tables. Relations are resolved through dataloaders, not SeaORM joins.
pub mod category {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "service_categories")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub name: String,
        pub slug: String,
        pub description: Option<String>,
        pub sort_order: i32,
        pub created_at: DateTimeUtc,
        pub updated_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod service {
    use sea_orm::entity::prelude::*;

    use crate::catalog::ServiceProtocol;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "services")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub category_id: i64,
        pub name: String,
        pub slug: String,
        pub description: Option<String>,
        pub long_description: Option<String>,
        pub icon: Option<String>,
        pub version: String,
        pub docker_image: String,
        pub default_port: i32,
        pub env_template: Option<Json>,
        /// JSON array of lower-case tags.
        pub tags: Json,
        pub documentation: Option<String>,
        pub is_active: bool,
        pub is_public: bool,
        pub is_featured: bool,
        pub sort_order: i32,
        pub created_at: DateTimeUtc,
        pub updated_at: DateTimeUtc,
        /// Where the app keeps its data; the plan's volume is mounted here.
        pub data_path: Option<String>,
        pub protocol: ServiceProtocol,
        /// HTTP readiness/liveness path; without it the probes are TCP.
        pub health_path: Option<String>,
    }

    impl Model {
        pub fn tags(&self) -> Vec<String> {
            super::string_list(&self.tags)
        }
        pub fn is_visible(&self) -> bool {
            self.is_active && self.is_public
        }
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod plan {
    use sea_orm::entity::prelude::*;

    use crate::catalog::PlanType;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "service_plans")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub service_id: i64,
        pub name: String,
        pub plan_type: PlanType,
        pub description: Option<String>,
        pub monthly_price: i64,
        pub cpu_milli: i32,
        pub memory_mb: i32,
        pub storage_gb: i32,
        pub bandwidth_gb: i32,
        pub total_quota: i32,
        pub used_quota: i32,
        /// JSON array of feature strings.
        pub features: Json,
        pub max_instances_per_user: i32,
        pub is_active: bool,
        pub is_popular: bool,
        pub sort_order: i32,
        pub created_at: DateTimeUtc,
        pub updated_at: DateTimeUtc,
    }

    impl Model {
        pub fn features(&self) -> Vec<String> {
            super::string_list(&self.features)
        }
        pub fn available_quota(&self) -> i32 {
            crate::catalog::splice::PlanQuota::of(self).available()
        }
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

fn string_list(v: &serde_json::Value) -> Vec<String> {
    v.as_array().map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect()).unwrap_or_default()
}
