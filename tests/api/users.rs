use serde_json::json;

use crate::support::{TestApp, error_code};

const USERS: &str = "query($s: String, $r: Role, $f: Int, $a: String) { users(search: $s, role: $r, first: $f, after: $a) { totalCount pageInfo { hasNextPage endCursor } edges { cursor node { id email role } } } }";
const SET_ROLE: &str = "mutation($u: ID!, $r: Role!) { setUserRole(userId: $u, role: $r) { id role } }";
const SET_ACTIVE: &str = "mutation($u: ID!, $a: Boolean!) { setUserActive(userId: $u, active: $a) { id isActive } }";

#[tokio::test]
async fn admin_fields_are_forbidden_to_users_and_anonymous() {
    let app = TestApp::spawn().await;
    let s = app.register("Budi").await;
    for (token, code) in [(Some(s.token.as_str()), "FORBIDDEN"), (None, "UNAUTHENTICATED")] {
        assert_eq!(error_code(&app.gql(token, USERS, json!({})).await), code);
        assert_eq!(error_code(&app.gql(token, "{ user(id: \"1\") { id } }", json!({})).await), code);
        assert_eq!(error_code(&app.gql(token, SET_ROLE, json!({ "u": s.user_id, "r": "ADMINISTRATOR" })).await), code);
        assert_eq!(error_code(&app.gql(token, SET_ACTIVE, json!({ "u": "1", "a": false })).await), code);
    }
}

#[tokio::test]
async fn admin_lists_users_with_search_and_pagination() {
    let app = TestApp::spawn().await;
    let admin = app.login_admin().await;
    for name in ["Alpha", "Bravo", "Charlie", "Delta", "Echo"] {
        app.register(name).await;
    }
    let page1 = app.gql_ok(Some(&admin.token), USERS, json!({ "f": 2, "r": "USER" })).await;
    assert_eq!(page1["users"]["totalCount"], 5);
    assert_eq!(page1["users"]["edges"].as_array().unwrap().len(), 2);
    assert_eq!(page1["users"]["pageInfo"]["hasNextPage"], true);
    let mut seen: Vec<String> = vec![];
    let mut after = page1["users"]["pageInfo"]["endCursor"].clone();
    seen.extend(
        page1["users"]["edges"].as_array().unwrap().iter().map(|e| e["node"]["email"].as_str().unwrap().to_string()),
    );
    loop {
        let p = app.gql_ok(Some(&admin.token), USERS, json!({ "f": 2, "r": "USER", "a": after })).await;
        seen.extend(
            p["users"]["edges"].as_array().unwrap().iter().map(|e| e["node"]["email"].as_str().unwrap().to_string()),
        );
        if p["users"]["pageInfo"]["hasNextPage"] == false {
            break;
        }
        after = p["users"]["pageInfo"]["endCursor"].clone();
    }
    assert_eq!(seen.len(), 5);
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 5, "no duplicates across pages");

    let found = app.gql_ok(Some(&admin.token), USERS, json!({ "s": "CHARLIE" })).await;
    assert_eq!(found["users"]["totalCount"], 1);
    for (vars, field) in
        [(json!({ "f": 0 }), "first"), (json!({ "f": 101 }), "first"), (json!({ "a": "bogus" }), "after")]
    {
        let v = app.gql(Some(&admin.token), USERS, vars).await;
        assert_eq!(error_code(&v), "BAD_USER_INPUT");
        assert_eq!(v["errors"][0]["extensions"]["field"], field);
    }
    // Unknown ids answer null rather than an error.
    let v =
        app.gql_ok(Some(&admin.token), "{ a: user(id: \"999999\") { id } b: user(id: \"x\") { id } }", json!({})).await;
    assert!(v["a"].is_null() && v["b"].is_null());
}

