use serde_json::{Value, json};

use crate::support::{TestApp, error_code};

const CATALOG: &str = "{ categories { slug services { slug startingPrice isFeatured category { slug } plans { name planType monthlyPrice totalQuota usedQuota availableQuota isAvailable features service { slug } } } } }";

async fn seeded() -> TestApp {
    let app = TestApp::spawn().await;
    minispod_gateway::seed::seed_catalog(&app.state).await.unwrap();
    app
}

fn find<'a>(list: &'a Value, key: &str, value: &str) -> &'a Value {
    list.as_array().unwrap().iter().find(|v| v[key] == value).unwrap_or_else(|| panic!("{value} in {list}"))
}

async fn gql_admin(app: &TestApp, q: &str, vars: Value) -> Value {
    let admin = app.login_admin().await;
    app.gql(Some(&admin.token), q, vars).await
}

#[tokio::test]
async fn nested_catalog_in_one_query() {
    let app = seeded().await;
    let v = app.gql_ok(None, CATALOG, json!({})).await;
    let cats = &v["categories"];
    assert_eq!(
        cats.as_array().unwrap().iter().map(|c| c["slug"].as_str().unwrap()).collect::<Vec<_>>(),
        ["development-tools", "cms", "databases"]
    );
    let n8n = find(&find(cats, "slug", "development-tools")["services"], "slug", "n8n-automation");
    assert_eq!(n8n["startingPrice"], 0);
    assert_eq!(n8n["category"]["slug"], "development-tools");
    let prices: Vec<i64> =
        n8n["plans"].as_array().unwrap().iter().map(|p| p["monthlyPrice"].as_i64().unwrap()).collect();
    assert_eq!(prices, [0, 50_000, 150_000], "cheapest first");
    let basic = find(&n8n["plans"], "planType", "BASIC");
    assert_eq!(basic["availableQuota"], 50);
    assert_eq!(basic["isAvailable"], true);
    assert_eq!(basic["service"]["slug"], "n8n-automation");
    let pg = find(&find(cats, "slug", "databases")["services"], "slug", "postgresql");
    assert_eq!(pg["startingPrice"], 25_000);

    // Seven plans priced 0 to 150,000 across three services.
    let all: Vec<i64> = cats
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["services"].as_array().unwrap().iter())
        .flat_map(|s| s["plans"].as_array().unwrap().iter().map(|p| p["monthlyPrice"].as_i64().unwrap()))
        .collect();
    assert_eq!(all.len(), 7);
    assert_eq!((all.iter().min(), all.iter().max()), (Some(&0), Some(&150_000)));
}

#[tokio::test]
async fn seeding_is_idempotent() {
    let app = seeded().await;
    let before = app.gql_ok(None, CATALOG, json!({})).await;
    minispod_gateway::seed::seed_catalog(&app.state).await.unwrap();
    assert_eq!(before, app.gql_ok(None, CATALOG, json!({})).await);
}

const SERVICES: &str = "query($f: ServiceFilter, $first: Int, $after: String) { services(filter: $f, first: $first, after: $after) { totalCount pageInfo { hasNextPage endCursor } edges { cursor node { slug } } } }";

fn slugs(v: &Value) -> Vec<String> {
    v["services"]["edges"].as_array().unwrap().iter().map(|e| e["node"]["slug"].as_str().unwrap().to_string()).collect()
}

