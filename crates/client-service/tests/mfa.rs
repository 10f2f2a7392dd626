//! Routes that need a second factor (`amr`, RFC 8176): [`RequireMfaLayer`] and
//! [`AuthMethods::require_mfa`] answer 200 after a multi-factor login, 403 `mfa_required` after
//! a password-only one, and the usual 401s without a good token. The proxy passes the second
//! step of a login on as it passes the first.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use client_service::testing::{TestAuth, TestUser};
use client_service::{
    AuthMethods, AuthUser, ClientConfig, ClientConfigBuilder, ClientError, ClientState, RequireAuthLayer,
    RequireMfaLayer,
};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use shared_user::jsonwebtoken::{EncodingKey, Header, encode};
use shared_user::testing::{Backend, TestDb};
use tower::ServiceExt;

const MFA_REQUIRED: &str = r#"{"detail":"This action requires multi-factor authentication.","code":"mfa_required"}"#;
const NOT_PROVIDED: &str = r#"{"detail":"Authentication credentials were not provided."}"#;
const INVALID: &str = r#"{"detail":"Token is invalid or expired","code":"token_not_valid"}"#;
const FORBIDDEN: &str = r#"{"detail":"You do not have permission to perform this action."}"#;

/// What a caller sees of one answer.
#[derive(Debug)]
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }
}

