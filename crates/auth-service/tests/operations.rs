//! Operations: `X-Request-Id` on every answer, one access-log line per request (and the
//! request id on every line of that request) with no secret in any line, and `GET /metrics`.

mod common;

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request, StatusCode};
use common::{Reply, TestApp};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use shared_user::both_backends;
use shared_user::testing::{Backend, logs};
use tower::ServiceExt;

const PASSWORD: &str = "correct horse battery staple";
const NEW_PASSWORD: &str = "staple tuna vessel quartz";

/// Sends a JSON request as the peer 127.0.0.9 with `X-Request-Id: id`.
async fn send(app: &TestApp, method: Method, uri: &str, body: Option<Value>, id: &str) -> Reply {
    let mut req = Request::builder().method(method).uri(uri).header("x-request-id", id);
    if body.is_some() {
        req = req.header("content-type", "application/json");
    }
    let mut req = req.body(body.map_or_else(Body::empty, |b| Body::from(b.to_string()))).unwrap();
    req.extensions_mut().insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 9], 40_000))));
    let resp = app.router.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    Reply { status, headers, text: String::from_utf8_lossy(&bytes).into_owned() }
}

fn is_uuid(id: &str) -> bool {
    uuid::Uuid::parse_str(id).is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_carries_a_request_id_kept_when_sane_and_generated_otherwise() {
    let app = TestApp::new(Backend::Sqlite, &[]).await.expect("sqlite");
    // Success, client error, unknown path, wrong method: all carry one.
    for (method, path) in [
        (Method::GET, "/healthz"),
        (Method::POST, "/auth/token/"),
        (Method::GET, "/no/such/path"),
        (Method::DELETE, "/auth/token/"),
        (Method::GET, "/auth/user/"),
    ] {
        let r = app.send(method.clone(), path, None, &[]).await;
        let id = r.header("x-request-id").unwrap_or_else(|| panic!("{method} {path} ({}): no X-Request-Id", r.status));
        assert!(is_uuid(id), "{method} {path}: generated id {id:?} is not a UUID");
        let kept = app.send(method.clone(), path, None, &[("x-request-id", "abc-123_DEF.4:5")]).await;
        assert_eq!(kept.header("x-request-id"), Some("abc-123_DEF.4:5"), "{method} {path}: a sane id is kept");
    }
    let long = "a".repeat(200);
    for bad in ["has spaces", "quote\"d", long.as_str(), "semi;colon", "<script>"] {
        let r = app.get_with("/healthz", &[("x-request-id", bad)]).await;
        let id = r.header("x-request-id").unwrap();
        assert!(is_uuid(id), "{bad:?} should be replaced by a generated id, got {id:?}");
    }
    let two = app.send(Method::GET, "/healthz", None, &[("x-request-id", "one"), ("x-request-id", "two")]).await;
    assert!(is_uuid(two.header("x-request-id").unwrap()), "two ids: replaced by one generated id");
    assert_eq!(two.headers.get_all("x-request-id").iter().count(), 1);
}

async fn access_log_and_secrets(backend: Backend) {
    let logs = logs::capture();
    let Some(app) = TestApp::new(backend, &["--rotate-refresh-tokens", "true"]).await else { return };
    let tag = format!("{backend:?}").to_lowercase();
    app.add_user("ada@example.com", PASSWORD, false, &[]).await;

    let login = send(
        &app,
        Method::POST,
        "/auth/token/",
        Some(json!({"email": "ada@example.com", "password": PASSWORD})),
        &format!("{tag}-login"),
    )
    .await;
    assert_eq!(login.status, StatusCode::OK, "{}", login.text);
    let (refresh, access) =
        (login.json()["refresh"].as_str().unwrap().to_owned(), login.json()["access"].as_str().unwrap().to_owned());
    let wrong = send(
        &app,
        Method::POST,
        "/auth/token/",
        Some(json!({"email": "ada@example.com", "password": "wrong-password-xyz"})),
        &format!("{tag}-wrong"),
    )
    .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    let refreshed =
        send(&app, Method::POST, "/auth/token/refresh/", Some(json!({"refresh": refresh})), &format!("{tag}-refresh"))
            .await;
    assert_eq!(refreshed.status, StatusCode::OK, "{}", refreshed.text);
    let new_refresh = refreshed.json()["refresh"].as_str().unwrap().to_owned();
    let verify =
        send(&app, Method::POST, "/auth/token/verify/", Some(json!({"token": access})), &format!("{tag}-verify")).await;
    assert_eq!(verify.status, StatusCode::OK);
    // A token in the query string (a misbehaving client) must not reach the log either.
    let query = send(&app, Method::GET, &format!("/auth/user/?token={access}"), None, &format!("{tag}-query")).await;
    assert_eq!(query.status, StatusCode::UNAUTHORIZED);
    let change = send(
        &app,
        Method::POST,
        "/auth/password-change/",
        Some(json!({"email": "ada@example.com", "password": PASSWORD, "new_password": NEW_PASSWORD})),
        &format!("{tag}-change"),
    )
    .await;
    assert_eq!(change.status, StatusCode::OK, "{}", change.text);

    // One access line per request, with method, route template, status, latency and client.
    let of_login = logs.of_request(&format!("{tag}-login"));
    let access_lines: Vec<&Value> = of_login.iter().filter(|l| l["target"] == "gatehouse::access").collect();
    assert_eq!(access_lines.len(), 1, "one access line per request: {of_login:#?}");
    let fields = &access_lines[0]["fields"];
    assert_eq!(fields["method"], "POST");
    assert_eq!(fields["route"], "/auth/token/");
    assert_eq!(fields["status"], 200);
    assert_eq!(fields["client"], "127.0.0.9");
    assert!(fields["latency_ms"].as_f64().is_some_and(|ms| ms >= 0.0), "{fields}");
    assert_eq!(access_lines[0]["level"], "INFO");
    // The service's own lines of that request carry the id too.
    assert!(
        of_login.iter().any(|l| l["fields"]["message"] == "token pair issued"),
        "the service's log line is inside the request's span: {of_login:#?}"
    );
    let of_query = logs.of_request(&format!("{tag}-query"));
    let query_line = of_query.iter().find(|l| l["target"] == "gatehouse::access").expect("access line");
    assert_eq!(query_line["fields"]["route"], "/auth/user/", "the route template, not the URI");

    let text = logs.text();
    for secret in [PASSWORD, NEW_PASSWORD, "wrong-password-xyz", &access, &refresh, &new_refresh] {
        assert!(!text.contains(secret), "a secret reached the log: {}", &secret[..secret.len().min(12)]);
    }
    // Nor any part of a token (its signature, or its payload).
    for token in [&access, &refresh] {
        for part in token.split('.').skip(1) {
            assert!(!text.contains(part), "a token part reached the log");
        }
    }
}

both_backends!(access_log_and_secrets);

async fn metrics_text(app: &TestApp) -> String {
    let r = app.get_with("/metrics", &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.content_type(), "text/plain; version=0.0.4; charset=utf-8");
    r.text
}

/// The value of the sample whose line starts with `name{` and holds every label of `labels`.
fn sample(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .find(|l| labels.iter().all(|label| l.contains(label)))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

async fn metrics_count_requests_logins_refreshes_and_hashes(backend: Backend) {
    let Some(app) = TestApp::new(backend, &["--rotate-refresh-tokens", "true", "--refresh-reuse-grace", "0s"]).await
    else {
        return;
    };
    let id = app.add_user("ada@example.com", PASSWORD, false, &[]).await;
    let (refresh, access) = app.login("ada@example.com", PASSWORD).await;
    let wrong = app.post("/auth/token/", &json!({"email": "ada@example.com", "password": "nope"}).to_string()).await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(app.get_bearer(&format!("/auth/users/{id}/"), &access).await.status, StatusCode::OK);
    assert_eq!(app.get_bearer(&format!("/auth/users/{id}"), &access).await.status, StatusCode::OK);
    let body = json!({"refresh": refresh}).to_string();
    assert_eq!(app.post("/auth/token/refresh/", &body).await.status, StatusCode::OK);
    // The rotated token again, past the (zero) grace window: reuse detected, family revoked.
    assert_eq!(app.post("/auth/token/refresh/", &body).await.status, StatusCode::UNAUTHORIZED);
    for path in ["/wp-admin/setup.php", "/.env", "/random-1", "/random-2"] {
        assert_eq!(app.get_with(path, &[]).await.status, StatusCode::NOT_FOUND);
    }

    let text = metrics_text(&app).await;
    let requests = "gatehouse_http_requests_total";
    let at_least = |name: &str, labels: &[&str], min: f64| {
        let value = sample(&text, name, labels).unwrap_or_else(|| panic!("no {name} {labels:?} in:\n{text}"));
        assert!(value >= min, "{name} {labels:?} = {value}, expected >= {min}");
    };
    at_least(requests, &[r#"method="POST""#, r#"route="/auth/token/""#, r#"status="200""#], 1.0);
    at_least(requests, &[r#"route="/auth/token/""#, r#"status="401""#], 1.0);
    at_least(requests, &[r#"route="/auth/users/{id}/""#, r#"status="200""#], 1.0);
    at_least(requests, &[r#"route="/auth/users/{id}""#, r#"status="200""#], 1.0);
    at_least(requests, &[r#"route="unmatched""#, r#"status="404""#], 4.0);
    assert!(!text.contains("wp-admin") && !text.contains("random-1"), "unknown paths share one label");
    assert!(!text.contains(&format!("/auth/users/{id}/")), "route templates, never concrete ids");
    at_least("gatehouse_http_request_duration_seconds_count", &[r#"route="/auth/token/""#], 1.0);
    at_least("gatehouse_http_request_duration_seconds_bucket", &[r#"route="/auth/token/""#, r#"le="+Inf""#], 1.0);
    at_least("gatehouse_logins_total", &[r#"outcome="success""#], 1.0);
    at_least("gatehouse_logins_total", &[r#"outcome="failure""#], 1.0);
    at_least("gatehouse_refreshes_total", &[r#"outcome="success""#], 1.0);
    at_least("gatehouse_refreshes_total", &[r#"outcome="rejected""#], 1.0);
    at_least("gatehouse_refresh_reuse_detected_total", &[], 1.0);
    at_least("gatehouse_hash_duration_seconds_count", &[], 2.0);
    assert!(sample(&text, "gatehouse_hash_queue_depth", &[]).is_some(), "hash queue gauge:\n{text}");
    assert!(text.contains("# HELP gatehouse_logins_total"), "metrics are described");
}

both_backends!(metrics_count_requests_logins_refreshes_and_hashes);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttled_attempts_are_counted() {
    let app = TestApp::new(Backend::Sqlite, &[]).await.expect("sqlite");
    app.add_user("ada@example.com", PASSWORD, false, &[]).await;
    let body = json!({"email": "ada@example.com", "password": "wrong"}).to_string();
    let mut throttled = false;
    for _ in 0..10 {
        throttled |= app.post("/auth/token/", &body).await.status == StatusCode::TOO_MANY_REQUESTS;
    }
    assert!(throttled, "the throttle answered 429");
    let text = metrics_text(&app).await;
    assert!(sample(&text, "gatehouse_throttled_total", &[]).is_some_and(|v| v >= 1.0), "{text}");
    assert!(sample(&text, "gatehouse_http_requests_total", &[r#"status="429""#]).is_some_and(|v| v >= 1.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_can_be_switched_off() {
    let app = TestApp::new(Backend::Sqlite, |s: &mut auth_service::Settings| s.metrics = false).await.expect("sqlite");
    let r = app.get_with("/metrics", &[]).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.header("x-request-id").is_some(), "request ids do not depend on metrics");
}
