//! The obtain -> user round trip on both backends.

mod common;

use axum::http::StatusCode;
use common::TestApp;
use shared_user::both_backends;
use shared_user::testing::Backend;

async fn obtain_then_fetch_own_user(backend: Backend) {
    let Some(app) = TestApp::new(backend, &[]).await else { return };
    let id = app.add_user("alice@example.com", "correct horse", false, &["billing:admin"]).await;
    let (_refresh, access) = app.login("alice@example.com", "correct horse").await;
    let r = app.get_bearer("/auth/user/", &access).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.content_type(), "application/json");
    let v = r.json();
    assert_eq!(v["id"], id);
    assert_eq!(v["access_groups"][0]["name"], "billing");
}

both_backends!(obtain_then_fetch_own_user);
