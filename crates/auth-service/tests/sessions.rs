//! Sessions (refresh-token families), logout-all, revocation watermarks and their feed, and
//! the audit trail, on the auth-service's router and its binary.

mod common;

use std::process::Command;

use axum::http::{Method, StatusCode};
use common::*;
use serde_json::{Value, json};
use shared_user::both_backends;
use shared_user::testing::Backend;

const PW: &str = "correct horse battery";
const FEED_TOKEN: &str = "feed-token-0123456789abcdef";
const INVALID: &str = r#"{"detail":"Token is invalid or expired","code":"token_not_valid"}"#;

async fn app(backend: Backend) -> Option<TestApp> {
    TestApp::new(backend, &["--revocation-feed-token", FEED_TOKEN, "--rotate-refresh-tokens", "true"]).await
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// Logs in with a user agent; returns `(refresh, access)`.
async fn login_as(app: &TestApp, email: &str, agent: &str) -> (String, String) {
    let body = json!({"email": email, "password": PW}).to_string();
    let r = app.send(Method::POST, "/auth/token/", Some(&body), &[("user-agent", agent)]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let v = r.json();
    (v["refresh"].as_str().unwrap().to_owned(), v["access"].as_str().unwrap().to_owned())
}

async fn sessions(app: &TestApp, access: &str) -> Vec<Value> {
    let r = app.get_bearer("/auth/sessions/", access).await;
    assert_eq!((r.status, r.content_type()), (StatusCode::OK, "application/json"), "{}", r.text);
    r.json().as_array().expect("a list").clone()
}

async fn feed(app: &TestApp, after: i64) -> Value {
    let r =
        app.get_with(&format!("/auth/revocations/?after={after}"), &[("x-revocation-feed-token", FEED_TOKEN)]).await;
    assert_eq!((r.status, r.content_type()), (StatusCode::OK, "application/json"), "{}", r.text);
    r.json()
}

async fn refresh(app: &TestApp, token: &str) -> common::Reply {
    app.post("/auth/token/refresh/", &json!({"refresh": token}).to_string()).await
}

async fn audit_kinds(app: &TestApp, user_id: i64) -> Vec<String> {
    let filter = auth_service::store::audit::AuditFilter { user_id: Some(user_id), ..Default::default() };
    let rows = app.state.store.list_audit(&filter).await.unwrap();
    rows.into_iter().rev().map(|r| r.kind).collect()
}

/// Each login is a session with its user agent; a user lists only their own, ends one (204,
/// then its refresh token is dead) and gets 404 for anybody else's id or an ended one.
async fn sessions_are_listed_and_ended_one_by_one(backend: Backend) {
    let Some(app) = app(backend).await else { return };
    let alice = app.add_user("alice@example.com", PW, false, &[]).await;
    app.add_user("bob@example.com", PW, false, &[]).await;
    let (phone_refresh, _) = login_as(&app, "alice@example.com", "phone/1.0").await;
    let (_, laptop) = login_as(&app, "alice@example.com", "laptop/2.0").await;
    let (_, bob) = login_as(&app, "bob@example.com", "bob-agent").await;

    let listed = sessions(&app, &laptop).await;
    assert_eq!(listed.len(), 2, "{listed:?}");
    let keys: Vec<&str> = listed[0].as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, ["id", "created", "last_used", "expires", "ip", "user_agent"]);
    let mut agents: Vec<&str> = listed.iter().map(|s| s["user_agent"].as_str().unwrap()).collect();
    agents.sort_unstable();
    assert_eq!(agents, ["laptop/2.0", "phone/1.0"]);
    let phone_id = jti_of(&phone_refresh);
    assert!(listed.iter().any(|s| s["id"] == json!(phone_id)), "the session id is the family");

    // A refresh moves last_used and keeps the session (rotation stays in the family).
    let r = refresh(&app, &phone_refresh).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let rotated = r.json()["refresh"].as_str().unwrap().to_owned();
    assert_eq!(sessions(&app, &laptop).await.len(), 2, "rotation does not make a new session");

    let bob_sessions = sessions(&app, &bob).await;
    let bob_id = bob_sessions[0]["id"].as_str().unwrap().to_owned();
    let auth = bearer(&laptop);
    let r = app.send(Method::DELETE, &format!("/auth/sessions/{bob_id}/"), None, &[("authorization", &auth)]).await;
    assert_json(&r, StatusCode::NOT_FOUND, r#"{"detail":"Not found."}"#);
    assert_eq!(sessions(&app, &bob).await.len(), 1, "bob's session survives alice's attempt");

    let r = app.send(Method::DELETE, &format!("/auth/sessions/{phone_id}"), None, &[("authorization", &auth)]).await;
    assert_eq!((r.status, r.text.as_str()), (StatusCode::NO_CONTENT, ""), "no trailing slash works too");
    assert_401(&refresh(&app, &rotated).await, &token_not_valid("Token is blacklisted"));
    let left = sessions(&app, &laptop).await;
    assert_eq!(left.len(), 1);
    assert_eq!(left[0]["user_agent"], "laptop/2.0");
    let r = app.send(Method::DELETE, &format!("/auth/sessions/{phone_id}/"), None, &[("authorization", &auth)]).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "an ended session is gone");

    let r = app.get_with("/auth/sessions", &[]).await;
    assert_401(&r, r#"{"detail":"Authentication credentials were not provided."}"#);
    let kinds = audit_kinds(&app, alice).await;
    assert_eq!(kinds, ["user_created", "login_succeeded", "login_succeeded", "session_revoked"]);
}

/// Parallel deletes of one session: exactly one 204, every other answer 404.
async fn a_session_is_ended_once_under_parallel_deletes(backend: Backend) {
    use tower::ServiceExt;
    let Some(app) = app(backend).await else { return };
    app.add_user("alice@example.com", PW, false, &[]).await;
    let (refresh_token, access) = login_as(&app, "alice@example.com", "a").await;
    let path = format!("/auth/sessions/{}/", jti_of(&refresh_token));
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let req = axum::http::Request::builder()
            .method(Method::DELETE)
            .uri(&path)
            .header("authorization", bearer(&access))
            .body(axum::body::Body::empty())
            .unwrap();
        let router = app.router.clone();
        calls.spawn(async move { router.oneshot(req).await.unwrap().status().as_u16() });
    }
    let mut statuses = calls.join_all().await;
    statuses.sort_unstable();
    assert_eq!(statuses, [204, 404, 404, 404, 404, 404, 404, 404]);
}

/// Logout-all: every refresh token of the caller dies and every access token issued before
/// it is refused by `/auth/user/`, verify and refresh; other users are untouched; a login
/// right after (often in the same second) works; the feed publishes the watermark.
async fn logout_all_refuses_earlier_tokens_everywhere(backend: Backend) {
    let Some(app) = app(backend).await else { return };
    let alice = app.add_user("alice@example.com", PW, false, &[]).await;
    let bob = app.add_user("bob@example.com", PW, false, &[]).await;
    let (alice_refresh, alice_access) = app.login("alice@example.com", PW).await;
    let (_, other_device) = app.login("alice@example.com", PW).await;
    let (bob_refresh, bob_access) = app.login("bob@example.com", PW).await;
    assert_eq!(feed(&app, 0).await, json!({"cursor": 0, "revocations": []}));

    let r = app.send(Method::POST, "/auth/logout-all/", Some("{}"), &[("authorization", &bearer(&alice_access))]).await;
    assert_json(&r, StatusCode::OK, "{}");

    for token in [&alice_access, &other_device] {
        let r = app.get_bearer("/auth/user/", token).await;
        assert_401(&r, &bearer_not_valid("Token is invalid or expired"));
        let r = app.post("/auth/token/verify/", &json!({"token": token}).to_string()).await;
        assert_401(&r, INVALID);
    }
    assert_eq!(refresh(&app, &alice_refresh).await.status, StatusCode::UNAUTHORIZED);
    let r = app.send(Method::POST, "/auth/logout-all", None, &[("authorization", &bearer(&alice_access))]).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "a refused token cannot log out again");

    assert_eq!(app.get_bearer("/auth/user/", &bob_access).await.status, StatusCode::OK, "bob untouched");
    assert_eq!(refresh(&app, &bob_refresh).await.status, StatusCode::OK, "bob's refresh untouched");

    let published = feed(&app, 0).await;
    let not_before = published["revocations"][0]["not_before"].as_i64().unwrap();
    let cursor = published["cursor"].as_i64().unwrap();
    assert_eq!(published, json!({"cursor": cursor, "revocations": [{"user_id": alice, "not_before": not_before}]}));
    assert!(cursor > 0);
    assert!(not_before > payload(&alice_access)["iat"].as_i64().unwrap(), "strictly after the old token");
    assert_eq!(feed(&app, cursor).await, json!({"cursor": cursor, "revocations": []}), "nothing new after it");

    // A new login right away: its tokens are dated at or after the watermark and work.
    let (new_refresh, new_access) = app.login("alice@example.com", PW).await;
    assert!(payload(&new_access)["iat"].as_i64().unwrap() >= not_before, "iat >= not_before");
    assert_eq!(app.get_bearer("/auth/user/", &new_access).await.status, StatusCode::OK);
    assert_json(
        &app.post("/auth/token/verify/", &json!({"token": new_access}).to_string()).await,
        StatusCode::OK,
        "{}",
    );
    assert_eq!(refresh(&app, &new_refresh).await.status, StatusCode::OK);
    assert_eq!(sessions(&app, &new_access).await.len(), 1, "only the new session is live");
    assert_eq!(audit_kinds(&app, bob).await, ["user_created", "login_succeeded"]);
    assert!(audit_kinds(&app, alice).await.contains(&"logout_all".to_owned()));
}

