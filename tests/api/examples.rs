//! Every operation in examples/*.graphql passes the gateway's own validation and document limits
//! (the schema that `schema.graphql` is exported from, with its default limits), without being
//! executed: a document that names a field, argument or type that does not exist fails here.
use std::{path::Path, sync::Arc};

use async_graphql::{
    ServerError, ValidationResult,
    extensions::{Extension, ExtensionContext, ExtensionFactory, NextValidation},
};
use minispod_gateway::graphql::{AppSchema, schema_builder};

/// The marker error that stops a request right after it passed validation.
const VALID: &str = "validated; not executed";

struct ValidateOnly;

impl ExtensionFactory for ValidateOnly {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(ValidateOnly)
    }
}

#[async_graphql::async_trait::async_trait]
impl Extension for ValidateOnly {
    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        next.run(ctx).await?;
        Err(vec![ServerError::new(VALID, None)])
    }
}

fn schema() -> AppSchema {
    schema_builder(None).extension(ValidateOnly).finish()
}

/// The errors of validating one operation of a document; empty when it is valid.
async fn problems(schema: &AppSchema, document: &str, operation: Option<&str>) -> Vec<String> {
    let mut req = async_graphql::Request::new(document);
    if let Some(op) = operation {
        req = req.operation_name(op);
    }
    let resp = schema.execute(req).await;
    let errors: Vec<String> = resp.errors.into_iter().map(|e| e.message).collect();
    match errors.as_slice() {
        [only] if only == VALID => vec![],
        [] => vec!["executed: the validation-only extension did not run".into()],
        _ => errors,
    }
}

/// `(file name, text)` of every GraphQL document under examples/.
fn documents() -> Vec<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut docs: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "graphql"))
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read_to_string(&p).unwrap()))
        .collect();
    docs.sort();
    docs
}

#[tokio::test]
async fn every_example_operation_is_valid_against_the_schema() {
    let schema = schema();
    let docs = documents();
    let names: Vec<&str> = docs.iter().map(|(n, _)| n.as_str()).collect();
    // One document per main screen of the single-page app.
    for screen in [
        "auth.graphql",
        "catalog.graphql",
        "service-detail.graphql",
        "wallet-and-subscriptions.graphql",
        "my-apps.graphql",
        "admin-dashboard.graphql",
        "admin-monitoring.graphql",
    ] {
        assert!(names.contains(&screen), "examples/{screen} is missing: {names:?}");
    }
    let mut checked = 0;
    let mut failures = Vec::new();
    for (name, text) in &docs {
        let doc = async_graphql::parser::parse_query(text).unwrap_or_else(|e| panic!("examples/{name}: {e}"));
        for (op, _) in doc.operations.iter() {
            let op = op.map(|n| n.to_string());
            let found = problems(&schema, text, op.as_deref()).await;
            if !found.is_empty() {
                failures.push(format!("examples/{name} {}: {found:?}", op.as_deref().unwrap_or("(anonymous)")));
            }
            checked += 1;
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(checked >= 30, "only {checked} operations found");
}

#[tokio::test]
async fn the_check_refuses_what_the_schema_does_not_have() {
    let schema = schema();
    assert_eq!(problems(&schema, "query Me { me { email } }", None).await, Vec::<String>::new());
    for bad in [
        "query { me { emailAddress } }",
        "query { service(name: \"x\") { id } }",
        "subscription { walletUpdates { nope } }",
        "mutation($i: NoSuchInput!) { register(input: $i) { accessToken } }",
        "query A { me { id } } query A { me { id } }",
    ] {
        assert!(!problems(&schema, bad, None).await.is_empty(), "{bad} passed");
    }
}

/// The Rust client of `examples/podmetrics-client.rs` (built by `cargo test` with the other
/// examples) signs in and streams pod metrics from a gateway on the fake cluster.
#[tokio::test]
async fn the_podmetrics_client_signs_in_and_streams_samples() {
    use crate::support::{ADMIN_EMAIL, ADMIN_PASSWORD, TestApp, fake_k8s::FakeCluster};
    let fake = FakeCluster::start().await;
    let path = fake.kubeconfig.clone();
    let app =
        TestApp::spawn_with(move |c| c.kube.source = minispod_gateway::config::KubeSource::Kubeconfig(path)).await;
    let exe = std::env::current_exe().unwrap();
    let client = exe.parent().unwrap().parent().unwrap().join("examples").join("podmetrics-client");
    assert!(
        client.exists(),
        "{} is missing: `cargo test --workspace` builds it (or `cargo build --example podmetrics-client`)",
        client.display()
    );
    let out = tokio::process::Command::new(&client)
        .args([app.url.as_str(), "shop", "2"])
        .env("MINISPOD_EMAIL", ADMIN_EMAIL)
        .env("MINISPOD_PASSWORD", ADMIN_PASSWORD)
        .kill_on_drop(true)
        .output();
    let out =
        tokio::time::timeout(std::time::Duration::from_secs(60), out).await.expect("two samples in time").unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(stdout.matches("sample at ").count(), 2, "{stdout}");
    assert!(stdout.contains("shop/db-0: "), "{stdout}");

    // A wrong password is refused, and the client says so.
    let out = tokio::process::Command::new(&client)
        .args([app.url.as_str(), "shop", "1"])
        .env("MINISPOD_EMAIL", ADMIN_EMAIL)
        .env("MINISPOD_PASSWORD", "wrong password")
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("login refused"), "{out:?}");
}

/// `examples/user-journey.rs` walks the whole customer journey against its own gateway and the
/// fakes, and fails on the first surprise.
#[tokio::test]
async fn the_user_journey_script_completes() {
    let exe = std::env::current_exe().unwrap();
    let script = exe.parent().unwrap().parent().unwrap().join("examples").join("user-journey");
    assert!(script.exists(), "{} is missing: `cargo test --workspace` builds it", script.display());
    let out = tokio::process::Command::new(&script).env_remove("DATABASE_URL").kill_on_drop(true).output();
    let out = tokio::time::timeout(std::time::Duration::from_secs(120), out).await.expect("in time").unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    for step in ["webhook settled", "app RUNNING", "stopped", "started again", "cancelled", "journey complete"] {
        assert!(stdout.contains(step), "{step}: {stdout}");
    }
}
