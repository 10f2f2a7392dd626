//! Passkeys over HTTP, the paths a browser is not needed for: the routes without
//! `WEBAUTHN_RP_ID`/`WEBAUTHN_ORIGIN`, the settings checked at start, tickets that are unknown,
//! used or someone else's, credentials that are not WebAuthn answers or do not verify (400/401
//! JSON, never 500), and removal by the owner only. The ceremonies themselves run in a real
//! browser in `passkeys_browser.rs`.

mod common;

use auth_service::audit::{AuditEvent, AuditKind};
use auth_service::service::passkeys::{INVALID_CREDENTIAL, INVALID_TICKET, NOT_CONFIGURED, REGISTRATION_REFUSED};
use axum::http::{Method, StatusCode};
use common::*;
use serde_json::{Value, json};
use shared_user::both_backends;
use shared_user::testing::Backend;

const ALICE: &str = "alice@example.com";
const BOB: &str = "bob@example.com";
const PW: &str = "correct horse battery";
const ORIGIN: &str = "http://localhost:8000";
const TOKEN_INVALID: &str =
    r#"{"detail":"The sign-in expired or was already completed; sign in again.","code":"mfa_token_invalid"}"#;

/// A registration answer that parses but proves nothing.
fn fake_attestation() -> Value {
    json!({"id": "AAAA", "rawId": "AAAA", "type": "public-key",
        "response": {"attestationObject": "AAAA", "clientDataJSON": "AAAA"}})
}

/// A sign-in answer that parses but proves nothing.
fn fake_assertion() -> Value {
    json!({"id": "AAAA", "rawId": "AAAA", "type": "public-key",
        "response": {"authenticatorData": "AAAA", "clientDataJSON": "AAAA", "signature": "AAAA", "userHandle": "AAAA"}})
}

async fn app(backend: Backend, passkeys_on: bool) -> Option<TestApp> {
    let app = TestApp::new(backend, move |s: &mut auth_service::Settings| {
        if passkeys_on {
            s.webauthn_rp_id = Some("localhost".into());
            s.webauthn_origin = Some(ORIGIN.into());
        }
    })
    .await?;
    app.add_user(ALICE, PW, false, &[]).await;
    app.add_user(BOB, PW, false, &[]).await;
    Some(app)
}

async fn call(app: &TestApp, method: Method, path: &str, token: Option<&str>, body: Value) -> Reply {
    let auth = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("authorization", a.as_str())).collect();
    app.send(method, path, Some(&body.to_string()), &headers).await
}

/// Without the settings every passkey route answers 400 naming them (removal still works).
async fn passkey_routes_say_which_settings_to_set(backend: Backend) {
    let Some(app) = app(backend, false).await else { return };
    let (_, access) = app.login(ALICE, PW).await;
    let expected = json!({"non_field_errors": [NOT_CONFIGURED]}).to_string();
    for (path, token, body) in [
        ("/auth/mfa/webauthn/register/start/", Some(access.as_str()), json!({})),
        (
            "/auth/mfa/webauthn/register/finish/",
            Some(&access),
            json!({"ticket": "x", "credential": fake_attestation()}),
        ),
        ("/auth/token/webauthn/start/", None, json!({})),
        ("/auth/token/webauthn/start/", None, json!({"mfa_token": "x"})),
        ("/auth/token/webauthn/finish/", None, json!({"ticket": "x", "credential": fake_assertion()})),
    ] {
        let r = call(&app, Method::POST, path, token, body).await;
        assert_json(&r, StatusCode::BAD_REQUEST, &expected);
    }
    let r = call(&app, Method::DELETE, "/auth/mfa/webauthn/1/", Some(&access), json!({})).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    let r = call(&app, Method::POST, "/auth/mfa/webauthn/register/start/", None, json!({})).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "registration needs a bearer token: {}", r.text);
}

