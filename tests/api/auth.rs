use base64::Engine;
use serde_json::json;

use crate::support::{JWT_SECRET, TestApp, error_code};

const ME: &str = "{ me { id email role } }";
const LOGOUT_ALL: &str = "mutation { logoutAll }";

#[tokio::test]
async fn register_login_and_me() {
    let app = TestApp::spawn().await;
    let v = app
        .gql_ok(
            None,
            "mutation($i: RegisterInput!) { register(input: $i) { accessToken accessTokenExpiresAt refreshToken user { id name email phone role isActive } } }",
            json!({ "i": { "name": "  Budi ", "email": " Budi@Example.COM ", "password": "password-123", "phone": "0812 3456 7890" } }),
        )
        .await;
    let user = &v["register"]["user"];
    assert_eq!(user["email"], "budi@example.com");
    assert_eq!(user["name"], "Budi");
    assert_eq!(user["phone"], "+6281234567890");
    assert_eq!(user["role"], "USER");

    let s = app.login("BUDI@example.com", "password-123").await;
    let me = app.gql_ok(Some(&s.token), ME, json!({})).await;
    assert_eq!(me["me"]["email"], "budi@example.com");
    // Without a token `me` is simply null.
    assert_eq!(app.gql_ok(None, ME, json!({})).await["me"], serde_json::Value::Null);
}

#[tokio::test]
async fn registration_input_errors_name_the_field() {
    let app = TestApp::spawn().await;
    let q = "mutation($i: RegisterInput!) { register(input: $i) { accessToken } }";
    for (input, field) in [
        (json!({ "name": "A", "email": "not-an-email", "password": "password-123" }), "email"),
        (json!({ "name": "A", "email": "a@example.com", "password": "short" }), "password"),
        (json!({ "name": "A", "email": "a@example.com", "password": "x".repeat(129) }), "password"),
        (json!({ "name": "A", "email": "a@example.com", "password": "password-123", "phone": "12345" }), "phone"),
        (json!({ "name": "   ", "email": "a@example.com", "password": "password-123" }), "name"),
    ] {
        let v = app.gql(None, q, json!({ "i": input })).await;
        assert_eq!(error_code(&v), "BAD_USER_INPUT", "{v}");
        assert_eq!(v["errors"][0]["extensions"]["field"], field, "{v}");
    }
}

#[tokio::test]
async fn duplicate_email_and_phone_conflict() {
    let app = TestApp::spawn().await;
    let q = "mutation($i: RegisterInput!) { register(input: $i) { accessToken } }";
    let first = json!({ "i": { "name": "A", "email": "dup@example.com", "password": "password-123", "phone": "081234567890" } });
    app.gql_ok(None, q, first).await;
    let v =
        app.gql(None, q, json!({ "i": { "name": "B", "email": "DUP@example.com", "password": "password-123" } })).await;
    assert_eq!(error_code(&v), "CONFLICT");
    let v = app
        .gql(None, q, json!({ "i": { "name": "C", "email": "c@example.com", "password": "password-123", "phone": "+6281234567890" } }))
        .await;
    assert_eq!(error_code(&v), "CONFLICT");
    assert!(v["errors"][0]["message"].as_str().unwrap().contains("phone"));
}

#[tokio::test]
async fn wrong_password_and_unknown_email_look_the_same() {
    let app = TestApp::spawn().await;
    let s = app.register("Budi").await;
    let q = "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { accessToken } }";
    let wrong = app.gql(None, q, json!({ "e": s.email, "p": "wrong-password" })).await;
    let unknown = app.gql(None, q, json!({ "e": "nobody@example.com", "p": "wrong-password" })).await;
    assert_eq!(error_code(&wrong), "UNAUTHENTICATED");
    assert_eq!(error_code(&unknown), "UNAUTHENTICATED");
    assert_eq!(wrong["errors"][0]["message"], unknown["errors"][0]["message"]);
}

fn forge(claims: &serde_json::Value, key: &[u8]) -> String {
    use jsonwebtoken::{EncodingKey, Header, encode};
    encode(&Header::new(jsonwebtoken::Algorithm::HS256), claims, &EncodingKey::from_secret(key)).unwrap()
}

