//! Asymmetric signing: EdDSA / ES256 / RS256 tokens with `kid`, the published JWKS, and key
//! rotation that never rejects a valid token.

mod common;

use axum::http::StatusCode;
use common::{TestApp, craft_with, header_text, now};
use serde_json::{Value, json};
use shared_user::both_backends;
use shared_user::jsonwebtoken::jwk::JwkSet;
use shared_user::jsonwebtoken::{Algorithm, EncodingKey, Header};
use shared_user::testing::Backend;
use shared_user::{TokenType, Verifier, VerifySettings};

const PW: &str = "correct horse battery";

async fn jwks(app: &TestApp) -> JwkSet {
    let r = app.send(axum::http::Method::GET, "/.well-known/jwks.json", None, &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.content_type(), "application/json");
    serde_json::from_str(&r.text).unwrap()
}

fn verifier_from(set: &JwkSet) -> Verifier {
    let keys = shared_user::jwks::keys_from_set(set);
    let settings = VerifySettings { algorithms: keys.iter().map(|k| k.algorithm).collect(), ..Default::default() };
    Verifier::new(settings, keys)
}

async fn each_algorithm_signs_with_kid_and_publishes_its_public_key(backend: Backend) {
    for alg in ["EdDSA", "ES256", "RS256"] {
        let Some(app) = TestApp::asymmetric(backend, &["--algorithm", alg]).await else { return };
        app.add_user("alice@example.com", PW, false, &[]).await;
        let (refresh, access) = app.login("alice@example.com", PW).await;
        let header: Value = serde_json::from_str(&header_text(&access)).unwrap();
        assert_eq!(header["alg"], alg);
        let set = jwks(&app).await;
        assert_eq!(set.keys.len(), 1);
        assert_eq!(header["kid"].as_str(), set.keys[0].common.key_id.as_deref());
        let text = serde_json::to_string(&set).unwrap();
        assert!(!text.contains("\"d\":"), "no private material: {text}");
        // A client holding only the JWKS verifies both tokens.
        let v = verifier_from(&set);
        assert!(v.decode(&access, Some(TokenType::Access)).is_ok());
        assert!(v.decode(&refresh, Some(TokenType::Refresh)).is_ok());
        // And the service's own endpoints accept them.
        let r = app.post("/auth/token/verify/", &json!({"token": access}).to_string()).await;
        assert_eq!((r.status, r.text.as_str()), (StatusCode::OK, "{}"));
        assert_eq!(app.get_bearer("/auth/user/", &access).await.status, StatusCode::OK);
        let r = app.post("/auth/token/refresh/", &json!({"refresh": refresh}).to_string()).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    }
}

async fn hmac_secret_is_never_published(backend: Backend) {
    let Some(app) = TestApp::new(backend, &[]).await else { return };
    let set = jwks(&app).await;
    assert!(set.keys.is_empty());
}

async fn rotation_publishes_the_next_key_first_and_keeps_old_tokens_valid(backend: Backend) {
    let Some(app) = TestApp::asymmetric(backend, &["--algorithm", "EdDSA"]).await else { return };
    app.add_user("alice@example.com", PW, false, &[]).await;
    let (old_refresh, old_access) = app.login("alice@example.com", PW).await;
    let first = jwks(&app).await;

    // Step 1: stage. The new key is published but does not sign yet.
    let staged =
        auth_service::keys::rotate_step(&app.state.store, Algorithm::ES256, Some(&common::kek())).await.unwrap();
    common::reload_keys(&app).await;
    let published = jwks(&app).await;
    assert_eq!(published.keys.len(), 2, "{staged:?}");
    let (_, still_old) = app.login("alice@example.com", PW).await;
    let kid = |t: &str| serde_json::from_str::<Value>(&header_text(t)).unwrap()["kid"].clone();
    assert_eq!(kid(&still_old), kid(&old_access));

    // A client that cached the JWKS after step 1 verifies tokens of either key.
    let client_view = verifier_from(&published);

    // Step 2: promote. New tokens carry the new kid; old ones still verify everywhere.
    auth_service::keys::rotate_step(&app.state.store, Algorithm::ES256, Some(&common::kek())).await.unwrap();
    common::reload_keys(&app).await;
    let (_, new_access) = app.login("alice@example.com", PW).await;
    assert_ne!(kid(&new_access), kid(&old_access));
    assert!(client_view.decode(&new_access, Some(TokenType::Access)).is_ok());
    assert!(client_view.decode(&old_access, Some(TokenType::Access)).is_ok());
    assert_eq!(app.get_bearer("/auth/user/", &old_access).await.status, StatusCode::OK);
    let r = app.post("/auth/token/refresh/", &json!({"refresh": old_refresh}).to_string()).await;
    assert_eq!(r.status, StatusCode::OK, "a refresh token of the retired key still works: {}", r.text);
    assert!(jwks(&app).await.keys.iter().any(|k| k.common.key_id == first.keys[0].common.key_id));
}

async fn algorithm_confusion_and_unknown_kids_are_refused(backend: Backend) {
    let Some(app) = TestApp::asymmetric(backend, &["--algorithm", "RS256"]).await else { return };
    let id = app.add_user("alice@example.com", PW, false, &[]).await;
    let set = jwks(&app).await;
    let kid = set.keys[0].common.key_id.clone().unwrap();
    let claims = json!({"token_type": "access", "exp": now() + 60, "iat": now(), "jti": "x", "user_id": id});
    // HS256 signed with the public key's JSON as the secret (classic RS/HS confusion).
    let public = serde_json::to_vec(&set.keys[0]).unwrap();
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(kid.clone());
    let confused = shared_user::jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(&public)).unwrap();
    // A token naming a kid we never published.
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("nope".into());
    let unknown = shared_user::jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(b"k")).unwrap();
    for token in [confused, unknown, craft_with(Algorithm::HS256, &claims)] {
        let r = app.post("/auth/token/verify/", &json!({"token": token}).to_string()).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        assert_eq!(r.text, r#"{"detail":"Token is invalid or expired","code":"token_not_valid"}"#);
    }
}

async fn keys_cli_stages_promotes_and_lists_without_private_material(backend: Backend) {
    let Some(app) = TestApp::asymmetric(backend, &["--algorithm", "EdDSA"]).await else { return };
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_auth-service"))
            .args(args)
            .env_clear()
            .env("DATABASE_URL", &app.db.url)
            .env("KEY_ENCRYPTION_KEY", common::KEK)
            .env("RUST_LOG", "error")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    assert!(run(&["keys", "rotate", "--algorithm", "EdDSA"]).starts_with("staged "));
    let listed = run(&["keys", "list"]);
    assert_eq!(listed.lines().count(), 2);
    assert!(listed.contains("\"status\":\"next\"") && listed.contains("\"status\":\"current\""));
    assert!(!listed.contains("PRIVATE KEY"));
    assert!(run(&["keys", "rotate", "--algorithm", "EdDSA"]).contains("is now current"));
    let listed = run(&["keys", "list"]);
    assert!(listed.contains("\"status\":\"retired\"") && !listed.contains("\"status\":\"next\""));
}

both_backends!(
    each_algorithm_signs_with_kid_and_publishes_its_public_key,
    hmac_secret_is_never_published,
    rotation_publishes_the_next_key_first_and_keeps_old_tokens_valid,
    algorithm_confusion_and_unknown_kids_are_refused,
    keys_cli_stages_promotes_and_lists_without_private_material,
);
