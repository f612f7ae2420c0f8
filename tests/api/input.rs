//! Issue 9, items 8 and 9: control characters are refused at the edge on every transport, and
//! identities (emails, names) are normalised and free of invisible characters.
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{TestApp, error_code, ws::WsClient};

fn field(v: &Value) -> &str {
    v["errors"][0]["extensions"]["field"].as_str().unwrap_or_else(|| panic!("expected a field: {v}"))
}

fn assert_bad_input(v: &Value, expected_field: &str) {
    assert_eq!(error_code(v), "BAD_USER_INPUT", "{v}");
    assert_eq!(field(v), expected_field, "{v}");
}

#[tokio::test]
async fn nul_and_control_characters_are_refused_in_variables_and_literals() {
    let app = TestApp::spawn().await;
    let admin = app.login_admin().await;
    let user = app.register("Budi").await;

    // Variables: search, slug, name, reason.
    let search = "query($s: String) { services(filter: { search: $s }) { totalCount } }";
    assert_bad_input(&app.gql(None, search, json!({ "s": "web\u{0}" })).await, "search");
    let slug = "query($s: String!) { service(slug: $s) { id } }";
    assert_bad_input(&app.gql(None, slug, json!({ "s": "word\u{0}press" })).await, "slug");
    let register = "mutation($i: RegisterInput!) { register(input: $i) { accessToken } }";
    let input = json!({ "i": { "name": "Bu\u{0}di", "email": "nul@example.com", "password": "password-123" } });
    assert_bad_input(&app.gql(None, register, input).await, "name");
    let adjust = "mutation($u: ID!, $r: String!) { adjustCredit(userId: $u, amount: 1000, reason: $r) { id } }";
    let v = app.gql(Some(&admin.token), adjust, json!({ "u": user.user_id, "r": "bonus\u{0}" })).await;
    assert_bad_input(&v, "reason");
    let users = "query($s: String) { users(search: $s) { totalCount } }";
    assert_bad_input(&app.gql(Some(&admin.token), users, json!({ "s": "\u{0}" })).await, "search");
    // Other controls too, and line breaks outside prose.
    assert_bad_input(&app.gql(None, search, json!({ "s": "web\u{1b}[2J" })).await, "search");
    assert_bad_input(&app.gql(None, slug, json!({ "s": "word\npress" })).await, "slug");

    // Literals, including escapes inside input objects and variable defaults.
    let v = app.gql(None, r#"{ services(filter: { search: "web\u0000" }) { totalCount } }"#, json!({})).await;
    assert_bad_input(&v, "search");
    let v = app.gql(None, r#"query($s: String! = "a\u0000") { service(slug: $s) { id } }"#, json!({})).await;
    assert_bad_input(&v, "s");
    let create = r#"mutation { createCategory(input: { name: "Web", slug: "we\u0000b" }) { id } }"#;
    assert_bad_input(&app.gql(Some(&admin.token), create, json!({})).await, "slug");

    // Prose keeps its line breaks.
    let v = app.gql(Some(&admin.token), adjust, json!({ "u": user.user_id, "r": "line one\r\n\tline two" })).await;
    assert!(v["data"]["adjustCredit"]["id"].is_string(), "{v}");
}

#[tokio::test]
async fn control_characters_are_refused_over_get_and_websocket() {
    let app = TestApp::spawn().await;
    let query = r#"{ service(slug: "a\u0000") { id } }"#;
    let url = reqwest::Url::parse_with_params(&format!("{}/graphql", app.url), &[("query", query)]).unwrap();
    let v: Value = app.http.get(url).send().await.unwrap().json().await.unwrap();
    assert_bad_input(&v, "slug");

    let mut ws = WsClient::connect_ok(&app.ws_url(), None).await;
    ws.subscribe("1", "query($s: String!) { service(slug: $s) { id } }", json!({ "s": "a\u{0}" })).await;
    let msg = ws.next_message(Duration::from_secs(10)).await.expect("an answer");
    let errors = if msg["type"] == "error" { json!({ "errors": msg["payload"] }) } else { msg["payload"].clone() };
    assert_bad_input(&errors, "slug");
    ws.close().await;
}

#[tokio::test]
async fn admin_user_search_has_a_length_limit() {
    let app = TestApp::spawn().await;
    let admin = app.login_admin().await;
    let users = "query($s: String) { users(search: $s) { totalCount } }";
    assert_bad_input(&app.gql(Some(&admin.token), users, json!({ "s": "a".repeat(101) })).await, "search");
    let v = app.gql_ok(Some(&admin.token), users, json!({ "s": "a".repeat(100) })).await;
    assert_eq!(v["users"]["totalCount"], 0);
}

const REGISTER: &str = "mutation($i: RegisterInput!) { register(input: $i) { accessToken user { email name } } }";
const LOGIN: &str = "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { user { email } } }";

fn registration(name: &str, email: &str) -> Value {
    json!({ "i": { "name": name, "email": email, "password": "password-123" } })
}

#[tokio::test]
async fn lookalike_emails_cannot_register_a_second_account() {
    let app = TestApp::spawn().await;
    let v = app.gql_ok(None, REGISTER, registration("Admin", "boss@example.com")).await;
    assert_eq!(v["register"]["user"]["email"], "boss@example.com");
    // Invisible and bidi characters are refused outright.
    for email in
        ["boss\u{200b}@example.com", "bo\u{202e}ss@example.com", "boss@exam\u{2060}ple.com", "boss\u{feff}@example.com"]
    {
        assert_bad_input(&app.gql(None, REGISTER, registration("Admin", email)).await, "email");
    }
    // Compatibility forms normalise to the existing account: the database says it is taken.
    let v = app.gql(None, REGISTER, registration("Admin", "ｂｏｓｓ@ｅｘａｍｐｌｅ.ｃｏｍ")).await;
    assert_eq!(error_code(&v), "CONFLICT", "{v}");
    // Mixed-script domain labels are refused (Cyrillic а), in either spelling.
    for email in ["boss@exаmple.com", "boss@xn--exmple-4nf.com"] {
        let v = app.gql(None, REGISTER, registration("Admin", email)).await;
        assert_bad_input(&v, "email");
        assert!(v["errors"][0]["message"].as_str().unwrap().contains("mix scripts"), "{v}");
    }
    // An internationalised domain in one script is fine and has one stored form.
    let v = app.gql_ok(None, REGISTER, registration("Budi", "budi@bücher.example")).await;
    assert_eq!(v["register"]["user"]["email"], "budi@xn--bcher-kva.example");
    let v = app.gql(None, REGISTER, registration("Budi", "budi@xn--bcher-kva.example")).await;
    assert_eq!(error_code(&v), "CONFLICT", "{v}");
    // Login normalises the same way.
    let v = app.gql_ok(None, LOGIN, json!({ "e": "ＢＯＳＳ@example.com", "p": "password-123" })).await;
    assert_eq!(v["login"]["user"]["email"], "boss@example.com");
    let v = app.gql(None, LOGIN, json!({ "e": "boss\u{200b}@example.com", "p": "password-123" })).await;
    assert_eq!(error_code(&v), "UNAUTHENTICATED", "{v}");
}

#[tokio::test]
async fn display_names_are_normalised_and_visible() {
    let app = TestApp::spawn().await;
    let v = app.gql_ok(None, REGISTER, registration("  Ｂｕｄｉ\u{a0} Santoso ", "budi@example.com")).await;
    assert_eq!(v["register"]["user"]["name"], "Budi Santoso");
    for name in ["Ad\u{200b}min", "\u{202e}nimdA", "Admin\u{2067}", "\u{3164}", "Admin\u{fe0f}"] {
        assert_bad_input(&app.gql(None, REGISTER, registration(name, "other@example.com")).await, "name");
    }

    let s = app.register("Sari").await;
    let update = "mutation($n: String) { updateProfile(input: { name: $n }) { name } }";
    for name in ["Sa\u{200d}ri", "Sari\u{202e}", "\u{2800}"] {
        assert_bad_input(&app.gql(Some(&s.token), update, json!({ "n": name })).await, "name");
    }
    let v = app.gql_ok(Some(&s.token), update, json!({ "n": "ｓａｒｉ  Dewi" })).await;
    assert_eq!(v["updateProfile"]["name"], "sari Dewi");
}