/// Registration: the options ask for a discoverable credential with user verification; a
/// credential that is not a WebAuthn answer is a 400 that keeps the ticket; one that does not
/// verify uses it up; a ticket that is unknown or another user's is a 400.
async fn registration_refuses_bad_tickets_and_credentials(backend: Backend) {
    let Some(app) = app(backend, true).await else { return };
    let (_, alice) = app.login(ALICE, PW).await;
    let (_, bob) = app.login(BOB, PW).await;
    let start = "/auth/mfa/webauthn/register/start/";
    let finish = "/auth/mfa/webauthn/register/finish/";

    let r = call(&app, Method::POST, start, Some(&alice), json!({"name": "laptop"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let v = r.json();
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, ["ticket", "publicKey"]);
    let options = &v["publicKey"];
    assert_eq!(options["rp"]["id"], "localhost");
    assert_eq!(options["user"]["name"], ALICE);
    assert_ne!(options["user"]["id"], Value::from(ALICE), "the user handle names no one");
    assert_eq!(options["authenticatorSelection"]["residentKey"], "required");
    assert_eq!(options["authenticatorSelection"]["userVerification"], "required");
    let ticket = v["ticket"].as_str().unwrap().to_owned();

    let invalid = json!({"credential": [INVALID_CREDENTIAL]}).to_string();
    for garbage in [json!(42), json!({"foo": 1}), json!("not json"), json!([1, 2])] {
        let r = call(&app, Method::POST, finish, Some(&alice), json!({"ticket": ticket, "credential": garbage})).await;
        assert_json(&r, StatusCode::BAD_REQUEST, &invalid);
    }
    let r = call(&app, Method::POST, finish, Some(&alice), json!({"ticket": ticket})).await;
    assert_json(&r, StatusCode::BAD_REQUEST, r#"{"credential":["This field is required."]}"#);

    let bad_ticket = json!({"ticket": [INVALID_TICKET]}).to_string();
    let body = |ticket: &str| json!({"ticket": ticket, "credential": fake_attestation()});
    let r = call(&app, Method::POST, finish, Some(&alice), body("unknown")).await;
    assert_json(&r, StatusCode::BAD_REQUEST, &bad_ticket);
    let r = call(&app, Method::POST, finish, Some(&bob), body(&ticket)).await;
    assert_json(&r, StatusCode::BAD_REQUEST, &bad_ticket);

    let r = call(&app, Method::POST, start, Some(&alice), json!({})).await;
    let ticket = r.json()["ticket"].as_str().unwrap().to_owned();
    let r = call(&app, Method::POST, finish, Some(&alice), body(&ticket)).await;
    assert_json(&r, StatusCode::BAD_REQUEST, &json!({"credential": [REGISTRATION_REFUSED]}).to_string());
    let r = call(&app, Method::POST, finish, Some(&alice), body(&ticket)).await;
    assert_json(&r, StatusCode::BAD_REQUEST, &bad_ticket);

    let long = "x".repeat(101);
    let r = call(&app, Method::POST, start, Some(&alice), json!({"name": long})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert!(r.json()["name"].is_array(), "{}", r.text);
    let r = call(&app, Method::POST, start, Some(&alice), json!({"name": "a\u{0}b"})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    let id = app.state.store.find_by_email(ALICE).await.unwrap().unwrap().user.id;
    assert!(app.state.store.passkeys_of(id).await.unwrap().is_empty());
}

/// Sign-in: a dead `mfa_token` or ticket is 401 `mfa_token_invalid`, an assertion that proves
/// nothing is 401 `mfa_code_invalid`, a credential that is not one is 400; an account without a
/// passkey cannot start a passkey second step.
async fn sign_in_refuses_bad_tickets_and_assertions(backend: Backend) {
    let Some(app) = app(backend, true).await else { return };
    let start = "/auth/token/webauthn/start/";
    let finish = "/auth/token/webauthn/finish/";

    let r = call(&app, Method::POST, start, None, json!({"mfa_token": "unknown"})).await;
    assert_401(&r, TOKEN_INVALID);

    let r = call(&app, Method::POST, start, None, json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let v = r.json();
    assert!(v["publicKey"]["challenge"].is_string(), "{v}");
    assert!(v.get("mediation").is_none(), "the page chooses the mediation: {v}");
    let ticket = v["ticket"].as_str().unwrap().to_owned();

    let r = call(&app, Method::POST, finish, None, json!({"ticket": ticket, "credential": {"id": 1}})).await;
    assert_json(&r, StatusCode::BAD_REQUEST, &json!({"credential": [INVALID_CREDENTIAL]}).to_string());
    let r = call(&app, Method::POST, finish, None, json!({"ticket": "unknown", "credential": fake_assertion()})).await;
    assert_401(&r, TOKEN_INVALID);
    let r = call(&app, Method::POST, finish, None, json!({"ticket": ticket, "credential": fake_assertion()})).await;
    assert_401(&r, r#"{"detail":"Invalid code.","code":"mfa_code_invalid"}"#);
    let r = call(&app, Method::POST, finish, None, json!({"ticket": ticket, "credential": fake_assertion()})).await;
    assert_401(&r, TOKEN_INVALID);

    // A passwordless ticket does not finish a second step, and a second step needs its login.
    let r = call(&app, Method::POST, start, None, json!({})).await;
    let ticket = r.json()["ticket"].as_str().unwrap().to_owned();
    let body = json!({"ticket": ticket, "mfa_token": "unknown", "credential": fake_assertion()});
    let r = call(&app, Method::POST, finish, None, body).await;
    assert_401(&r, TOKEN_INVALID);
}

/// A passkey is removed by its owner only (404 for anyone else), audited `mfa_removed`.
async fn only_the_owner_removes_a_passkey(backend: Backend) {
    let Some(app) = app(backend, true).await else { return };
    let (_, alice) = app.login(ALICE, PW).await;
    let (_, bob) = app.login(BOB, PW).await;
    let bob_id = app.state.store.find_by_email(BOB).await.unwrap().unwrap().user.id;
    let event = AuditEvent::new(AuditKind::MfaEnrolled).user(bob_id);
    let id = app.state.store.insert_passkey(bob_id, "cred-1", "{}", "phone", &event).await.unwrap();

    let path = format!("/auth/mfa/webauthn/{id}/");
    let r = call(&app, Method::DELETE, &path, Some(&alice), json!({})).await;
    assert_json(&r, StatusCode::NOT_FOUND, r#"{"detail":"Not found."}"#);
    let r = call(&app, Method::DELETE, "/auth/mfa/webauthn/not-a-number/", Some(&bob), json!({})).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    let r = app.get_bearer("/auth/mfa/", &bob).await;
    assert_eq!(r.json()["passkeys"][0]["name"], "phone", "{}", r.text);
    let r = call(&app, Method::DELETE, &path, Some(&bob), json!({})).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    let r = call(&app, Method::DELETE, &path, Some(&bob), json!({})).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    let filter = auth_service::store::audit::AuditFilter { user_id: Some(bob_id), ..Default::default() };
    let rows = app.state.store.list_audit(&filter).await.unwrap();
    let removed = rows.iter().find(|e| e.kind == "mfa_removed").expect("mfa_removed recorded");
    let detail: Value = serde_json::from_str(removed.detail.as_deref().unwrap()).unwrap();
    assert_eq!(detail, json!({"method": "webauthn"}));
}

/// Passwordless sign-ins store a challenge before anyone is known: an address may start 30 a
/// minute, then 429 with `Retry-After`; another address is not affected.
async fn passwordless_starts_are_limited_per_address(backend: Backend) {
    let Some(app) = TestApp::new(backend, |s: &mut auth_service::Settings| {
        s.webauthn_rp_id = Some("localhost".into());
        s.webauthn_origin = Some(ORIGIN.into());
        s.trusted_proxies = vec!["10.255.0.0/24".into()];
    })
    .await
    else {
        return;
    };
    for n in 0..30 {
        let r = post_via_proxy(&app.router, "/auth/token/webauthn/start/", "{}", "10.9.0.1").await;
        assert_eq!(r.status, StatusCode::OK, "start {n}: {}", r.text);
    }
    let r = post_via_proxy(&app.router, "/auth/token/webauthn/start/", "{}", "10.9.0.1").await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text);
    assert!(r.header("retry-after").is_some());
    let r = post_via_proxy(&app.router, "/auth/token/webauthn/start/", "{}", "10.9.0.2").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

both_backends!(
    passwordless_starts_are_limited_per_address,
    passkey_routes_say_which_settings_to_set,
    registration_refuses_bad_tickets_and_credentials,
    sign_in_refuses_bad_tickets_and_assertions,
    only_the_owner_removes_a_passkey,
);

/// The two settings go together, the origin is a secure one, and the relying party id is its
/// host or a parent domain of it.
#[test]
fn webauthn_settings_are_checked_at_start() {
    let with = |rp: Option<&str>, origin: Option<&str>| {
        let mut s = base_settings();
        s.webauthn_rp_id = rp.map(str::to_owned);
        s.webauthn_origin = origin.map(str::to_owned);
        s.validate().map_err(|e| e.to_string())
    };
    assert!(with(None, None).is_ok());
    assert!(with(Some("localhost"), Some("http://localhost:8000")).is_ok());
    assert!(with(Some("example.com"), Some("https://app.example.com")).is_ok());
    let err = with(Some("example.com"), None).unwrap_err();
    assert!(err.contains("WEBAUTHN_RP_ID and WEBAUTHN_ORIGIN"), "{err}");
    let err = with(None, Some("https://example.com")).unwrap_err();
    assert!(err.contains("WEBAUTHN_RP_ID and WEBAUTHN_ORIGIN"), "{err}");
    let err = with(Some("example.com"), Some("http://example.com")).unwrap_err();
    assert!(err.contains("https://"), "{err}");
    let err = with(Some("other.com"), Some("https://example.com")).unwrap_err();
    assert!(err.contains("WEBAUTHN_RP_ID"), "{err}");
    let err = with(Some("example.com"), Some("not a url")).unwrap_err();
    assert!(err.contains("WEBAUTHN_ORIGIN"), "{err}");
}
