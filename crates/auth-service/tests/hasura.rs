//! Hasura seed adapters: the `hasura` claims preset (checked the way Hasura's JWT mode checks
//! it, with the HS256 key or with only the public JWKS) and the signup/login action handlers.

mod common;

use axum::http::{Method, StatusCode};
use common::*;
use serde_json::{Value, json};
use shared_user::both_backends;
use shared_user::jsonwebtoken::jwk::JwkSet;
use shared_user::jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use shared_user::testing::Backend;

const ALICE: &str = "alice@example.com";
const PW: &str = "correct horse battery";
const STRONG: &str = "tangerine-voyage-42";
const HASURA: &[&str] = &["--claims-preset", "hasura"];
const NS: &str = "https://hasura.io/jwt/claims";
const SIGNUP: &str = "/hasura/actions/signup";
const LOGIN: &str = "/hasura/actions/login";
const SECRET: &str = "action-secret-0123456789";

fn keys_of(v: &Value) -> Vec<String> {
    v.as_object().unwrap().keys().cloned().collect()
}

/// Decodes like Hasura with `{"type":"HS256","key":...}`: signature and `exp` checked.
fn hasura_hs256(token: &str) -> Value {
    let mut validation = Validation::new(Algorithm::HS256);
    validation.set_required_spec_claims(&["exp"]);
    decode::<Value>(token, &DecodingKey::from_secret(KEY.as_bytes()), &validation).expect("verifies").claims
}