#[tokio::test]
async fn last_active_admin_cannot_be_removed() {
    let app = TestApp::spawn().await;
    let admin = app.login_admin().await;
    let v = app.gql(Some(&admin.token), SET_ROLE, json!({ "u": admin.user_id, "r": "USER" })).await;
    assert_eq!(error_code(&v), "CONFLICT");
    let v = app.gql(Some(&admin.token), SET_ACTIVE, json!({ "u": admin.user_id, "a": false })).await;
    assert_eq!(error_code(&v), "CONFLICT");

    // With a second admin, the first may step down, and the second is then the last one.
    let s = app.register("Second").await;
    app.gql_ok(Some(&admin.token), SET_ROLE, json!({ "u": s.user_id, "r": "ADMINISTRATOR" })).await;
    app.gql_ok(Some(&admin.token), SET_ROLE, json!({ "u": admin.user_id, "r": "USER" })).await;
    // The role is read from the database: the old admin token no longer grants admin rights.
    assert_eq!(error_code(&app.gql(Some(&admin.token), USERS, json!({})).await), "FORBIDDEN");
    let v = app.gql(Some(&s.token), SET_ROLE, json!({ "u": s.user_id, "r": "USER" })).await;
    assert_eq!(error_code(&v), "CONFLICT");
}

#[tokio::test]
async fn two_admins_demoting_each_other_at_once_leave_one_admin() {
    let app = TestApp::spawn().await;
    let a = app.login_admin().await;
    let s = app.register("Second").await;
    app.gql_ok(Some(&a.token), SET_ROLE, json!({ "u": s.user_id, "r": "ADMINISTRATOR" })).await;
    let (r1, r2) = tokio::join!(
        app.gql(Some(&a.token), SET_ROLE, json!({ "u": s.user_id, "r": "USER" })),
        app.gql(Some(&s.token), SET_ROLE, json!({ "u": a.user_id, "r": "USER" })),
    );
    let ok = [&r1, &r2].iter().filter(|v| v.get("errors").is_none()).count();
    assert_eq!(ok, 1, "{r1} {r2}");
    let survivor = if r1.get("errors").is_none() { a } else { s };
    let admins = app.gql_ok(Some(&survivor.token), USERS, json!({ "r": "ADMINISTRATOR" })).await;
    assert_eq!(admins["users"]["totalCount"], 1);
}

#[tokio::test]
async fn deactivated_users_are_refused_even_with_valid_tokens() {
    let app = TestApp::spawn().await;
    let admin = app.login_admin().await;
    let s = app.register("Budi").await;
    app.gql_ok(Some(&admin.token), SET_ACTIVE, json!({ "u": s.user_id, "a": false })).await;
    assert_eq!(error_code(&app.gql(Some(&s.token), "mutation { logoutAll }", json!({})).await), "UNAUTHENTICATED");
    let refresh = app
        .gql(
            None,
            "mutation($t: String!) { refreshToken(refreshToken: $t) { accessToken } }",
            json!({ "t": s.refresh }),
        )
        .await;
    assert_eq!(error_code(&refresh), "UNAUTHENTICATED");
    let login = app
        .gql(
            None,
            "mutation($e: String!) { login(email: $e, password: \"password-123\") { accessToken } }",
            json!({ "e": s.email }),
        )
        .await;
    assert_eq!(error_code(&login), "UNAUTHENTICATED");
    app.gql_ok(Some(&admin.token), SET_ACTIVE, json!({ "u": s.user_id, "a": true })).await;
    app.login(&s.email, "password-123").await;
}

#[tokio::test]
async fn update_profile_validates_and_clears() {
    let app = TestApp::spawn().await;
    let s = app.register("Budi").await;
    let q = "mutation($i: UpdateProfileInput!) { updateProfile(input: $i) { name phone avatar } }";
    let v = app
        .gql_ok(
            Some(&s.token),
            q,
            json!({ "i": { "name": "Budi S", "phone": "081298765432", "avatar": "https://img.example/b.png" } }),
        )
        .await;
    assert_eq!(
        v["updateProfile"],
        json!({ "name": "Budi S", "phone": "+6281298765432", "avatar": "https://img.example/b.png" })
    );
    let v = app.gql_ok(Some(&s.token), q, json!({ "i": { "phone": null } })).await;
    assert_eq!(v["updateProfile"]["phone"], serde_json::Value::Null);
    assert_eq!(v["updateProfile"]["name"], "Budi S");
    for (input, field) in [
        (json!({ "phone": "999" }), "phone"),
        (json!({ "avatar": "javascript:alert(1)" }), "avatar"),
        (json!({ "name": "" }), "name"),
    ] {
        let v = app.gql(Some(&s.token), q, json!({ "i": input })).await;
        assert_eq!(v["errors"][0]["extensions"]["field"], field, "{v}");
    }
    assert_eq!(error_code(&app.gql(None, q, json!({ "i": { "name": "x" } })).await), "UNAUTHENTICATED");
}
