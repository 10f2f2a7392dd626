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
    // What happens next, and when: the staged key signs after the publication lead
    // (30 s reload + 5 min JWKS_MAX_AGE + 1 s by default).
    let staged: Value =
        listed.lines().map(|l| serde_json::from_str::<Value>(l).unwrap()).find(|k| k["status"] == "next").unwrap();
    assert_eq!(staged["next_step"], "sign");
    let at = |v: &Value| chrono::NaiveDateTime::parse_from_str(v.as_str().unwrap(), "%Y-%m-%dT%H:%M:%S%.fZ").unwrap();
    assert_eq!((at(&staged["next_step_at"]) - at(&staged["created_at"])).num_seconds(), 331, "{staged}");
    assert!(!listed.contains("PRIVATE KEY"));
    assert!(run(&["keys", "rotate", "--algorithm", "EdDSA"]).contains("is now current"));
    let listed = run(&["keys", "list"]);
    assert!(listed.contains("\"status\":\"retired\"") && !listed.contains("\"status\":\"next\""));
    assert!(listed.contains("\"next_step\":\"unpublish\"") && listed.contains("\"next_step\":\"stage_successor\""));
}

/// Eight replicas find the signing key due at the same moment: one stage is stored, and then
/// one promotion; every step is audited once.
async fn replicas_racing_to_rotate_take_each_step_once(backend: Backend) {
    use auth_service::keys::rotation::{Policy, step};
    use auth_service::store::signing_keys::KeyStep;
    let Some(app) = TestApp::asymmetric(backend, &["--algorithm", "EdDSA"]).await else { return };
    let policy = Policy { interval: std::time::Duration::from_secs(1), ..Policy::of(&app.state.settings) };
    let later = shared_user::user::now_utc() + chrono::Duration::hours(1);
    let kek = common::kek();
    for expected in ["staged", "promoted"] {
        let rows = app.state.store.signing_keys().await.unwrap();
        let mut racing = tokio::task::JoinSet::new();
        for _ in 0..8 {
            let (store, rows, kek) = (app.state.store.clone(), rows.clone(), kek.clone());
            racing.spawn(async move { step(&store, &rows, &policy, Some(&kek), later).await.unwrap() });
        }
        let steps: Vec<Option<KeyStep>> = racing.join_all().await;
        let taken: Vec<&KeyStep> = steps.iter().flatten().collect();
        assert_eq!(taken.len(), 1, "{expected}: exactly one replica takes the step: {steps:?}");
        let rows = app.state.store.signing_keys().await.unwrap();
        let count = |status: &str| rows.iter().filter(|r| r.status == status).count();
        match expected {
            "staged" => assert_eq!((count("current"), count("next")), (1, 1), "{rows:?}"),
            _ => assert_eq!((count("current"), count("next"), count("retired")), (1, 0, 1), "{rows:?}"),
        }
    }
}

async fn the_jwks_is_cacheable_with_an_etag_and_answers_304_while_unchanged(backend: Backend) {
    let Some(app) = TestApp::asymmetric(backend, &["--algorithm", "EdDSA"]).await else { return };
    let get = |headers: Vec<(&'static str, String)>| {
        let app = &app;
        async move {
            let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
            app.send(axum::http::Method::GET, "/.well-known/jwks.json", None, &headers).await
        }
    };
    let first = get(vec![]).await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(first.header("cache-control"), Some("public, max-age=300"), "JWKS_MAX_AGE 5m by default");
    let etag = first.header("etag").expect("an ETag").to_owned();
    assert!(etag.starts_with('"') && etag.ends_with('"') && etag.len() == 34, "a strong tag: {etag}");
    assert_eq!(get(vec![]).await.header("etag"), Some(etag.as_str()), "the same set, the same tag");

    // The tag of the current set, alone, weak or in a list: 304, no body, the same headers.
    for asked in [etag.clone(), format!("W/{etag}"), format!("\"stale\", {etag}"), "*".to_owned()] {
        let r = get(vec![("if-none-match", asked.clone())]).await;
        assert_eq!((r.status, r.text.as_str()), (StatusCode::NOT_MODIFIED, ""), "{asked}");
        assert_eq!(r.header("etag"), Some(etag.as_str()));
        assert_eq!(r.header("cache-control"), Some("public, max-age=300"));
    }
    let r = get(vec![("if-none-match", "\"some-other-set\"".to_owned())]).await;
    assert_eq!((r.status, r.text.as_str()), (StatusCode::OK, first.text.as_str()));

    // A staged key changes the set: the old tag no longer matches.
    auth_service::keys::rotate_step(&app.state.store, Algorithm::EdDSA, Some(&common::kek())).await.unwrap();
    common::reload_keys(&app).await;
    let r = get(vec![("if-none-match", etag.clone())]).await;
    assert_eq!(r.status, StatusCode::OK, "a changed set is sent in full");
    assert_ne!(r.header("etag"), Some(etag.as_str()));
    assert_eq!(serde_json::from_str::<JwkSet>(&r.text).unwrap().keys.len(), 2);
}

