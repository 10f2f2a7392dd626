//! What a protected route of a client-service answers, case by case, as the EasyJWT 1.1 client
//! does (reference cases C5–C8): `WWW-Authenticate: Bearer` without realm on every 401, the
//! "Invalid basic header" messages, `"Token is invalid or expired"` plus `code`. Also the
//! optional extractor, the layer's group requirements and a configured header name.

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use client_service::{AuthUser, ClientConfig, ClientConfigBuilder, ClientState, RequireAuthLayer};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use shared_user::jsonwebtoken::{EncodingKey, Header, encode};
use shared_user::testing::{Backend, TestDb};
use tower::ServiceExt;

const KEY: &str = "answers-test-key-0123456789abcdef0123";

/// An auth-service that knows two users: 7 (group billing:admin) and 8 (no group).
async fn fake_auth_service() -> String {
    let user = |id: i64, groups: Value| {
        json!({"id": id, "email": format!("u{id}@example.com"), "first_name": "", "last_name": "",
               "date_joined": "2026-11-22T19:16:07Z", "last_login": null, "is_active": true,
               "is_staff": false, "is_superuser": false, "access_groups": groups})
    };
    let alice = user(7, json!([{"name": "billing", "level": "admin"}]));
    let bob = user(8, json!([]));
    let app = Router::new().route(
        "/auth/user/",
        get(move |headers: axum::http::HeaderMap| {
            let (alice, bob) = (alice.clone(), bob.clone());
            async move {
                let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default();
                let claims = shared_user::token::unverified_claims(auth.trim_start_matches("Bearer ")).unwrap();
                axum::Json(if claims["user_id"] == 7 { alice } else { bob })
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

fn token(user_id: i64, token_type: &str, exp_offset: i64) -> String {
    let now = chrono::Utc::now().timestamp();
    let claims = json!({"token_type": token_type, "exp": now + exp_offset, "iat": now - 10,
                        "jti": "0123456789abcdef0123456789abcdef", "user_id": user_id});
    encode(&Header::default(), &claims, &EncodingKey::from_secret(KEY.as_bytes())).unwrap()
}

async fn service() -> (TestDb, Router) {
    service_with(|config| config).await
}

/// [`service`] with a last change to the configuration.
async fn service_with(configure: impl FnOnce(ClientConfigBuilder) -> ClientConfigBuilder) -> (TestDb, Router) {
    let db = TestDb::new(Backend::Sqlite, "answers", client_service::MIGRATIONS).await.unwrap();
    let config = configure(ClientConfig::builder(fake_auth_service().await).local_hmac(KEY)).build().unwrap();
    let state = ClientState::new(config, db.db.clone()).unwrap();
    let app = Router::new()
        .route("/api/me/", get(|AuthUser(user): AuthUser| async move { user.email.clone() }))
        .route(
            "/api/maybe/",
            get(|user: Option<AuthUser>| async move { user.map_or("anonymous".to_owned(), |u| u.0.email.clone()) }),
        )
        .route(
            "/api/billing/",
            get(|| async { "billing" }).layer(RequireAuthLayer::new(state.clone()).group("billing", Some("admin"))),
        )
        .route("/api/ops/", get(|| async { "ops" }).layer(RequireAuthLayer::new(state.clone()).group("ops", None)))
        .with_state(state);
    (db, app)
}

struct Answer {
    status: StatusCode,
    www_authenticate: Option<String>,
    content_type: Option<String>,
    body: String,
}

async fn get_with(app: &Router, path: &str, authorization: Option<&str>) -> Answer {
    let headers: Vec<(&str, &str)> = authorization.map(|a| ("authorization", a)).into_iter().collect();
    get_headers(app, path, &headers).await
}

async fn get_headers(app: &Router, path: &str, headers: &[(&str, &str)]) -> Answer {
    let mut req = axum::http::Request::builder().uri(path);
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let resp = app.clone().oneshot(req.body(axum::body::Body::empty()).unwrap()).await.unwrap();
    let header = |name: &str| resp.headers().get(name).map(|v| v.to_str().unwrap().to_owned());
    let (status, www_authenticate, content_type) = (resp.status(), header("www-authenticate"), header("content-type"));
    let body = String::from_utf8(resp.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
    Answer { status, www_authenticate, content_type, body }
}

#[track_caller]
fn assert_401(a: &Answer, body: &str, case: &str) {
    assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{case}: status ({})", a.body);
    assert_eq!(a.www_authenticate.as_deref(), Some("Bearer"), "{case}: WWW-Authenticate has no realm");
    assert_eq!(a.content_type.as_deref(), Some("application/json"), "{case}: content type");
    assert_eq!(a.body, body, "{case}: body");
}

const NOT_PROVIDED: &str = r#"{"detail":"Authentication credentials were not provided."}"#;
const NO_CREDENTIALS: &str = r#"{"detail":"Invalid basic header. No credentials provided."}"#;
const SPACES: &str = r#"{"detail":"Invalid basic header. Credentials string should not contain spaces."}"#;
const INVALID: &str = r#"{"detail":"Token is invalid or expired","code":"token_not_valid"}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_header_or_another_scheme_is_credentials_not_provided() {
    let (_db, app) = service().await;
    let good = token(7, "access", 300);
    assert_401(&get_with(&app, "/api/me/", None).await, NOT_PROVIDED, "no header");
    for scheme in ["JWT", "Bearer:", "bearer", "Token"] {
        let header = format!("{scheme} {good}");
        assert_401(&get_with(&app, "/api/me/", Some(&header)).await, NOT_PROVIDED, &header[..scheme.len()]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_header_answers_the_invalid_basic_header_messages() {
    let (_db, app) = service().await;
    let good = token(7, "access", 300);
    assert_401(&get_with(&app, "/api/me/", Some("Bearer")).await, NO_CREDENTIALS, "scheme alone");
    assert_401(&get_with(&app, "/api/me/", Some("Bearer a b")).await, SPACES, "three parts");
    let double = format!("Bearer  {good}");
    assert_401(&get_with(&app, "/api/me/", Some(&double)).await, SPACES, "double space");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_expired_or_refresh_token_is_invalid_or_expired_with_its_code() {
    let (_db, app) = service().await;
    for (case, t) in [
        ("garbage", "garbage".to_owned()),
        ("expired", token(7, "access", -60)),
        ("refresh token", token(7, "refresh", 300)),
        ("tampered", format!("{}x", token(7, "access", 300))),
    ] {
        assert_401(&get_with(&app, "/api/me/", Some(&format!("Bearer {t}"))).await, INVALID, case);
    }
    let ok = get_with(&app, "/api/me/", Some(&format!("Bearer {}", token(7, "access", 300)))).await;
    assert_eq!((ok.status, ok.body.as_str()), (StatusCode::OK, "u7@example.com"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn optional_user_is_none_without_credentials_but_a_bad_token_is_still_refused() {
    let (_db, app) = service().await;
    let a = get_with(&app, "/api/maybe/", None).await;
    assert_eq!((a.status, a.body.as_str()), (StatusCode::OK, "anonymous"), "no header");
    let a = get_with(&app, "/api/maybe/", Some("Basic dXNlcjpwYXNz")).await;
    assert_eq!((a.status, a.body.as_str()), (StatusCode::OK, "anonymous"), "another scheme");
    let a = get_with(&app, "/api/maybe/", Some(&format!("Bearer {}", token(7, "access", 300)))).await;
    assert_eq!((a.status, a.body.as_str()), (StatusCode::OK, "u7@example.com"), "a good token");
    assert_401(&get_with(&app, "/api/maybe/", Some("Bearer garbage")).await, INVALID, "a bad token");
    assert_401(&get_with(&app, "/api/maybe/", Some("Bearer")).await, NO_CREDENTIALS, "a malformed header");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_requirements_run_after_authentication_401_before_403() {
    let (_db, app) = service().await;
    let (alice, bob) = (format!("Bearer {}", token(7, "access", 300)), format!("Bearer {}", token(8, "access", 300)));
    assert_401(&get_with(&app, "/api/billing/", None).await, NOT_PROVIDED, "anonymous caller");
    assert_401(&get_with(&app, "/api/billing/", Some("Bearer garbage")).await, INVALID, "bad token");
    let a = get_with(&app, "/api/billing/", Some(&alice)).await;
    assert_eq!((a.status, a.body.as_str()), (StatusCode::OK, "billing"), "billing admin");
    let forbidden = r#"{"detail":"You do not have permission to perform this action."}"#;
    let a = get_with(&app, "/api/billing/", Some(&bob)).await;
    assert_eq!((a.status, a.body.as_str()), (StatusCode::FORBIDDEN, forbidden), "not in the group");
    let a = get_with(&app, "/api/ops/", Some(&alice)).await;
    assert_eq!((a.status, a.body.as_str()), (StatusCode::FORBIDDEN, forbidden), "in another group");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_django_meta_header_name_reads_the_token_from_that_header_only() {
    // `HTTP_X_AUTH` is how Django's `request.META` (and EasyJWT's AUTH_HEADER_NAME) names `X-Auth`.
    let (_db, app) = service_with(|config| config.auth_header_name("HTTP_X_AUTH")).await;
    let (good, other) = (format!("Bearer {}", token(7, "access", 300)), format!("Bearer {}", token(8, "access", 300)));
    let a = get_headers(&app, "/api/me/", &[("x-auth", &good)]).await;
    assert_eq!((a.status, a.body.as_str()), (StatusCode::OK, "u7@example.com"), "the token in X-Auth ({})", a.body);
    let a = get_headers(&app, "/api/me/", &[("X-Auth", &good), ("authorization", &other)]).await;
    assert_eq!(
        (a.status, a.body.as_str()),
        (StatusCode::OK, "u7@example.com"),
        "X-Auth wins; Authorization is not read"
    );
    assert_401(&get_headers(&app, "/api/me/", &[("authorization", &good)]).await, NOT_PROVIDED, "Authorization alone");
    assert_401(&get_headers(&app, "/api/me/", &[("x-auth", "Bearer garbage")]).await, INVALID, "a bad token in X-Auth");
    assert_401(
        &get_headers(&app, "/api/me/", &[("x-auth", "Bearer garbage"), ("authorization", &good)]).await,
        INVALID,
        "a good Authorization does not rescue a bad X-Auth",
    );
}
