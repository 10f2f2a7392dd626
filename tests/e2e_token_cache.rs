//! The client's verified-token cache (local mode) changes what a request costs, never what it
//! answers: a cached token stops working when it expires and when its signing key is withdrawn
//! from the JWKS (deactivation with a cached token: `e2e_errors::inactive_user_is_refused`).
//! That the token was served from the cache is read on the client's
//! `gatehouse_token_cache_total{result="hit"}`: a process-wide counter, so it is compared with a
//! lower bound (other tests in the same process only add to it).

mod common;

use std::time::Duration;

use client_service::VerifyMode;
use common::{Options, Pair, sign, token_not_valid};
use serde_json::json;
use shared_user::both_backends;
use shared_user::jsonwebtoken::Algorithm;
use shared_user::testing::Backend;

/// The client's verified-token cache hits so far (0 before the first).
async fn cache_hits(p: &Pair) -> f64 {
    let r = p.get_with("/metrics", &[]).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let series = "gatehouse_token_cache_total{result=\"hit\"} ";
    r.text.lines().find_map(|line| line.strip_prefix(series)?.parse().ok()).unwrap_or_default()
}

async fn a_cached_token_expires_on_time(backend: Backend) {
    let Some(p) = Pair::start(backend, Options::new(VerifyMode::Local)).await else { return };
    let id = p.add_user("alice@example.com", &[]).await;
    let now = chrono::Utc::now().timestamp();
    let short = sign(&json!({
        "token_type": "access", "exp": now + 2, "iat": now,
        "jti": "00000000000000000000000000000001", "user_id": id,
    }));
    let before = cache_hits(&p).await;
    for _ in 0..3 {
        p.get("/api/test/", &short).await.expect_json(200, json!("success"));
    }
    let hits = cache_hits(&p).await;
    assert!(hits >= before + 2.0, "the second and third requests were served from the cache: {before} then {hits}");
    tokio::time::sleep(Duration::from_millis(3100)).await;
    p.get("/api/test/", &short).await.expect_client_401(token_not_valid());
    p.finish().await;
}

async fn a_withdrawn_key_stops_its_cached_tokens(backend: Backend) {
    let options = Options::new(VerifyMode::Local)
        .auth(|s| s.algorithm = Algorithm::EdDSA)
        .configure(|c| c.jwks_ttl(Duration::from_millis(300)));
    let Some(p) = Pair::start(backend, options).await else { return };
    p.add_user("alice@example.com", &[]).await;
    let (_, old_access) = p.login("alice@example.com").await;
    let before = cache_hits(&p).await;
    p.get("/api/test/", &old_access).await.expect_json(200, json!("success"));
    p.get("/api/test/", &old_access).await.expect_json(200, json!("success"));
    let hits = cache_hits(&p).await;
    assert!(hits > before, "the second request was served from the cache: {before} then {hits}");

    // The admin rotates and then withdraws the old key at once (a leaked key, say).
    for _ in 0..2 {
        common::rotate_auth_key(&p, Algorithm::EdDSA).await;
    }
    let far = shared_user::user::now_utc() + chrono::Duration::days(1);
    assert_eq!(p.auth.store.delete_retired_keys(far).await.unwrap(), 1);
    common::reload_auth_keys(&p).await;

    // Once the client's JWKS is refetched, the remembered verdict no longer counts.
    tokio::time::sleep(Duration::from_millis(400)).await;
    p.get("/api/test/", &old_access).await.expect_client_401(token_not_valid());
    let (_, new_access) = p.login_direct("alice@example.com").await;
    p.get("/api/test/", &new_access).await.expect_json(200, json!("success"));
    p.finish().await;
}

both_backends!(a_cached_token_expires_on_time, a_withdrawn_key_stops_its_cached_tokens,);
