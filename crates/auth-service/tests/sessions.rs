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
    let mark = auth_service::sessions::watermark_now();
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

both_backends!(
    sessions_are_listed_and_ended_one_by_one,
    a_session_is_ended_once_under_parallel_deletes,
    logout_all_refuses_earlier_tokens_everywhere,
    the_watermark_boundary_is_iat_before_not_before,
    password_change_and_deactivation_refuse_old_access_tokens,
    the_feed_is_protected,
    logins_are_audited_and_the_cli_lists_them,
    graphql_sessions_and_logout_all,
);
