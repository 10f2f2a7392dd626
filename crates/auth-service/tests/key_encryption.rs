//! Asymmetric private keys at rest: sealed with `KEY_ENCRYPTION_KEY` (no PEM in the database
//! after start or after `migrate`), a wrong key is a clear start-up error, and `keys revoke`
//! takes a key out of the JWKS and refuses its tokens.

mod common;

use axum::http::StatusCode;
use common::{KEK, TestApp, header_text};
use serde_json::{Value, json};
use shared_user::both_backends;
use shared_user::testing::Backend;

const PW: &str = "correct horse battery";
const OTHER_KEK: &str = "b3RoZXIta2V5LWVuY3J5cHRpb24ta2V5LTMyLWJ5dGU=";

/// Runs the binary on the test database; returns (success, stdout, stderr).
fn cli(app: &TestApp, args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_auth-service"))
        .args(args)
        .env_clear()
        .env("DATABASE_URL", &app.db.url)
        .env("RUST_LOG", "error")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.success(), text(&out.stdout), text(&out.stderr))
}

async fn stored_keys(app: &TestApp) -> Vec<String> {
    app.state.store.signing_keys().await.unwrap().into_iter().map(|r| r.private_pem).collect()
}

fn kid_of(token: &str) -> String {
    serde_json::from_str::<Value>(&header_text(token)).unwrap()["kid"].as_str().unwrap().to_owned()
}

