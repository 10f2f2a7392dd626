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
