//! Operations across the pair: one `X-Request-Id` follows a login through the client's and the
//! auth-service's logs, neither log holds a token or a password, and the demo client serves its
//! metrics and OpenAPI document.

#[macro_use]
mod common;

use client_service::VerifyMode;
use common::{Options, PASSWORD, Pair};
use serde_json::{Value, json};
use shared_user::both_backends;
use shared_user::testing::{Backend, logs};

/// The access lines logged under request id `id`: `(route, status)` each.
fn access_lines(logs: &logs::Logs, id: &str) -> Vec<(String, u64)> {
    logs.of_request(id)
        .iter()
        .filter(|l| l["target"] == "gatehouse::access")
        .map(|l| (l["fields"]["route"].as_str().unwrap_or("").to_owned(), l["fields"]["status"].as_u64().unwrap_or(0)))
        .collect()
}

async fn a_request_id_follows_a_login_through_both_services(backend: Backend) {
    let logs = logs::capture();
    let Some(pair) = Pair::start(backend, Options::new(VerifyMode::Local)).await else { return };
    pair.add_user("ada@example.com", &[]).await;
    let id = format!("follow-{backend:?}-login");
    let body = json!({"email": "ada@example.com", "password": PASSWORD});
    let r = pair.post_with("/auth/token/", &body, &[("x-request-id", &id)]).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("x-request-id"), id, "the caller's id comes back");

    let lines = access_lines(&logs, &id);
    // The client's line, the auth-service's line for the proxied login, and its line for the
    // user fetch the client makes to fill its mirror: one id across both services.
    let logins = lines.iter().filter(|(route, status)| route == "/auth/token/" && *status == 200).count();
    assert_eq!(logins, 2, "client and auth-service each log the login once: {lines:?}");
    assert!(
        lines.iter().any(|(route, _)| route.starts_with("/auth/user")),
        "the mirror fetch carries the id: {lines:?}"
    );
    assert!(
        logs.of_request(&id).iter().any(|l| l["fields"]["message"] == "token pair issued"),
        "the auth-service's own line of the login carries the id"
    );

    // Without an id, the client makes one and the auth-service logs the same.
    let r = pair.post("/auth/token/", &body).await;
    assert_eq!(r.status, 200);
    let generated = r.header("x-request-id").to_owned();
    assert!(uuid::Uuid::parse_str(&generated).is_ok(), "generated id {generated:?}");
    let lines = access_lines(&logs, &generated);
    assert_eq!(lines.iter().filter(|(route, _)| route == "/auth/token/").count(), 2, "{lines:?}");
    pair.finish().await;
}

both_backends!(a_request_id_follows_a_login_through_both_services);

async fn neither_log_holds_a_token_or_a_password(backend: Backend) {
    let logs = logs::capture();
    let Some(pair) = Pair::start(backend, Options::new(VerifyMode::Remote)).await else { return };
    pair.add_user("ada@example.com", &[]).await;
    let (refresh, access) = pair.login("ada@example.com").await;
    let wrong =
        pair.post("/auth/token/", &json!({"email": "ada@example.com", "password": "not-the-password-42"})).await;
    assert_eq!(wrong.status, 401);
    assert_eq!(pair.get("/api/me/", &access).await.status, 200);
    let refreshed = pair.post("/auth/token/refresh/", &json!({"refresh": refresh})).await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.text);
    let new_access = refreshed.json()["access"].as_str().unwrap().to_owned();
    assert_eq!(pair.post("/auth/token/verify/", &json!({"token": new_access})).await.status, 200);
    assert_eq!(pair.get_with(&format!("/api/test/?access_token={access}"), &[]).await.status, 401);
    let logout = pair.post("/auth/token/logout/", &json!({"refresh": refresh})).await;
    assert_eq!(logout.status, 200);

    let text = logs.text();
    assert!(text.contains("gatehouse::access"), "access lines were captured");
    for secret in [PASSWORD, "not-the-password-42", &access, &refresh, &new_access] {
        assert!(!text.contains(secret), "a secret reached the log: {}...", &secret[..secret.len().min(8)]);
    }
    for token in [&access, &refresh, &new_access] {
        let signature = token.rsplit('.').next().unwrap();
        assert!(!text.contains(signature), "a token signature reached the log");
    }
    pair.finish().await;
}

both_backends!(neither_log_holds_a_token_or_a_password);

/// The value of the first sample of `name` holding every one of `labels`.
fn sample(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .find(|l| labels.iter().all(|label| l.contains(label)))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_client_serves_metrics_and_its_openapi_document() {
    // Asymmetric keys: local verification goes through the auth-service's JWKS.
    let options = Options::new(VerifyMode::Local).auth(|s| s.algorithm = shared_user::jsonwebtoken::Algorithm::EdDSA);
    let pair = Pair::start(Backend::Sqlite, options).await.expect("sqlite");
    pair.add_user("ada@example.com", &[]).await;
    let (_, access) = pair.login_direct("ada@example.com").await;
    for _ in 0..3 {
        assert_eq!(pair.get("/api/me/", &access).await.status, 200);
    }

    let r = pair.get_with("/metrics", &[]).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.content_type(), "text/plain; version=0.0.4; charset=utf-8");
    let text = &r.text;
    let at_least = |name: &str, labels: &[&str], min: f64| {
        let value = sample(text, name, labels).unwrap_or_else(|| panic!("no {name} {labels:?} in:\n{text}"));
        assert!(value >= min, "{name} {labels:?} = {value}, expected >= {min}");
    };
    at_least("gatehouse_http_requests_total", &[r#"route="/api/me/""#, r#"status="200""#], 3.0);
    at_least("gatehouse_token_cache_total", &[r#"result="miss""#], 1.0);
    at_least("gatehouse_token_cache_total", &[r#"result="hit""#], 2.0);
    at_least("gatehouse_mirror_fetches_total", &[r#"outcome="success""#], 1.0);
    at_least("gatehouse_upstream_requests_total", &[r#"outcome="ok""#], 2.0);
    at_least("gatehouse_upstream_request_duration_seconds_count", &[], 2.0);
    at_least("gatehouse_jwks_fetches_total", &[r#"outcome="success""#], 1.0);

    let doc = pair.get_with("/openapi.json", &[]).await;
    assert_eq!(doc.status, 200);
    assert_eq!(doc.content_type(), "application/json");
    let doc: Value = doc.json();
    for path in ["/auth/token/", "/api/me/", "/metrics"] {
        assert!(doc["paths"].get(path).is_some(), "{path} documented");
    }
    pair.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_counts_upstream_failures() {
    let mut pair = Pair::start(Backend::Sqlite, Options::new(VerifyMode::Remote)).await.expect("sqlite");
    pair.add_user("ada@example.com", &[]).await;
    let (_, access) = pair.login("ada@example.com").await;
    pair.kill_auth().await;
    assert_eq!(pair.get("/api/me/", &access).await.status, 503);
    let text = pair.get_with("/metrics", &[]).await.text;
    assert!(
        sample(&text, "gatehouse_upstream_requests_total", &[r#"outcome="connection""#]).is_some_and(|v| v >= 1.0),
        "{text}"
    );
    pair.finish().await;
}
