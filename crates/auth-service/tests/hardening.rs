//! What answers say beyond their bodies: links that never come from `Host`, no-store on every
//! answer carrying a token, HSTS on the console over TLS, the revocation feed's token check,
//! and IPv6 callers counted by their /64.

mod common;

use std::net::SocketAddr;

use auth_service::store::NewUser;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request, StatusCode};
use common::*;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use shared_user::both_backends;
use shared_user::testing::Backend;
use tower::ServiceExt;

const PW: &str = "correct horse battery";
const FEED_TOKEN: &str = "feed-token-0123456789abcdef";

async fn add_superuser(app: &TestApp, email: &str) -> i64 {
    let hash = app.state.hasher.hash(PW.to_owned()).await.unwrap();
    let new = NewUser {
        email: email.into(),
        password_hash: hash,
        first_name: String::new(),
        last_name: String::new(),
        is_staff: true,
        is_superuser: true,
        groups: Vec::new(),
    };
    app.state.store.create_user(new).await.unwrap().id
}

/// Sends a request as if it came from the socket peer `peer`.
async fn from_peer(app: &TestApp, peer: &str, req: axum::http::request::Builder, body: Option<Value>) -> Reply {
    let peer: SocketAddr = peer.parse().unwrap();
    let req = req.extension(ConnectInfo(peer));
    let req = match body {
        Some(b) => req.header("content-type", "application/json").body(Body::from(b.to_string())).unwrap(),
        None => req.body(Body::empty()).unwrap(),
    };
    let resp = app.router.clone().oneshot(req).await.unwrap();
    let (status, headers) = (resp.status(), resp.headers().clone());
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    Reply { status, headers, text: String::from_utf8_lossy(&bytes).into_owned() }
}

#[track_caller]
fn assert_no_store(r: &Reply, what: &str) {
    assert_eq!(r.header("cache-control"), Some("no-store"), "{what}: Cache-Control");
    assert_eq!(r.header("pragma"), Some("no-cache"), "{what}: Pragma");
}

/// `Host: evil.example` does not reach the admin API's paging links: they are paths.
async fn admin_links_never_come_from_the_host_header(backend: Backend) {
    let Some(app) = TestApp::new(backend, &[] as &[&str]).await else { return };
    add_superuser(&app, "root@example.com").await;
    for i in 0..26 {
        app.add_user_with_hash(&format!("user{i:02}@example.com"), "!").await;
    }
    app.login("root@example.com", PW).await;
    let (_, root) = app.login("root@example.com", PW).await;
    let auth = format!("Bearer {root}");
    let headers = [("authorization", auth.as_str()), ("host", "evil.example")];

    let r = app.send(Method::GET, "/auth/admin/audit/?limit=1", None, &headers).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let next = r.json()["next"].as_str().expect("a next page").to_owned();
    assert!(next.starts_with("/auth/admin/audit/?") && next.contains("before="), "{next}");
    assert!(!next.contains("evil"), "{next}");
    let r = app.send(Method::GET, &next, None, &headers).await;
    assert_eq!((r.status, r.json()["results"].as_array().map(Vec::len)), (StatusCode::OK, Some(1)));

    let r = app.send(Method::GET, "/auth/admin/users/?search=example", None, &headers).await;
    assert_eq!(r.json()["next"], json!("/auth/admin/users/?page=2&search=example"));
    let r = app.send(Method::GET, "/auth/admin/users/?page=2", None, &headers).await;
    assert_eq!(r.json()["previous"], json!("/auth/admin/users/"));
}