async fn call(app: &Router, method: &str, path: &str, authorization: Option<&str>, body: &str) -> Answer {
    let mut req = axum::http::Request::builder().method(method).uri(path).header("content-type", "application/json");
    if let Some(a) = authorization {
        req = req.header("authorization", a);
    }
    let resp = app.clone().oneshot(req.body(axum::body::Body::from(body.to_owned())).unwrap()).await.unwrap();
    let (status, headers) = (resp.status(), resp.headers().clone());
    let body = String::from_utf8(resp.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
    Answer { status, headers, body }
}

async fn get_as(app: &Router, path: &str, authorization: Option<&str>) -> Answer {
    call(app, "GET", path, authorization, "").await
}

#[track_caller]
fn assert_answer(a: &Answer, status: StatusCode, body: &str, case: &str) {
    assert_eq!((a.status, a.body.as_str()), (status, body), "{case}");
}

#[track_caller]
fn assert_mfa_required(a: &Answer, case: &str) {
    assert_answer(a, StatusCode::FORBIDDEN, MFA_REQUIRED, case);
    assert_eq!(a.header("content-type"), Some("application/json"), "{case}: content type");
    assert_eq!(a.header("www-authenticate"), None, "{case}: a 403 asks for no credentials");
}

#[track_caller]
fn assert_401(a: &Answer, body: &str, case: &str) {
    assert_answer(a, StatusCode::UNAUTHORIZED, body, case);
    assert_eq!(a.header("www-authenticate"), Some("Bearer"), "{case}: as on every protected route");
}

/// A host with: `/api/payouts/` behind the layer, `/api/account/` asking in its handler,
/// `/api/methods/` showing the `amr` values, `/api/billing-payouts/` behind both layers.
async fn host() -> (TestDb, TestAuth, Router) {
    let db = TestDb::new(Backend::Sqlite, "mfa", client_service::MIGRATIONS).await.unwrap();
    let auth = TestAuth::new(db.db.clone()).unwrap();
    auth.seed(TestUser::new(1, "ann@example.com").group("billing", None)).await;
    auth.seed(TestUser::new(2, "bob@example.com")).await;
    let state = auth.state();
    async fn delete_account(AuthUser(user): AuthUser, methods: AuthMethods) -> Result<String, ClientError> {
        methods.require_mfa()?;
        Ok(format!("deleted {}", user.email))
    }
    let app = Router::new()
        .route(
            "/api/payouts/",
            post(|AuthUser(user): AuthUser| async move { format!("sent by {}", user.email) })
                .layer(RequireMfaLayer::new(state.clone())),
        )
        .route("/api/account/", axum::routing::delete(delete_account))
        .route("/api/methods/", get(|methods: AuthMethods| async move { methods.values().join(",") }))
        .route(
            "/api/billing-payouts/",
            // The group layer outside (first), the MFA layer inside, reusing its check.
            post(|| async { "sent" }).layer(
                tower::ServiceBuilder::new()
                    .layer(RequireAuthLayer::new(state.clone()).group("billing", None))
                    .layer(RequireMfaLayer::new(state.clone())),
            ),
        )
        .with_state(state);
    (db, auth, app)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_layer_lets_a_second_factor_or_a_passkey_through_and_refuses_a_password_alone_with_403() {
    let (_db, auth, app) = host().await;
    for amr in [&["pwd", "otp", "mfa"][..], &["pwd", "hwk", "mfa"], &["hwk", "user"], &["swk", "user"]] {
        let token = auth.token(1).amr(amr.iter().copied()).bearer();
        // Twice: the second call is answered from the verified-token cache, which keeps `amr`.
        for round in ["checked", "cached"] {
            let a = call(&app, "POST", "/api/payouts/", Some(&token), "").await;
            assert_answer(&a, StatusCode::OK, "sent by ann@example.com", &format!("{amr:?}, {round}"));
        }
    }
    let password_only = auth.token(1).bearer();
    for round in ["checked", "cached"] {
        let a = call(&app, "POST", "/api/payouts/", Some(&password_only), "").await;
        assert_mfa_required(&a, &format!("password only, {round}"));
    }
    let named_password = auth.token(1).amr(["pwd"]).bearer();
    assert_mfa_required(&call(&app, "POST", "/api/payouts/", Some(&named_password), "").await, "amr [pwd]");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_layer_keeps_todays_401s_for_no_or_a_bad_token() {
    let (_db, auth, app) = host().await;
    assert_401(&call(&app, "POST", "/api/payouts/", None, "").await, NOT_PROVIDED, "no header");
    assert_401(&call(&app, "POST", "/api/payouts/", Some("Bearer garbage"), "").await, INVALID, "garbage");
    for (case, token) in [
        ("expired", auth.token(1).amr(["pwd", "otp", "mfa"]).expired().bearer()),
        ("tampered", auth.token(1).amr(["pwd", "otp", "mfa"]).tampered().bearer()),
    ] {
        assert_401(&call(&app, "POST", "/api/payouts/", Some(&token), "").await, INVALID, case);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn require_mfa_in_a_handler_answers_as_the_layer() {
    let (_db, auth, app) = host().await;
    let mfa = auth.token(2).amr(["pwd", "otp", "mfa"]).bearer();
    let a = call(&app, "DELETE", "/api/account/", Some(&mfa), "").await;
    assert_answer(&a, StatusCode::OK, "deleted bob@example.com", "after a second factor");
    assert_mfa_required(&call(&app, "DELETE", "/api/account/", Some(&auth.token(2).bearer()), "").await, "password");
    assert_401(&call(&app, "DELETE", "/api/account/", None, "").await, NOT_PROVIDED, "no header");
    assert_401(&call(&app, "DELETE", "/api/account/", Some("Bearer x.y.z"), "").await, INVALID, "bad token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_sees_the_amr_values_in_token_order() {
    let (_db, auth, app) = host().await;
    let a = get_as(&app, "/api/methods/", Some(&auth.token(1).amr(["pwd", "otp", "mfa"]).bearer())).await;
    assert_answer(&a, StatusCode::OK, "pwd,otp,mfa", "after TOTP");
    assert_answer(&get_as(&app, "/api/methods/", Some(&auth.token(1).bearer())).await, StatusCode::OK, "", "none");
    assert_401(&get_as(&app, "/api/methods/", None).await, NOT_PROVIDED, "the extractor authenticates");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_the_group_layer_401_then_group_403_then_mfa_403() {
    let (_db, auth, app) = host().await;
    let path = "/api/billing-payouts/";
    assert_401(&call(&app, "POST", path, None, "").await, NOT_PROVIDED, "no header");
    let outsider = auth.token(2).amr(["pwd", "otp", "mfa"]).bearer();
    assert_answer(&call(&app, "POST", path, Some(&outsider), "").await, StatusCode::FORBIDDEN, FORBIDDEN, "no group");
    assert_mfa_required(&call(&app, "POST", path, Some(&auth.token(1).bearer()), "").await, "in the group, password");
    let member = auth.token(1).amr(["hwk", "user"]).bearer();
    assert_answer(&call(&app, "POST", path, Some(&member), "").await, StatusCode::OK, "sent", "in the group, passkey");
}

// The proxy: the second step of a login, against a fake auth-service.

const KEY: &str = "mfa-test-key-0123456789abcdef0123456789";
const CHALLENGE: &str = r#"{"mfa_token":"mfa.token.value","methods":["totp","webauthn"],"detail":"Multi-factor authentication required.","code":"mfa_required"}"#;

fn access_token(user_id: i64, amr: Option<&[&str]>) -> String {
    let now = chrono::Utc::now().timestamp();
    let mut claims = json!({"token_type": "access", "exp": now + 300, "iat": now - 1,
                            "jti": "0123456789abcdef0123456789abcdef", "user_id": user_id});
    if let Some(amr) = amr {
        claims["amr"] = json!(amr);
    }
    encode(&Header::default(), &claims, &EncodingKey::from_secret(KEY.as_bytes())).unwrap()
}

/// An auth-service where user 7 has a second factor: `/auth/token/` answers 401
/// `mfa_required` (its own key order, `WWW-Authenticate` and `no-store`), the second step
/// answers tokens carrying `amr`, `/auth/token/webauthn/start/` echoes what it got. Counts
/// user fetches.
async fn fake_auth_service(user_fetches: Arc<AtomicUsize>) -> String {
    let no_store = [("content-type", "application/json"), ("cache-control", "no-store"), ("pragma", "no-cache")];
    let tokens = move |amr: &'static [&'static str]| {
        move || async move {
            let body = json!({"refresh": "refresh.token.value", "access": access_token(7, Some(amr))});
            (no_store, body.to_string())
        }
    };
    let app = Router::new()
        .route(
            "/auth/token/",
            post(move || async move {
                let headers = [
                    ("content-type", "application/json"),
                    ("www-authenticate", r#"Bearer realm="api""#),
                    ("cache-control", "no-store"),
                ];
                (StatusCode::UNAUTHORIZED, headers, CHALLENGE)
            }),
        )
        .route("/auth/token/mfa/", post(tokens(&["pwd", "otp", "mfa"])))
        .route("/auth/token/webauthn/finish/", post(tokens(&["pwd", "hwk", "mfa"])))
        .route(
            "/auth/token/webauthn/start/",
            post(
                |body: String| async move { ([("content-type", "application/json")], format!(r#"{{"got":{body}}}"#)) },
            ),
        )
        .route("/auth/token/verify/", post(|| async { ([("content-type", "application/json")], "{}") }))
        .route(
            "/auth/user/",
            get(move || {
                let fetches = user_fetches.clone();
                async move {
                    fetches.fetch_add(1, Ordering::SeqCst);
                    axum::Json(json!({"id": 7, "email": "u7@example.com", "first_name": "", "last_name": "",
                        "date_joined": "2026-11-22T19:16:07Z", "last_login": null, "is_active": true,
                        "is_staff": false, "is_superuser": false, "access_groups": []}))
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

/// The client's router and an MFA-only route, over the fake auth-service at `url`.
fn client(db: &TestDb, url: &str, configure: impl FnOnce(ClientConfigBuilder) -> ClientConfigBuilder) -> Router {
    let config = configure(ClientConfig::builder(url).local_hmac(KEY)).build().unwrap();
    let state = ClientState::new(config, db.db.clone()).unwrap();
    Router::new()
        .route("/api/payouts/", post(|| async { "sent" }).layer(RequireMfaLayer::new(state.clone())))
        .merge(client_service::router(state))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_with_a_second_factor_goes_through_the_proxy_and_its_token_passes_the_layer() {
    let fetches = Arc::new(AtomicUsize::new(0));
    let url = fake_auth_service(fetches.clone()).await;
    let db = TestDb::new(Backend::Sqlite, "mfa proxy", client_service::MIGRATIONS).await.unwrap();
    let app = client(&db, &url, |c| c);
    let login = r#"{"email":"u7@example.com","password":"pw"}"#;
    for path in ["/auth/token/", "/auth/token"] {
        let a = call(&app, "POST", path, None, login).await;
        assert_answer(&a, StatusCode::UNAUTHORIZED, CHALLENGE, &format!("{path}: the challenge byte for byte"));
        assert_eq!(a.header("www-authenticate"), Some("Bearer"), "{path}: the client's own, as on every 401");
        assert_eq!(a.header("cache-control"), Some("no-store"), "{path}: the mfa_token is not cached");
    }
    for (path, amr) in [
        ("/auth/token/mfa/", "pwd,otp,mfa"),
        ("/auth/token/mfa", "pwd,otp,mfa"),
        ("/auth/token/webauthn/finish/", "pwd,hwk,mfa"),
        ("/auth/token/webauthn/finish", "pwd,hwk,mfa"),
    ] {
        let before = fetches.load(Ordering::SeqCst);
        let a = call(&app, "POST", path, None, r#"{"mfa_token":"mfa.token.value","code":"123456"}"#).await;
        assert_eq!(a.status, StatusCode::OK, "{path}: {}", a.body);
        assert_eq!((a.header("cache-control"), a.header("pragma")), (Some("no-store"), Some("no-cache")), "{path}");
        let body: Value = serde_json::from_str(&a.body).unwrap();
        assert_eq!(body["refresh"], "refresh.token.value", "{path}: the tokens pass through");
        let access = body["access"].as_str().unwrap();
        let claims = shared_user::token::unverified_claims(access).unwrap();
        assert_eq!(
            claims["amr"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect::<Vec<_>>().join(","),
            amr
        );
        assert_eq!(fetches.load(Ordering::SeqCst), before + 1, "{path}: the user is mirrored at login");
        let a = call(&app, "POST", "/api/payouts/", Some(&format!("Bearer {access}")), "").await;
        assert_answer(&a, StatusCode::OK, "sent", &format!("{path}: its access token passes RequireMfaLayer"));
        assert_eq!(fetches.load(Ordering::SeqCst), before + 1, "{path}: from the mirror, no second fetch");
    }
    let a = call(&app, "POST", "/auth/token/webauthn/start", None, r#"{"mfa_token":"m"}"#).await;
    assert_answer(&a, StatusCode::OK, r#"{"got":{"mfa_token":"m"}}"#, "start: body in and out as they are");
    let a = call(&app, "POST", "/api/payouts/", Some(&format!("Bearer {}", access_token(7, None))), "").await;
    assert_mfa_required(&a, "a password-only token of the same user");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_remote_mode_the_amr_is_read_after_the_auth_service_verified_the_token() {
    let url = fake_auth_service(Arc::default()).await;
    let db = TestDb::new(Backend::Sqlite, "mfa remote", client_service::MIGRATIONS).await.unwrap();
    let app = client(&db, &url, ClientConfigBuilder::remote);
    let mfa = format!("Bearer {}", access_token(7, Some(&["pwd", "otp", "mfa"])));
    assert_answer(&call(&app, "POST", "/api/payouts/", Some(&mfa), "").await, StatusCode::OK, "sent", "with mfa");
    let password = format!("Bearer {}", access_token(7, None));
    assert_mfa_required(&call(&app, "POST", "/api/payouts/", Some(&password), "").await, "password only");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_cookie_mode_the_second_step_checks_csrf_and_puts_the_refresh_token_in_the_cookie() {
    let url = fake_auth_service(Arc::default()).await;
    let db = TestDb::new(Backend::Sqlite, "mfa cookie", client_service::MIGRATIONS).await.unwrap();
    let app = client(&db, &url, |c| c.refresh_token_in_cookie(client_service::CookieConfig::default()));
    let step = r#"{"mfa_token":"mfa.token.value","code":"123456"}"#;
    for path in ["/auth/token/mfa/", "/auth/token/webauthn/finish/"] {
        let a = call(&app, "POST", path, None, step).await;
        assert_answer(&a, StatusCode::FORBIDDEN, r#"{"detail":"CSRF Failed: CSRF cookie not set."}"#, path);
    }
    let csrf = get_as(&app, "/auth/csrf/", None).await;
    let set = csrf.header("set-cookie").unwrap();
    let token = set.split(';').next().unwrap().split_once('=').unwrap().1.to_owned();
    for path in ["/auth/token/mfa/", "/auth/token/webauthn/finish/"] {
        let req = axum::http::Request::post(path)
            .header("content-type", "application/json")
            .header("cookie", format!("csrftoken={token}"))
            .header("x-csrftoken", &token)
            .body(axum::body::Body::from(step))
            .unwrap();
        let resp = app.clone().oneshot(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
        let cookies: Vec<_> =
            resp.headers().get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_owned()).collect();
        assert!(cookies.iter().any(|c| c.starts_with("refresh_token=refresh.token.value;")), "{path}: {cookies:?}");
        let body: Value = serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap();
        assert!(body.get("refresh").is_none() && body["access"].is_string(), "{path}: only the access token: {body}");
    }
}