async fn jwks_max_age_is_a_setting(backend: Backend) {
    let tweak = |s: &mut auth_service::Settings| s.jwks_max_age = std::time::Duration::from_secs(42);
    let Some(app) = TestApp::new(backend, tweak).await else { return };
    let r = app.send(axum::http::Method::GET, "/.well-known/jwks.json", None, &[]).await;
    assert_eq!((r.status, r.text.as_str()), (StatusCode::OK, r#"{"keys":[]}"#));
    assert_eq!(r.header("cache-control"), Some("public, max-age=42"));
}

/// Discovery is off (the JSON 404 of an unknown path) until `ISSUER` is a URL; then both
/// addresses answer the same metadata, every endpoint under the issuer.
async fn discovery_needs_an_issuer_url_and_names_the_jwks(backend: Backend) {
    const PATHS: [&str; 2] = ["/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"];
    for issuer in [None, Some("gatehouse"), Some("https://auth.example/?tenant=1")] {
        let tweak = |s: &mut auth_service::Settings| s.issuer = issuer.map(str::to_owned);
        let Some(app) = TestApp::new(backend, tweak).await else { return };
        for path in PATHS {
            let r = app.send(axum::http::Method::GET, path, None, &[]).await;
            assert_eq!(
                (r.status, r.text.as_str()),
                (StatusCode::NOT_FOUND, r#"{"detail":"Not found."}"#),
                "{issuer:?}"
            );
        }
    }
    let tweak = |s: &mut auth_service::Settings| {
        s.issuer = Some("https://auth.internal:8443".into());
        s.audience = Some("api".into());
    };
    let Some(app) = TestApp::new(backend, tweak).await else { return };
    let expected = json!({
        "issuer": "https://auth.internal:8443",
        "jwks_uri": "https://auth.internal:8443/.well-known/jwks.json",
        "token_endpoint": "https://auth.internal:8443/auth/token/",
        "userinfo_endpoint": "https://auth.internal:8443/auth/user/",
        "revocation_endpoint": "https://auth.internal:8443/auth/token/blacklist/",
        "grant_types_supported": ["password", "refresh_token"],
        "token_endpoint_auth_methods_supported": ["none"],
        "response_types_supported": [],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["HS256"],
        "token_endpoint_auth_signing_alg_values_supported": [],
        "claims_supported": ["token_type", "exp", "iat", "jti", "user_id", "iss", "aud"],
    });
    for path in PATHS {
        let r = app.send(axum::http::Method::GET, path, None, &[]).await;
        assert_eq!(r.status, StatusCode::OK, "{path}");
        assert_eq!(serde_json::from_str::<Value>(&r.text).unwrap(), expected, "{path}");
        assert_eq!(r.header("cache-control"), Some("public, max-age=300"));
    }
    // The tokens carry the issuer the document names.
    app.add_user("alice@example.com", "Str0ng-Passw0rd!", false, &[]).await;
    let r = app.post("/auth/token/", r#"{"email": "alice@example.com", "password": "Str0ng-Passw0rd!"}"#).await;
    let access = r.json()["access"].as_str().unwrap().to_owned();
    let claims: Value = serde_json::from_str(&common::payload_text(&access)).unwrap();
    assert_eq!(claims["iss"], "https://auth.internal:8443");
}

/// Changing an HMAC secret: tokens of the earlier secret keep working where
/// `SIGNING_KEY_PREVIOUS` names it, new tokens carry the new secret, and without it the old
/// tokens are refused.
async fn an_earlier_hmac_secret_in_signing_key_previous_still_verifies(backend: Backend) {
    const NEW: &str = "the-new-signing-secret-0123456789abcdef";
    let Some(before) = TestApp::new(backend, &[]).await else { return };
    before.add_user("alice@example.com", PW, false, &[]).await;
    let (old_refresh, old_access) = before.login("alice@example.com", PW).await;

    // The same database, restarted with the new secret and the old one as previous.
    let db = before.db;
    let rotating = move |s: &mut auth_service::Settings| {
        s.signing_key = Some(NEW.into());
        s.signing_key_previous = Some(common::KEY.into());
    };
    let after = TestApp::with_db(db, rotating).await;
    let r = after.post("/auth/token/verify/", &json!({"token": old_access}).to_string()).await;
    assert_eq!((r.status, r.text.as_str()), (StatusCode::OK, "{}"), "an access token of the old secret");
    assert_eq!(after.get_bearer("/auth/user/", &old_access).await.status, StatusCode::OK);
    let r = after.post("/auth/token/refresh/", &json!({"refresh": old_refresh}).to_string()).await;
    assert_eq!(r.status, StatusCode::OK, "a refresh token of the old secret: {}", r.text);
    let fresh: Value = serde_json::from_str(&r.text).unwrap();
    let new_access = fresh["access"].as_str().unwrap().to_owned();
    let by_new = Verifier::hmac(VerifySettings::default(), NEW.as_bytes());
    assert!(by_new.decode(&new_access, Some(TokenType::Access)).is_ok(), "new tokens carry the new secret");
    let by_old = Verifier::hmac(VerifySettings::default(), common::KEY.as_bytes());
    assert!(by_old.decode(&new_access, None).is_err());

    // Step 3: the earlier secret removed, its tokens are refused like any foreign token.
    let db = after.db;
    let done = TestApp::with_db(db, |s: &mut auth_service::Settings| s.signing_key = Some(NEW.into())).await;
    let r = done.post("/auth/token/verify/", &json!({"token": old_access}).to_string()).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.text, r#"{"detail":"Token is invalid or expired","code":"token_not_valid"}"#);
    let r = done.post("/auth/token/verify/", &json!({"token": new_access}).to_string()).await;
    assert_eq!(r.status, StatusCode::OK);
}

#[test]
fn key_rotation_interval_must_outlast_the_publication_lead() {
    let settings = |interval: u64| auth_service::Settings {
        algorithm: Algorithm::EdDSA,
        dev: true,
        key_rotation_interval: std::time::Duration::from_secs(interval),
        ..auth_service::Settings::default()
    };
    // 30 s reload + 300 s JWKS_MAX_AGE + 0 s leeway + 1 s.
    let e = settings(331).validate().unwrap_err().to_string();
    assert!(
        e.starts_with("KEY_ROTATION_INTERVAL must be longer than the publication lead of a new key (5m 31s"),
        "{e}"
    );
    settings(332).validate().unwrap();
    settings(0).validate().unwrap();
}

#[test]
fn signing_key_previous_is_checked_like_signing_key() {
    let with = |previous: &str, algorithm: &str| auth_service::Settings {
        signing_key_previous: Some(previous.into()),
        algorithm: auth_service::tokens::parse_signing_algorithm(algorithm).unwrap(),
        signing_key: (algorithm == "HS256").then(|| common::KEY.into()),
        ..auth_service::Settings::default()
    };
    let err = with("changeme", "HS256").validate().unwrap_err().to_string();
    assert!(err.starts_with("SIGNING_KEY_PREVIOUS holds a secret that is a development placeholder"), "{err}");
    let err = with(&format!("{},short", common::KEY), "HS256").validate().unwrap_err().to_string();
    assert!(err.starts_with("SIGNING_KEY_PREVIOUS holds a secret that is shorter than 32 bytes"), "{err}");
    with(&format!("{}, another-earlier-secret-0123456789abcdef", common::KEY), "HS256").validate().unwrap();
    let err = with(common::KEY, "EdDSA").validate().unwrap_err().to_string();
    assert!(
        err.starts_with("SIGNING_KEY_PREVIOUS holds HMAC secrets and cannot be used with ALGORITHM=EdDSA"),
        "{err}"
    );
}

both_backends!(
    replicas_racing_to_rotate_take_each_step_once,
    discovery_needs_an_issuer_url_and_names_the_jwks,
    the_jwks_is_cacheable_with_an_etag_and_answers_304_while_unchanged,
    jwks_max_age_is_a_setting,
    an_earlier_hmac_secret_in_signing_key_previous_still_verifies,
    each_algorithm_signs_with_kid_and_publishes_its_public_key,
    hmac_secret_is_never_published,
    rotation_publishes_the_next_key_first_and_keeps_old_tokens_valid,
    algorithm_confusion_and_unknown_kids_are_refused,
    keys_cli_stages_promotes_and_lists_without_private_material,
);
