//! Brute-force protection on obtain and password change: 429 with Retry-After, counted per
//! client address and per account, without locking the owner out from their own address.

mod common;

use axum::http::{Method, StatusCode};
use common::{Reply, TestApp};
use serde_json::json;
use shared_user::both_backends;
use shared_user::testing::Backend;

const ALICE: &str = "alice@example.com";
const PW: &str = "correct horse battery";

async fn app(backend: Backend) -> Option<TestApp> {
    let app = TestApp::new(backend, &["--trust-x-forwarded-for", "true"]).await?;
    app.add_user(ALICE, PW, false, &[]).await;
    Some(app)
}

async fn login_from(app: &TestApp, ip: &str, email: &str, password: &str) -> Reply {
    let body = json!({"email": email, "password": password}).to_string();
    app.send(Method::POST, "/auth/token/", Some(&body), &[("x-forwarded-for", ip)]).await
}

fn assert_throttled(r: &Reply) {
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text);
    assert_eq!(r.content_type(), "application/json");
    let secs: u64 = r.header("retry-after").expect("Retry-After").parse().unwrap();
    assert!(secs >= 1);
    assert_eq!(r.text, format!(r#"{{"detail":"Request was throttled. Expected available in {secs} seconds."}}"#));
}

async fn repeated_failures_lock_the_account_from_that_address(backend: Backend) {
    let Some(app) = app(backend).await else { return };
    for _ in 0..5 {
        assert_eq!(login_from(&app, "10.0.0.1", ALICE, "wrong").await.status, StatusCode::UNAUTHORIZED);
    }
    // Even the right password waits now, from that address.
    assert_throttled(&login_from(&app, "10.0.0.1", ALICE, PW).await);
    // The owner, from their own address, is not locked out.
    assert_eq!(login_from(&app, "10.0.0.2", ALICE, PW).await.status, StatusCode::OK);
}

async fn unknown_emails_are_throttled_like_known_ones(backend: Backend) {
    let Some(app) = app(backend).await else { return };
    for _ in 0..5 {
        assert_eq!(login_from(&app, "10.0.0.1", "ghost@example.com", "x").await.status, StatusCode::UNAUTHORIZED);
    }
    assert_throttled(&login_from(&app, "10.0.0.1", "ghost@example.com", "x").await);
}

async fn one_address_spraying_many_accounts_is_throttled(backend: Backend) {
    let Some(app) = app(backend).await else { return };
    for i in 0..20 {
        let r = login_from(&app, "10.0.0.9", &format!("user{i}@example.com"), "guess").await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "attempt {i}: {}", r.text);
    }
    assert_throttled(&login_from(&app, "10.0.0.9", ALICE, PW).await);
    assert_eq!(login_from(&app, "10.0.0.10", ALICE, PW).await.status, StatusCode::OK);
}

async fn a_successful_login_clears_the_account_counters(backend: Backend) {
    let Some(app) = app(backend).await else { return };
    for _ in 0..4 {
        login_from(&app, "10.0.0.1", ALICE, "wrong").await;
    }
    assert_eq!(login_from(&app, "10.0.0.1", ALICE, PW).await.status, StatusCode::OK);
    for _ in 0..4 {
        assert_eq!(login_from(&app, "10.0.0.1", ALICE, "wrong").await.status, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(login_from(&app, "10.0.0.1", ALICE, PW).await.status, StatusCode::OK);
}

async fn password_change_shares_the_limiter(backend: Backend) {
    let Some(app) = app(backend).await else { return };
    let body = json!({"email": ALICE, "password": "wrong", "new_password": "Another-long-pass-42"}).to_string();
    for _ in 0..5 {
        let r = app.send(Method::POST, "/auth/password-change/", Some(&body), &[("x-forwarded-for", "10.0.0.1")]).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    }
    assert_throttled(&login_from(&app, "10.0.0.1", ALICE, PW).await);
}

async fn the_limiter_can_be_switched_off(backend: Backend) {
    let Some(app) = TestApp::new(backend, &["--login-throttle", "false"]).await else { return };
    app.add_user(ALICE, PW, false, &[]).await;
    for _ in 0..8 {
        login_from(&app, "10.0.0.1", ALICE, "wrong").await;
    }
    assert_eq!(login_from(&app, "10.0.0.1", ALICE, PW).await.status, StatusCode::OK);
}

async fn unknown_email_and_wrong_password_each_cost_one_hash_check(backend: Backend) {
    let Some(app) = app(backend).await else { return };
    let before = app.state.hasher.checks();
    login_from(&app, "10.0.0.1", "ghost@example.com", "x").await;
    assert_eq!(app.state.hasher.checks(), before + 1, "unknown email runs the dummy hash");
    login_from(&app, "10.0.0.2", ALICE, "wrong").await;
    assert_eq!(app.state.hasher.checks(), before + 2, "wrong password runs one hash");
}

both_backends!(
    repeated_failures_lock_the_account_from_that_address,
    unknown_emails_are_throttled_like_known_ones,
    one_address_spraying_many_accounts_is_throttled,
    a_successful_login_clears_the_account_counters,
    password_change_shares_the_limiter,
    the_limiter_can_be_switched_off,
    unknown_email_and_wrong_password_each_cost_one_hash_check,
);