#[tokio::test]
async fn services_filter_search_and_paginate() {
    let app = seeded().await;
    let all = app.gql_ok(None, SERVICES, json!({})).await;
    assert_eq!(slugs(&all), ["n8n-automation", "ghost-blog", "postgresql"], "featured first, then sortOrder");
    for (filter, expected) in [
        (json!({ "search": "WORKFLOW" }), vec!["n8n-automation"]),
        (json!({ "search": "publishing" }), vec!["ghost-blog"]),
        (json!({ "search": "sql" }), vec!["postgresql"]),
        (json!({ "categorySlug": "cms" }), vec!["ghost-blog"]),
        (json!({ "categorySlug": "no-such-category" }), vec![]),
        (json!({ "featured": false }), vec!["postgresql"]),
        (json!({ "tag": "Database" }), vec!["postgresql"]),
        (json!({ "tag": "data" }), vec![]),
    ] {
        let v = app.gql_ok(None, SERVICES, json!({ "f": filter })).await;
        assert_eq!(slugs(&v), expected, "{filter}");
    }
    let p1 = app.gql_ok(None, SERVICES, json!({ "first": 2 })).await;
    assert_eq!(slugs(&p1), ["n8n-automation", "ghost-blog"]);
    assert_eq!(p1["services"]["totalCount"], 3);
    assert_eq!(p1["services"]["pageInfo"]["hasNextPage"], true);
    let p2 = app.gql_ok(None, SERVICES, json!({ "first": 2, "after": p1["services"]["pageInfo"]["endCursor"] })).await;
    assert_eq!(slugs(&p2), ["postgresql"]);
    assert_eq!(p2["services"]["pageInfo"]["hasNextPage"], false);

    for (vars, field) in [
        (json!({ "first": 0 }), "first"),
        (json!({ "first": 101 }), "first"),
        (json!({ "after": "%%%" }), "after"),
        (json!({ "f": { "tag": "bad tag" } }), "tag"),
        (json!({ "f": { "categorySlug": "Bad Slug" } }), "categorySlug"),
        (json!({ "f": { "search": "x".repeat(101) } }), "search"),
    ] {
        let v = app.gql(None, SERVICES, vars.clone()).await;
        assert_eq!(error_code(&v), "BAD_USER_INPUT", "{vars}");
        assert_eq!(v["errors"][0]["extensions"]["field"], field, "{vars}");
    }
}