#[tokio::test]
async fn bad_access_tokens_are_unauthenticated() {
    let app = TestApp::spawn().await;
    let s = app.register("Budi").await;
    let now = chrono::Utc::now().timestamp();
    let claims =
        |iat: i64, exp: i64| json!({ "sub": s.user_id, "role": "USER", "iat": iat, "exp": exp, "jti": "x", "ver": 0 });

    let expired = forge(&claims(now - 7200, now - 3600), JWT_SECRET.as_bytes());
    let wrong_key = forge(&claims(now, now + 600), b"some-other-secret-some-other-secret!!");
    let b64 = |v: &serde_json::Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let alg_none = format!("{}.{}.", b64(&json!({ "alg": "none", "typ": "JWT" })), b64(&claims(now, now + 600)));
    // Change the payload (claims a different user) and keep the old signature.
    let parts: Vec<&str> = s.token.split('.').collect();
    let admin_claims =
        json!({ "sub": "1", "role": "ADMINISTRATOR", "iat": now, "exp": now + 600, "jti": "x", "ver": 0 });
    let tampered = format!("{}.{}.{}", parts[0], b64(&admin_claims), parts[2]);

    for token in [expired, wrong_key, alg_none, tampered, "garbage".to_string()] {
        let v = app.gql(Some(&token), LOGOUT_ALL, json!({})).await;
        assert_eq!(error_code(&v), "UNAUTHENTICATED", "token {token} → {v}");
        // Public fields still answer; `me` is null for a bad token, with UNAUTHENTICATED and why.
        let v = app.gql(Some(&token), ME, json!({})).await;
        assert_eq!(v["data"]["me"], serde_json::Value::Null);
        assert_eq!(error_code(&v), "UNAUTHENTICATED", "{v}");
        let reason = v["errors"][0]["extensions"]["reason"].as_str().unwrap();
        assert!(["expired", "invalid"].contains(&reason), "{v}");
        assert_eq!(app.gql_ok(Some(&token), "{ __typename }", json!({})).await["__typename"], "QueryRoot");
    }
    // The real token works.
    app.gql_ok(Some(&s.token), ME, json!({})).await;
}

const REFRESH: &str = "mutation($t: String!) { refreshToken(refreshToken: $t) { accessToken refreshToken } }";

#[tokio::test]
async fn refresh_rotates_and_reuse_revokes_the_family() {
    let app = TestApp::spawn().await;
    let s = app.register("Budi").await;
    let r1 = app.gql_ok(None, REFRESH, json!({ "t": s.refresh })).await;
    let new_refresh = r1["refreshToken"]["refreshToken"].as_str().unwrap().to_string();
    assert_ne!(new_refresh, s.refresh);
    let new_access = r1["refreshToken"]["accessToken"].as_str().unwrap();
    assert_eq!(app.gql_ok(Some(new_access), ME, json!({})).await["me"]["id"], s.user_id.as_str());

    // The old token again: theft. Refused, and the newer token of the same family dies too.
    let reuse = app.gql(None, REFRESH, json!({ "t": s.refresh })).await;
    assert_eq!(error_code(&reuse), "UNAUTHENTICATED");
    let after = app.gql(None, REFRESH, json!({ "t": new_refresh })).await;
    assert_eq!(error_code(&after), "UNAUTHENTICATED");

    // Another login (another family) is unaffected.
    let s2 = app.login(&s.email, "password-123").await;
    app.gql_ok(None, REFRESH, json!({ "t": s2.refresh })).await;
    // Garbage refresh tokens are refused.
    assert_eq!(error_code(&app.gql(None, REFRESH, json!({ "t": "nope" })).await), "UNAUTHENTICATED");
}

#[tokio::test]
async fn concurrent_refreshes_of_one_token_succeed_once() {
    let app = TestApp::spawn().await;
    let s = app.register("Budi").await;
    let results = futures::future::join_all((0..8).map(|_| app.gql(None, REFRESH, json!({ "t": s.refresh })))).await;
    let ok = results.iter().filter(|v| v.get("errors").is_none()).count();
    assert_eq!(ok, 1, "{results:?}");
}

