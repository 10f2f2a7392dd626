//! The proxy against an auth-service that misbehaves: server errors become 502, a 503 passes
//! through, non-JSON user answers never crash a request, and nothing hangs.

use axum::Router;
use axum::http::StatusCode;
use axum::routing::{get, post};
use client_service::{AuthUser, ClientConfig, ClientState};
use http_body_util::BodyExt;
use shared_user::testing::{Backend, TestDb};
use tower::ServiceExt;

const KEY: &str = "upstream-test-key-0123456789abcdef0123";

async fn fake_auth_service() -> String {
    let app = Router::new()
        .route("/auth/token/", post(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "<html>boom</html>") }))
        .route(
            "/auth/token/refresh/",
            post(|| async {
                (StatusCode::SERVICE_UNAVAILABLE, [("content-type", "application/json")], r#"{"detail":"down"}"#)
            }),
        )
        .route("/auth/user/", get(|| async { (StatusCode::OK, "not json") }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

async fn call(app: &Router, method: &str, path: &str, body: &str, auth: Option<&str>) -> (StatusCode, String) {
    let mut req = axum::http::Request::builder().method(method).uri(path).header("content-type", "application/json");
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    let resp = app.clone().oneshot(req.body(axum::body::Body::from(body.to_owned())).unwrap()).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_failures_map_to_gateway_errors_not_500() {
    let db = TestDb::new(Backend::Sqlite, "upstream", client_service::MIGRATIONS).await.unwrap();
    let url = fake_auth_service().await;
    let config = ClientConfig::builder(url).local_hmac(KEY).build().unwrap();
    let state = ClientState::new(config, db.db.clone()).unwrap();
    let app = Router::new()
        .route("/api/test/", get(|_: AuthUser| async { "success" }))
        .with_state(state.clone())
        .merge(client_service::router(state));

    let (status, body) = call(&app, "POST", "/auth/token/", r#"{"email":"a@b.co","password":"x"}"#, None).await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::BAD_GATEWAY, r#"{"detail":"Authentication service returned an error."}"#)
    );
    let (status, body) = call(&app, "POST", "/auth/token/refresh/", r#"{"refresh":"x"}"#, None).await;
    assert_eq!((status, body.as_str()), (StatusCode::SERVICE_UNAVAILABLE, r#"{"detail":"down"}"#));

    // A valid token whose user fetch answers garbage: 502, not a crash.
    let now = chrono::Utc::now().timestamp();
    let claims = serde_json::json!({"token_type": "access", "exp": now + 60, "iat": now, "jti": "j", "user_id": 7});
    let token = shared_user::jsonwebtoken::encode(
        &shared_user::jsonwebtoken::Header::default(),
        &claims,
        &shared_user::jsonwebtoken::EncodingKey::from_secret(KEY.as_bytes()),
    )
    .unwrap();
    let (status, body) = call(&app, "GET", "/api/test/", "", Some(&format!("Bearer {token}"))).await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::BAD_GATEWAY, r#"{"detail":"Authentication service returned an error."}"#)
    );
}

/// An auth-service that refuses everything as SimpleJWT's token views do: 401 with its own
/// `WWW-Authenticate: Bearer realm="api"`; a 400 field map on refresh.
async fn refusing_auth_service() -> String {
    let refuse = || async {
        (
            StatusCode::UNAUTHORIZED,
            [("content-type", "application/json"), ("www-authenticate", r#"Bearer realm="api""#)],
            r#"{"detail":"No active account found with the given credentials"}"#,
        )
    };
    let app = Router::new()
        .route("/auth/token/", post(refuse))
        .route("/auth/token/verify/", post(refuse))
        .route("/auth/user/", get(refuse))
        .route(
            "/auth/token/refresh/",
            post(|| async {
                (
                    StatusCode::BAD_REQUEST,
                    [("content-type", "application/json")],
                    r#"{"refresh":["This field is required."]}"#,
                )
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

/// Status, `WWW-Authenticate` and body of one call.
async fn call_with_header(app: &Router, method: &str, path: &str, body: &str) -> (StatusCode, Option<String>, String) {
    let req = axum::http::Request::builder().method(method).uri(path).header("content-type", "application/json");
    let resp = app.clone().oneshot(req.body(axum::body::Body::from(body.to_owned())).unwrap()).await.unwrap();
    let status = resp.status();
    let www = resp.headers().get("www-authenticate").map(|v| v.to_str().unwrap().to_owned());
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, www, String::from_utf8_lossy(&bytes).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxied_401_carries_the_clients_own_www_authenticate_not_the_auth_services() {
    let db = TestDb::new(Backend::Sqlite, "proxied 401", client_service::MIGRATIONS).await.unwrap();
    let url = refusing_auth_service().await;
    let no_account = r#"{"detail":"No active account found with the given credentials"}"#;
    for (types, expected) in [(vec!["Bearer"], "Bearer"), (vec!["JWT", "Bearer"], "JWT")] {
        let config = ClientConfig::builder(url.clone()).local_hmac(KEY).auth_header_types(types).build().unwrap();
        let app: Router = client_service::router(ClientState::new(config, db.db.clone()).unwrap());
        for (method, path, body) in [
            ("POST", "/auth/token/", r#"{"email":"a@b.co","password":"x"}"#),
            ("POST", "/auth/token", r#"{"email":"a@b.co","password":"x"}"#),
            ("POST", "/auth/token/verify/", r#"{"token":"x"}"#),
            ("GET", "/auth/user/", ""),
        ] {
            let (status, www, text) = call_with_header(&app, method, path, body).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path}");
            assert_eq!(www.as_deref(), Some(expected), "{method} {path}: the client's first scheme, no realm");
            assert_eq!(text, no_account, "{method} {path}: the body passes through byte for byte");
        }
        let (status, www, text) = call_with_header(&app, "POST", "/auth/token/refresh/", "{}").await;
        assert_eq!(
            (status, www, text.as_str()),
            (StatusCode::BAD_REQUEST, None, r#"{"refresh":["This field is required."]}"#)
        );
    }
}

/// An auth-service that does not long-poll (it ignores `wait` and answers an empty page at
/// once) is polled every `REVOCATION_POLL_INTERVAL`, not in a tight loop; one that holds the
/// request is asked again as soon as it answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_feed_that_answers_at_once_is_polled_at_the_interval_not_in_a_loop() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let asked = Arc::new(AtomicUsize::new(0));
    let waits = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let (count, seen) = (asked.clone(), waits.clone());
    let app = Router::new().route(
        "/auth/revocations/",
        get(move |axum::extract::RawQuery(query): axum::extract::RawQuery| {
            let (count, seen) = (count.clone(), seen.clone());
            async move {
                count.fetch_add(1, Ordering::SeqCst);
                seen.lock().unwrap().push(query.unwrap_or_default());
                ([("content-type", "application/json")], r#"{"cursor":0,"revocations":[]}"#)
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });

    let db = TestDb::new(Backend::Sqlite, "old feed", client_service::MIGRATIONS).await.unwrap();
    let config = ClientConfig::builder(format!("http://{addr}"))
        .local_hmac(KEY)
        .revocation_feed("feed-token-0123456789")
        .revocation_poll_interval(std::time::Duration::from_millis(300))
        .build()
        .unwrap();
    let state = ClientState::new(config, db.db.clone()).unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    drop(state);
    let n = asked.load(Ordering::SeqCst);
    assert!((2..=10).contains(&n), "about one request per 300 ms over 1.5 s, not a loop: {n}");
    let queries = waits.lock().unwrap().clone();
    assert_eq!(queries[0], "after=0", "the first read does not wait: {queries:?}");
    assert!(queries[1..].iter().all(|q| q == "after=0&wait=25s"), "then long polls: {queries:?}");
}