async fn jwks_kids(app: &TestApp) -> Vec<String> {
    let r = app.send(axum::http::Method::GET, "/.well-known/jwks.json", None, &[]).await;
    r.json()["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap().to_owned()).collect()
}

async fn private_keys_are_sealed_after_start(backend: Backend) {
    let Some(app) = TestApp::asymmetric(backend, &["--algorithm", "ES256"]).await else { return };
    let stored = stored_keys(&app).await;
    assert_eq!(stored.len(), 1);
    assert!(stored.iter().all(|k| !k.contains("PRIVATE KEY") && k.starts_with("gatehouse-aead-v1:")), "{stored:?}");
    app.add_user("alice@example.com", PW, false, &[]).await;
    let (_, access) = app.login("alice@example.com", PW).await;
    assert_eq!(app.get_bearer("/auth/user/", &access).await.status, StatusCode::OK);
}

async fn migrate_seals_keys_stored_before_encryption(backend: Backend) {
    // A database from before encryption: the key was stored as PEM.
    let Some(old) = TestApp::asymmetric(backend, &["--algorithm", "EdDSA", "--dev", "true"]).await else { return };
    assert!(stored_keys(&old).await[0].contains("BEGIN PRIVATE KEY"));
    old.add_user("alice@example.com", PW, false, &[]).await;
    let (_, access) = old.login("alice@example.com", PW).await;

    let (ok, stdout, _) = cli(&old, &["migrate"], &[]);
    assert!(ok && stdout.contains("1 signing key(s) stored unencrypted"), "{stdout}");
    let (ok, stdout, stderr) = cli(&old, &["migrate"], &[("KEY_ENCRYPTION_KEY", KEK)]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("1 plaintext signing key(s) encrypted"), "{stdout}");
    assert!(stored_keys(&old).await.iter().all(|k| !k.contains("PRIVATE KEY")), "no PEM left");

    // The service starts with the key and still accepts the tokens of before.
    let settings = common::settings(&["--algorithm", "EdDSA"]);
    let state = auth_service::AppState::build(settings.clone(), old.db.db.clone()).await.expect("start with the key");
    assert!(state.keys.verifier().decode(&access, None).is_ok());
}

async fn a_wrong_key_encryption_key_is_a_clear_startup_error(backend: Backend) {
    let Some(app) = TestApp::asymmetric(backend, &["--algorithm", "EdDSA"]).await else { return };
    let kid = app.state.store.signing_keys().await.unwrap()[0].kid.clone();
    let settings = common::settings(&["--algorithm", "EdDSA", "--key-encryption-key", OTHER_KEK]);
    let err = auth_service::AppState::build(settings.clone(), app.db.db.clone()).await.unwrap_err().to_string();
    assert_eq!(err, format!("KEY_ENCRYPTION_KEY does not open signing key {kid} (wrong key, or the row was altered)"));
    let (ok, _, stderr) =
        cli(&app, &["serve", "--bind", "127.0.0.1:0"], &[("ALGORITHM", "EdDSA"), ("KEY_ENCRYPTION_KEY", OTHER_KEK)]);
    assert!(!ok);
    assert_eq!(stderr.trim(), format!("auth-service: {err}"), "one clear line");
    let (ok, _, stderr) = cli(&app, &["serve", "--bind", "127.0.0.1:0"], &[("ALGORITHM", "EdDSA")]);
    assert!(!ok && stderr.trim().starts_with("auth-service: KEY_ENCRYPTION_KEY is not set"), "{stderr}");
    let (ok, _, stderr) = cli(&app, &["serve"], &[("ALGORITHM", "EdDSA"), ("KEY_ENCRYPTION_KEY", "c2hvcnQ=")]);
    assert!(!ok && stderr.contains("32 random bytes in base64") && !stderr.contains("c2hvcnQ"), "{stderr}");
}

async fn revoking_the_signing_key_unpublishes_it_and_refuses_its_tokens(backend: Backend) {
    let Some(app) = TestApp::asymmetric(backend, &["--algorithm", "EdDSA"]).await else { return };
    app.add_user("alice@example.com", PW, false, &[]).await;
    let (refresh, access) = app.login("alice@example.com", PW).await;
    let kid = kid_of(&access);

    let (ok, stdout, stderr) = cli(&app, &["keys", "revoke", &kid], &[("KEY_ENCRYPTION_KEY", KEK)]);
    assert!(ok, "{stderr}");
    assert!(stdout.starts_with(&format!("{kid} revoked")) && stdout.contains("signs now"), "{stdout}");
    common::reload_keys(&app).await;

    assert!(!jwks_kids(&app).await.contains(&kid), "unpublished");
    let r = app.post("/auth/token/verify/", &json!({"token": access}).to_string()).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    assert_eq!(app.get_bearer("/auth/user/", &access).await.status, StatusCode::UNAUTHORIZED);
    let r = app.post("/auth/token/refresh/", &json!({"refresh": refresh}).to_string()).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    // A successor signs; new tokens work.
    let (_, fresh) = app.login("alice@example.com", PW).await;
    assert_ne!(kid_of(&fresh), kid);
    assert_eq!(app.get_bearer("/auth/user/", &fresh).await.status, StatusCode::OK);
    assert!(stored_keys(&app).await.iter().all(|k| !k.contains("PRIVATE KEY")), "the successor is sealed too");

    // A staged key can be revoked as well; an unknown one is an error.
    let (ok, stdout, _) = cli(&app, &["keys", "rotate"], &[("KEY_ENCRYPTION_KEY", KEK)]);
    assert!(ok && stdout.starts_with("staged "), "{stdout}");
    let staged = stdout.split_whitespace().nth(1).unwrap().to_owned();
    let (ok, stdout, _) = cli(&app, &["keys", "revoke", &staged], &[("KEY_ENCRYPTION_KEY", KEK)]);
    assert!(ok && !stdout.contains("signs now"), "{stdout}");
    common::reload_keys(&app).await;
    assert!(!jwks_kids(&app).await.contains(&staged));
    let (ok, _, stderr) = cli(&app, &["keys", "revoke", "nope"], &[("KEY_ENCRYPTION_KEY", KEK)]);
    assert!(!ok && stderr.contains("no signing key \"nope\""), "{stderr}");
    let (ok, _, stderr) = cli(&app, &["keys", "rotate"], &[]);
    assert!(!ok && stderr.contains("KEY_ENCRYPTION_KEY is not set"), "{stderr}");
}

both_backends!(
    private_keys_are_sealed_after_start,
    migrate_seals_keys_stored_before_encryption,
    a_wrong_key_encryption_key_is_a_clear_startup_error,
    revoking_the_signing_key_unpublishes_it_and_refuses_its_tokens,
);
