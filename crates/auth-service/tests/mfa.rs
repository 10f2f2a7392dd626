//! A second factor (TOTP with recovery codes) over HTTP: enrolment, login in two steps, `amr`
//! kept across refresh, single use of codes and `mfa_token`s, removal, a superuser's reset,
//! GraphQL's two steps, and code guessing throttled like password guessing. TOTP codes are
//! computed here from the enrolled secret.

mod common;

use auth_service::factors::Authenticator;
use auth_service::store::NewUser;
use axum::http::{Method, StatusCode};
use common::*;
use serde_json::{Value, json};
use shared_user::both_backends;
use shared_user::testing::Backend;

const ALICE: &str = "alice@example.com";
const BOB: &str = "bob@example.com";
const PW: &str = "correct horse battery";
async fn app(backend: Backend) -> Option<TestApp> {
    let app = TestApp::new(backend, &["--rotate-refresh-tokens", "true", "--trusted-proxies", "10.255.0.0/24"]).await?;
    app.add_user(ALICE, PW, false, &[]).await;
    app.add_user(BOB, PW, false, &[]).await;
    Some(app)
}

fn unix_now() -> u64 {
    u64::try_from(chrono::Utc::now().timestamp()).unwrap()
}

/// The code of the step `offset` steps from now (-1, 0, +1 are accepted; each once, in order).
fn code(auth: &Authenticator, offset: i64) -> String {
    auth.code_at(unix_now().checked_add_signed(offset * 30).unwrap())
}

async fn call(app: &TestApp, method: Method, path: &str, token: &str, body: Option<Value>) -> Reply {
    let auth = format!("Bearer {token}");
    let body = body.map(|b| b.to_string());
    app.send(method, path, body.as_deref(), &[("authorization", &auth)]).await
}

async fn login_reply(app: &TestApp, email: &str) -> Reply {
    app.post("/auth/token/", &json!({"email": email, "password": PW}).to_string()).await
}

/// Enrols TOTP for the user of `access` (confirming with the code of the previous step);
/// returns the authenticator and the recovery codes.
async fn enrol(app: &TestApp, access: &str, email: &str) -> (Authenticator, Vec<String>) {
    let r = call(app, Method::POST, "/auth/mfa/totp/", access, None).await;
    assert_eq!((r.status, r.content_type()), (StatusCode::OK, "application/json"), "{}", r.text);
    let v = r.json();
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, ["secret", "otpauth_uri", "qr_svg"]);
    let secret = totp_rs::Secret::try_from_base32(v["secret"].as_str().unwrap()).unwrap();
    let uri = v["otpauth_uri"].as_str().unwrap();
    assert!(uri.starts_with("otpauth://totp/Gatehouse:"), "{uri}");
    assert!(uri.contains(&format!("secret={}", v["secret"].as_str().unwrap())), "{uri}");
    assert!(v["qr_svg"].as_str().unwrap().starts_with("<?xml") || v["qr_svg"].as_str().unwrap().contains("<svg"));
    let auth = Authenticator::new(secret.as_bytes().to_vec(), "Gatehouse", email).unwrap();

    let wrong = call(app, Method::POST, "/auth/mfa/totp/confirm/", access, Some(json!({"code": "000000"}))).await;
    let right = code(&auth, -1);
    if right != "000000" {
        assert_json(&wrong, StatusCode::BAD_REQUEST, r#"{"code":["Invalid code."]}"#);
    }
    let r = call(app, Method::POST, "/auth/mfa/totp/confirm/", access, Some(json!({"code": right}))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let codes: Vec<String> =
        r.json()["recovery_codes"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_owned()).collect();
    assert_eq!(codes.len(), 10);
    (auth, codes)
}

/// The `mfa_token` of a login answered 401 `mfa_required`, after checking the whole body.
fn mfa_token_of(r: &Reply, methods: &[&str]) -> String {
    assert_eq!((r.status, r.content_type()), (StatusCode::UNAUTHORIZED, "application/json"), "{}", r.text);
    assert_eq!(r.header("www-authenticate"), Some("Bearer realm=\"api\""));
    let v = r.json();
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, ["detail", "code", "mfa_token", "methods"], "{v}");
    assert_eq!(v["detail"], "Multi-factor authentication required.");
    assert_eq!(v["code"], "mfa_required");
    assert_eq!(v["methods"], json!(methods));
    let token = v["mfa_token"].as_str().unwrap().to_owned();
    assert!(token.len() >= 40, "an opaque random token");
    token
}

fn claim_names(token: &str) -> Vec<String> {
    payload(token).as_object().unwrap().keys().cloned().collect()
}