/// The boundary, exactly: with a watermark of N, `iat = N - 1` is refused and `iat = N` is
/// accepted, on every path that checks tokens.
async fn the_watermark_boundary_is_iat_before_not_before(backend: Backend) {
    let Some(app) = app(backend).await else { return };
    let alice = app.add_user("alice@example.com", PW, false, &[]).await;
    let (_, access) = app.login("alice@example.com", PW).await;
    app.send(Method::POST, "/auth/logout-all/", None, &[("authorization", &bearer(&access))]).await;
    let not_before = feed(&app, 0).await["revocations"][0]["not_before"].as_i64().unwrap();
    let at = |iat: i64| {
        let mut c = claims("access", alice);
        c["iat"] = json!(iat);
        craft(&c)
    };
    let r = app.get_bearer("/auth/user/", &at(not_before - 1)).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "issued the second before: refused");
    let r = app.post("/auth/token/verify/", &json!({"token": at(not_before - 1)}).to_string()).await;
    assert_401(&r, INVALID);
    // A token dated exactly at the watermark (the clock may not be there yet: allow the wait).
    while now() < not_before {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(app.get_bearer("/auth/user/", &at(not_before)).await.status, StatusCode::OK, "iat == not_before");
    let mut no_iat = claims("access", alice);
    no_iat.as_object_mut().unwrap().remove("iat");
    assert_eq!(app.get_bearer("/auth/user/", &craft(&no_iat)).await.status, StatusCode::UNAUTHORIZED, "no iat");
}

