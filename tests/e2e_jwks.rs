//! Client local mode against an auth-service with asymmetric keys: verification with the
//! cached JWKS, a rate-limited refetch for unknown kids, and key rotation without rejections.

mod common;

use common::{Options, Pair, token_not_valid};
use serde_json::json;
use shared_user::both_backends;
use shared_user::jsonwebtoken::{Algorithm, EncodingKey, Header};
use shared_user::testing::Backend;

const JWKS: &str = "/.well-known/jwks.json";

async fn pair(backend: Backend, alg: &'static str) -> Option<Pair> {
    Pair::start(
        backend,
        Options::new(client_service::VerifyMode::Local).auth(|s| s.algorithm = alg.parse().expect("algorithm")),
    )
    .await
}

async fn local_mode_verifies_with_the_cached_jwks(backend: Backend) {
    for alg in ["EdDSA", "ES256", "RS256"] {
        let Some(p) = pair(backend, alg).await else { return };
        p.add_user("alice@example.com", &[]).await;
        let (_, access) = p.login("alice@example.com").await;
        p.counter.reset();
        for _ in 0..10 {
            p.get("/api/test/", &access).await.expect_json(200, json!("success"));
        }
        assert_eq!(p.counter.get(JWKS), 1, "{alg}: one JWKS fetch, then none: {:?}", p.counter.snapshot());
        assert_eq!(p.counter.total(), 1, "{alg}: no other call per request: {:?}", p.counter.snapshot());
        p.finish().await;
    }
}

async fn rotated_keys_are_picked_up_on_the_first_unknown_kid(backend: Backend) {
    let Some(p) = pair(backend, "EdDSA").await else { return };
    p.add_user("alice@example.com", &[]).await;
    let (_, old_access) = p.login("alice@example.com").await;
    p.get("/api/test/", &old_access).await.expect_json(200, json!("success"));
    // The admin stages and promotes a new key without waiting for the client's cache.
    for _ in 0..2 {
        common::rotate_auth_key(&p, Algorithm::EdDSA).await;
    }
    common::reload_auth_keys(&p).await;
    let (_, new_access) = p.login_direct("alice@example.com").await;
    p.counter.reset();
    p.get("/api/test/", &new_access).await.expect_json(200, json!("success"));
    assert_eq!(p.counter.get(JWKS), 1, "one refetch for the new kid: {:?}", p.counter.snapshot());
    p.get("/api/test/", &old_access).await.expect_json(200, json!("success"));
    assert_eq!(p.counter.get(JWKS), 1, "the old key is still in the set");
    p.finish().await;
}

async fn unknown_kids_are_refused_and_refetched_at_most_once(backend: Backend) {
    let Some(p) = pair(backend, "EdDSA").await else { return };
    let id = p.add_user("alice@example.com", &[]).await;
    let (_, access) = p.login("alice@example.com").await;
    p.get("/api/test/", &access).await.expect_json(200, json!("success"));
    let now = chrono::Utc::now().timestamp();
    let claims = json!({"token_type": "access", "exp": now + 60, "iat": now, "jti": "x", "user_id": id});
    let pem = auth_service::tokens::generate_private_pem(Algorithm::EdDSA).unwrap();
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some("not-ours".into());
    let forged =
        shared_user::jsonwebtoken::encode(&header, &claims, &EncodingKey::from_ed_pem(pem.as_bytes()).unwrap())
            .unwrap();
    p.counter.reset();
    for _ in 0..5 {
        p.get("/api/test/", &forged).await.expect_client_401(token_not_valid());
    }
    assert!(p.counter.get(JWKS) <= 1, "refetches are rate limited: {:?}", p.counter.snapshot());
    p.finish().await;
}

async fn hmac_tokens_signed_with_the_public_key_are_refused(backend: Backend) {
    let Some(p) = pair(backend, "RS256").await else { return };
    let id = p.add_user("alice@example.com", &[]).await;
    let set: serde_json::Value =
        p.http.get(format!("{}{JWKS}", p.auth_url)).send().await.unwrap().json().await.unwrap();
    let kid = set["keys"][0]["kid"].as_str().unwrap().to_owned();
    let now = chrono::Utc::now().timestamp();
    let claims = json!({"token_type": "access", "exp": now + 60, "iat": now, "jti": "x", "user_id": id});
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(kid);
    let secret = serde_json::to_vec(&set["keys"][0]).unwrap();
    let confused = shared_user::jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(&secret)).unwrap();
    p.get("/api/test/", &confused).await.expect_client_401(token_not_valid());
    p.finish().await;
}

both_backends!(
    local_mode_verifies_with_the_cached_jwks,
    rotated_keys_are_picked_up_on_the_first_unknown_kid,
    unknown_kids_are_refused_and_refetched_at_most_once,
    hmac_tokens_signed_with_the_public_key_are_refused,
);
