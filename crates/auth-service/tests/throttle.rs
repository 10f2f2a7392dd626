//! Brute-force protection on obtain and password change: 429 with Retry-After, counted per
//! client address and per account, without locking the owner out from their own address.

mod common;

use axum::http::StatusCode;
use common::{Reply, TestApp};
use serde_json::json;
use shared_user::both_backends;
use shared_user::testing::Backend;

const ALICE: &str = "alice@example.com";
const PW: &str = "correct horse battery";

async fn app(backend: Backend) -> Option<TestApp> {
    let app = TestApp::new(backend, &["--trusted-proxies", "10.255.0.0/24"]).await?;
    app.add_user(ALICE, PW, false, &[]).await;
    Some(app)
}

async fn send_via_proxy(app: &TestApp, path: &str, body: &str, ip: &str) -> Reply {
    common::post_via_proxy(&app.router, path, body, ip).await
}

async fn login_from(app: &TestApp, ip: &str, email: &str, password: &str) -> Reply {
    let body = json!({"email": email, "password": password}).to_string();
    send_via_proxy(app, "/auth/token/", &body, ip).await
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
        let r = send_via_proxy(&app, "/auth/password-change/", &body, "10.0.0.1").await;
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

async fn a_spoofed_left_most_hop_is_not_the_caller(backend: Backend) {
    let Some(app) = app(backend).await else { return };
    // The caller writes any left-most hop it likes; the proxy appends the real address.
    for i in 0..5 {
        let r = login_from(&app, &format!("6.6.6.{i}, 10.0.0.99"), ALICE, "wrong").await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "attempt {i}: {}", r.text);
    }
    assert_throttled(&login_from(&app, "7.7.7.7, 10.0.0.99", ALICE, PW).await);
    assert_eq!(login_from(&app, "10.0.0.98", ALICE, PW).await.status, StatusCode::OK);
}

async fn forwarded_addresses_from_untrusted_peers_are_ignored(backend: Backend) {
    // No TRUSTED_PROXIES: the peer is the caller, whatever it forwards.
    let Some(app) = TestApp::new(backend, &[]).await else { return };
    app.add_user(ALICE, PW, false, &[]).await;
    for i in 0..5 {
        let r = login_from(&app, &format!("10.0.0.{i}"), ALICE, "wrong").await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    }
    assert_throttled(&login_from(&app, "10.0.0.200", ALICE, PW).await);
}

async fn an_overlong_email_is_refused_before_any_write(backend: Backend) {
    let Some(app) = app(backend).await else { return };
    let email = format!("{}@example.com", "a".repeat(60_000));
    let r = login_from(&app, "10.0.0.1", &email, "x").await;
    common::assert_json(
        &r,
        StatusCode::BAD_REQUEST,
        r#"{"email":["Ensure this field has no more than 254 characters."]}"#,
    );
    let r = login_from(&app, "10.0.0.1", &format!("{}@example.com", "b".repeat(242)), "x").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "254 characters are still a login: {}", r.text);
    let keys = common::throttle_keys(&app).await;
    assert!(keys.iter().all(|k| k.len() < 300), "no counter keyed on the long email: {keys:?}");
    assert_eq!(keys.len(), 3, "only the 254-character attempt was counted: {keys:?}");
}

async fn failures_answer_no_sooner_than_the_configured_floor(backend: Backend) {
    let floor = std::time::Duration::from_millis(400);
    let Some(app) = TestApp::new(backend, &["--login-failure-min-time", "400ms"]).await else { return };
    // An imported Django account (its pbkdf2 check is slower than argon2's).
    let django = "pbkdf2_sha256$1000$Xq3vLm9TzR2pK8wN4bYc1e$3+2y/X0XTzwxi5rQ7TWARUzBexBDMEqAt5687gVgCyw=";
    app.add_user_with_hash("django@example.com", django).await;
    for email in ["django@example.com", "ghost@example.com"] {
        let started = std::time::Instant::now();
        let r = login_from(&app, "10.0.0.1", email, "wrong").await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
        assert!(started.elapsed() >= floor, "{email}: a failure answered before the floor");
    }
}

both_backends!(
    failures_answer_no_sooner_than_the_configured_floor,
    a_spoofed_left_most_hop_is_not_the_caller,
    forwarded_addresses_from_untrusted_peers_are_ignored,
    an_overlong_email_is_refused_before_any_write,
    repeated_failures_lock_the_account_from_that_address,
    unknown_emails_are_throttled_like_known_ones,
    one_address_spraying_many_accounts_is_throttled,
    a_successful_login_clears_the_account_counters,
    password_change_shares_the_limiter,
    the_limiter_can_be_switched_off,
    unknown_email_and_wrong_password_each_cost_one_hash_check,
);