async fn audit_kinds(app: &TestApp, user_id: i64) -> Vec<String> {
    let filter = auth_service::store::audit::AuditFilter { user_id: Some(user_id), ..Default::default() };
    let rows = app.state.store.list_audit(&filter).await.unwrap();
    rows.into_iter().rev().map(|r| r.kind).collect()
}

async fn user_id(app: &TestApp, email: &str) -> i64 {
    app.state.store.find_by_email(email).await.unwrap().unwrap().user.id
}

/// Enrolment, then a login in two steps: the password answers 401 `mfa_required` with an
/// `mfa_token`, the code answers the pair; the tokens say `amr` and keep it across refresh,
/// while a password-only user's tokens keep exactly today's claims. A code, a recovery code
/// and an `mfa_token` are each accepted once; the secret is sealed in the database.
async fn totp_login_takes_two_steps(backend: Backend) {
    let Some(app) = app(backend).await else { return };
    let (_, access) = app.login(ALICE, PW).await;
    let r = call(&app, Method::GET, "/auth/mfa/", &access, None).await;
    assert_json(&r, StatusCode::OK, r#"{"totp":false,"recovery_codes_remaining":0,"passkeys":[]}"#);
    let (auth, recovery) = enrol(&app, &access, ALICE).await;
    let r = call(&app, Method::GET, "/auth/mfa/", &access, None).await;
    assert_json(&r, StatusCode::OK, r#"{"totp":true,"recovery_codes_remaining":10,"passkeys":[]}"#);
    let again = call(&app, Method::POST, "/auth/mfa/totp/", &access, None).await;
    assert_json(
        &again,
        StatusCode::BAD_REQUEST,
        r#"{"non_field_errors":["A TOTP authenticator is already enrolled; remove it first."]}"#,
    );

    let alice = user_id(&app, ALICE).await;
    let stored = app.state.store.find_totp(alice).await.unwrap().unwrap();
    assert!(stored.secret.starts_with("gatehouse-aead-v1:"), "sealed at rest");
    assert!(!stored.secret.contains(&auth.secret_base32()));

    // Step one: the right password, no tokens.
    let token = mfa_token_of(&login_reply(&app, ALICE).await, &["totp"]);
    let wrong = app.post("/auth/token/mfa/", &json!({"mfa_token": token, "code": "12345"}).to_string()).await;
    assert_401(&wrong, r#"{"detail":"Invalid code.","code":"mfa_code_invalid"}"#);
    let now_code = code(&auth, 0);
    let r = app.post("/auth/token/mfa/", &json!({"mfa_token": token, "code": now_code}).to_string()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let v = r.json();
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, ["refresh", "access"]);
    let (refresh, access_mfa) = (v["refresh"].as_str().unwrap().to_owned(), v["access"].as_str().unwrap().to_owned());
    assert_eq!(claim_names(&access_mfa), ["token_type", "exp", "iat", "jti", "user_id", "amr"]);
    assert_eq!(payload(&access_mfa)["amr"], json!(["pwd", "otp", "mfa"]));
    assert_eq!(payload(&refresh)["amr"], json!(["pwd", "otp", "mfa"]));

    // The session keeps what the login proved.
    let r = app.post("/auth/token/refresh/", &json!({"refresh": refresh}).to_string()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(payload(r.json()["access"].as_str().unwrap())["amr"], json!(["pwd", "otp", "mfa"]));
    assert_eq!(payload(r.json()["refresh"].as_str().unwrap())["amr"], json!(["pwd", "otp", "mfa"]));

    // Used once: the same mfa_token, and the same code in a new login, are refused.
    let reused = app.post("/auth/token/mfa/", &json!({"mfa_token": token, "code": code(&auth, 1)}).to_string()).await;
    assert_401(
        &reused,
        r#"{"detail":"The sign-in expired or was already completed; sign in again.","code":"mfa_token_invalid"}"#,
    );
    let token = mfa_token_of(&login_reply(&app, ALICE).await, &["totp"]);
    let replay = app.post("/auth/token/mfa/", &json!({"mfa_token": token, "code": now_code}).to_string()).await;
    assert_401(&replay, r#"{"detail":"Invalid code.","code":"mfa_code_invalid"}"#);
    // A recovery code works once, typed in any case.
    let typed = recovery[3].to_uppercase();
    let r = app.post("/auth/token/mfa/", &json!({"mfa_token": token, "code": typed}).to_string()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(payload(r.json()["access"].as_str().unwrap())["amr"], json!(["pwd", "otp", "mfa"]));
    let token = mfa_token_of(&login_reply(&app, ALICE).await, &["totp"]);
    let r = app.post("/auth/token/mfa/", &json!({"mfa_token": token, "code": recovery[3]}).to_string()).await;
    assert_401(&r, r#"{"detail":"Invalid code.","code":"mfa_code_invalid"}"#);
    let r = call(&app, Method::GET, "/auth/mfa/", &access, None).await;
    assert_eq!(r.json()["recovery_codes_remaining"], 9);

    // A user without a factor: exactly today's wire.
    let r = login_reply(&app, BOB).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(claim_names(r.json()["access"].as_str().unwrap()), ["token_type", "exp", "iat", "jti", "user_id"]);
    assert_eq!(claim_names(r.json()["refresh"].as_str().unwrap()), ["token_type", "exp", "iat", "jti", "user_id"]);

    let kinds = audit_kinds(&app, alice).await;
    for kind in ["mfa_enrolled", "mfa_failed", "login_succeeded"] {
        assert!(kinds.iter().any(|k| k == kind), "{kind} in {kinds:?}");
    }
    let filter = auth_service::store::audit::AuditFilter { user_id: Some(alice), ..Default::default() };
    let rows = app.state.store.list_audit(&filter).await.unwrap();
    let mfa_login = rows.iter().find(|r| r.kind == "login_succeeded").unwrap();
    assert_eq!(mfa_login.detail.as_deref(), Some(r#"{"amr":["pwd","otp","mfa"]}"#));

    let metrics = app.get_with("/metrics", &[]).await.text;
    for line in [
        r#"gatehouse_mfa_enrolled_total{method="totp"} 1"#,
        r#"gatehouse_mfa_verified_total{method="totp"} 1"#,
        r#"gatehouse_mfa_verified_total{method="recovery_code"} 1"#,
        "gatehouse_mfa_challenges_total 3",
        "# HELP gatehouse_mfa_failed_total",
    ] {
        assert!(metrics.contains(line), "{line} in:\n{metrics}");
    }
    assert!(metrics.contains(r#"gatehouse_mfa_failed_total{method="totp"}"#), "{metrics}");
}

/// Removing TOTP needs the password and a code; afterwards the login is one step again.
async fn totp_is_removed_with_password_and_code(backend: Backend) {
    let Some(app) = app(backend).await else { return };
    let (_, access) = app.login(ALICE, PW).await;
    let (auth, _) = enrol(&app, &access, ALICE).await;
    let path = "/auth/mfa/totp/";
    let r = call(&app, Method::DELETE, path, &access, Some(json!({"password": "nope", "code": code(&auth, 0)}))).await;
    assert_json(&r, StatusCode::BAD_REQUEST, r#"{"password":["Invalid credentials."]}"#);
    let r = call(&app, Method::DELETE, path, &access, Some(json!({"password": PW, "code": "000000x"}))).await;
    assert_json(&r, StatusCode::BAD_REQUEST, r#"{"code":["Invalid code."]}"#);
    let r = call(&app, Method::DELETE, path, &access, Some(json!({"password": PW}))).await;
    assert_json(&r, StatusCode::BAD_REQUEST, r#"{"code":["This field is required."]}"#);
    let r = call(&app, Method::DELETE, path, &access, Some(json!({"password": PW, "code": code(&auth, 0)}))).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    let r = call(&app, Method::DELETE, path, &access, Some(json!({"password": PW, "code": code(&auth, 1)}))).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    let r = login_reply(&app, ALICE).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(payload(r.json()["access"].as_str().unwrap()).get("amr").is_none());
    let alice = user_id(&app, ALICE).await;
    assert!(audit_kinds(&app, alice).await.iter().any(|k| k == "mfa_removed"));
    assert!(app.state.store.find_totp(alice).await.unwrap().is_none(), "row gone");
    let r = call(&app, Method::GET, "/auth/mfa/", &access, None).await;
    assert_json(&r, StatusCode::OK, r#"{"totp":false,"recovery_codes_remaining":0,"passkeys":[]}"#);
}

/// A superuser resets a user's factors (audited with the actor); staff who are not superusers
/// may not.
async fn a_superuser_resets_factors(backend: Backend) {
    let Some(app) = app(backend).await else { return };
    let (_, access) = app.login(ALICE, PW).await;
    enrol(&app, &access, ALICE).await;
    let alice = user_id(&app, ALICE).await;
    app.add_user("staff@example.com", PW, true, &[]).await;
    let hash = app.state.hasher.hash(PW.to_owned()).await.unwrap();
    let root = app
        .state
        .store
        .create_user(NewUser {
            email: "root@example.com".into(),
            password_hash: hash,
            first_name: String::new(),
            last_name: String::new(),
            is_staff: true,
            is_superuser: true,
            groups: Vec::new(),
        })
        .await
        .unwrap()
        .id;
    let path = format!("/auth/admin/users/{alice}/mfa/");
    let (_, staff) = app.login("staff@example.com", PW).await;
    let r = call(&app, Method::DELETE, &path, &staff, None).await;
    assert_json(&r, StatusCode::FORBIDDEN, r#"{"detail":"You do not have permission to perform this action."}"#);
    let (_, su) = app.login("root@example.com", PW).await;
    let r = call(&app, Method::DELETE, &path, &su, None).await;
    assert_json(&r, StatusCode::OK, r#"{"removed":1}"#);
    let r = call(&app, Method::DELETE, "/auth/admin/users/999999/mfa/", &su, None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(login_reply(&app, ALICE).await.status, StatusCode::OK);
    let filter = auth_service::store::audit::AuditFilter { user_id: Some(alice), ..Default::default() };
    let rows = app.state.store.list_audit(&filter).await.unwrap();
    let reset = rows.iter().find(|r| r.kind == "mfa_reset").expect("mfa_reset audited");
    assert_eq!(reset.actor_id, Some(root));
}

/// GraphQL: `tokenAuth` answers the `mfa_required` error with the `mfaToken`, and
/// `tokenAuthMfa` completes the login.
async fn graphql_login_takes_two_steps(backend: Backend) {
    let Some(app) = app(backend).await else { return };
    let (_, access) = app.login(ALICE, PW).await;
    let (auth, _) = enrol(&app, &access, ALICE).await;
    let body = json!({
        "query": "mutation($e:String!,$p:String!){tokenAuth(email:$e,password:$p){token}}",
        "variables": {"e": ALICE, "p": PW},
    });
    let r = app.post("/graphql", &body.to_string()).await;
    let v = r.json();
    assert_eq!(v["data"]["tokenAuth"], Value::Null, "{v}");
    assert_eq!(v["errors"][0]["message"], "Multi-factor authentication required.");
    let ext = &v["errors"][0]["extensions"];
    assert_eq!((&ext["code"], &ext["methods"]), (&json!("mfa_required"), &json!(["totp"])), "{v}");
    let token = ext["mfaToken"].as_str().unwrap();
    let body = json!({
        "query": "mutation($t:String!,$c:String!){tokenAuthMfa(mfaToken:$t,code:$c){token refreshToken payload}}",
        "variables": {"t": token, "c": "999999"},
    });
    let v = app.post("/graphql", &body.to_string()).await.json();
    assert_eq!(v["errors"][0]["extensions"]["code"], "mfa_code_invalid", "{v}");
    let body = json!({
        "query": "mutation($t:String!,$c:String!){tokenAuthMfa(mfaToken:$t,code:$c){token refreshToken payload}}",
        "variables": {"t": token, "c": code(&auth, 0)},
    });
    let v = app.post("/graphql", &body.to_string()).await.json();
    let t = &v["data"]["tokenAuthMfa"];
    assert_eq!(t["payload"]["amr"], json!(["pwd", "otp", "mfa"]), "{v}");
    assert_eq!(payload(t["token"].as_str().unwrap())["amr"], json!(["pwd", "otp", "mfa"]));
}

async fn from(app: &TestApp, path: &str, body: &Value, ip: &str) -> Reply {
    post_via_proxy(&app.router, path, &body.to_string(), ip).await
}

/// An attacker who knows the password guesses codes in parallel: the guesses count in the same
/// login counters as passwords, so after the per-account-and-address allowance (5, the
/// password step included) the guesses are 429. Guesses spread over many addresses hit the per-account counter. The owner
/// then still signs in from their known address.
async fn code_guessing_is_throttled_like_passwords(backend: Backend) {
    let Some(app) = app(backend).await else { return };
    let (_, access) = app.login(ALICE, PW).await;
    let (auth, _) = enrol(&app, &access, ALICE).await;
    // The owner signs in once from home, which makes that address known.
    let home = "10.1.0.1";
    let token =
        mfa_token_of(&from(&app, "/auth/token/", &json!({"email": ALICE, "password": PW}), home).await, &["totp"]);
    let ok = from(&app, "/auth/token/mfa/", &json!({"mfa_token": token, "code": code(&auth, 0)}), home).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);

    let attacker = "10.66.0.1";
    let first = from(&app, "/auth/token/", &json!({"email": ALICE, "password": PW}), attacker).await;
    let token = mfa_token_of(&first, &["totp"]);
    let real = [code(&auth, -1), code(&auth, 0), code(&auth, 1)];
    let guesses: Vec<String> =
        (0..30).map(|i| format!("{:06}", 100_000 + i * 7919)).filter(|g| !real.contains(g)).take(20).collect();
    let replies = futures_join(&app, &token, &guesses, attacker).await;
    let refused = replies.iter().filter(|r| r.status == StatusCode::UNAUTHORIZED).count();
    let throttled = replies.iter().filter(|r| r.status == StatusCode::TOO_MANY_REQUESTS).count();
    assert_eq!(refused + throttled, guesses.len(), "only 401 and 429");
    // The lock after the allowance is short (1 s, doubling), as for passwords: a slow run may
    // let one or two more through, never the whole batch.
    assert!(refused <= 6, "about the allowance minus the password step was checked: {refused}");
    assert!(throttled >= guesses.len() - 6, "{throttled}");

    // Many addresses: each new address gets its own few guesses until the account counter
    // locks strangers out everywhere.
    let mut locked_everywhere = false;
    for n in 0..40 {
        let ip = format!("10.77.{}.{}", n / 200, n % 200 + 1);
        let r = from(&app, "/auth/token/", &json!({"email": ALICE, "password": PW}), &ip).await;
        if r.status == StatusCode::TOO_MANY_REQUESTS {
            locked_everywhere = true;
            break;
        }
        let token = mfa_token_of(&r, &["totp"]);
        for guess in &guesses[..4] {
            let g = from(&app, "/auth/token/mfa/", &json!({"mfa_token": token, "code": guess}), &ip).await;
            assert!(matches!(g.status, StatusCode::UNAUTHORIZED | StatusCode::TOO_MANY_REQUESTS), "{}", g.text);
        }
    }
    assert!(locked_everywhere, "the per-account counter locks strangers out");
    // The owner's known address is judged by its own counter only.
    let token =
        mfa_token_of(&from(&app, "/auth/token/", &json!({"email": ALICE, "password": PW}), home).await, &["totp"]);
    let ok = from(&app, "/auth/token/mfa/", &json!({"mfa_token": token, "code": code(&auth, 1)}), home).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);
    let alice = user_id(&app, ALICE).await;
    assert!(audit_kinds(&app, alice).await.iter().filter(|k| *k == "mfa_failed").count() >= 4);
}

/// Sends every guess at once with `token` from `ip`.
async fn futures_join(app: &TestApp, token: &str, guesses: &[String], ip: &str) -> Vec<Reply> {
    let mut tasks = tokio::task::JoinSet::new();
    for guess in guesses {
        let (router, body, ip) = (app.router.clone(), json!({"mfa_token": token, "code": guess}), ip.to_owned());
        tasks.spawn(async move { post_via_proxy(&router, "/auth/token/mfa/", &body.to_string(), &ip).await });
    }
    tasks.join_all().await
}

/// Bad input to the new routes: a clear 400 or 401, never a 500.
async fn bad_input_is_refused_clearly(backend: Backend) {
    let Some(app) = app(backend).await else { return };
    let r = app.post("/auth/token/mfa/", "{}").await;
    assert_json(
        &r,
        StatusCode::BAD_REQUEST,
        r#"{"mfa_token":["This field is required."],"code":["This field is required."]}"#,
    );
    let r = app.post("/auth/token/mfa/", &json!({"mfa_token": "x\u{0}y", "code": "1"}).to_string()).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    let r = app.post("/auth/token/mfa/", &json!({"mfa_token": "nope", "code": "123456"}).to_string()).await;
    assert_401(
        &r,
        r#"{"detail":"The sign-in expired or was already completed; sign in again.","code":"mfa_token_invalid"}"#,
    );
    let r = app.send(Method::POST, "/auth/mfa/totp/", None, &[]).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    let (_, access) = app.login(ALICE, PW).await;
    let r = call(&app, Method::POST, "/auth/mfa/totp/confirm/", &access, Some(json!({"code": "123456"}))).await;
    assert_json(
        &r,
        StatusCode::BAD_REQUEST,
        r#"{"non_field_errors":["No TOTP enrolment is waiting for confirmation; start one with POST /auth/mfa/totp/."]}"#,
    );
}

both_backends!(
    totp_login_takes_two_steps,
    totp_is_removed_with_password_and_code,
    a_superuser_resets_factors,
    graphql_login_takes_two_steps,
    code_guessing_is_throttled_like_passwords,
    bad_input_is_refused_clearly,
);
