//! Token lifecycle details: clock-skew leeway and the purge of expired records.

mod common;

use axum::http::StatusCode;
use common::{TestApp, claims, craft, now};
use serde_json::json;
use shared_user::both_backends;
use shared_user::testing::Backend;

const INVALID: &str = r#"{"detail":"Token is invalid or expired","code":"token_not_valid"}"#;

async fn leeway_tolerates_small_clock_skew_only(backend: Backend) {
    let Some(app) = TestApp::new(backend, &["--leeway", "30"]).await else { return };
    let id = app.add_user("alice@example.com", "correct horse battery", false, &[]).await;
    let app = &app;
    let verify = |token: String| async move {
        let r = app.post("/auth/token/verify/", &json!({"token": token}).to_string()).await;
        (r.status, r.text)
    };
    let mut skewed = claims("access", id);
    skewed["nbf"] = json!(now() + 20);
    skewed["iat"] = json!(now() + 20);
    assert_eq!(verify(craft(&skewed)).await, (StatusCode::OK, "{}".to_owned()), "within the leeway");
    skewed["nbf"] = json!(now() + 90);
    assert_eq!(verify(craft(&skewed)).await, (StatusCode::UNAUTHORIZED, INVALID.to_owned()), "beyond the leeway");
    let mut late = claims("access", id);
    late["exp"] = json!(now() - 10);
    assert_eq!(verify(craft(&late)).await.0, StatusCode::OK, "expired 10 s ago, 30 s leeway");
    late["exp"] = json!(now() - 60);
    assert_eq!(verify(craft(&late)).await, (StatusCode::UNAUTHORIZED, INVALID.to_owned()));
}

async fn expired_refresh_records_are_purged(backend: Backend) {
    let Some(app) = TestApp::new(backend, &["--refresh-token-lifetime", "2"]).await else { return };
    app.add_user("alice@example.com", "correct horse battery", false, &[]).await;
    app.login("alice@example.com", "correct horse battery").await;
    assert_eq!(app.state.store.purge_expired().await.unwrap(), 0, "nothing has expired yet");
    tokio::time::sleep(std::time::Duration::from_millis(3100)).await;
    let (tokens, _, _) =
        auth_service::cli::housekeeping(&app.state.store, std::time::Duration::from_secs(1)).await.unwrap();
    assert_eq!(tokens, 1, "the expired refresh record is deleted");
    assert_eq!(app.state.store.purge_expired().await.unwrap(), 0);
}

async fn a_refreshed_access_token_gets_its_own_iat(backend: Backend) {
    let Some(app) = TestApp::new(backend, &[]).await else { return };
    app.add_user("alice@example.com", "correct horse battery", false, &[]).await;
    let (refresh, _) = app.login("alice@example.com", "correct horse battery").await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let r = app.post("/auth/token/refresh/", &json!({"refresh": refresh}).to_string()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let access = r.json()["access"].as_str().unwrap().to_owned();
    let (old, new) = (common::payload(&refresh), common::payload(&access));
    assert!(new["iat"].as_i64() > old["iat"].as_i64(), "SimpleJWT 5.5.1: not a copy of the refresh iat");
    assert_eq!(new["user_id"], old["user_id"]);
}

both_backends!(
    leeway_tolerates_small_clock_skew_only,
    expired_refresh_records_are_purged,
    a_refreshed_access_token_gets_its_own_iat
);
