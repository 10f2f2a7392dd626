//! Passkeys in a real browser: Debian's Chromium, headless, driven over WebDriver by
//! `fantoccini`, with a WebDriver virtual authenticator (CTAP2, internal transport, resident
//! keys, user verification) standing in for the platform authenticator. No part of WebAuthn is
//! mocked: the page calls `navigator.credentials.create/get` with the options the auth-service
//! answers, and posts the browser's answers back.
//!
//! The auth-service serves on a real TCP listener with `WEBAUTHN_RP_ID=localhost` and
//! `WEBAUTHN_ORIGIN=http://localhost:PORT` (a secure context); the same listener serves a blank
//! test page, so the page's scripts are same-origin with the API.
//!
//! Under CI (`CI` set to anything but empty, `0` or `false`) a missing `/usr/bin/chromium` or
//! `/usr/bin/chromedriver` fails the test; elsewhere the test is skipped with a printed reason.

mod common;

use std::net::{Ipv4Addr, SocketAddr};

use axum::http::StatusCode;
use common::browser::*;
use common::*;
use fantoccini::Client;
use serde_json::{Value, json};
use shared_user::both_backends;
use shared_user::testing::Backend;

const ALICE: &str = "alice@example.com";
const PW: &str = "correct horse battery";

/// Registers a passkey from the page: start (bearer), `navigator.credentials.create`, finish.
const REGISTER: &str = r#"
const [access, done] = arguments;
(async () => {
  const headers = {'Authorization': 'Bearer ' + access, 'Content-Type': 'application/json'};
  const start = await fetch('/auth/mfa/webauthn/register/start/', {method: 'POST', headers, body: JSON.stringify({name: 'laptop'})});
  const started = await start.json();
  if (start.status !== 200) return done({step: 'start', status: start.status, body: started});
  const created = await navigator.credentials.create({publicKey: PublicKeyCredential.parseCreationOptionsFromJSON(started.publicKey)});
  const finish = await fetch('/auth/mfa/webauthn/register/finish/', {method: 'POST', headers,
    body: JSON.stringify({ticket: started.ticket, credential: created.toJSON()})});
  done({step: 'finish', status: finish.status, body: await finish.json(), options: started.publicKey});
})().catch(e => done({error: String(e)}));
"#;

/// Signs in with a passkey from the page: start (with the `mfa_token`, or none for a
/// passwordless sign-in), `navigator.credentials.get`, finish.
const SIGN_IN: &str = r#"
const [mfaToken, done] = arguments;
(async () => {
  const headers = {'Content-Type': 'application/json'};
  const begin = mfaToken ? {mfa_token: mfaToken} : {};
  const start = await fetch('/auth/token/webauthn/start/', {method: 'POST', headers, body: JSON.stringify(begin)});
  const started = await start.json();
  if (start.status !== 200) return done({step: 'start', status: start.status, body: started});
  const asserted = await navigator.credentials.get({publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(started.publicKey)});
  const credential = asserted.toJSON();
  const finishing = {ticket: started.ticket, credential};
  if (mfaToken) finishing.mfa_token = mfaToken;
  const finish = await fetch('/auth/token/webauthn/finish/', {method: 'POST', headers, body: JSON.stringify(finishing)});
  done({step: 'finish', status: finish.status, body: await finish.json(), credential, options: started.publicKey});
})().catch(e => done({error: String(e)}));
"#;

async fn run(client: &Client, script: &str, args: Vec<Value>) -> Value {
    let out = client.execute_async(script, args).await.unwrap();
    assert!(out.get("error").is_none(), "the page failed: {out}");
    out
}

fn mfa_token_of(r: &Reply) -> String {
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    let v = r.json();
    assert_eq!(v["code"], "mfa_required", "{v}");
    assert_eq!(v["methods"], json!(["webauthn"]), "{v}");
    v["mfa_token"].as_str().unwrap().to_owned()
}

fn amr(token: &str) -> Value {
    payload(token)["amr"].clone()
}