#[tokio::test]
async fn unknown_slugs_and_ids_are_null() {
    let app = seeded().await;
    let v = app
        .gql_ok(None, r#"{ service(slug: "nope") { id } category(slug: "nope") { id } plan(id: "999999") { id } p2: plan(id: "abc") { id } }"#, json!({}))
        .await;
    assert_eq!(v, json!({ "service": null, "category": null, "plan": null, "p2": null }));
}

#[tokio::test]
async fn admin_only_fields_are_forbidden_to_others() {
    let app = seeded().await;
    let user = app.register("Budi").await;
    for field in ["dockerImage", "defaultPort", "envTemplate", "isActive", "isPublic"] {
        let q = format!(r#"{{ service(slug: "ghost-blog") {{ name {field} }} }}"#);
        assert_eq!(error_code(&app.gql(None, &q, json!({})).await), "UNAUTHENTICATED", "{field}");
        assert_eq!(error_code(&app.gql(Some(&user.token), &q, json!({})).await), "FORBIDDEN", "{field}");
    }
    let v = gql_admin(
        &app,
        r#"{ service(slug: "ghost-blog") { dockerImage defaultPort envTemplate isActive isPublic } }"#,
        json!({}),
    )
    .await;
    assert_eq!(v["data"]["service"]["dockerImage"], "ghost:5-alpine");
    assert_eq!(v["data"]["service"]["defaultPort"], 2368);
    assert_eq!(
        error_code(&app.gql(Some(&user.token), SERVICES, json!({ "f": { "includeHidden": true } })).await),
        "FORBIDDEN"
    );
}

const CREATE_CATEGORY: &str = "mutation($i: CreateCategoryInput!) { createCategory(input: $i) { id slug } }";
const CREATE_SERVICE: &str = "mutation($i: CreateServiceInput!) { createService(input: $i) { id slug tags } }";
const CREATE_PLAN: &str =
    "mutation($s: ID!, $i: CreatePlanInput!) { createPlan(serviceId: $s, input: $i) { id planType availableQuota } }";
const UPDATE_SERVICE: &str = "mutation($id: ID!, $i: UpdateServiceInput!) { updateService(id: $id, input: $i) { id } }";
const UPDATE_PLAN: &str =
    "mutation($id: ID!, $i: UpdatePlanInput!) { updatePlan(id: $id, input: $i) { id monthlyPrice totalQuota } }";

fn service_input(category_id: &str, slug: &str) -> Value {
    json!({ "categoryId": category_id, "name": "Redis", "slug": slug, "version": "7", "dockerImage": "redis:7-alpine", "defaultPort": 6379, "tags": ["Cache", "kv"] })
}

fn plan_input(plan_type: &str) -> Value {
    json!({ "name": "Small", "planType": plan_type, "monthlyPrice": 30000, "cpuMilli": 250, "memoryMb": 256, "storageGb": 1, "totalQuota": 3 })
}

#[tokio::test]
async fn admin_manages_the_catalog_with_validation_and_conflicts() {
    let app = TestApp::spawn().await;
    let admin = app.login_admin().await;
    let t = Some(admin.token.as_str());
    let cat = app.gql_ok(t, CREATE_CATEGORY, json!({ "i": { "name": "Caches", "slug": "caches" } })).await;
    let cat_id = cat["createCategory"]["id"].as_str().unwrap().to_string();
    let dup = app.gql(t, CREATE_CATEGORY, json!({ "i": { "name": "Caches 2", "slug": "caches" } })).await;
    assert_eq!(error_code(&dup), "CONFLICT");

    let svc = app.gql_ok(t, CREATE_SERVICE, json!({ "i": service_input(&cat_id, "redis") })).await;
    assert_eq!(svc["createService"]["tags"], json!(["cache", "kv"]));
    let svc_id = svc["createService"]["id"].as_str().unwrap().to_string();
    assert_eq!(
        error_code(&app.gql(t, CREATE_SERVICE, json!({ "i": service_input(&cat_id, "redis") })).await),
        "CONFLICT"
    );

    // Every rule names its field.
    let bad_services = [
        ("slug", json!("Bad Slug")),
        ("dockerImage", json!("Not An Image!")),
        ("defaultPort", json!(0)),
        ("defaultPort", json!(65_536)),
        ("categoryId", json!("999999")),
        ("envTemplate", json!({ "1X": "y" })),
    ];
    for (field, value) in bad_services {
        let mut input = service_input(&cat_id, "redis-2");
        input[field] = value;
        let v = app.gql(t, CREATE_SERVICE, json!({ "i": input })).await;
        assert_eq!(error_code(&v), "BAD_USER_INPUT", "{field}: {v}");
        assert_eq!(v["errors"][0]["extensions"]["field"], field, "{field}: {v}");
    }

    let plan = app.gql_ok(t, CREATE_PLAN, json!({ "s": svc_id, "i": plan_input("BASIC") })).await;
    let plan_id = plan["createPlan"]["id"].as_str().unwrap().to_string();
    assert_eq!(plan["createPlan"]["availableQuota"], 3);
    let dup = app.gql(t, CREATE_PLAN, json!({ "s": svc_id, "i": plan_input("BASIC") })).await;
    assert_eq!(error_code(&dup), "CONFLICT", "one plan per planType per service");

    let bad_plans = [
        ("monthlyPrice", json!(-1)),
        ("monthlyPrice", json!(100_000_001)),
        ("cpuMilli", json!(99)),
        ("cpuMilli", json!(16_001)),
        ("memoryMb", json!(127)),
        ("memoryMb", json!(32_769)),
        ("storageGb", json!(1_001)),
        ("totalQuota", json!(-1)),
    ];
    for (field, value) in bad_plans {
        let mut input = plan_input("PRO");
        input[field] = value;
        let v = app.gql(t, CREATE_PLAN, json!({ "s": svc_id, "i": input })).await;
        assert_eq!(error_code(&v), "BAD_USER_INPUT", "{field}: {v}");
        assert_eq!(v["errors"][0]["extensions"]["field"], field, "{field}: {v}");
    }

    // totalQuota may not drop below the slots in use.
    use sea_orm::{ConnectionTrait, Statement};
    app.state
        .db
        .conn
        .execute_raw(Statement::from_string(
            app.state.db.backend(),
            format!("UPDATE service_plans SET used_quota = 2 WHERE id = {plan_id}"),
        ))
        .await
        .unwrap();
    let v = app.gql(t, UPDATE_PLAN, json!({ "id": plan_id, "i": { "totalQuota": 1 } })).await;
    assert_eq!(v["errors"][0]["extensions"]["field"], "totalQuota");
    let v = app.gql_ok(t, UPDATE_PLAN, json!({ "id": plan_id, "i": { "totalQuota": 2, "monthlyPrice": 35000 } })).await;
    assert_eq!(v["updatePlan"], json!({ "id": plan_id, "monthlyPrice": 35000, "totalQuota": 2 }));

    // An admin change shows on the very next public request.
    let q = r#"{ service(slug: "redis") { plans { monthlyPrice isAvailable } } }"#;
    let v = app.gql_ok(None, q, json!({})).await;
    assert_eq!(v["service"]["plans"], json!([{ "monthlyPrice": 35000, "isAvailable": false }]));
    app.gql_ok(t, UPDATE_SERVICE, json!({ "id": svc_id, "i": { "isPublic": false } })).await;
    assert!(app.gql_ok(None, q, json!({})).await["service"].is_null(), "hidden from the public");
    assert!(!app.gql_ok(t, q, json!({})).await["service"].is_null(), "admins still see it");
    let hidden = app.gql_ok(t, SERVICES, json!({ "f": { "includeHidden": true } })).await;
    assert_eq!(slugs(&hidden), ["redis"]);
    assert_eq!(slugs(&app.gql_ok(None, SERVICES, json!({})).await), Vec::<String>::new());

    // A category with services cannot go; the service (and its plans) can.
    let v = app.gql(t, "mutation($id: ID!) { deleteCategory(id: $id) }", json!({ "id": cat_id })).await;
    assert_eq!(error_code(&v), "CONFLICT");
    app.gql_ok(t, "mutation($id: ID!) { deleteService(id: $id) }", json!({ "id": svc_id })).await;
    app.gql_ok(t, "mutation($id: ID!) { deleteCategory(id: $id) }", json!({ "id": cat_id })).await;
    let v = app.gql(t, "mutation($id: ID!) { deletePlan(id: $id) }", json!({ "id": plan_id })).await;
    assert_eq!(error_code(&v), "NOT_FOUND");
}

#[tokio::test]
async fn catalog_mutations_are_admin_only() {
    let app = seeded().await;
    let user = app.register("Budi").await;
    let v = app.gql(Some(&user.token), CREATE_CATEGORY, json!({ "i": { "name": "X", "slug": "xx" } })).await;
    assert_eq!(error_code(&v), "FORBIDDEN");
    let v = app.gql(None, "mutation { deleteService(id: \"1\") }", json!({})).await;
    assert_eq!(error_code(&v), "UNAUTHENTICATED");
}

/// Builds `services` services with five plans each under one category, through the service layer.
async fn generate_catalog(app: &TestApp, services: usize) {
    use async_graphql::ID;
    use minispod_gateway::catalog::{
        PlanType,
        input::{CreateCategoryInput, CreatePlanInput, CreateServiceInput},
        service as catalog,
    };
    let cat = catalog::create_category(
        &app.state,
        CreateCategoryInput { name: "Generated".into(), slug: "generated".into(), description: None, sort_order: 0 },
    )
    .await
    .unwrap();
    for i in 0..services {
        let s = catalog::create_service(
            &app.state,
            CreateServiceInput {
                category_id: ID(cat.id.to_string()),
                name: format!("Service {i}"),
                slug: format!("svc-{i}"),
                description: Some("generated".into()),
                long_description: None,
                icon: None,
                version: "1".into(),
                docker_image: "nginx:1".into(),
                default_port: 80,
                env_template: None,
                tags: vec!["gen".into()],
                documentation: None,
                is_active: true,
                is_public: true,
                is_featured: i % 7 == 0,
                sort_order: 0,
                data_path: None,
                protocol: minispod_gateway::catalog::ServiceProtocol::Http,
                health_path: None,
            },
        )
        .await
        .unwrap();
        for (k, pt) in [PlanType::Free, PlanType::Basic, PlanType::Pro, PlanType::Premium, PlanType::Enterprise]
            .into_iter()
            .enumerate()
        {
            catalog::create_plan(
                &app.state,
                s.id,
                CreatePlanInput {
                    name: format!("{pt:?}"),
                    plan_type: pt,
                    description: None,
                    monthly_price: 10_000 * k as i64,
                    cpu_milli: 250,
                    memory_mb: 256,
                    storage_gb: 1,
                    bandwidth_gb: 10,
                    total_quota: 10,
                    features: vec!["f".into()],
                    max_instances_per_user: 1,
                    is_active: true,
                    is_popular: false,
                    sort_order: 0,
                },
            )
            .await
            .unwrap();
        }
    }
}

async fn statements_for_catalog_query(services: usize) -> (u64, usize) {
    let app = TestApp::spawn().await;
    generate_catalog(&app, services).await;
    // Warm up once (connection set-up statements are not the query's).
    app.gql_ok(None, CATALOG, json!({})).await;
    // The same query again is answered from the catalog cache, without SQL.
    let before = app.state.db.statement_count();
    let cached = app.gql_ok(None, CATALOG, json!({})).await;
    assert_eq!(app.state.db.statement_count(), before, "served from the cache");
    // After a catalog change the query runs again: count its statements.
    app.state.catalog_changed().await;
    let before = app.state.db.statement_count();
    let v = app.gql_ok(None, CATALOG, json!({})).await;
    let used = app.state.db.statement_count() - before;
    assert_eq!(v, cached);
    let plans =
        v["categories"][0]["services"].as_array().unwrap().iter().map(|s| s["plans"].as_array().unwrap().len()).sum();
    (used, plans)
}

#[tokio::test]
async fn nested_catalog_statement_count_does_not_grow_with_rows() {
    let (small, small_plans) = statements_for_catalog_query(3).await;
    let (large, large_plans) = statements_for_catalog_query(300).await;
    assert_eq!((small_plans, large_plans), (15, 1_500));
    assert_eq!(small, large, "statements for 3 services vs 300 services");
    // One statement per nesting level: categories, their services, the services' plans (the
    // `category` and `service` back-references come from the parent level for free); and one
    // read of every plan's quota, which the stored answer is filled from.
    assert_eq!(large, 4, "{large} statements");
}

/// Every plain field of the catalog types, as `Flat` writes them in place; the same selection
/// with a directive on each level takes async-graphql's resolvers. Both, and the cached answer
/// with its quota spliced in, must be the same.
#[tokio::test]
async fn fields_written_in_place_equal_their_resolvers_and_the_cached_answer() {
    let app = seeded().await;
    let user = app.register("Budi").await;
    // A full plan and a used one, so every quota field has something to show.
    let db = &app.state.db.conn;
    let plans = app.gql_ok(None, "{ categories { services { plans { id } } } }", json!({})).await;
    let ids: Vec<String> = plans["categories"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["services"].as_array().unwrap().iter())
        .flat_map(|s| s["plans"].as_array().unwrap().iter().map(|p| p["id"].as_str().unwrap().to_string()))
        .collect();
    for (id, used) in [(&ids[0], "total_quota"), (&ids[1], "1")] {
        let sql = format!("UPDATE service_plans SET used_quota = {used} WHERE id = {id}");
        sea_orm::ConnectionTrait::execute_unprepared(db, &sql).await.unwrap();
    }
    app.state.quota_changed().await;
    let fields = |t: &str| {
        format!(
            "categories {{ __typename{t} id name slug description sortOrder services {{ __typename{t} id name slug \
             description longDescription icon version tags documentation isFeatured protocol startingPrice \
             category {{ slug }} plans {{ __typename{t} id name planType description monthlyPrice cpuMilli memoryMb \
             storageGb bandwidthGb features maxInstancesPerUser totalQuota usedQuota availableQuota isAvailable \
             isPopular service {{ slug }} }} }} }}"
        )
    };
    let (plain, resolved) = (fields(""), fields(" @include(if: true)"));
    let signed_in = |q: &str| format!("{{ me {{ id }} {q} }}");
    let flat = app.gql_ok(Some(&user.token), &signed_in(&plain), json!({})).await;
    let slow = app.gql_ok(Some(&user.token), &signed_in(&resolved), json!({})).await;
    assert_eq!(flat, slow);
    let first = &flat["categories"][0]["services"][0]["plans"][0];
    assert_eq!((first["availableQuota"].as_i64(), first["isAvailable"].as_bool()), (Some(0), Some(false)), "{first}");
    assert_eq!(flat["categories"][0]["services"][0]["plans"][1]["usedQuota"], 1, "{flat}");
    // Anonymous: the cached answer (twice: filled, then hit) has the same fields and quota.
    let misses = app.state.catalog_cache.stats().misses;
    for _ in 0..2 {
        let cached = app.gql_ok(None, &format!("{{ {plain} }}"), json!({})).await;
        assert_eq!(cached["categories"], flat["categories"]);
    }
    assert_eq!(app.state.catalog_cache.stats().misses - misses, 1);
}

/// An anonymous catalog query with an admin-only field answers null and an error for it. Such
/// an answer is not stored, but it was rendered for the cache: its quota placeholders must be
/// filled in all the same, never sent.
#[tokio::test]
async fn a_catalog_answer_with_errors_carries_real_quota_not_placeholders() {
    let app = seeded().await;
    let q = "{ categories { services { plans { usedQuota availableQuota isAvailable isActive } } } }";
    for _ in 0..2 {
        let v = app.gql(None, q, json!({})).await;
        assert_eq!(error_code(&v), "UNAUTHENTICATED", "{v}");
        let plan = &v["data"]["categories"][0]["services"][0]["plans"][0];
        assert!(plan["usedQuota"].is_i64() && plan["availableQuota"].is_i64(), "{plan}");
        assert!(plan["isAvailable"].is_boolean() && plan["isActive"].is_null(), "{plan}");
        assert!(!v.to_string().contains("~q"), "{v}");
    }
    assert_eq!(app.state.catalog_cache.stats().entries, 0, "answers with errors are not stored");
}

mod needs_postgres {
    use super::*;

    #[tokio::test]
    #[ignore = "needs PostgreSQL (two replicas share one database); .ci/run runs it on PostgreSQL"]
    async fn a_change_on_one_replica_reaches_the_cache_of_another() {
        let a = seeded().await;
        assert!(a.db.is_postgres(), "a second replica needs PostgreSQL (TEST_DATABASE_URL)");
        let b = TestApp::spawn_on(a.db.clone(), |_| {}).await;
        let q = r#"{ service(slug: "ghost-blog") { plans { monthlyPrice } } }"#;
        let before = b.gql_ok(None, q, json!({})).await;
        assert_eq!(before["service"]["plans"][1]["monthlyPrice"], 75_000);
        let admin = a.login_admin().await;
        let plan_id = a.gql_ok(None, r#"{ service(slug: "ghost-blog") { plans { id } } }"#, json!({})).await["service"]
            ["plans"][1]["id"]
            .clone();
        a.gql_ok(Some(&admin.token), UPDATE_PLAN, json!({ "id": plan_id, "i": { "monthlyPrice": 80000 } })).await;
        crate::support::eventually("replica B serves the new price", || async {
            b.gql_ok(None, q, json!({})).await["service"]["plans"][1]["monthlyPrice"] == 80_000
        })
        .await;
    }

    #[tokio::test]
    #[ignore = "needs PostgreSQL (two replicas share one database); .ci/run runs it on PostgreSQL"]
    async fn a_quota_change_on_one_replica_reaches_the_cache_of_another() {
        let a = seeded().await;
        assert!(a.db.is_postgres(), "a second replica needs PostgreSQL (TEST_DATABASE_URL)");
        let b = TestApp::spawn_on(a.db.clone(), |_| {}).await;
        let q = r#"{ service(slug: "ghost-blog") { plans { id usedQuota } } }"#;
        let before = b.gql_ok(None, q, json!({})).await;
        let plan = &before["service"]["plans"][0];
        let sql =
            format!("UPDATE service_plans SET used_quota = used_quota + 1 WHERE id = {}", plan["id"].as_str().unwrap());
        sea_orm::ConnectionTrait::execute_unprepared(&a.state.db.conn, &sql).await.unwrap();
        let misses = b.state.catalog_cache.stats().misses;
        a.state.quota_changed().await;
        let want = plan["usedQuota"].as_i64().unwrap() + 1;
        crate::support::eventually("replica B serves the new quota", || async {
            b.gql_ok(None, q, json!({})).await["service"]["plans"][0]["usedQuota"] == want
        })
        .await;
        assert_eq!(b.state.catalog_cache.stats().misses, misses, "B kept its stored answer");
    }
}
