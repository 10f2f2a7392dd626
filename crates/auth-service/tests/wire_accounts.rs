//! EasyJWT 1.1 account endpoints: `POST /auth/create-user/` under `ALLOW_CREATE_USER`, and
//! `POST /auth/password-change/` (which revokes the user's refresh tokens).

mod common;

use axum::http::{Method, StatusCode};
use common::*;
use serde_json::{Value, json};
use shared_user::both_backends;
use shared_user::testing::Backend;

const ALICE: &str = "alice@example.com";
const PW: &str = "correct horse battery";
const STRONG: &str = "tangerine-voyage-42";
const OPEN: &[&str] = &["--allow-create-user", "open"];
const NOT_FOUND: &str = r#"{"detail":"Not found."}"#;
const TOO_SHORT: &str = "This password is too short. It must contain at least 8 characters.";
const TOO_COMMON: &str = "This password is too common.";
const NUMERIC: &str = "This password is entirely numeric.";
const INVALID_CREDENTIALS: &str = r#"{"non_field_errors":["Invalid credentials."]}"#;

async fn create(app: &TestApp, body: Value) -> Reply {
    app.post("/auth/create-user/", &body.to_string()).await
}

async fn user_count(app: &TestApp) -> usize {
    app.state.store.list_users().await.unwrap().len()
}

async fn create_user_is_not_routed_when_off(backend: Backend) {
    let Some(app) = TestApp::new(backend, &[]).await else { return };
    for path in ["/auth/create-user/", "/auth/create-user"] {
        let body = json!({"email": "new@example.com", "password": STRONG}).to_string();
        assert_json(&app.post(path, &body).await, StatusCode::NOT_FOUND, NOT_FOUND);
        assert_json(&app.get_with(path, &[]).await, StatusCode::NOT_FOUND, NOT_FOUND);
    }
    assert_eq!(user_count(&app).await, 0);
}

async fn open_create_user_answers_201_with_the_user_json_and_no_password(backend: Backend) {
    let Some(app) = TestApp::new(backend, OPEN).await else { return };
    let r = create(
        &app,
        json!({"email": " New.User@Test.COM ", "password": STRONG, "first_name": "New", "last_name": "User",
               "is_staff": true, "is_superuser": true}),
    )
    .await;
    let user = app.state.store.find_by_email("new.user@test.com").await.unwrap().expect("created, lowercased");
    assert_json(&r, StatusCode::CREATED, &serde_json::to_string(&user.user).unwrap());
    assert!(!r.text.contains("password") && !r.text.contains("argon2"));
    let v = r.json();
    assert_eq!((v["first_name"].as_str(), v["last_name"].as_str()), (Some("New"), Some("User")));
    assert_eq!(
        (v["is_active"].as_bool(), v["is_staff"].as_bool(), v["is_superuser"].as_bool()),
        (Some(true), Some(false), Some(false))
    );
    assert_eq!(v["last_login"], Value::Null);
    assert!(user.password_hash.starts_with("$argon2id$"));
    app.login("new.user@test.com", STRONG).await;
    // The other slash form works too; names are optional.
    let r =
        app.post("/auth/create-user", &json!({"email": "second@example.com", "password": STRONG}).to_string()).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.json()["first_name"], "");
}

