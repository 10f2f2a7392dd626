//! The token endpoints as a Django EasyJWT client sees them: obtain, refresh, verify, blacklist,
//! rotation and reuse detection, request parsing and error bodies, password hash upgrades.

mod common;

use auth_service::passwords::Hasher;
use auth_service::settings::Hashing;
use axum::http::{Method, StatusCode};
use common::*;
use serde_json::{Map, Value, json};
use shared_user::both_backends;
use shared_user::jsonwebtoken::Algorithm;
use shared_user::testing::Backend;

const ALICE: &str = "alice@example.com";
const PW: &str = "correct horse battery";
const NO_ACCOUNT: &str = r#"{"detail":"No active account found with the given credentials"}"#;
const INVALID: &str = "Token is invalid or expired";
const REQUIRED: &str = "This field is required.";

fn creds(email: &str, password: &str) -> String {
    json!({"email": email, "password": password}).to_string()
}

fn keys(text: &str) -> Vec<String> {
    serde_json::from_str::<Map<String, Value>>(text).unwrap().keys().cloned().collect()
}

/// A service with Alice in it.
async fn with_alice(backend: Backend, extra: &[&str]) -> Option<(TestApp, i64)> {
    let app = TestApp::new(backend, extra).await?;
    let id = app.add_user(ALICE, PW, false, &[]).await;
    Some((app, id))
}

