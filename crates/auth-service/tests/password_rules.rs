//! Sign-up's password validators hold for every way a password is set over HTTP by an admin:
//! a user created through the admin API and a password set through it (the console calls the
//! same service functions). The command line is covered in `cli_safety.rs`.

mod common;

use axum::http::{Method, StatusCode};
use common::*;
use serde_json::{Value, json};
use shared_user::both_backends;
use shared_user::testing::Backend;

const PW: &str = "correct horse battery";
const SHORT: &str = "This password is too short. It must contain at least 8 characters.";

async fn call(app: &TestApp, method: Method, path: &str, token: &str, body: Value) -> Reply {
    let auth = format!("Bearer {token}");
    app.send(method, path, Some(&body.to_string()), &[("authorization", auth.as_str())]).await
}

async fn admin_api_refuses_weak_passwords_on_create_and_set_password(backend: Backend) {
    let Some(app) = TestApp::new(backend, &[]).await else { return };
    let alice = app.add_user("alice@example.com", PW, false, &[]).await;
    app.add_user("staff@example.com", PW, true, &[]).await;
    let (_, staff) = app.login("staff@example.com", PW).await;

    let r =
        call(&app, Method::POST, "/auth/admin/users/", &staff, json!({"email": "bob@example.com", "password": "x"}))
            .await;
    assert_json(&r, StatusCode::BAD_REQUEST, &json!({"password": [SHORT]}).to_string());
    let r = call(
        &app,
        Method::POST,
        "/auth/admin/users/",
        &staff,
        json!({"email": "bob@example.com", "password": "password"}),
    )
    .await;
    assert_json(&r, StatusCode::BAD_REQUEST, r#"{"password":["This password is too common."]}"#);

    let path = format!("/auth/admin/users/{alice}/set-password/");
    let r = call(&app, Method::POST, &path, &staff, json!({"password": "x"})).await;
    assert_json(&r, StatusCode::BAD_REQUEST, &json!({"password": [SHORT]}).to_string());
    let r = call(&app, Method::POST, &path, &staff, json!({"password": "87654321"})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert!(
        r.json()["password"].as_array().unwrap().contains(&json!("This password is entirely numeric.")),
        "{}",
        r.text
    );

    // Nothing changed: no user bob, alice's password still the old one.
    assert!(app.state.store.find_by_email("bob@example.com").await.unwrap().is_none());
    app.login("alice@example.com", PW).await;
}

both_backends!(admin_api_refuses_weak_passwords_on_create_and_set_password);