/// Registration, then both sign-ins with the passkey: after the password (`mfa_required`
/// lists `webauthn`; amr `pwd hwk mfa`) and without one (amr `hwk user mfa`); a replayed
/// assertion is refused and counted; the passkey's use is recorded.
async fn passkey_registers_and_signs_in(backend: Backend) {
    if !browser_available() {
        return;
    }
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let origin = format!("http://localhost:{port}");
    let o = origin.clone();
    let Some(app) = TestApp::new(backend, move |s: &mut auth_service::Settings| {
        s.webauthn_rp_id = Some("localhost".into());
        s.webauthn_origin = Some(o);
    })
    .await
    else {
        return;
    };
    let alice = app.add_user(ALICE, PW, false, &[]).await;
    let (_, access) = app.login(ALICE, PW).await;

    // The API and a blank page on the same origin.
    let router = app.router.clone().route(
        "/passkey-test/",
        axum::routing::get(|| async { axum::response::Html("<!doctype html><title>passkeys</title><p>passkeys</p>") }),
    );
    let server = tokio::spawn(async move {
        axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>()).await.unwrap();
    });

    let profile = tempfile::tempdir().unwrap();
    let (_driver, client) = browser(profile.path()).await;
    let added = client.issue_cmd(AddVirtualAuthenticator).await.unwrap();
    let authenticator = added.as_str().map(str::to_owned).unwrap_or_else(|| added["authenticatorId"].to_string());
    client.goto(&format!("{origin}/passkey-test/")).await.unwrap();

    // Register.
    let out = run(&client, REGISTER, vec![json!(access)]).await;
    assert_eq!((out["step"].as_str(), out["status"].as_u64()), (Some("finish"), Some(201)), "{out}");
    assert_eq!(out["body"]["name"], "laptop", "{out}");
    assert_eq!(out["options"]["authenticatorSelection"]["residentKey"], "required", "{out}");
    assert_eq!(out["options"]["authenticatorSelection"]["userVerification"], "required", "{out}");
    let rows = app.state.store.passkeys_of(alice).await.unwrap();
    assert_eq!(rows.len(), 1, "one row in mfa_passkeys");
    assert_eq!(rows[0].name, "laptop");
    assert!(rows[0].last_used_at.is_none());
    let stored = client.issue_cmd(GetCredentials(authenticator)).await.unwrap();
    assert_eq!(stored.as_array().map(Vec::len), Some(1), "{stored}");
    assert_eq!(stored[0]["isResidentCredential"], true, "a discoverable credential: {stored}");
    let r = app.get_bearer("/auth/mfa/", &access).await;
    assert_eq!(r.json()["passkeys"][0]["name"], "laptop", "{}", r.text);

    // Registering the same authenticator again is refused by the browser (excluded).
    let again = client.execute_async(REGISTER, vec![json!(access)]).await.unwrap();
    assert!(again["error"].as_str().is_some_and(|e| e.contains("InvalidStateError")), "{again}");

    // Second factor after the password.
    let mfa_token = mfa_token_of(&app.post("/auth/token/", &json!({"email": ALICE, "password": PW}).to_string()).await);
    let out = run(&client, SIGN_IN, vec![json!(mfa_token)]).await;
    assert_eq!(out["status"], 200, "{out}");
    let allowed = out["options"]["allowCredentials"].as_array().map(Vec::len);
    assert_eq!(allowed, Some(1), "the user's passkeys are the allow-list: {out}");
    let access_2fa = out["body"]["access"].as_str().unwrap();
    assert_eq!(amr(access_2fa), json!(["pwd", "hwk", "mfa"]));
    assert_eq!(amr(out["body"]["refresh"].as_str().unwrap()), json!(["pwd", "hwk", "mfa"]));
    assert_eq!(payload(access_2fa)["user_id"], alice);
    let used = app.state.store.passkeys_of(alice).await.unwrap();
    assert!(used[0].last_used_at.is_some(), "the use is recorded");
    let replay = out["credential"].clone();

    // The same assertion again, for a new login and ticket: refused (another challenge), counted.
    let mfa_token = mfa_token_of(&app.post("/auth/token/", &json!({"email": ALICE, "password": PW}).to_string()).await);
    let start = app.post("/auth/token/webauthn/start/", &json!({"mfa_token": mfa_token}).to_string()).await;
    assert_eq!(start.status, StatusCode::OK, "{}", start.text);
    let ticket = start.json()["ticket"].as_str().unwrap().to_owned();
    let body = json!({"ticket": ticket, "mfa_token": mfa_token, "credential": replay});
    let r = app.post("/auth/token/webauthn/finish/", &body.to_string()).await;
    assert_401(&r, r#"{"detail":"Invalid code.","code":"mfa_code_invalid"}"#);
    let r = app.post("/auth/token/webauthn/finish/", &body.to_string()).await;
    assert_401(
        &r,
        r#"{"detail":"The sign-in expired or was already completed; sign in again.","code":"mfa_token_invalid"}"#,
    );
    let filter = auth_service::store::audit::AuditFilter { user_id: Some(alice), ..Default::default() };
    let kinds: Vec<String> = app.state.store.list_audit(&filter).await.unwrap().into_iter().map(|e| e.kind).collect();
    assert!(kinds.iter().any(|k| k == "mfa_failed"), "{kinds:?}");
    assert!(kinds.iter().any(|k| k == "mfa_enrolled"), "{kinds:?}");

    // Passwordless: no mfa_token, the browser picks the discoverable passkey.
    let out = run(&client, SIGN_IN, vec![Value::Null]).await;
    assert_eq!(out["status"], 200, "{out}");
    assert!(out["options"].get("allowCredentials").is_none_or(|a| a.as_array().is_some_and(Vec::is_empty)), "{out}");
    let access_pl = out["body"]["access"].as_str().unwrap();
    assert_eq!(amr(access_pl), json!(["hwk", "user", "mfa"]));
    assert_eq!(payload(access_pl)["user_id"], alice);
    let r = app.get_bearer("/auth/user/", access_pl).await;
    assert_eq!(r.status, StatusCode::OK, "the token signs in: {}", r.text);

    // Removed, the passkey no longer signs in.
    let id = rows[0].id;
    let r = app
        .send(
            axum::http::Method::DELETE,
            &format!("/auth/mfa/webauthn/{id}/"),
            None,
            &[("authorization", &format!("Bearer {access}"))],
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    let out = run(&client, SIGN_IN, vec![Value::Null]).await;
    assert_eq!(out["status"], 401, "{out}");
    let (_, access) = app.login(ALICE, PW).await;
    assert!(payload(&access).get("amr").is_none(), "back to a password-only login");

    client.close().await.unwrap();
    server.abort();
}

both_backends!(passkey_registers_and_signs_in);
