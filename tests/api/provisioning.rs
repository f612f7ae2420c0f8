//! Provisioning (issue 10): catalog fields that say how a service runs, and the instance
//! lifecycle on the fake API server.
use sea_orm::{ConnectionTrait, Statement};
use serde_json::{Value, json};

use crate::support::{TestApp, error_code};

const SERVICE_RUN: &str =
    "query($s: String!) { service(slug: $s) { protocol dataPath healthPath defaultPort envTemplate } }";

async fn seeded() -> TestApp {
    let app = TestApp::spawn().await;
    minispod_gateway::seed::seed_catalog(&app.state).await.unwrap();
    app
}

async fn how_it_runs(app: &TestApp, token: &str, slug: &str) -> Value {
    app.gql_ok(Some(token), SERVICE_RUN, json!({ "s": slug })).await["service"].clone()
}

#[tokio::test]
async fn seeded_services_say_how_they_run() {
    let app = seeded().await;
    let admin = app.login_admin().await;
    let n8n = how_it_runs(&app, &admin.token, "n8n-automation").await;
    assert_eq!(
        (&n8n["protocol"], &n8n["dataPath"], &n8n["defaultPort"]),
        (&json!("HTTP"), &json!("/home/node/.n8n"), &json!(5678))
    );
    let ghost = how_it_runs(&app, &admin.token, "ghost-blog").await;
    assert_eq!(
        (&ghost["protocol"], &ghost["dataPath"], &ghost["defaultPort"]),
        (&json!("HTTP"), &json!("/var/lib/ghost/content"), &json!(2368))
    );
    let pg = how_it_runs(&app, &admin.token, "postgresql").await;
    assert_eq!(
        (&pg["protocol"], &pg["dataPath"], &pg["defaultPort"]),
        (&json!("TCP"), &json!("/var/lib/postgresql/data"), &json!(5432))
    );
    assert_eq!(pg["healthPath"], Value::Null, "TCP probes for PostgreSQL");
    // PGDATA in a sub-directory: initdb refuses a mount point that holds lost+found.
    assert_eq!(pg["envTemplate"]["PGDATA"], "/var/lib/postgresql/data/pgdata");

    // The protocol is public; where the data lives is the operator's business.
    let user = app.register("Ana").await;
    let v = app.gql(Some(&user.token), "{ service(slug: \"postgresql\") { protocol dataPath } }", json!({})).await;
    assert_eq!(v["data"]["service"]["protocol"], "TCP");
    assert_eq!(error_code(&v), "FORBIDDEN");
}

#[tokio::test]
async fn seeding_fills_run_fields_of_an_older_catalog_once() {
    let app = seeded().await;
    let admin = app.login_admin().await;
    // A catalog seeded before services knew how they run.
    app.state
        .db
        .conn
        .execute_raw(Statement::from_string(
            app.state.db.conn.get_database_backend(),
            "UPDATE services SET data_path = NULL, protocol = 'HTTP', health_path = NULL",
        ))
        .await
        .unwrap();
    minispod_gateway::seed::seed_catalog(&app.state).await.unwrap();
    let pg = how_it_runs(&app, &admin.token, "postgresql").await;
    assert_eq!((&pg["protocol"], &pg["dataPath"]), (&json!("TCP"), &json!("/var/lib/postgresql/data")));

    // An administrator's choice survives the next seeding.
    let id =
        app.gql_ok(Some(&admin.token), "{ service(slug: \"ghost-blog\") { id } }", json!({})).await["service"]["id"]
            .clone();
    app.gql_ok(
        Some(&admin.token),
        "mutation($id: ID!, $i: UpdateServiceInput!) { updateService(id: $id, input: $i) { id } }",
        json!({ "id": id, "i": { "dataPath": "/srv/ghost", "healthPath": "/ghost/api/admin/site/" } }),
    )
    .await;
    minispod_gateway::seed::seed_catalog(&app.state).await.unwrap();
    let ghost = how_it_runs(&app, &admin.token, "ghost-blog").await;
    assert_eq!((&ghost["dataPath"], &ghost["healthPath"]), (&json!("/srv/ghost"), &json!("/ghost/api/admin/site/")));
}

#[tokio::test]
async fn run_fields_are_validated_and_named() {
    let app = seeded().await;
    let admin = app.login_admin().await;
    let id =
        app.gql_ok(Some(&admin.token), "{ service(slug: \"ghost-blog\") { id } }", json!({})).await["service"]["id"]
            .clone();
    for (input, field) in [
        (json!({ "dataPath": "relative/dir" }), "dataPath"),
        (json!({ "dataPath": "/var/../etc" }), "dataPath"),
        (json!({ "healthPath": "healthz" }), "healthPath"),
        (json!({ "protocol": "UDP" }), ""),
    ] {
        let v = app
            .gql(
                Some(&admin.token),
                "mutation($id: ID!, $i: UpdateServiceInput!) { updateService(id: $id, input: $i) { id } }",
                json!({ "id": id, "i": input }),
            )
            .await;
        assert!(v["errors"].is_array(), "{input} accepted: {v}");
        if !field.is_empty() {
            assert_eq!(error_code(&v), "BAD_USER_INPUT");
            assert_eq!(v["errors"][0]["extensions"]["field"], field);
        }
    }
    // Clearing the health path switches the probes back to TCP.
    let v = app
        .gql_ok(
            Some(&admin.token),
            "mutation($id: ID!, $i: UpdateServiceInput!) { updateService(id: $id, input: $i) { healthPath protocol } }",
            json!({ "id": id, "i": { "healthPath": null, "protocol": "TCP" } }),
        )
        .await;
    assert_eq!(v["updateService"], json!({ "healthPath": null, "protocol": "TCP" }));
}