#[tokio::test]
async fn logout_and_logout_all_end_sessions() {
    let app = TestApp::spawn().await;
    let s = app.register("Budi").await;
    let other = app.login(&s.email, "password-123").await;

    app.gql_ok(None, "mutation($t: String!) { logout(refreshToken: $t) }", json!({ "t": s.refresh })).await;
    assert_eq!(error_code(&app.gql(None, REFRESH, json!({ "t": s.refresh })).await), "UNAUTHENTICATED");
    app.gql_ok(Some(&other.token), ME, json!({})).await;

    app.gql_ok(Some(&other.token), LOGOUT_ALL, json!({})).await;
    // Access tokens issued before logoutAll stop working at once, refresh tokens too.
    assert_eq!(error_code(&app.gql(Some(&other.token), LOGOUT_ALL, json!({})).await), "UNAUTHENTICATED");
    assert_eq!(error_code(&app.gql(None, REFRESH, json!({ "t": other.refresh })).await), "UNAUTHENTICATED");
    // Signing in again works.
    app.login(&s.email, "password-123").await;
}

#[tokio::test]
async fn change_password_revokes_sessions() {
    let app = TestApp::spawn().await;
    let s = app.register("Budi").await;
    let q = "mutation($c: String!, $n: String!) { changePassword(currentPassword: $c, newPassword: $n) }";
    let wrong = app.gql(Some(&s.token), q, json!({ "c": "nope-nope", "n": "new-password-1" })).await;
    assert_eq!(error_code(&wrong), "BAD_USER_INPUT");
    assert_eq!(wrong["errors"][0]["extensions"]["field"], "currentPassword");
    let short = app.gql(Some(&s.token), q, json!({ "c": "password-123", "n": "short" })).await;
    assert_eq!(short["errors"][0]["extensions"]["field"], "newPassword");

    app.gql_ok(Some(&s.token), q, json!({ "c": "password-123", "n": "new-password-1" })).await;
    assert_eq!(error_code(&app.gql(Some(&s.token), LOGOUT_ALL, json!({})).await), "UNAUTHENTICATED");
    assert_eq!(error_code(&app.gql(None, REFRESH, json!({ "t": s.refresh })).await), "UNAUTHENTICATED");
    app.login(&s.email, "new-password-1").await;
}

#[tokio::test]
async fn login_is_throttled_per_email_and_per_ip() {
    let app = TestApp::spawn_with(|c| {
        c.rate_limit.per_email_per_minute = 3;
        c.rate_limit.per_ip_per_minute = 6;
    })
    .await;
    let q = "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { accessToken } }";
    for _ in 0..3 {
        let v = app.gql(None, q, json!({ "e": "victim@example.com", "p": "guess-guess" })).await;
        assert_eq!(error_code(&v), "UNAUTHENTICATED");
    }
    let v = app.gql(None, q, json!({ "e": "victim@example.com", "p": "guess-guess" })).await;
    assert_eq!(error_code(&v), "RATE_LIMITED");
    assert!(v["errors"][0]["extensions"]["retryAfter"].as_u64().unwrap() >= 1);
    // Other emails from the same IP still pass until the IP budget (6) runs out.
    for i in 0..2 {
        let v = app.gql(None, q, json!({ "e": format!("other{i}@example.com"), "p": "guess-guess" })).await;
        assert_eq!(error_code(&v), "UNAUTHENTICATED");
    }
    let v = app.gql(None, q, json!({ "e": "fresh@example.com", "p": "guess-guess" })).await;
    assert_eq!(error_code(&v), "RATE_LIMITED");
}

#[tokio::test]
async fn jwt_secret_is_generated_once_and_survives_restarts() {
    let app = TestApp::spawn_with(|c| c.jwt_secret = None).await;
    let s = app.register("Budi").await;
    let db = app.db.clone();
    app.stop().await;
    let again = TestApp::spawn_on(db, |c| c.jwt_secret = None).await;
    let me = again.gql_ok(Some(&s.token), ME, json!({})).await;
    assert_eq!(me["me"]["id"], s.user_id.as_str());
}

const LOGIN: &str = "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { accessToken } }";