async fn obtain_returns_refresh_then_access_with_easyjwt_claims(backend: Backend) {
    let Some((app, id)) = with_alice(backend, &[]).await else { return };
    let r = app.post("/auth/token/", &creds(ALICE, PW)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.content_type(), "application/json");
    assert_eq!(keys(&r.text), ["refresh", "access"]);
    assert!(r.text.starts_with(r#"{"refresh":""#) && !r.text.contains(' '), "compact, refresh first: {}", r.text);
    let v = r.json();
    let (refresh, access) = (v["refresh"].as_str().unwrap(), v["access"].as_str().unwrap());
    for (token, kind, lifetime) in [(refresh, "refresh", 86_400), (access, "access", 300)] {
        let text = payload_text(token);
        assert_eq!(keys(&text), ["token_type", "exp", "iat", "jti", "user_id"], "{text}");
        assert!(text.ends_with(&format!(r#","user_id":{id}}}"#)), "user_id is a JSON number: {text}");
        let p = payload(token);
        assert_eq!(p["token_type"], kind);
        let jti = p["jti"].as_str().unwrap();
        assert!(jti.len() == 32 && jti.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()), "{jti}");
        let (exp, iat) = (p["exp"].as_i64().unwrap(), p["iat"].as_i64().unwrap());
        assert_eq!(exp - iat, lifetime);
        assert!((iat - now()).abs() <= 5);
        let header: Value = serde_json::from_str(&header_text(token)).unwrap();
        assert_eq!(header, json!({"typ": "JWT", "alg": "HS256"}), "no kid with a shared secret");
    }
    assert_ne!(jti_of(refresh), jti_of(access));
    let record = app.state.store.find_refresh(&jti_of(refresh)).await.unwrap().expect("refresh token recorded");
    assert_eq!((record.user_id, record.revoked_at, record.replaced_by), (id, None, None));
}

async fn obtain_refuses_wrong_password_unknown_email_and_inactive_user_alike(backend: Backend) {
    let Some((app, id)) = with_alice(backend, &[]).await else { return };
    assert_401(&app.post("/auth/token/", &creds(ALICE, "wrong password")).await, NO_ACCOUNT);
    assert_401(&app.post("/auth/token/", &creds("nobody@example.com", PW)).await, NO_ACCOUNT);
    // Email matching is exact, as in Django (A3).
    assert_401(&app.post("/auth/token/", &creds("ALICE@example.com", PW)).await, NO_ACCOUNT);
    app.set_active(id, false).await;
    assert_401(&app.post("/auth/token/", &creds(ALICE, PW)).await, NO_ACCOUNT);
}

async fn obtain_reports_missing_fields_in_field_order(backend: Backend) {
    let Some((app, _)) = with_alice(backend, &[]).await else { return };
    let both = r#"{"email":["This field is required."],"password":["This field is required."]}"#;
    assert_json(&app.post("/auth/token/", "{}").await, StatusCode::BAD_REQUEST, both);
    assert_json(&app.post("/auth/token/", "").await, StatusCode::BAD_REQUEST, both);
    let r = app.post("/auth/token/", r#"{"username":"alice","password":"x"}"#).await;
    assert_json(&r, StatusCode::BAD_REQUEST, &field_error("email", REQUIRED));
    // Errors follow the serializer's field order, not the body's.
    let r = app.post("/auth/token/", r#"{"password":""}"#).await;
    assert_json(
        &r,
        StatusCode::BAD_REQUEST,
        r#"{"email":["This field is required."],"password":["This field may not be blank."]}"#,
    );
}

async fn obtain_reports_blank_fields(backend: Backend) {
    let Some((app, _)) = with_alice(backend, &[]).await else { return };
    let r = app.post("/auth/token/", r#"{"email":"","password":"   "}"#).await;
    assert_json(
        &r,
        StatusCode::BAD_REQUEST,
        r#"{"email":["This field may not be blank."],"password":["This field may not be blank."]}"#,
    );
}

async fn obtain_reports_null_and_non_string_fields_and_takes_numbers_as_text(backend: Backend) {
    let Some((app, _)) = with_alice(backend, &[]).await else { return };
    let r = app.post("/auth/token/", r#"{"email":null,"password":["x"]}"#).await;
    assert_json(
        &r,
        StatusCode::BAD_REQUEST,
        r#"{"email":["This field may not be null."],"password":["Not a valid string."]}"#,
    );
    let r = app.post("/auth/token/", r#"{"email":{"a":1},"password":true}"#).await;
    assert_json(&r, StatusCode::BAD_REQUEST, r#"{"email":["Not a valid string."],"password":["Not a valid string."]}"#);
    // DRF's CharField takes a JSON number as its text.
    app.add_user("numeric@example.com", "31415926535", false, &[]).await;
    let r = app.post("/auth/token/", r#"{"email":"numeric@example.com","password":31415926535}"#).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

async fn malformed_json_is_a_400_parse_error(backend: Backend) {
    let Some((app, _)) = with_alice(backend, &[]).await else { return };
    for (path, body) in [("/auth/token/", "not json"), ("/auth/token/refresh/", r#"{"refresh":"#)] {
        let r = app.post(path, body).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        assert_eq!(r.content_type(), "application/json");
        assert_eq!(keys(&r.text), ["detail"]);
        let detail = r.json()["detail"].as_str().unwrap().to_owned();
        assert!(detail.starts_with("JSON parse error - ") && detail.len() > 19, "{detail}");
    }
}

async fn json_arrays_and_scalars_are_400_non_field_errors(backend: Backend) {
    let Some((app, _)) = with_alice(backend, &[]).await else { return };
    for (body, kind) in [("[1,2]", "list"), (r#""x""#, "str"), ("3", "int"), ("null", "NoneType")] {
        let r = app.post("/auth/token/", body).await;
        let expected = format!(r#"{{"non_field_errors":["Invalid data. Expected a dictionary, but got {kind}."]}}"#);
        assert_json(&r, StatusCode::BAD_REQUEST, &expected);
    }
}

async fn form_encoded_obtain_works(backend: Backend) {
    let Some((app, _)) = with_alice(backend, &[]).await else { return };
    let form = "application/x-www-form-urlencoded";
    let r =
        app.send_typed("/auth/token/", Some(form), "email=alice%40example.com&password=correct+horse+battery").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(keys(&r.text), ["refresh", "access"]);
    let r = app.send_typed("/auth/token/", Some(form), "email=alice%40example.com").await;
    assert_json(&r, StatusCode::BAD_REQUEST, &field_error("password", REQUIRED));
    // JSON with a charset parameter is JSON.
    let r = app.send_typed("/auth/token/", Some("application/json; charset=utf-8"), &creds(ALICE, PW)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

async fn unsupported_content_type_is_415(backend: Backend) {
    let Some((app, _)) = with_alice(backend, &[]).await else { return };
    let r = app.send_typed("/auth/token/", Some("text/plain"), &creds(ALICE, PW)).await;
    assert_json(
        &r,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        r#"{"detail":"Unsupported media type \"text/plain\" in request."}"#,
    );
}

async fn oversized_bodies_are_413_json(backend: Backend) {
    let Some((app, _)) = with_alice(backend, &[]).await else { return };
    let body = json!({"email": ALICE, "password": "x".repeat(70 * 1024)}).to_string();
    let r = app.post("/auth/token/", &body).await;
    assert_json(&r, StatusCode::PAYLOAD_TOO_LARGE, r#"{"detail":"Request body is too large."}"#);
}

async fn wrong_method_is_405_json(backend: Backend) {
    let Some((app, _)) = with_alice(backend, &[]).await else { return };
    for path in ["/auth/token/", "/auth/token/refresh", "/auth/token/verify/", "/auth/token/blacklist/"] {
        let r = app.send(Method::GET, path, None, &[]).await;
        assert_json(&r, StatusCode::METHOD_NOT_ALLOWED, r#"{"detail":"Method \"GET\" not allowed."}"#);
    }
    let r = app.send(Method::PUT, "/auth/password-change/", Some("{}"), &[]).await;
    assert_json(&r, StatusCode::METHOD_NOT_ALLOWED, r#"{"detail":"Method \"PUT\" not allowed."}"#);
    let r = app.send(Method::POST, "/auth/user/", Some("{}"), &[]).await;
    assert_json(&r, StatusCode::METHOD_NOT_ALLOWED, r#"{"detail":"Method \"POST\" not allowed."}"#);
}

async fn unknown_paths_are_404_json(backend: Backend) {
    let Some((app, _)) = with_alice(backend, &[]).await else { return };
    for path in ["/", "/auth/", "/auth/nope/", "/auth/token/extra/", "/auth//token/"] {
        let r = app.post(path, "{}").await;
        assert_json(&r, StatusCode::NOT_FOUND, r#"{"detail":"Not found."}"#);
    }
    let r = app.get_with("/auth/login/", &[]).await;
    assert_json(&r, StatusCode::NOT_FOUND, r#"{"detail":"Not found."}"#);
}

async fn every_route_answers_with_and_without_the_trailing_slash(backend: Backend) {
    let Some((app, id)) = with_alice(backend, &[]).await else { return };
    for path in ["/auth/token/", "/auth/token"] {
        let r = app.post(path, &creds(ALICE, PW)).await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.text);
        assert_eq!(r.header("location"), None);
    }
    let (refresh, access) = app.login(ALICE, PW).await;
    for path in ["/auth/token/refresh/", "/auth/token/refresh"] {
        let r = app.post(path, &json!({"refresh": refresh}).to_string()).await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.text);
    }
    for path in ["/auth/token/verify/", "/auth/token/verify"] {
        assert_json(&app.post(path, &json!({"token": access}).to_string()).await, StatusCode::OK, "{}");
    }
    for path in ["/auth/user/", "/auth/user", &format!("/auth/users/{id}/"), &format!("/auth/users/{id}")] {
        let r = app.get_bearer(path, &access).await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.text);
    }
    let r = app.post("/auth/token/blacklist", &json!({"refresh": refresh}).to_string()).await;
    assert_json(&r, StatusCode::OK, "{}");
    let (refresh, _) = app.login(ALICE, PW).await;
    let r = app.post("/auth/token/blacklist/", &json!({"refresh": refresh}).to_string()).await;
    assert_json(&r, StatusCode::OK, "{}");
}

async fn token_endpoints_ignore_the_authorization_header(backend: Backend) {
    let Some((app, _)) = with_alice(backend, &[]).await else { return };
    let body = creds(ALICE, PW);
    let r = app.send(Method::POST, "/auth/token/", Some(&body), &[("authorization", "Bearer garbage")]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

async fn obtain_records_last_login(backend: Backend) {
    let Some((app, id)) = with_alice(backend, &[]).await else { return };
    assert_eq!(app.state.store.find_user(id).await.unwrap().unwrap().last_login, None);
    app.login(ALICE, PW).await;
    assert!(app.state.store.find_user(id).await.unwrap().unwrap().last_login.is_some());
}

async fn refresh_returns_only_a_new_access_token_by_default(backend: Backend) {
    let Some((app, id)) = with_alice(backend, &[]).await else { return };
    let (refresh, _) = app.login(ALICE, PW).await;
    for _ in 0..2 {
        let r = app.post("/auth/token/refresh/", &json!({"refresh": refresh}).to_string()).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.content_type(), "application/json");
        assert_eq!(keys(&r.text), ["access"]);
        let access = r.json()["access"].as_str().unwrap().to_owned();
        let p = payload(&access);
        assert_eq!((p["token_type"].as_str(), p["user_id"].as_i64()), (Some("access"), Some(id)));
        assert_eq!(keys(&payload_text(&access)), ["token_type", "exp", "iat", "jti", "user_id"]);
        assert_eq!(app.get_bearer("/auth/user/", &access).await.status, StatusCode::OK);
    }
}

async fn refresh_with_an_access_token_has_wrong_type(backend: Backend) {
    let Some((app, _)) = with_alice(backend, &[]).await else { return };
    let (_, access) = app.login(ALICE, PW).await;
    let r = app.post("/auth/token/refresh/", &json!({"refresh": access}).to_string()).await;
    assert_401(&r, &token_not_valid("Token has wrong type"));
}

async fn blacklist_with_an_access_token_has_wrong_type(backend: Backend) {
    let Some((app, _)) = with_alice(backend, &[]).await else { return };
    let (_, access) = app.login(ALICE, PW).await;
    let r = app.post("/auth/token/blacklist/", &json!({"refresh": access}).to_string()).await;
    assert_401(&r, &token_not_valid("Token has wrong type"));
}

/// Tokens that must all be "invalid or expired", derived from a genuine refresh token.
fn bad_tokens(genuine: &str, user_id: i64) -> Vec<(&'static str, String)> {
    let parts: Vec<&str> = genuine.split('.').collect();
    let mut tampered_claims = payload(genuine);
    tampered_claims["user_id"] = json!(user_id + 1);
    let encode = |v: &Value| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let tampered = format!("{}.{}.{}", parts[0], encode(&tampered_claims), parts[2]);
    let mut expired = claims("refresh", user_id);
    expired["exp"] = json!(now() - 10);
    expired["iat"] = json!(now() - 100);
    let mut future = claims("refresh", user_id);
    future["iat"] = json!(now() + 120);
    let mut not_yet = claims("refresh", user_id);
    not_yet["nbf"] = json!(now() + 120);
    let none_header = encode(&json!({"alg": "none", "typ": "JWT"}));
    let other_key = shared_user::jsonwebtoken::encode(
        &shared_user::jsonwebtoken::Header::default(),
        &claims("refresh", user_id),
        &shared_user::jsonwebtoken::EncodingKey::from_secret(b"another-key-another-key-another-key!"),
    )
    .unwrap();
    vec![
        ("garbage", "garbage".to_owned()),
        ("empty segments", "..".to_owned()),
        ("tampered payload", tampered),
        ("expired", craft(&expired)),
        ("iat in the future", craft(&future)),
        ("nbf in the future", craft(&not_yet)),
        ("alg none", format!("{none_header}.{}.", parts[1])),
        ("HS512 with the right key", craft_with(Algorithm::HS512, &claims("refresh", user_id))),
        ("another key", other_key),
    ]
}

async fn bad_tokens_are_invalid_or_expired_on_refresh_verify_and_blacklist(backend: Backend) {
    let Some((app, id)) = with_alice(backend, &[]).await else { return };
    let (refresh, _) = app.login(ALICE, PW).await;
    for (what, token) in bad_tokens(&refresh, id) {
        for (path, field) in [
            ("/auth/token/refresh/", "refresh"),
            ("/auth/token/verify/", "token"),
            ("/auth/token/blacklist/", "refresh"),
        ] {
            let r = app.post(path, &json!({ field: token }).to_string()).await;
            assert_eq!(r.text, token_not_valid(INVALID), "{what} on {path}");
            assert_401(&r, &token_not_valid(INVALID));
        }
    }
    // The genuine token is untouched by all that.
    let r = app.post("/auth/token/refresh/", &json!({"refresh": refresh}).to_string()).await;
    assert_eq!(r.status, StatusCode::OK);
}

async fn token_endpoints_report_missing_and_blank_fields(backend: Backend) {
    let Some((app, _)) = with_alice(backend, &[]).await else { return };
    for (path, field) in
        [("/auth/token/refresh/", "refresh"), ("/auth/token/verify/", "token"), ("/auth/token/blacklist/", "refresh")]
    {
        assert_json(&app.post(path, "{}").await, StatusCode::BAD_REQUEST, &field_error(field, REQUIRED));
        let blank = json!({ field: "" }).to_string();
        let r = app.post(path, &blank).await;
        assert_json(&r, StatusCode::BAD_REQUEST, &field_error(field, "This field may not be blank."));
        let null = json!({ field: null }).to_string();
        let r = app.post(path, &null).await;
        assert_json(&r, StatusCode::BAD_REQUEST, &field_error(field, "This field may not be null."));
    }
}

async fn verify_accepts_access_refresh_and_untyped_tokens(backend: Backend) {
    let Some((app, id)) = with_alice(backend, &[]).await else { return };
    let (refresh, access) = app.login(ALICE, PW).await;
    for token in [access, refresh] {
        assert_json(&app.post("/auth/token/verify/", &json!({"token": token}).to_string()).await, StatusCode::OK, "{}");
    }
    let mut untyped = claims("access", id);
    untyped.as_object_mut().unwrap().remove("token_type");
    let r = app.post("/auth/token/verify/", &json!({"token": craft(&untyped)}).to_string()).await;
    assert_json(&r, StatusCode::OK, "{}");
}

async fn verify_refuses_tokens_without_jti_or_exp(backend: Backend) {
    let Some((app, id)) = with_alice(backend, &[]).await else { return };
    let mut no_jti = claims("access", id);
    no_jti.as_object_mut().unwrap().remove("jti");
    let r = app.post("/auth/token/verify/", &json!({"token": craft(&no_jti)}).to_string()).await;
    assert_401(&r, &token_not_valid("Token has no id"));
    let mut no_exp = claims("access", id);
    no_exp.as_object_mut().unwrap().remove("exp");
    let r = app.post("/auth/token/verify/", &json!({"token": craft(&no_exp)}).to_string()).await;
    assert_401(&r, &token_not_valid("Token has no 'exp' claim"));
}

async fn blacklisted_refresh_token_is_refused_everywhere(backend: Backend) {
    let Some((app, _)) = with_alice(backend, &[]).await else { return };
    let (refresh, access) = app.login(ALICE, PW).await;
    let body = json!({"refresh": refresh}).to_string();
    assert_json(&app.post("/auth/token/blacklist/", &body).await, StatusCode::OK, "{}");
    let record = app.state.store.find_refresh(&jti_of(&refresh)).await.unwrap().unwrap();
    assert!(record.revoked_at.is_some());
    assert_401(&app.post("/auth/token/refresh/", &body).await, &token_not_valid("Token is blacklisted"));
    assert_401(&app.post("/auth/token/blacklist/", &body).await, &token_not_valid("Token is blacklisted"));
    let r = app.post("/auth/token/verify/", &json!({"token": refresh}).to_string()).await;
    assert_json(&r, StatusCode::BAD_REQUEST, r#"{"non_field_errors":["Token is blacklisted"]}"#);
    // Access tokens are not blacklist-checked: they live until they expire.
    let r = app.post("/auth/token/verify/", &json!({"token": access}).to_string()).await;
    assert_json(&r, StatusCode::OK, "{}");
}

async fn rotation_returns_a_new_refresh_token_and_retires_the_old_one(backend: Backend) {
    let Some((app, id)) = with_alice(backend, &["--rotate-refresh-tokens", "true"]).await else { return };
    let (old, _) = app.login(ALICE, PW).await;
    let r = app.post("/auth/token/refresh/", &json!({"refresh": old}).to_string()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(keys(&r.text), ["access", "refresh"]);
    let new = r.json()["refresh"].as_str().unwrap().to_owned();
    assert_eq!(keys(&payload_text(&new)), ["token_type", "exp", "iat", "jti", "user_id"]);
    assert_eq!((payload(&new)["token_type"].as_str(), payload(&new)["user_id"].as_i64()), (Some("refresh"), Some(id)));
    let old_record = app.state.store.find_refresh(&jti_of(&old)).await.unwrap().unwrap();
    let new_record = app.state.store.find_refresh(&jti_of(&new)).await.unwrap().unwrap();
    assert_eq!(old_record.replaced_by.as_deref(), Some(jti_of(&new).as_str()));
    assert_eq!(new_record.family, old_record.family);
    let r = app.post("/auth/token/verify/", &json!({"token": old}).to_string()).await;
    assert_json(&r, StatusCode::BAD_REQUEST, r#"{"non_field_errors":["Token is blacklisted"]}"#);
    let r = app.post("/auth/token/refresh/", &json!({"refresh": new}).to_string()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

async fn reusing_a_rotated_refresh_token_after_the_grace_revokes_its_family(backend: Backend) {
    let flags = ["--rotate-refresh-tokens", "true", "--refresh-reuse-grace", "0"];
    let Some((app, _)) = with_alice(backend, &flags).await else { return };
    let (first, _) = app.login(ALICE, PW).await;
    let (other_session, _) = app.login(ALICE, PW).await;
    let r = app.post("/auth/token/refresh/", &json!({"refresh": first}).to_string()).await;
    let second = r.json()["refresh"].as_str().unwrap().to_owned();
    let blacklisted = token_not_valid("Token is blacklisted");
    // A thief replays the rotated token: refused, and the whole family dies with it.
    assert_401(&app.post("/auth/token/refresh/", &json!({"refresh": first}).to_string()).await, &blacklisted);
    assert_401(&app.post("/auth/token/refresh/", &json!({"refresh": second}).to_string()).await, &blacklisted);
    let record = app.state.store.find_refresh(&jti_of(&second)).await.unwrap().unwrap();
    assert!(record.revoked_at.is_some());
    // Another login (another family) is unaffected.
    let r = app.post("/auth/token/refresh/", &json!({"refresh": other_session}).to_string()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

async fn reuse_within_the_grace_is_refused_but_keeps_the_family(backend: Backend) {
    let Some((app, _)) = with_alice(backend, &["--rotate-refresh-tokens", "true"]).await else { return };
    let (first, _) = app.login(ALICE, PW).await;
    let r = app.post("/auth/token/refresh/", &json!({"refresh": first}).to_string()).await;
    let second = r.json()["refresh"].as_str().unwrap().to_owned();
    let r = app.post("/auth/token/refresh/", &json!({"refresh": first}).to_string()).await;
    assert_401(&r, &token_not_valid("Token is blacklisted"));
    let r = app.post("/auth/token/refresh/", &json!({"refresh": second}).to_string()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

async fn rotation_without_blacklist_after_rotation_keeps_the_old_token_usable(backend: Backend) {
    let flags = ["--rotate-refresh-tokens", "true", "--blacklist-after-rotation", "false"];
    let Some((app, _)) = with_alice(backend, &flags).await else { return };
    let (first, _) = app.login(ALICE, PW).await;
    for _ in 0..2 {
        let r = app.post("/auth/token/refresh/", &json!({"refresh": first}).to_string()).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(keys(&r.text), ["access", "refresh"]);
    }
}

async fn concurrent_refreshes_with_one_token_rotate_only_once(backend: Backend) {
    let Some((app, _)) = with_alice(backend, &["--rotate-refresh-tokens", "true"]).await else { return };
    let (refresh, _) = app.login(ALICE, PW).await;
    let app = std::sync::Arc::new(app);
    let body = json!({"refresh": refresh}).to_string();
    let tasks: Vec<_> = (0..60)
        .map(|_| {
            let (app, body) = (app.clone(), body.clone());
            tokio::spawn(async move { app.post("/auth/token/refresh/", &body).await })
        })
        .collect();
    let mut won = 0;
    for task in tasks {
        let r = task.await.unwrap();
        match r.status {
            StatusCode::OK => won += 1,
            _ => assert_401(&r, &token_not_valid("Token is blacklisted")),
        }
    }
    assert_eq!(won, 1, "exactly one concurrent refresh wins the rotation");
}

async fn refresh_for_a_deactivated_user_is_no_active_account(backend: Backend) {
    let Some((app, id)) = with_alice(backend, &[]).await else { return };
    let (refresh, _) = app.login(ALICE, PW).await;
    app.set_active(id, false).await;
    let r = app.post("/auth/token/refresh/", &json!({"refresh": refresh}).to_string()).await;
    assert_401(&r, r#"{"detail":"No active account found for the given token.","code":"no_active_account"}"#);
}

async fn refresh_for_a_deleted_user_is_refused(backend: Backend) {
    let Some((app, id)) = with_alice(backend, &[]).await else { return };
    let (refresh, _) = app.login(ALICE, PW).await;
    app.delete_user(id).await;
    let r = app.post("/auth/token/refresh/", &json!({"refresh": refresh}).to_string()).await;
    assert_401(&r, &token_not_valid(INVALID));
}

async fn a_well_signed_refresh_token_that_was_never_issued_is_refused(backend: Backend) {
    let Some((app, id)) = with_alice(backend, &[]).await else { return };
    let forged = craft(&claims("refresh", id));
    let r = app.post("/auth/token/refresh/", &json!({"refresh": forged}).to_string()).await;
    assert_401(&r, &token_not_valid(INVALID));
}

async fn a_user_with_an_unusable_password_hash_cannot_log_in(backend: Backend) {
    let Some(app) = TestApp::new(backend, &[]).await else { return };
    // Django's set_unusable_password() and an empty column (a mirror-only row).
    app.add_user_with_hash("unusable@example.com", "!x8dGkE2mQ9yT4wR7zL1nB5vC3pH6jF0sA").await;
    app.add_user_with_hash("empty@example.com", "").await;
    for email in ["unusable@example.com", "empty@example.com"] {
        for password in ["", "!x8dGkE2mQ9yT4wR7zL1nB5vC3pH6jF0sA", PW] {
            let r = app.post("/auth/token/", &creds(email, password)).await;
            if password.is_empty() {
                assert_json(&r, StatusCode::BAD_REQUEST, &field_error("password", "This field may not be blank."));
            } else {
                assert_401(&r, NO_ACCOUNT);
            }
        }
    }
}

/// PostgreSQL only: its database can be taken away under a running pool, where an open SQLite
/// file survives its removal (SQLite's own fault, a lock held past the wait, is
/// `database is locked` and is tested with the mapping of database errors).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_outage_is_503_json_not_500_postgres() {
    let Some((app, _)) = with_alice(Backend::Postgres, &[]).await else { return };
    let (refresh, _) = app.login(ALICE, PW).await;
    let admin = std::env::var(shared_user::testing::PG_ENV).unwrap();
    let name = app.db.url.rsplit('/').next().unwrap().to_owned();
    {
        use diesel_async::{AsyncConnection, SimpleAsyncConnection};
        let mut conn = diesel_async::AsyncPgConnection::establish(&admin).await.unwrap();
        conn.batch_execute(&format!("DROP DATABASE {name} WITH (FORCE)")).await.unwrap();
    }
    let unavailable = r#"{"detail":"Service temporarily unavailable, try again later."}"#;
    assert_json(&app.get_with("/readyz", &[]).await, StatusCode::SERVICE_UNAVAILABLE, r#"{"status":"unavailable"}"#);
    assert_json(&app.get_with("/healthz", &[]).await, StatusCode::OK, r#"{"status":"ok"}"#);
    assert_json(&app.post("/auth/token/", &creds(ALICE, PW)).await, StatusCode::SERVICE_UNAVAILABLE, unavailable);
    let r = app.post("/auth/token/refresh/", &json!({"refresh": refresh}).to_string()).await;
    assert_json(&r, StatusCode::SERVICE_UNAVAILABLE, unavailable);
}

async fn login_rehashes_the_password_when_argon2_parameters_change(backend: Backend) {
    let Some(app) = TestApp::new(backend, &[]).await else { return };
    let weaker = Hashing { argon2_memory_kib: 128, argon2_iterations: 1, argon2_parallelism: 1 };
    let old_hash = Hasher::new(weaker, Some(1)).unwrap().hash(PW.into()).await.unwrap();
    assert!(old_hash.starts_with("$argon2id$v=19$m=128,t=1,p=1$"));
    app.add_user_with_hash(ALICE, &old_hash).await;
    assert_401(&app.post("/auth/token/", &creds(ALICE, "wrong password")).await, NO_ACCOUNT);
    assert_eq!(app.stored_hash(ALICE).await, old_hash, "a failed login changes nothing");
    app.login(ALICE, PW).await;
    let new_hash = app.stored_hash(ALICE).await;
    assert!(new_hash.starts_with("$argon2id$v=19$m=256,t=1,p=1$"), "{new_hash}");
    app.login(ALICE, PW).await;
    assert_eq!(app.stored_hash(ALICE).await, new_hash, "current parameters: no rehash");
}

async fn django_pbkdf2_hashes_are_accepted_and_upgraded_to_argon2id(backend: Backend) {
    let Some(app) = TestApp::new(backend, &[]).await else { return };
    // Django's make_password("django imported pw") format, 1000 iterations.
    let django = "pbkdf2_sha256$1000$Xq3vLm9TzR2pK8wN4bYc1e$3+2y/X0XTzwxi5rQ7TWARUzBexBDMEqAt5687gVgCyw=";
    app.add_user_with_hash("imported@example.com", django).await;
    assert_401(&app.post("/auth/token/", &creds("imported@example.com", "django imported PW")).await, NO_ACCOUNT);
    assert_eq!(app.stored_hash("imported@example.com").await, django);
    app.login("imported@example.com", "django imported pw").await;
    let upgraded = app.stored_hash("imported@example.com").await;
    assert!(upgraded.starts_with("$argon2id$"), "{upgraded}");
    app.login("imported@example.com", "django imported pw").await;
}

async fn issued_tokens_follow_lifetime_audience_and_issuer_settings(backend: Backend) {
    let flags = ["--access-token-lifetime", "1m", "--refresh-token-lifetime", "2h", "--audience", "svc"];
    let Some((app, id)) = with_alice(backend, &[&flags[..], &["--issuer", "gatehouse"]].concat()).await else { return };
    let (refresh, access) = app.login(ALICE, PW).await;
    for (token, lifetime) in [(&refresh, 7200), (&access, 60)] {
        let p = payload(token);
        assert_eq!(keys(&payload_text(token)), ["token_type", "exp", "iat", "jti", "user_id", "aud", "iss"]);
        assert_eq!(p["exp"].as_i64().unwrap() - p["iat"].as_i64().unwrap(), lifetime);
        assert_eq!((p["aud"].as_str(), p["iss"].as_str()), (Some("svc"), Some("gatehouse")));
    }
    let verify = |token: String| json!({"token": token}).to_string();
    assert_json(&app.post("/auth/token/verify/", &verify(access)).await, StatusCode::OK, "{}");
    // Without the audience and issuer, or with others, a token is refused.
    let mut other = claims("access", id);
    assert_401(&app.post("/auth/token/verify/", &verify(craft(&other))).await, &token_not_valid(INVALID));
    other["aud"] = json!("svc");
    other["iss"] = json!("someone-else");
    assert_401(&app.post("/auth/token/verify/", &verify(craft(&other))).await, &token_not_valid(INVALID));
    other["iss"] = json!("gatehouse");
    assert_json(&app.post("/auth/token/verify/", &verify(craft(&other))).await, StatusCode::OK, "{}");
}

async fn healthz_and_readyz_answer_ok(backend: Backend) {
    let Some(app) = TestApp::new(backend, &[]).await else { return };
    for path in ["/healthz", "/readyz"] {
        assert_json(&app.get_with(path, &[]).await, StatusCode::OK, r#"{"status":"ok"}"#);
    }
}

both_backends!(
    obtain_returns_refresh_then_access_with_easyjwt_claims,
    obtain_refuses_wrong_password_unknown_email_and_inactive_user_alike,
    obtain_reports_missing_fields_in_field_order,
    obtain_reports_blank_fields,
    obtain_reports_null_and_non_string_fields_and_takes_numbers_as_text,
    malformed_json_is_a_400_parse_error,
    json_arrays_and_scalars_are_400_non_field_errors,
    form_encoded_obtain_works,
    unsupported_content_type_is_415,
    oversized_bodies_are_413_json,
    wrong_method_is_405_json,
    unknown_paths_are_404_json,
    every_route_answers_with_and_without_the_trailing_slash,
    token_endpoints_ignore_the_authorization_header,
    obtain_records_last_login,
    refresh_returns_only_a_new_access_token_by_default,
    refresh_with_an_access_token_has_wrong_type,
    blacklist_with_an_access_token_has_wrong_type,
    bad_tokens_are_invalid_or_expired_on_refresh_verify_and_blacklist,
    token_endpoints_report_missing_and_blank_fields,
    verify_accepts_access_refresh_and_untyped_tokens,
    verify_refuses_tokens_without_jti_or_exp,
    blacklisted_refresh_token_is_refused_everywhere,
    rotation_returns_a_new_refresh_token_and_retires_the_old_one,
    reusing_a_rotated_refresh_token_after_the_grace_revokes_its_family,
    reuse_within_the_grace_is_refused_but_keeps_the_family,
    rotation_without_blacklist_after_rotation_keeps_the_old_token_usable,
    concurrent_refreshes_with_one_token_rotate_only_once,
    refresh_for_a_deactivated_user_is_no_active_account,
    refresh_for_a_deleted_user_is_refused,
    a_well_signed_refresh_token_that_was_never_issued_is_refused,
    a_user_with_an_unusable_password_hash_cannot_log_in,
    login_rehashes_the_password_when_argon2_parameters_change,
    django_pbkdf2_hashes_are_accepted_and_upgraded_to_argon2id,
    issued_tokens_follow_lifetime_audience_and_issuer_settings,
    healthz_and_readyz_answer_ok,
);