/// Password change and deactivation set watermarks too, so the old access token stops at once.
async fn password_change_and_deactivation_refuse_old_access_tokens(backend: Backend) {
    let Some(app) = app(backend).await else { return };
    let alice = app.add_user("alice@example.com", PW, false, &[]).await;
    let bob = app.add_user("bob@example.com", PW, false, &[]).await;
    let (_, alice_access) = app.login("alice@example.com", PW).await;
    let (_, bob_access) = app.login("bob@example.com", PW).await;
    let change = json!({"email": "alice@example.com", "password": PW, "new_password": "a much better passphrase"});
    assert_eq!(app.post("/auth/password-change/", &change.to_string()).await.status, StatusCode::OK);
    assert_eq!(app.get_bearer("/auth/user/", &alice_access).await.status, StatusCode::UNAUTHORIZED);
    let body = json!({"email": "alice@example.com", "password": "a much better passphrase"}).to_string();
    let r = app.post("/auth/token/", &body).await;
    assert_eq!(r.status, StatusCode::OK, "the new password signs in at once: {}", r.text);
    let fresh = r.json()["access"].as_str().unwrap().to_owned();
    assert_eq!(app.get_bearer("/auth/user/", &fresh).await.status, StatusCode::OK);

    let event = auth_service::audit::AuditEvent::new(auth_service::audit::AuditKind::UserUpdated);
    let mark = auth_service::store::watermark_now();
    assert!(app.state.store.deactivate_everywhere("bob@example.com", mark, &event).await.unwrap());
    let users: Vec<i64> =
        feed(&app, 0).await["revocations"].as_array().unwrap().iter().map(|r| r["user_id"].as_i64().unwrap()).collect();
    assert_eq!(users, [alice, bob], "in the order they happened");
    let r = app.get_bearer("/auth/user/", &bob_access).await;
    assert_401(&r, r#"{"detail":"User is inactive","code":"user_inactive"}"#);
    let r = app.post("/auth/token/verify/", &json!({"token": bob_access}).to_string()).await;
    assert_401(&r, INVALID);
    assert_eq!(
        audit_kinds(&app, alice).await,
        ["user_created", "login_succeeded", "password_changed", "login_succeeded"]
    );
    assert_eq!(audit_kinds(&app, bob).await, ["user_created", "login_succeeded", "user_updated"]);
}

/// The feed needs `REVOCATION_FEED_TOKEN`: off (404) when unset, 403 without or with a wrong
/// token, 400 for a bad cursor.
async fn the_feed_is_protected(backend: Backend) {
    let Some(off) = TestApp::new(backend, &[]).await else { return };
    let r = off.get_with("/auth/revocations/?after=0", &[("x-revocation-feed-token", FEED_TOKEN)]).await;
    assert_json(&r, StatusCode::NOT_FOUND, r#"{"detail":"Not found."}"#);
    drop(off);
    let Some(app) = app(backend).await else { return };
    let forbidden = r#"{"detail":"You do not have permission to perform this action."}"#;
    assert_json(&app.get_with("/auth/revocations/?after=0", &[]).await, StatusCode::FORBIDDEN, forbidden);
    let wrong = [("x-revocation-feed-token", "feed-token-0123456789abcdeX")];
    assert_json(&app.get_with("/auth/revocations/", &wrong).await, StatusCode::FORBIDDEN, forbidden);
    let short = [("x-revocation-feed-token", "feed")];
    assert_json(&app.get_with("/auth/revocations/", &short).await, StatusCode::FORBIDDEN, forbidden);
    let good = [("x-revocation-feed-token", FEED_TOKEN)];
    let r = app.get_with("/auth/revocations?after=-3", &good).await;
    assert_json(&r, StatusCode::BAD_REQUEST, r#"{"after":["A valid integer is required."]}"#);
    let r = app.get_with("/auth/revocations", &good).await;
    assert_json(&r, StatusCode::OK, r#"{"cursor":0,"revocations":[]}"#);
    let r = app.get_with("/auth/revocations/?after=99", &good).await;
    assert_json(&r, StatusCode::OK, r#"{"cursor":0,"revocations":[]}"#);
}

/// Failed logins, successes and throttling are audited without secrets; the `audit` command
/// filters by user and kind and prints JSON lines.
async fn logins_are_audited_and_the_cli_lists_them(backend: Backend) {
    let Some(app) = app(backend).await else { return };
    // One address per backend: `throttled` events are deduplicated per process (see audit.rs).
    let email = format!("alice-{backend:?}@example.com").to_lowercase();
    let alice = app.add_user(&email, PW, false, &[]).await;
    let wrong = json!({"email": email, "password": "not-the-password-xyz"}).to_string();
    assert_eq!(app.post("/auth/token/", &wrong).await.status, StatusCode::UNAUTHORIZED);
    let unknown = json!({"email": "nobody@example.com", "password": "typed-secret-xyz"}).to_string();
    assert_eq!(app.post("/auth/token/", &unknown).await.status, StatusCode::UNAUTHORIZED);
    app.login(&email, PW).await;
    let mut throttled = false;
    for _ in 0..10 {
        if app.post("/auth/token/", &wrong).await.status == StatusCode::TOO_MANY_REQUESTS {
            throttled = true;
            break;
        }
    }
    assert!(throttled, "the account lock starts within 10 failures");

    let all = app.state.store.list_audit(&Default::default()).await.unwrap();
    let text = format!("{all:?}");
    for secret in ["not-the-password-xyz", "typed-secret-xyz", "nobody@example.com", PW] {
        assert!(!text.contains(secret), "{secret} leaked into the audit trail");
    }
    let anonymous = all.iter().filter(|r| r.kind == "login_failed" && r.user_id.is_none()).count();
    assert_eq!(anonymous, 1, "an unknown email is a failure without a user");
    let kinds = audit_kinds(&app, alice).await;
    assert_eq!(&kinds[..3], ["user_created", "login_failed", "login_succeeded"]);
    assert_eq!(kinds.last().map(String::as_str), Some("throttled"));

    let bin = env!("CARGO_BIN_EXE_auth-service");
    let out = Command::new(bin)
        .args(["audit", "--user", &email.to_uppercase(), "--kind", "login_failed", "--since", "1h", "--json"])
        .env_clear()
        .env("DATABASE_URL", &app.db.url)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<Value> =
        String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(!lines.is_empty() && lines.len() == kinds.iter().filter(|k| *k == "login_failed").count(), "{lines:?}");
    assert!(lines.iter().all(|l| l["kind"] == "login_failed" && l["user_id"] == json!(alice)), "{lines:?}");
    let out = Command::new(bin)
        .args(["audit", "--kind", "nope"])
        .env_clear()
        .env("DATABASE_URL", &app.db.url)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("login_succeeded"), "the kinds are listed");
}

/// GraphQL: `sessions` lists the caller's sessions, `logoutAll` ends them, and the old token
/// (like a Hasura-preset one) is refused afterwards.
async fn graphql_sessions_and_logout_all(backend: Backend) {
    let Some(app) = TestApp::new(backend, &["--claims-preset", "hasura"]).await else { return };
    app.add_user("alice@example.com", PW, false, &[]).await;
    let (_, access) = app.login("alice@example.com", PW).await;
    assert!(payload(&access)["https://hasura.io/jwt/claims"].is_object(), "a Hasura-preset token");
    let gql = |query: &'static str, token: String| {
        let app = &app;
        async move {
            let body = json!({"query": query}).to_string();
            let auth = format!("JWT {token}");
            let r = app.send(Method::POST, "/graphql", Some(&body), &[("authorization", &auth)]).await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.text);
            r.json()
        }
    };
    let v = gql("{ sessions { id created lastUsed expires ip userAgent } }", access.clone()).await;
    assert_eq!(v["data"]["sessions"].as_array().map(Vec::len), Some(1), "{v}");
    let v = gql("mutation { logoutAll { revoked } }", access.clone()).await;
    assert!(v["data"]["logoutAll"]["revoked"].is_i64(), "{v}");
    let v = gql("{ me { email } }", access.clone()).await;
    assert_eq!(v["errors"][0]["message"], "Invalid token", "{v}");
    assert_eq!(app.get_bearer("/auth/user/", &access).await.status, StatusCode::UNAUTHORIZED);
}

/// Sends a request to `router` (the service, or another replica of it) from `peer` when given,
/// with a bearer token when given; the status and body.
async fn call_router(
    router: &axum::Router,
    peer: Option<&str>,
    method: Method,
    path: &str,
    body: Option<Value>,
    token: Option<&str>,
) -> (StatusCode, String) {
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let mut req = axum::http::Request::builder().method(method).uri(path);
    if let Some(peer) = peer {
        req = req.extension(axum::extract::ConnectInfo(peer.parse::<std::net::SocketAddr>().unwrap()));
    }
    if body.is_some() {
        req = req.header("content-type", "application/json");
    }
    if let Some(token) = token {
        req = req.header("authorization", bearer(token));
    }
    let body = body.map(|b| axum::body::Body::from(b.to_string())).unwrap_or_else(axum::body::Body::empty);
    let resp = router.clone().oneshot(req.body(body).unwrap()).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

/// The user's audit events of `kind`, oldest first.
async fn audit_rows(app: &TestApp, user_id: i64, kind: &str) -> Vec<auth_service::store::audit::AuditRow> {
    let filter = auth_service::store::audit::AuditFilter {
        user_id: Some(user_id),
        kind: Some(kind.into()),
        ..Default::default()
    };
    let mut rows = app.state.store.list_audit(&filter).await.unwrap();
    rows.reverse();
    rows
}

/// An audit row's detail, parsed.
fn detail_of(row: &auth_service::store::audit::AuditRow) -> Value {
    serde_json::from_str(row.detail.as_deref().unwrap_or("null")).unwrap()
}

fn time_of(session: &Value, key: &str) -> chrono::DateTime<chrono::FixedOffset> {
    chrono::DateTime::parse_from_rfc3339(session[key].as_str().unwrap()).unwrap()
}

/// Five seconds from now: the bound of every "eventually" below.
fn deadline() -> std::time::Instant {
    std::time::Instant::now() + std::time::Duration::from_secs(5)
}

/// Called while a condition does not hold yet: fails past `deadline`, else waits a little.
async fn not_yet(deadline: std::time::Instant, what: &str) {
    assert!(std::time::Instant::now() < deadline, "not within 5 s: {what}");
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
}

/// A rotated refresh token presented again after the grace: refused, its family revoked, and
/// one `refresh_reuse_detected` event names the user and the session.
async fn a_reused_refresh_token_is_audited(backend: Backend) {
    let flags = ["--rotate-refresh-tokens", "true", "--refresh-reuse-grace", "0"];
    let Some(app) = TestApp::new(backend, &flags).await else { return };
    let alice = app.add_user("alice@example.com", PW, false, &[]).await;
    let (first, _) = app.login("alice@example.com", PW).await;
    let r = refresh(&app, &first).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let second = r.json()["refresh"].as_str().unwrap().to_owned();
    assert!(audit_rows(&app, alice, "refresh_reuse_detected").await.is_empty(), "a rotation is no reuse");

    tokio::time::sleep(std::time::Duration::from_millis(20)).await; // past the zero grace
    assert_401(&refresh(&app, &first).await, &token_not_valid("Token is blacklisted"));
    let rows = audit_rows(&app, alice, "refresh_reuse_detected").await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!((rows[0].user_id, rows[0].actor_id), (Some(alice), None));
    assert_eq!(detail_of(&rows[0]), json!({"session": jti_of(&first)}));
    assert_401(&refresh(&app, &second).await, &token_not_valid("Token is blacklisted"));
}

/// A session keeps the client address and user agent of its login (the login event too);
/// a refresh moves `last_used` and `expires` and keeps `created` and the login address.
async fn a_session_records_the_callers_address_and_its_last_use(backend: Backend) {
    let Some(app) = app(backend).await else { return };
    let alice = app.add_user("alice@example.com", PW, false, &[]).await;
    let login = json!({"email": "alice@example.com", "password": PW});
    let (status, text) =
        call_router(&app.router, Some("203.0.113.7:40000"), Method::POST, "/auth/token/", Some(login), None).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let pair: Value = serde_json::from_str(&text).unwrap();
    let (refresh_token, access) = (pair["refresh"].as_str().unwrap(), pair["access"].as_str().unwrap());

    let before = sessions(&app, access).await;
    assert_eq!(before.len(), 1, "{before:?}");
    assert_eq!(before[0]["ip"], "203.0.113.7", "the caller's address");
    assert_eq!(before[0]["created"], before[0]["last_used"], "not used since the login");
    let login_event = audit_rows(&app, alice, "login_succeeded").await;
    assert_eq!(login_event[0].ip.as_deref(), Some("203.0.113.7"));

    // Expiries are whole seconds (the token's `exp`): refresh in a later second.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let body = json!({"refresh": refresh_token});
    let (status, text) =
        call_router(&app.router, Some("198.51.100.9:40000"), Method::POST, "/auth/token/refresh/", Some(body), None)
            .await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let after = sessions(&app, access).await;
    assert_eq!(after.len(), 1, "{after:?}");
    assert_eq!(after[0]["id"], before[0]["id"]);
    assert_eq!(after[0]["created"], before[0]["created"]);
    assert!(time_of(&after[0], "last_used") > time_of(&before[0], "last_used"), "{before:?} -> {after:?}");
    assert!(time_of(&after[0], "expires") > time_of(&before[0], "expires"), "the rotated token lives longer");
    assert_eq!(after[0]["ip"], "203.0.113.7", "the address at login");
}

/// Every replica agrees: a logout-all, then an admin's deactivation, through one replica are
/// refused by another replica on the same database (it reads new watermarks every second) on
/// `/auth/user/` and verify, while another user's token keeps working there.
async fn another_replica_refuses_revoked_tokens_within_seconds(backend: Backend) {
    let Some(app) = app(backend).await else { return };
    let replica =
        auth_service::AppState::build(common::settings(&["--rotate-refresh-tokens", "true"]), app.db.db.clone())
            .await
            .unwrap();
    let other = auth_service::app(replica);
    app.add_user("alice@example.com", PW, false, &[]).await;
    app.add_user("bob@example.com", PW, false, &[]).await;
    let carol = app.add_user("carol@example.com", PW, false, &[]).await;
    app.add_user("staff@example.com", PW, true, &[]).await;
    let (_, alice) = app.login("alice@example.com", PW).await;
    let (_, bob) = app.login("bob@example.com", PW).await;
    let (_, carol_access) = app.login("carol@example.com", PW).await;
    let (_, staff) = app.login("staff@example.com", PW).await;
    let user = |token: String| {
        let other = &other;
        async move { call_router(other, None, Method::GET, "/auth/user/", None, Some(&token)).await }
    };
    let verify = |token: String| {
        let other = &other;
        async move {
            call_router(other, None, Method::POST, "/auth/token/verify/", Some(json!({"token": token})), None).await
        }
    };
    for token in [&alice, &bob, &carol_access] {
        assert_eq!(user(token.clone()).await.0, StatusCode::OK, "the other replica accepts it first");
        assert_eq!(verify(token.clone()).await.0, StatusCode::OK);
    }

    let r = app.send(Method::POST, "/auth/logout-all/", None, &[("authorization", &bearer(&alice))]).await;
    assert_json(&r, StatusCode::OK, "{}");
    let until = deadline();
    while user(alice.clone()).await.0 != StatusCode::UNAUTHORIZED
        || verify(alice.clone()).await.0 != StatusCode::UNAUTHORIZED
    {
        not_yet(until, "the other replica refuses the token after logout-all").await;
    }
    assert_eq!(user(alice.clone()).await.1, bearer_not_valid("Token is invalid or expired"));
    assert_eq!(verify(alice.clone()).await.1, INVALID);
    assert_eq!(user(bob.clone()).await.0, StatusCode::OK, "bob untouched");
    assert_eq!(verify(bob.clone()).await.0, StatusCode::OK, "bob untouched");

    let r = app
        .send(
            Method::PATCH,
            &format!("/auth/admin/users/{carol}/"),
            Some(r#"{"is_active":false}"#),
            &[("authorization", &bearer(&staff))],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let until = deadline();
    // Verify reads no user row: only the watermark refuses the token there.
    while verify(carol_access.clone()).await.0 != StatusCode::UNAUTHORIZED {
        not_yet(until, "the other replica refuses the token after deactivation").await;
    }
    assert_eq!(verify(carol_access.clone()).await.1, INVALID);
    assert_eq!(user(carol_access.clone()).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(user(bob.clone()).await.0, StatusCode::OK, "bob untouched");
    assert_eq!(verify(bob.clone()).await.0, StatusCode::OK, "bob untouched");
}

/// `GET path` on `router` with the feed token; the status and the body as JSON (or text).
async fn feed_call(router: &axum::Router, path: String) -> (StatusCode, Value) {
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let req = axum::http::Request::get(path).header("x-revocation-feed-token", FEED_TOKEN);
    let resp = router.clone().oneshot(req.body(axum::body::Body::empty()).unwrap()).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into())))
}

/// Long polls of the feed: held while nothing follows the cursor (an empty page at the
/// deadline), answered as soon as a revocation lands (well before their 25 s), forty at once
/// without starving the database pool (a waiting poll holds no connection: the logout-all that
/// wakes them still gets one), and on another replica too.
async fn long_polls_of_the_feed_answer_as_soon_as_a_revocation_lands(backend: Backend) {
    let Some(app) = app(backend).await else { return };
    let alice = app.add_user("alice@example.com", PW, false, &[]).await;
    let (_, access) = app.login("alice@example.com", PW).await;
    let cursor = feed(&app, 0).await["cursor"].as_i64().unwrap();

    let (status, page) = feed_call(&app.router, format!("/auth/revocations/?after={cursor}&wait=300ms")).await;
    assert_eq!((status, page), (StatusCode::OK, json!({"cursor": cursor, "revocations": []})), "empty at the deadline");
    let (status, body) = feed_call(&app.router, format!("/auth/revocations/?after={cursor}&wait=soon")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body, json!({"wait": ["A valid duration is required (e.g. 25s, 500ms or 25)."]}));

    let replica = auth_service::AppState::build(
        common::settings(&["--revocation-feed-token", FEED_TOKEN, "--rotate-refresh-tokens", "true"]),
        app.db.db.clone(),
    )
    .await
    .unwrap();
    let other = auth_service::app(replica);
    let long_poll = |router: &axum::Router| {
        let router = router.clone();
        tokio::spawn(async move { feed_call(&router, format!("/auth/revocations/?after={cursor}&wait=25s")).await })
    };
    let mut polls: Vec<_> = (0..40).map(|_| long_poll(&app.router)).collect();
    polls.push(long_poll(&other));
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(polls.iter().all(|p| !p.is_finished()), "the polls wait while nothing follows the cursor");

    let r = app.send(Method::POST, "/auth/logout-all/", None, &[("authorization", &bearer(&access))]).await;
    assert_json(&r, StatusCode::OK, "{}");
    for poll in polls {
        let (status, page) = tokio::time::timeout(std::time::Duration::from_secs(10), poll)
            .await
            .expect("answered long before its 25 s wait")
            .unwrap();
        assert_eq!(status, StatusCode::OK, "{page}");
        let entries = page["revocations"].as_array().unwrap();
        assert_eq!(entries.len(), 1, "{page}");
        assert_eq!(entries[0]["user_id"], alice);
        assert!(page["cursor"].as_i64().unwrap() > cursor);
    }
}

/// Admin changes keep their own audit detail next to the count of revoked tokens; a
/// deactivation writes its change, the revocations, the watermark and both events at once
/// (and only once); a creation is one `user_created` event with its actor.
async fn admin_changes_keep_their_audit_detail(backend: Backend) {
    let Some(app) = app(backend).await else { return };
    let staff = app.add_user("staff@example.com", PW, true, &[]).await;
    let alice = app.add_user("alice@example.com", PW, false, &[]).await;
    let (_, staff_access) = app.login("staff@example.com", PW).await;
    app.login("alice@example.com", PW).await;
    let admin = |method: Method, path: String, body: Value| {
        let (app, auth) = (&app, bearer(&staff_access));
        async move { app.send(method, &path, Some(&body.to_string()), &[("authorization", &auth)]).await }
    };

    let new_password = "a fresh passphrase";
    let r = admin(Method::POST, format!("/auth/admin/users/{alice}/set-password/"), json!({"password": new_password}))
        .await;
    assert_json(&r, StatusCode::OK, "{}");
    let rows = audit_rows(&app, alice, "password_changed").await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].actor_id, Some(staff));
    assert_eq!(detail_of(&rows[0]), json!({"by_admin": true, "refresh_tokens_revoked": 1}));

    let (_, access) = app.login("alice@example.com", new_password).await;
    let cursor = feed(&app, 0).await["cursor"].as_i64().unwrap();
    for _ in 0..2 {
        let r = admin(Method::PATCH, format!("/auth/admin/users/{alice}/"), json!({"is_active": false})).await;
        assert_eq!((r.status, r.json()["is_active"].clone()), (StatusCode::OK, json!(false)), "{}", r.text);
    }
    let updated = audit_rows(&app, alice, "user_updated").await;
    assert_eq!(updated.len(), 2, "one per PATCH: {updated:?}");
    assert!(updated.iter().all(|r| r.actor_id == Some(staff) && detail_of(r) == json!({"is_active": false})));
    let ended = audit_rows(&app, alice, "logout_all").await;
    assert_eq!(ended.len(), 1, "only the PATCH that deactivated ends sessions: {ended:?}");
    assert_eq!(ended[0].actor_id, Some(staff));
    assert_eq!(detail_of(&ended[0]), json!({"deactivated": true, "refresh_tokens_revoked": 1}));
    assert!(updated[0].id < ended[0].id && ended[0].id < updated[1].id, "the change, then its sessions");
    let published = feed(&app, cursor).await["revocations"].clone();
    assert_eq!(published.as_array().map(Vec::len), Some(1), "one watermark: {published}");
    assert_eq!(published[0]["user_id"], json!(alice));
    assert_401(&app.post("/auth/token/verify/", &json!({"token": access}).to_string()).await, INVALID);

    let body = json!({"email": "new@example.com", "password": PW, "access_groups": ["support"]});
    let r = admin(Method::POST, "/auth/admin/users/".into(), body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let created = r.json()["id"].as_i64().unwrap();
    let filter = auth_service::store::audit::AuditFilter { user_id: Some(created), ..Default::default() };
    let rows = app.state.store.list_audit(&filter).await.unwrap();
    assert_eq!(rows.len(), 1, "one event for a creation: {rows:?}");
    assert_eq!((rows[0].kind.as_str(), rows[0].actor_id), ("user_created", Some(staff)));
    assert_eq!(detail_of(&rows[0]), json!({"access_groups": ["support"]}));
}

/// Inserts what the housekeeping sorts, named with `tag`: audit events 100, 31 and 29 days
/// old, an expired and a live session, and watermarks 3 days and 1 hour old.
async fn seed_aged_rows(app: &TestApp, user_id: i64, tag: &str) {
    use auth_service::store::audit::audit_events as a;
    use auth_service::store::revocations::revocation_events as w;
    use auth_service::store::sessions::sessions as s;
    use diesel::prelude::*;
    use diesel_async::RunQueryDsl;
    let now = shared_user::user::now_utc();
    let (days, hours) = (chrono::Duration::days, chrono::Duration::hours);
    let db = &app.db.db;
    let done: Result<(), shared_user::DbError> = async {
        shared_user::with_conn!(db, |conn| {
            for age in [days(100), days(31), days(29)] {
                diesel::insert_into(a::table)
                    .values((a::created_at.eq(now - age), a::kind.eq("login_failed"), a::user_id.eq(user_id)))
                    .execute(conn)
                    .await?;
            }
            for (state, expires) in [("expired", now - hours(1)), ("live", now + hours(1))] {
                diesel::insert_into(s::table)
                    .values((
                        s::id.eq(format!("{tag}-{state}")),
                        s::user_id.eq(user_id),
                        s::created_at.eq(now - days(2)),
                        s::last_used_at.eq(now - days(2)),
                        s::expires_at.eq(expires),
                    ))
                    .execute(conn)
                    .await?;
            }
            for age in [days(3), hours(1)] {
                diesel::insert_into(w::table)
                    .values((w::user_id.eq(user_id), w::not_before.eq(0_i64), w::created_at.eq(now - age)))
                    .execute(conn)
                    .await?;
            }
            Ok(())
        })
    }
    .await;
    done.unwrap();
}

/// What the housekeeping left: the user's `login_failed` events, every session id, and the
/// number of watermarks.
async fn kept_rows(app: &TestApp, user_id: i64) -> (usize, Vec<String>, usize) {
    use auth_service::store::sessions::sessions as s;
    use diesel::prelude::*;
    use diesel_async::RunQueryDsl;
    let events = audit_rows(app, user_id, "login_failed").await.len();
    let db = &app.db.db;
    let ids: Result<Vec<String>, shared_user::DbError> =
        async { shared_user::with_conn!(db, |conn| Ok(s::table.order(s::id.asc()).select(s::id).load(conn).await?)) }
            .await;
    let watermarks = app.state.store.revocations_after(0, 100).await.unwrap().len();
    (events, ids.unwrap(), watermarks)
}

/// The hourly housekeeping deletes audit events older than `AUDIT_RETENTION`, expired
/// sessions and watermarks older than every token they refuse, and keeps the rest;
/// `auth-service purge-tokens` runs the same purge once.
async fn the_housekeeping_and_purge_tokens_apply_the_retention(backend: Backend) {
    let Some(app) = app(backend).await else { return };
    let alice = app.add_user("alice@example.com", PW, false, &[]).await;
    seed_aged_rows(&app, alice, "a").await;
    let day = std::time::Duration::from_secs(86_400);
    let purged = auth_service::cli::housekeeping_sessions(&app.state.store, day, 30 * day).await.unwrap();
    assert_eq!(purged, (1, 1, 2), "(sessions, watermarks, audit events)");
    assert_eq!(kept_rows(&app, alice).await, (1, vec!["a-live".to_owned()], 1));
    assert_eq!(audit_kinds(&app, alice).await, ["user_created", "login_failed"], "recent events are kept");

    seed_aged_rows(&app, alice, "b").await;
    let out = Command::new(env!("CARGO_BIN_EXE_auth-service"))
        .arg("purge-tokens")
        .env_clear()
        .env("DATABASE_URL", &app.db.url)
        .env("AUDIT_RETENTION", "30d")
        .env("REFRESH_TOKEN_LIFETIME", "1d")
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(said.contains("1 session(s), 1 watermark(s), 2 audit event(s)"), "{said}");
    assert_eq!(kept_rows(&app, alice).await, (2, vec!["a-live".to_owned(), "b-live".to_owned()], 2));
}

/// Every session row of `user_id` in the table, live or not.
async fn session_row_ids(app: &TestApp, user_id: i64) -> Vec<String> {
    use auth_service::store::sessions::sessions as s;
    use diesel::prelude::*;
    use diesel_async::RunQueryDsl;
    let db = &app.db.db;
    let ids: Result<Vec<String>, shared_user::DbError> = async {
        shared_user::with_conn!(db, |conn| Ok(s::table
            .filter(s::user_id.eq(user_id))
            .order(s::id.asc())
            .select(s::id)
            .load(conn)
            .await?))
    }
    .await;
    ids.unwrap()
}

/// With `MAX_SESSIONS_PER_USER=3`, a fourth login ends the oldest session: three live
/// sessions are left (the newest), the oldest refresh token is refused, and one
/// `session_revoked` event names it and the reason.
async fn a_login_beyond_the_cap_ends_the_oldest_session(backend: Backend) {
    let flags = ["--rotate-refresh-tokens", "true", "--max-sessions-per-user", "3"];
    let Some(app) = TestApp::new(backend, &flags).await else { return };
    let alice = app.add_user("alice@example.com", PW, false, &[]).await;
    let mut refreshes = Vec::new();
    let mut access = String::new();
    for agent in ["one", "two", "three", "four"] {
        let (refresh, a) = login_as(&app, "alice@example.com", agent).await;
        refreshes.push(refresh);
        access = a;
    }
    let listed = sessions(&app, &access).await;
    let agents: Vec<&str> = listed.iter().map(|s| s["user_agent"].as_str().unwrap()).collect();
    assert_eq!(agents, ["four", "three", "two"], "the newest three, newest first");
    let oldest = jti_of(&refreshes[0]);
    assert_401(&refresh(&app, &refreshes[0]).await, &token_not_valid("Token is blacklisted"));
    assert_eq!(refresh(&app, &refreshes[1]).await.status, StatusCode::OK, "the second oldest lives");
    let ended = audit_rows(&app, alice, "session_revoked").await;
    assert_eq!(ended.len(), 1, "{ended:?}");
    assert_eq!(detail_of(&ended[0]), json!({"session": oldest, "reason": "max_sessions_per_user"}));
    assert_eq!((ended[0].user_id, ended[0].actor_id), (Some(alice), None));
    assert_eq!(ended[0].user_agent.as_deref(), Some("four"), "recorded in the request of the login that ended it");
    assert!(!session_row_ids(&app, alice).await.contains(&oldest), "the ended session's row is dropped");
    let kinds = audit_kinds(&app, alice).await;
    assert_eq!(kinds.iter().filter(|k| *k == "login_succeeded").count(), 4);
}

/// `MAX_SESSIONS_PER_USER=0` caps nothing.
async fn a_cap_of_zero_caps_nothing(backend: Backend) {
    let Some(app) = TestApp::new(backend, &["--max-sessions-per-user", "0"]).await else { return };
    let alice = app.add_user("alice@example.com", PW, false, &[]).await;
    let mut access = String::new();
    for _ in 0..5 {
        access = app.login("alice@example.com", PW).await.1;
    }
    assert_eq!(sessions(&app, &access).await.len(), 5);
    assert!(audit_rows(&app, alice, "session_revoked").await.is_empty());
}

/// Parallel logins of one user never leave more live sessions than the cap.
async fn parallel_logins_keep_to_the_cap(backend: Backend) {
    // The limiter off: parallel attempts on one account would otherwise meet its limit first.
    let flags = ["--max-sessions-per-user", "3", "--login-throttle", "false"];
    let Some(app) = TestApp::new(backend, &flags).await else { return };
    let alice = app.add_user("alice@example.com", PW, false, &[]).await;
    let app = std::sync::Arc::new(app);
    let tasks: Vec<_> = (0..12)
        .map(|_| {
            let app = app.clone();
            tokio::spawn(async move { app.login("alice@example.com", PW).await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(app.state.store.live_sessions(alice).await.unwrap().len(), 3);
    assert_eq!(audit_rows(&app, alice, "session_revoked").await.len(), 9, "one event per ended session");
}

/// Live means: not ended, not rotated away, not expired; a family that holds two live tokens
/// (rotation without blacklisting) is one session.
async fn only_live_sessions_are_listed_once_each(backend: Backend) {
    let flags = ["--rotate-refresh-tokens", "true", "--blacklist-after-rotation", "false"];
    let Some(app) = TestApp::new(backend, &flags).await else { return };
    app.add_user("alice@example.com", PW, false, &[]).await;
    app.add_user("bob@example.com", PW, false, &[]).await;
    let (rotating, _) = login_as(&app, "alice@example.com", "rotating").await;
    let (ended, _) = login_as(&app, "alice@example.com", "ended").await;
    let (_, access) = login_as(&app, "alice@example.com", "plain").await;
    login_as(&app, "bob@example.com", "bob").await;
    assert_eq!(refresh(&app, &rotating).await.status, StatusCode::OK);
    let auth = bearer(&access);
    let path = format!("/auth/sessions/{}/", jti_of(&ended));
    assert_eq!(app.send(Method::DELETE, &path, None, &[("authorization", &auth)]).await.status, StatusCode::NO_CONTENT);
    let listed = sessions(&app, &access).await;
    let agents: Vec<&str> = listed.iter().map(|s| s["user_agent"].as_str().unwrap()).collect();
    assert_eq!(agents, ["plain", "rotating"]);
}

/// 105 live sessions: the lists answer 100 (the newest) by default and on `?page=1`, the
/// other 5 on `?page=2`, and 404 "Invalid page." past the end or for a page that is not a
/// positive number, on REST, the admin API and GraphQL.
async fn session_lists_are_paged(backend: Backend) {
    let flags = ["--max-sessions-per-user", "0"];
    let Some(app) = TestApp::new(backend, &flags).await else { return };
    let alice = app.add_user("alice@example.com", PW, false, &[]).await;
    app.add_user("staff@example.com", PW, true, &[]).await;
    let user = app.state.store.find_user(alice).await.unwrap().unwrap();
    let mut ids = Vec::new();
    for _ in 0..104 {
        let session = auth_service::service::start_session(&app.state, user.clone()).await.unwrap();
        ids.push(session.refresh.jti);
    }
    let (newest, access) = app.login("alice@example.com", PW).await;
    ids.push(jti_of(&newest));
    ids.reverse();
    let (_, staff) = app.login("staff@example.com", PW).await;
    let page = |path: String, token: String| {
        let app = &app;
        async move {
            let r = app.get_bearer(&path, &token).await;
            if r.status == StatusCode::OK {
                let listed: Vec<String> =
                    r.json().as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap().to_owned()).collect();
                Ok(listed)
            } else {
                Err(r)
            }
        }
    };
    let admin = format!("/auth/admin/users/{alice}/sessions/");
    for (base, token) in [("/auth/sessions/".to_owned(), &access), (admin, &staff)] {
        let first = page(base.clone(), token.clone()).await.unwrap();
        assert_eq!(first.len(), 100, "{base}");
        assert_eq!(first[0], ids[0], "{base}: newest first");
        let mut both = first.clone();
        assert_eq!(page(format!("{base}?page=1"), token.clone()).await.unwrap(), first, "{base}");
        let second = page(format!("{base}?page=2"), token.clone()).await.unwrap();
        assert_eq!(second.len(), 5, "{base}");
        both.extend(second);
        let mut sorted = both.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), 105, "{base}: every session once");
        assert_eq!(both, ids, "{base}: in order");
        for bad in ["3", "0", "-1", "x"] {
            let r = page(format!("{base}?page={bad}"), token.clone()).await.unwrap_err();
            assert_json(&r, StatusCode::NOT_FOUND, r#"{"detail":"Invalid page."}"#);
        }
    }
    let gql = |query: &'static str| {
        let app = &app;
        let auth = format!("JWT {access}");
        async move {
            let body = json!({"query": query}).to_string();
            let r = app.send(Method::POST, "/graphql", Some(&body), &[("authorization", &auth)]).await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.text);
            r.json()
        }
    };
    let v = gql("{ sessions { id } }").await;
    assert_eq!(v["data"]["sessions"].as_array().map(Vec::len), Some(100), "{v}");
    let v = gql("{ sessions(page: 2) { id } }").await;
    assert_eq!(v["data"]["sessions"].as_array().map(Vec::len), Some(5), "{v}");
    assert_eq!(v["data"]["sessions"][4]["id"], json!(ids[104]));
    let v = gql("{ sessions(page: 3) { id } }").await;
    assert_eq!(v["errors"][0]["message"], "Invalid page.", "{v}");
}

both_backends!(
    sessions_are_listed_and_ended_one_by_one,
    a_session_is_ended_once_under_parallel_deletes,
    logout_all_refuses_earlier_tokens_everywhere,
    the_watermark_boundary_is_iat_before_not_before,
    password_change_and_deactivation_refuse_old_access_tokens,
    the_feed_is_protected,
    long_polls_of_the_feed_answer_as_soon_as_a_revocation_lands,
    logins_are_audited_and_the_cli_lists_them,
    graphql_sessions_and_logout_all,
    a_reused_refresh_token_is_audited,
    a_session_records_the_callers_address_and_its_last_use,
    another_replica_refuses_revoked_tokens_within_seconds,
    admin_changes_keep_their_audit_detail,
    the_housekeeping_and_purge_tokens_apply_the_retention,
    a_login_beyond_the_cap_ends_the_oldest_session,
    a_cap_of_zero_caps_nothing,
    parallel_logins_keep_to_the_cap,
    only_live_sessions_are_listed_once_each,
    session_lists_are_paged,
);