async fn create_user_refuses_a_taken_email_in_any_case(backend: Backend) {
    let Some(app) = TestApp::new(backend, OPEN).await else { return };
    app.add_user(ALICE, PW, false, &[]).await;
    for email in [ALICE, "ALICE@Example.com"] {
        let r = create(&app, json!({"email": email, "password": STRONG})).await;
        assert_json(&r, StatusCode::BAD_REQUEST, r#"{"email":["This email already exists."]}"#);
    }
    assert_eq!(user_count(&app).await, 1);
}

async fn create_user_reports_missing_blank_and_null_fields(backend: Backend) {
    let Some(app) = TestApp::new(backend, OPEN).await else { return };
    let r = create(&app, json!({})).await;
    assert_json(
        &r,
        StatusCode::BAD_REQUEST,
        r#"{"email":["This field is required."],"password":["This field is required."]}"#,
    );
    let r = create(&app, json!({"email": "", "password": " "})).await;
    assert_json(
        &r,
        StatusCode::BAD_REQUEST,
        r#"{"email":["This field may not be blank."],"password":["This field may not be blank."]}"#,
    );
    let r =
        create(&app, json!({"email": "n@example.com", "password": STRONG, "first_name": null, "last_name": []})).await;
    assert_json(
        &r,
        StatusCode::BAD_REQUEST,
        r#"{"first_name":["This field may not be null."],"last_name":["Not a valid string."]}"#,
    );
    assert_eq!(user_count(&app).await, 0);
}

async fn create_user_refuses_invalid_and_overlong_emails(backend: Backend) {
    let Some(app) = TestApp::new(backend, OPEN).await else { return };
    for email in ["not-an-email", "a@b", "a b@example.com", "@example.com", "a@example..com"] {
        let r = create(&app, json!({"email": email, "password": STRONG})).await;
        assert_json(&r, StatusCode::BAD_REQUEST, r#"{"email":["Enter a valid email address."]}"#);
    }
    let long = format!("{}@example.com", "a".repeat(243));
    assert_eq!(long.len(), 255);
    let r = create(&app, json!({"email": long, "password": STRONG})).await;
    assert_json(&r, StatusCode::BAD_REQUEST, r#"{"email":["Ensure this field has no more than 254 characters."]}"#);
    let r = create(&app, json!({"email": "n@example.com", "password": STRONG, "last_name": "x".repeat(151)})).await;
    assert_json(&r, StatusCode::BAD_REQUEST, r#"{"last_name":["Ensure this field has no more than 150 characters."]}"#);
    assert_eq!(user_count(&app).await, 0);
}

async fn create_user_lists_every_password_problem_together(backend: Backend) {
    let Some(app) = TestApp::new(backend, OPEN).await else { return };
    let cases: [(&str, &[&str]); 4] = [
        ("12345", &[TOO_SHORT, TOO_COMMON, NUMERIC]),
        ("Password", &[TOO_COMMON]),
        ("73920461735", &[NUMERIC]),
        ("x7#k", &[TOO_SHORT]),
    ];
    for (password, problems) in cases {
        let r = create(&app, json!({"email": "n@example.com", "password": password})).await;
        assert_json(&r, StatusCode::BAD_REQUEST, &json!({ "password": problems }).to_string());
    }
    assert_eq!(user_count(&app).await, 0);
}

async fn create_user_refuses_passwords_similar_to_the_email_or_names(backend: Backend) {
    let Some(app) = TestApp::new(backend, OPEN).await else { return };
    for password in ["alice.smith", "smith.alice", "alice.smith@example", "alice2024"] {
        let r = create(&app, json!({"email": "alice.smith@example.com", "password": password})).await;
        assert_json(
            &r,
            StatusCode::BAD_REQUEST,
            r#"{"password":["The password is too similar to the email address."]}"#,
        );
    }
    let r =
        create(&app, json!({"email": "b@example.com", "password": "bartholomew1", "first_name": "Bartholomew"})).await;
    assert_json(&r, StatusCode::BAD_REQUEST, r#"{"password":["The password is too similar to the first name."]}"#);
    assert_eq!(user_count(&app).await, 0);
}

async fn create_user_reports_email_and_password_errors_together(backend: Backend) {
    let Some(app) = TestApp::new(backend, OPEN).await else { return };
    let r = create(&app, json!({"email": "nope", "password": "123"})).await;
    assert_json(
        &r,
        StatusCode::BAD_REQUEST,
        &json!({"email": ["Enter a valid email address."], "password": [TOO_SHORT, NUMERIC]}).to_string(),
    );
    app.add_user(ALICE, PW, false, &[]).await;
    let r = create(&app, json!({"email": ALICE, "password": "password"})).await;
    assert_json(
        &r,
        StatusCode::BAD_REQUEST,
        &json!({"email": ["This email already exists."], "password": [TOO_COMMON]}).to_string(),
    );
}

async fn admin_create_user_needs_a_staff_or_superuser_token(backend: Backend) {
    let Some(app) = TestApp::new(backend, &["--allow-create-user", "admin"]).await else { return };
    app.add_user(ALICE, PW, false, &[]).await;
    app.add_user("staff@example.com", PW, true, &[]).await;
    let body = json!({"email": "new@example.com", "password": STRONG}).to_string();
    let post = |auth: Option<String>| {
        let body = body.clone();
        let app = &app;
        async move {
            let headers: Vec<(&str, &str)> = auth.as_deref().map(|a| vec![("authorization", a)]).unwrap_or_default();
            app.send(Method::POST, "/auth/create-user/", Some(&body), &headers).await
        }
    };
    assert_401(&post(None).await, r#"{"detail":"Authentication credentials were not provided."}"#);
    // Authentication comes before the body: an invalid body still gets the 401.
    let r = app.post("/auth/create-user/", "not json").await;
    assert_401(&r, r#"{"detail":"Authentication credentials were not provided."}"#);
    assert_401(&post(Some("Bearer garbage".into())).await, &bearer_not_valid("Token is invalid or expired"));
    let (_, alice) = app.login(ALICE, PW).await;
    let r = post(Some(format!("Bearer {alice}"))).await;
    assert_json(&r, StatusCode::FORBIDDEN, r#"{"detail":"You do not have permission to perform this action."}"#);
    assert_eq!(user_count(&app).await, 2);
    let (_, staff) = app.login("staff@example.com", PW).await;
    let r = post(Some(format!("Bearer {staff}"))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.json()["email"], "new@example.com");
    assert_eq!(app.get_with("/auth/create-user/", &[]).await.status, StatusCode::METHOD_NOT_ALLOWED);
}

async fn change(app: &TestApp, path: &str, email: &str, password: &str, new_password: &str) -> Reply {
    app.post(path, &json!({"email": email, "password": password, "new_password": new_password}).to_string()).await
}

async fn password_change_reports_missing_fields(backend: Backend) {
    let Some(app) = TestApp::new(backend, &[]).await else { return };
    let r = app.post("/auth/password-change/", "{}").await;
    assert_json(
        &r,
        StatusCode::BAD_REQUEST,
        r#"{"email":["This field is required."],"password":["This field is required."],"new_password":["This field is required."]}"#,
    );
    let r = app
        .post("/auth/password-change/", &json!({"email": ALICE, "password": PW, "new_password": ""}).to_string())
        .await;
    assert_json(&r, StatusCode::BAD_REQUEST, r#"{"new_password":["This field may not be blank."]}"#);
}

async fn password_change_refuses_bad_credentials_alike(backend: Backend) {
    let Some(app) = TestApp::new(backend, &[]).await else { return };
    let id = app.add_user(ALICE, PW, false, &[]).await;
    let before = app.stored_hash(ALICE).await;
    for (email, password) in [(ALICE, "wrong password"), ("nobody@example.com", PW), ("ALICE@example.com", PW)] {
        let r = change(&app, "/auth/password-change/", email, password, STRONG).await;
        assert_json(&r, StatusCode::BAD_REQUEST, INVALID_CREDENTIALS);
    }
    // Credentials are checked before the new password, whose problems are not revealed.
    let r = change(&app, "/auth/password-change/", ALICE, "wrong password", "123").await;
    assert_json(&r, StatusCode::BAD_REQUEST, INVALID_CREDENTIALS);
    app.set_active(id, false).await;
    let r = change(&app, "/auth/password-change/", ALICE, PW, STRONG).await;
    assert_json(&r, StatusCode::BAD_REQUEST, INVALID_CREDENTIALS);
    assert_eq!(app.stored_hash(ALICE).await, before);
}

async fn password_change_validates_the_new_password(backend: Backend) {
    let Some(app) = TestApp::new(backend, &[]).await else { return };
    app.add_user(ALICE, PW, false, &[]).await;
    let r = change(&app, "/auth/password-change/", ALICE, PW, "12345").await;
    assert_json(&r, StatusCode::BAD_REQUEST, &json!({"new_password": [TOO_SHORT, TOO_COMMON, NUMERIC]}).to_string());
    let r = change(&app, "/auth/password-change/", ALICE, PW, "alice@example").await;
    assert_json(
        &r,
        StatusCode::BAD_REQUEST,
        r#"{"new_password":["The password is too similar to the email address."]}"#,
    );
    app.login(ALICE, PW).await;
}

async fn password_change_stores_a_new_hash_and_revokes_refresh_tokens(backend: Backend) {
    let Some(app) = TestApp::new(backend, &[]).await else { return };
    app.add_user(ALICE, PW, false, &[]).await;
    app.add_user("bob@example.com", PW, false, &[]).await;
    let (laptop, _) = app.login(ALICE, PW).await;
    let (phone, access) = app.login(ALICE, PW).await;
    let (bob, _) = app.login("bob@example.com", PW).await;
    let before = app.stored_hash(ALICE).await;
    let r = change(&app, "/auth/password-change", ALICE, PW, STRONG).await;
    assert_json(&r, StatusCode::OK, "{}");
    let after = app.stored_hash(ALICE).await;
    assert!(after.starts_with("$argon2id$") && after != before);
    let r = app.post("/auth/token/", &json!({"email": ALICE, "password": PW}).to_string()).await;
    assert_401(&r, r#"{"detail":"No active account found with the given credentials"}"#);
    for old in [&laptop, &phone] {
        let r = app.post("/auth/token/refresh/", &json!({"refresh": old}).to_string()).await;
        assert_401(&r, &token_not_valid("Token is blacklisted"));
    }
    // Earlier access tokens are refused at once (revocation watermark); other users keep their sessions.
    assert_eq!(app.get_bearer("/auth/user/", &access).await.status, StatusCode::UNAUTHORIZED);
    let r = app.post("/auth/token/refresh/", &json!({"refresh": bob}).to_string()).await;
    assert_eq!(r.status, StatusCode::OK);
    let (fresh, _) = app.login(ALICE, STRONG).await;
    let r = app.post("/auth/token/refresh/", &json!({"refresh": fresh}).to_string()).await;
    assert_eq!(r.status, StatusCode::OK);
}

async fn password_change_accepts_an_imported_django_hash(backend: Backend) {
    let Some(app) = TestApp::new(backend, &[]).await else { return };
    let django = "pbkdf2_sha256$1000$Xq3vLm9TzR2pK8wN4bYc1e$3+2y/X0XTzwxi5rQ7TWARUzBexBDMEqAt5687gVgCyw=";
    app.add_user_with_hash("imported@example.com", django).await;
    let r = change(&app, "/auth/password-change/", "imported@example.com", "django imported pw", STRONG).await;
    assert_json(&r, StatusCode::OK, "{}");
    assert!(app.stored_hash("imported@example.com").await.starts_with("$argon2id$"));
    app.login("imported@example.com", STRONG).await;
}

both_backends!(
    create_user_is_not_routed_when_off,
    open_create_user_answers_201_with_the_user_json_and_no_password,
    create_user_refuses_a_taken_email_in_any_case,
    create_user_reports_missing_blank_and_null_fields,
    create_user_refuses_invalid_and_overlong_emails,
    create_user_lists_every_password_problem_together,
    create_user_refuses_passwords_similar_to_the_email_or_names,
    create_user_reports_email_and_password_errors_together,
    admin_create_user_needs_a_staff_or_superuser_token,
    password_change_reports_missing_fields,
    password_change_refuses_bad_credentials_alike,
    password_change_validates_the_new_password,
    password_change_stores_a_new_hash_and_revokes_refresh_tokens,
    password_change_accepts_an_imported_django_hash,
);