/// Every answer carrying a token says `Cache-Control: no-store` and `Pragma: no-cache`:
/// obtain, refresh, GraphQL, the Hasura actions and the console (failures too, and the
/// stylesheet keeps its own caching).
async fn answers_carrying_tokens_are_never_stored(backend: Backend) {
    let Some(app) = TestApp::new(backend, &["--users-reader-group", "manager"]).await else { return };
    app.add_user("alice@example.com", PW, false, &[]).await;

    let creds = json!({"email": "alice@example.com", "password": PW}).to_string();
    let r = app.post("/auth/token/", &creds).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_no_store(&r, "obtain");
    let refresh = r.json()["refresh"].as_str().unwrap().to_owned();
    assert_no_store(&app.post("/auth/token/", r#"{"email":"alice@example.com","password":"x"}"#).await, "401");
    let r = app.post("/auth/token/refresh/", &json!({"refresh": refresh}).to_string()).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_no_store(&r, "refresh");

    let q = json!({"query": "mutation{tokenAuth(email:\"alice@example.com\",password:\"correct horse battery\"){token refreshToken}}"});
    let r = app.post("/graphql/", &q.to_string()).await;
    assert!(r.json()["data"]["tokenAuth"]["token"].is_string(), "{}", r.text);
    assert_no_store(&r, "GraphQL tokenAuth");
    let r = app
        .post("/hasura/actions/login/", &json!({"input": {"email": "alice@example.com", "password": PW}}).to_string())
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_no_store(&r, "Hasura login");

    let r = app.get_with("/admin/login/", &[]).await;
    assert_no_store(&r, "console sign-in");
    let r = app.get_with("/admin/static/console.css", &[]).await;
    assert_eq!(r.header("cache-control"), Some("public, max-age=3600"));
    // Not on answers that carry no token.
    assert_eq!(app.get_with("/.well-known/jwks.json", &[]).await.header("pragma"), None);
}

/// HSTS on the console when a trusted proxy says the request came over HTTPS; not over plain
/// HTTP, and not when an untrusted caller claims HTTPS.
async fn the_console_sends_hsts_over_tls_only(backend: Backend) {
    let Some(app) = TestApp::new(backend, &["--trusted-proxies", "127.0.0.1"]).await else { return };
    let get = || Request::builder().method(Method::GET).uri("/admin/login/");
    let r = from_peer(&app, "127.0.0.1:5000", get().header("x-forwarded-proto", "https"), None).await;
    assert_eq!(r.header("strict-transport-security"), Some("max-age=31536000"));
    let r = from_peer(&app, "127.0.0.1:5000", get().header("x-forwarded-proto", "http"), None).await;
    assert_eq!(r.header("strict-transport-security"), None);
    let r = from_peer(&app, "127.0.0.9:5000", get().header("x-forwarded-proto", "https"), None).await;
    assert_eq!(r.header("strict-transport-security"), None, "an untrusted peer's claim");
}

/// The feed token: only the exact token is let in (its prefixes, extensions and other values
/// of its length are refused alike).
async fn the_feed_token_must_match_exactly(backend: Backend) {
    let Some(app) = TestApp::new(backend, &["--revocation-feed-token", FEED_TOKEN]).await else { return };
    let feed = "/auth/revocations/?after=0";
    assert_eq!(app.get_with(feed, &[("x-revocation-feed-token", FEED_TOKEN)]).await.status, StatusCode::OK);
    let same_length = "x".repeat(FEED_TOKEN.len());
    let longer = format!("{FEED_TOKEN}x");
    for wrong in ["", "f", &FEED_TOKEN[..FEED_TOKEN.len() - 1], &longer, &same_length] {
        let r = app.get_with(feed, &[("x-revocation-feed-token", wrong)]).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{wrong:?}");
    }
}

/// IPv6 callers are counted by their /64: twenty failures from twenty addresses of one /64
/// lock it, while another /64 is still heard.
async fn ipv6_callers_are_counted_by_their_64(backend: Backend) {
    let Some(app) = TestApp::new(backend, &["--trusted-proxies", "127.0.0.1"]).await else { return };
    let attempt = |n: u32, network: &str| {
        let req = Request::builder()
            .method(Method::POST)
            .uri("/auth/token/")
            .header("x-forwarded-for", format!("{network}:0:0:{n:x}:1"));
        from_peer(&app, "127.0.0.1:5000", req, Some(json!({"email": format!("u{n}@example.com"), "password": "x"})))
    };
    for n in 1..=20 {
        assert_eq!(attempt(n, "2001:db8:1:2").await.status, StatusCode::UNAUTHORIZED, "attempt {n}");
    }
    let r = attempt(21, "2001:db8:1:2").await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text);
    assert_eq!(attempt(22, "2001:db8:1:3").await.status, StatusCode::UNAUTHORIZED, "another /64");
    let keys = throttle_keys(&app).await;
    assert!(keys.contains(&"ip:2001:db8:1:2::".to_owned()), "{keys:?}");
    assert!(!keys.iter().any(|k| k.contains("2001:db8:1:2::1:1")), "{keys:?}");
}

both_backends!(
    admin_links_never_come_from_the_host_header,
    answers_carrying_tokens_are_never_stored,
    the_console_sends_hsts_over_tls_only,
    the_feed_token_must_match_exactly,
    ipv6_callers_are_counted_by_their_64,
);