async fn hasura_preset_adds_its_claims_after_the_standard_ones(backend: Backend) {
    let Some(app) = TestApp::new(backend, HASURA).await else { return };
    let id = app.add_user(ALICE, PW, true, &["billing:admin", "editor"]).await;
    let (refresh, access) = app.login(ALICE, PW).await;
    let claims = hasura_hs256(&access);
    assert_eq!(
        keys_of(&claims),
        ["token_type", "exp", "iat", "jti", "user_id", "sub", "name", "email", NS],
        "{}",
        payload_text(&access)
    );
    assert_eq!(claims["user_id"], json!(id));
    assert_eq!(claims["sub"], json!(id.to_string()));
    assert_eq!(claims["name"], json!(ALICE), "no names: the email is the display name");
    assert_eq!(claims["email"], json!(ALICE));
    let expected = json!({
        "x-hasura-allowed-roles": ["user", "billing", "editor", "admin"],
        "x-hasura-default-role": "user",
        "x-hasura-user-id": id.to_string(),
    });
    assert_eq!(serde_json::to_string(&claims[NS]).unwrap(), expected.to_string(), "exact shape and order");
    // Refresh tokens stay lean; the access token still passes our own verify.
    assert_eq!(keys_of(&payload(&refresh)), ["token_type", "exp", "iat", "jti", "user_id"]);
    let r = app.post("/auth/token/verify/", &json!({"token": access}).to_string()).await;
    assert_json(&r, StatusCode::OK, "{}");
    let r = app.get_bearer("/auth/user/", &access).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

async fn refreshed_access_tokens_carry_the_preset_with_current_roles(backend: Backend) {
    let Some(app) = TestApp::new(backend, &["--claims-preset", "hasura", "--rotate-refresh-tokens", "true"]).await
    else {
        return;
    };
    let id = app.add_user(ALICE, PW, false, &[]).await;
    let (refresh, access) = app.login(ALICE, PW).await;
    assert_eq!(payload(&access)[NS]["x-hasura-allowed-roles"], json!(["user"]));
    assert!(app.state.store.set_groups(ALICE, vec![shared_user::AccessGroup::parse("ops").unwrap()]).await.unwrap());
    let r = app.post("/auth/token/refresh/", &json!({"refresh": refresh}).to_string()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let fresh = r.json()["access"].as_str().unwrap().to_owned();
    let claims = hasura_hs256(&fresh);
    assert_eq!(keys_of(&claims), ["token_type", "exp", "iat", "jti", "user_id", "sub", "name", "email", NS]);
    assert_eq!(claims[NS]["x-hasura-allowed-roles"], json!(["user", "ops"]));
    assert_eq!(claims[NS]["x-hasura-user-id"], json!(id.to_string()));
}

async fn default_role_is_configurable_and_always_allowed(backend: Backend) {
    let flags = ["--claims-preset", "hasura", "--hasura-default-role", "viewer"];
    let Some(app) = TestApp::new(backend, &flags).await else { return };
    app.add_user(ALICE, PW, false, &["viewer:3"]).await;
    let (_, access) = app.login(ALICE, PW).await;
    let ns = &hasura_hs256(&access)[NS];
    assert_eq!(ns["x-hasura-default-role"], "viewer");
    assert_eq!(ns["x-hasura-allowed-roles"], json!(["viewer", "user"]));
}

async fn no_preset_by_default(backend: Backend) {
    let Some(app) = TestApp::new(backend, &[]).await else { return };
    app.add_user(ALICE, PW, true, &["ops"]).await;
    let (_, access) = app.login(ALICE, PW).await;
    assert_eq!(keys_of(&payload(&access)), ["token_type", "exp", "iat", "jti", "user_id"]);
}

async fn asymmetric_hasura_tokens_verify_with_only_the_public_jwks(backend: Backend) {
    let Some(app) = TestApp::asymmetric(backend, &["--algorithm", "EdDSA", "--claims-preset", "hasura"]).await else {
        return;
    };
    let id = app.add_user(ALICE, PW, false, &["editor"]).await;
    let (_, access) = app.login(ALICE, PW).await;
    // What Hasura does with `{"jwk_url": ".../.well-known/jwks.json"}`.
    let r = app.get_with("/.well-known/jwks.json", &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    let set: JwkSet = serde_json::from_str(&r.text).unwrap();
    let kid = decode_header(&access).unwrap().kid.expect("kid");
    let jwk = set.find(&kid).expect("published");
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.set_required_spec_claims(&["exp"]);
    let claims = decode::<Value>(&access, &DecodingKey::from_jwk(jwk).unwrap(), &validation).unwrap().claims;
    assert_eq!(
        claims[NS],
        json!({"x-hasura-allowed-roles": ["user", "editor"], "x-hasura-default-role": "user",
               "x-hasura-user-id": id.to_string()})
    );
    assert_eq!(claims["sub"], json!(id.to_string()));
}

async fn preset_settings_are_validated(backend: Backend) {
    let Some(db) = shared_user::testing::TestDb::new(backend, "hasura settings", auth_service::MIGRATIONS).await else {
        return;
    };
    let bad = auth_service::AppState::build(settings(&["--hasura-default-role", " "]), db.db.clone()).await;
    assert_eq!(bad.unwrap_err().to_string(), "HASURA_DEFAULT_ROLE must not be empty");
    let bad = auth_service::AppState::build(settings(&["--hasura-action-secret", ""]), db.db.clone()).await;
    assert!(bad.unwrap_err().to_string().starts_with("HASURA_ACTION_SECRET is set but empty"));
    let debug = format!(
        "{:?}",
        auth_service::AppState::build(settings(&["--hasura-action-secret", SECRET]), db.db.clone()).await
    );
    assert!(!debug.contains(SECRET), "the secret is never printed");
}

both_backends!(
    hasura_preset_adds_its_claims_after_the_standard_ones,
    refreshed_access_tokens_carry_the_preset_with_current_roles,
    default_role_is_configurable_and_always_allowed,
    no_preset_by_default,
    asymmetric_hasura_tokens_verify_with_only_the_public_jwks,
    preset_settings_are_validated,
);

// ---- action handlers ----

/// An action call as Hasura sends it.
fn call(name: &str, input: Value, role: &str) -> String {
    json!({
        "action": {"name": name},
        "input": input,
        "session_variables": {"x-hasura-role": role},
        "request_query": "mutation { ... }",
    })
    .to_string()
}

async fn action(app: &TestApp, path: &str, body: &str, headers: &[(&str, &str)]) -> Reply {
    app.send(Method::POST, path, Some(body), headers).await
}

async fn login_action_returns_access_and_refresh_tokens(backend: Backend) {
    let Some(app) = TestApp::new(backend, HASURA).await else { return };
    let id = app.add_user(ALICE, PW, false, &[]).await;
    for path in [LOGIN, "/hasura/actions/login/"] {
        let r = action(&app, path, &call("login", json!({"email": ALICE, "password": PW}), "anonymous"), &[]).await;
        assert_eq!((r.status, r.content_type()), (StatusCode::OK, "application/json"), "{}", r.text);
        let v = r.json();
        assert_eq!(keys_of(&v), ["token", "refresh"]);
        let access = v["token"].as_str().unwrap();
        assert_eq!(payload(access)["token_type"], "access");
        assert_eq!(hasura_hs256(access)[NS]["x-hasura-user-id"], json!(id.to_string()));
        let r = app.post("/auth/token/refresh/", &json!({"refresh": v["refresh"]}).to_string()).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    }
    // A named input argument nests the fields one level deeper.
    let nested = call("login", json!({"credentials": {"email": ALICE, "password": PW}}), "anonymous");
    let r = action(&app, LOGIN, &nested, &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(app.state.store.find_user(id).await.unwrap().unwrap().last_login.is_some());
}

async fn login_action_refuses_bad_credentials_and_missing_fields(backend: Backend) {
    let Some(app) = TestApp::new(backend, &[]).await else { return };
    app.add_user(ALICE, PW, false, &[]).await;
    let invalid = r#"{"message":"Invalid credentials"}"#;
    for (email, password) in [(ALICE, "wrong"), ("ghost@example.com", PW), ("ALICE@example.com", PW)] {
        let r = action(&app, LOGIN, &call("login", json!({"email": email, "password": password}), "x"), &[]).await;
        assert_json(&r, StatusCode::UNAUTHORIZED, invalid);
    }
    let r = action(&app, LOGIN, &call("login", json!({}), "x"), &[]).await;
    assert_json(
        &r,
        StatusCode::BAD_REQUEST,
        r#"{"message":"email: This field is required. password: This field is required.","extensions":{"email":["This field is required."],"password":["This field is required."]}}"#,
    );
    let r = action(&app, LOGIN, &call("login", json!({"email": ALICE, "password": ""}), "x"), &[]).await;
    assert_json(
        &r,
        StatusCode::BAD_REQUEST,
        r#"{"message":"password: This field may not be blank.","extensions":{"password":["This field may not be blank."]}}"#,
    );
    let r = action(&app, LOGIN, "not json", &[]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.json()["message"].as_str().unwrap().starts_with("JSON parse error - "), "{}", r.text);
    let r = action(&app, LOGIN, r#"{"input": [1]}"#, &[]).await;
    assert_json(&r, StatusCode::BAD_REQUEST, r#"{"message":"\"input\" must be an object."}"#);
}

async fn login_action_is_throttled_like_obtain(backend: Backend) {
    let Some(app) = TestApp::new(backend, &[]).await else { return };
    app.add_user(ALICE, PW, false, &[]).await;
    for _ in 0..5 {
        let r = action(&app, LOGIN, &call("login", json!({"email": ALICE, "password": "nope"}), "x"), &[]).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    }
    let r = action(&app, LOGIN, &call("login", json!({"email": ALICE, "password": PW}), "x"), &[]).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text);
    let secs: u64 = r.header("retry-after").expect("Retry-After").parse().unwrap();
    assert_json(
        &r,
        StatusCode::TOO_MANY_REQUESTS,
        &json!({"message": format!("Request was throttled. Expected available in {secs} seconds.")}).to_string(),
    );
}

async fn action_secret_is_required_when_configured(backend: Backend) {
    let flags = ["--hasura-action-secret", SECRET, "--allow-create-user", "open"];
    let Some(app) = TestApp::new(backend, &flags).await else { return };
    app.add_user(ALICE, PW, false, &[]).await;
    let refused = r#"{"message":"Invalid action secret"}"#;
    let login = call("login", json!({"email": ALICE, "password": PW}), "anonymous");
    let signup = call("signup", json!({"email": "new@example.com", "password": STRONG}), "anonymous");
    for body in [&login, &signup] {
        for path in [LOGIN, SIGNUP] {
            assert_json(&action(&app, path, body, &[]).await, StatusCode::UNAUTHORIZED, refused);
            let wrong = [("x-hasura-action-secret", "action-secret-012345678")];
            assert_json(&action(&app, path, body, &wrong).await, StatusCode::UNAUTHORIZED, refused);
        }
    }
    let right = [("X-Hasura-Action-Secret", SECRET)];
    assert_eq!(action(&app, LOGIN, &login, &right).await.status, StatusCode::OK);
    assert_eq!(action(&app, SIGNUP, &signup, &right).await.status, StatusCode::OK);
}

async fn signup_action_is_off_by_default(backend: Backend) {
    let Some(app) = TestApp::new(backend, &[]).await else { return };
    for path in [SIGNUP, "/hasura/actions/signup/"] {
        let body = call("signup", json!({"email": "new@example.com", "password": STRONG}), "admin");
        assert_json(&action(&app, path, &body, &[]).await, StatusCode::NOT_FOUND, r#"{"message":"Not found"}"#);
    }
    assert!(app.state.store.list_users().await.unwrap().is_empty());
}

async fn open_signup_action_creates_the_user_and_returns_id_and_email(backend: Backend) {
    let Some(app) = TestApp::new(backend, &["--allow-create-user", "open"]).await else { return };
    let body = call(
        "signup",
        json!({"email": " New.User@Example.COM ", "password": STRONG, "firstName": "New", "last_name": "User"}),
        "anonymous",
    );
    let r = action(&app, SIGNUP, &body, &[]).await;
    let created = app.state.store.find_by_email("new.user@example.com").await.unwrap().expect("created");
    assert_json(&r, StatusCode::OK, &json!({"id": created.user.id, "email": "new.user@example.com"}).to_string());
    assert_eq!((created.user.first_name.as_str(), created.user.last_name.as_str()), ("New", "User"));
    assert!(!created.user.is_staff && created.password_hash.starts_with("$argon2id$"));
    app.login("new.user@example.com", STRONG).await;
    // Nested input, trailing slash.
    let nested = call("signup", json!({"data": {"email": "second@example.com", "password": STRONG}}), "user");
    let r = action(&app, "/hasura/actions/signup/", &nested, &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json()["email"], "second@example.com");
}

async fn signup_action_refuses_taken_emails_and_weak_passwords(backend: Backend) {
    let Some(app) = TestApp::new(backend, &["--allow-create-user", "open"]).await else { return };
    app.add_user(ALICE, PW, false, &[]).await;
    let taken = call("signup", json!({"email": "Alice@Example.com", "password": STRONG}), "anonymous");
    assert_json(
        &action(&app, SIGNUP, &taken, &[]).await,
        StatusCode::BAD_REQUEST,
        r#"{"message":"This email already exists."}"#,
    );
    let weak = call("signup", json!({"email": "bob@example.com", "password": "12345678"}), "anonymous");
    assert_json(
        &action(&app, SIGNUP, &weak, &[]).await,
        StatusCode::BAD_REQUEST,
        r#"{"message":"This password is too common. This password is entirely numeric.","extensions":{"password":["This password is too common.","This password is entirely numeric."]}}"#,
    );
    let bad_email = call("signup", json!({"email": "not-an-email", "password": "short"}), "anonymous");
    let r = action(&app, SIGNUP, &bad_email, &[]).await;
    assert_json(
        &r,
        StatusCode::BAD_REQUEST,
        r#"{"message":"Enter a valid email address. This password is too short. It must contain at least 8 characters.","extensions":{"email":["Enter a valid email address."],"password":["This password is too short. It must contain at least 8 characters."]}}"#,
    );
    // Taken and weak at once: every problem, with the field map.
    let both = call("signup", json!({"email": ALICE, "password": "123"}), "anonymous");
    let v = action(&app, SIGNUP, &both, &[]).await.json();
    assert_eq!(v["extensions"]["email"], json!(["This email already exists."]));
    assert!(v["extensions"]["password"].is_array());
    assert_eq!(app.state.store.list_users().await.unwrap().len(), 1);
}

const DENIED: &str = r#"{"message":"You do not have permission to perform this action"}"#;

fn new_user(email: &str, role: &str) -> String {
    call("signup", json!({"email": email, "password": STRONG}), role)
}

async fn admin_signup_without_an_action_secret_is_always_refused(backend: Backend) {
    // Without a configured secret the role variable could be forged by any caller.
    let Some(app) = TestApp::new(backend, &["--allow-create-user", "admin"]).await else { return };
    assert_json(&action(&app, SIGNUP, &new_user("a@example.com", "admin"), &[]).await, StatusCode::FORBIDDEN, DENIED);
    assert!(app.state.store.list_users().await.unwrap().is_empty());
}

async fn admin_signup_needs_the_admin_role_and_the_action_secret(backend: Backend) {
    let flags = ["--allow-create-user", "admin", "--hasura-action-secret", SECRET];
    let Some(app) = TestApp::new(backend, &flags).await else { return };
    let secret = [("x-hasura-action-secret", SECRET)];
    let r = action(&app, SIGNUP, &new_user("a@example.com", "user"), &secret).await;
    assert_json(&r, StatusCode::FORBIDDEN, DENIED);
    let no_vars = json!({"action": {"name": "signup"}, "input": {"email": "a@example.com", "password": STRONG}});
    let r = action(&app, SIGNUP, &no_vars.to_string(), &secret).await;
    assert_json(&r, StatusCode::FORBIDDEN, DENIED);
    let r = action(&app, SIGNUP, &new_user("a@example.com", "admin"), &[]).await;
    assert_json(&r, StatusCode::UNAUTHORIZED, r#"{"message":"Invalid action secret"}"#);
    let r = action(&app, SIGNUP, &new_user("a@example.com", "admin"), &secret).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json()["email"], "a@example.com");
    // Session variable names are case-insensitive.
    let upper = json!({"input": {"email": "b@example.com", "password": STRONG},
                       "session_variables": {"X-Hasura-Role": "admin"}});
    assert_eq!(action(&app, SIGNUP, &upper.to_string(), &secret).await.status, StatusCode::OK);
}

both_backends!(
    login_action_returns_access_and_refresh_tokens,
    login_action_refuses_bad_credentials_and_missing_fields,
    login_action_is_throttled_like_obtain,
    action_secret_is_required_when_configured,
    signup_action_is_off_by_default,
    open_signup_action_creates_the_user_and_returns_id_and_email,
    signup_action_refuses_taken_emails_and_weak_passwords,
    admin_signup_without_an_action_secret_is_always_refused,
    admin_signup_needs_the_admin_role_and_the_action_secret,
);