/// A login sent through the trusted proxy with this `X-Forwarded-For` header.
async fn login_via(app: &TestApp, forwarded_for: &str, email: &str, password: &str) -> serde_json::Value {
    app.http
        .post(format!("{}/graphql", app.url))
        .header("x-forwarded-for", forwarded_for)
        .json(&json!({ "query": LOGIN, "variables": { "e": email, "p": password } }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn spoofed_leftmost_forwarded_for_does_not_change_the_bucket() {
    let app = TestApp::spawn_with(|c| {
        c.trust_forwarded_for = true;
        c.trusted_proxies = 1;
        c.rate_limit.per_ip_per_minute = 3;
    })
    .await;
    // The client invents a new leftmost entry each time; the proxy appends what it saw.
    for i in 0..3 {
        let v =
            login_via(&app, &format!("198.51.100.{i}, 203.0.113.7"), &format!("u{i}@example.com"), "guess-guess").await;
        assert_eq!(error_code(&v), "UNAUTHENTICATED", "{v}");
    }
    let v = login_via(&app, "198.51.100.99, 203.0.113.7", "u9@example.com", "guess-guess").await;
    assert_eq!(error_code(&v), "RATE_LIMITED", "{v}");
    // Another client behind the same proxy has its own bucket.
    let v = login_via(&app, "203.0.113.8", "u9@example.com", "guess-guess").await;
    assert_eq!(error_code(&v), "UNAUTHENTICATED", "{v}");
}

#[tokio::test]
async fn an_attacker_cannot_lock_the_owner_out_from_the_owners_address() {
    let app = TestApp::spawn_with(|c| {
        c.trust_forwarded_for = true;
        c.rate_limit.per_email_per_minute = 3;
        c.rate_limit.per_email_per_hour = 5;
    })
    .await;
    let victim = app.register("Victim").await;
    let attacker = "198.51.100.1";
    for _ in 0..3 {
        assert_eq!(error_code(&login_via(&app, attacker, &victim.email, "guess-guess").await), "UNAUTHENTICATED");
    }
    // The attacker's bucket for this email is spent, and hammering it adds nothing to the ceiling ...
    for _ in 0..5 {
        let v = login_via(&app, attacker, &victim.email, "guess-guess").await;
        assert_eq!(error_code(&v), "RATE_LIMITED");
        assert!(v["errors"][0]["extensions"]["retryAfter"].as_u64().unwrap() >= 1);
    }
    // ... so the owner still signs in from their own address.
    let v = login_via(&app, "203.0.113.50", &victim.email, "password-123").await;
    assert!(v["data"]["login"]["accessToken"].is_string(), "{v}");
    // Addresses together reach the slower per-email ceiling (5 per hour here: the registration,
    // three guesses and the owner's login).
    let v = login_via(&app, "203.0.113.52", &victim.email, "password-123").await;
    assert_eq!(error_code(&v), "RATE_LIMITED", "{v}");
    assert!(v["errors"][0]["extensions"]["retryAfter"].as_u64().unwrap() > 60, "{v}");
}

#[tokio::test]
async fn change_password_guesses_are_limited() {
    let app = TestApp::spawn_with(|c| c.rate_limit.password_change_per_hour = 3).await;
    let s = app.register("Budi").await;
    let q = "mutation($c: String!, $n: String!) { changePassword(currentPassword: $c, newPassword: $n) }";
    for i in 0..3 {
        let v = app.gql(Some(&s.token), q, json!({ "c": format!("guess-{i}-guess"), "n": "new-password-1" })).await;
        assert_eq!(error_code(&v), "BAD_USER_INPUT", "{v}");
    }
    // Even the right password is refused now: the limit must not confirm a guess.
    let v = app.gql(Some(&s.token), q, json!({ "c": "password-123", "n": "new-password-1" })).await;
    assert_eq!(error_code(&v), "RATE_LIMITED", "{v}");
    assert!(v["errors"][0]["extensions"]["retryAfter"].as_u64().unwrap() >= 1);
    // Another user is not affected.
    let other = app.register("Sari").await;
    app.gql_ok(Some(&other.token), q, json!({ "c": "password-123", "n": "new-password-1" })).await;
}
