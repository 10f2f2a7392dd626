//! Test harness: a fresh database per test, the real router, and small request helpers.
#![allow(dead_code)]

pub mod browser;

use auth_service::schema::users;
use auth_service::settings::Hashing;
use auth_service::settings::{ClaimsPreset, CreateUserPolicy};
use auth_service::store::NewUser;
use auth_service::{AppState, Settings, app};
use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use base64::Engine;
use clap::ValueEnum;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use shared_user::jsonwebtoken::{Algorithm, EncodingKey, Header};
use shared_user::testing::{Backend, TestDb};
use shared_user::{AccessGroup, DbError, with_conn};
use tower::ServiceExt;

/// Signing key used by every test service.
pub const KEY: &str = "test-signing-key-0123456789abcdef0123456789";

/// The test service's settings: the shipped defaults with the test HMAC key and cheap argon2.
pub fn base_settings() -> Settings {
    Settings {
        signing_key: Some(KEY.into()),
        hashing: Hashing { argon2_memory_kib: 256, argon2_iterations: 1, ..Hashing::default() },
        ..Settings::default()
    }
}

/// Key sealing the asymmetric private keys of every test service (base64 of 32 bytes).
pub const KEK: &str = "dGVzdC1rZXktZW5jcnlwdGlvbi1rZXktMzItYnl0ZXM=";

/// [`KEK`], parsed.
pub fn kek() -> auth_service::keys::KeyEncryptionKey {
    auth_service::keys::KeyEncryptionKey::parse(KEK).unwrap()
}

/// Reloads the service's asymmetric keys from the database (what each replica does every
/// `KEYS_RELOAD_INTERVAL`).
pub async fn reload_keys(app: &TestApp) {
    let rows = auth_service::keys::load_rows(&app.state.store, Some(&kek())).await.unwrap();
    app.state.keys.reload(&rows).unwrap();
}

/// A change to [`base_settings`]: a closure over [`Settings`], or the shorthand of a list of
/// `--flag value` pairs named like `auth-service serve`'s flags (set on the struct directly,
/// no command line is parsed).
pub trait Tweak {
    fn apply(self, settings: &mut Settings);
}

impl<F: FnOnce(&mut Settings)> Tweak for F {
    fn apply(self, settings: &mut Settings) {
        self(settings)
    }
}

impl Tweak for &[&str] {
    fn apply(self, s: &mut Settings) {
        assert!(self.len().is_multiple_of(2), "flags come in pairs: {self:?}");
        for pair in self.chunks(2) {
            set_flag(s, pair[0], pair[1]);
        }
    }
}

impl<const N: usize> Tweak for &[&str; N] {
    fn apply(self, s: &mut Settings) {
        self.as_slice().apply(s)
    }
}

fn set_flag(s: &mut Settings, flag: &str, value: &str) {
    let duration = || shared_user::settings::parse_duration(value).expect("duration");
    let boolean = || match value {
        "true" => true,
        "false" => false,
        other => panic!("{flag}: not a bool: {other}"),
    };
    match flag {
        "--algorithm" => {
            s.algorithm = auth_service::tokens::parse_signing_algorithm(value).expect("algorithm");
            if s.is_asymmetric() {
                s.signing_key = None;
            }
        }
        "--signing-key" => s.signing_key = Some(value.into()),
        "--access-token-lifetime" => s.access_token_lifetime = duration(),
        "--refresh-token-lifetime" => s.refresh_token_lifetime = duration(),
        "--refresh-reuse-grace" => s.refresh_reuse_grace = duration(),
        "--rotate-refresh-tokens" => s.rotate_refresh_tokens = boolean(),
        "--blacklist-after-rotation" => s.blacklist_after_rotation = boolean(),
        "--login-throttle" => s.login_throttle = boolean(),
        "--mfa-required-for-staff" => s.mfa_required_for_staff = boolean(),
        "--trust-x-forwarded-for" => s.trust_x_forwarded_for = boolean(),
        "--update-last-login" => s.update_last_login = boolean(),
        "--audience" => s.audience = Some(value.into()),
        "--issuer" => s.issuer = Some(value.into()),
        "--leeway" => s.leeway = value.parse().expect("leeway"),
        "--user-id-claim" => s.user_id_claim = value.into(),
        "--auth-header-types" => s.auth_header_types = value.split(',').map(str::to_owned).collect(),
        "--auth-header-name" => s.auth_header_name = value.into(),
        "--allow-create-user" => s.allow_create_user = CreateUserPolicy::from_str(value, false).expect("policy"),
        "--claims-preset" => s.claims_preset = ClaimsPreset::from_str(value, false).expect("preset"),
        "--hasura-default-role" => s.hasura_default_role = value.into(),
        "--hasura-action-secret" => s.hasura_action_secret = Some(value.into()),
        "--users-reader-group" => s.users_reader_group = Some(value.into()),
        "--revocation-feed-token" => s.revocation_feed_token = Some(value.into()),
        "--trusted-proxies" => s.trusted_proxies = value.split(',').map(str::to_owned).collect(),
        "--signup-throttle-per-hour" => s.signup_throttle_per_hour = value.parse().expect("count"),
        "--key-encryption-key" => s.key_encryption_key = Some(value.into()),
        "--login-failure-min-time" => s.login_failure_min_time = duration(),
        "--dev" => s.dev = boolean(),
        "--graphql-max-root-fields" => s.graphql_max_root_fields = value.parse().expect("count"),
        "--max-sessions-per-user" => s.max_sessions_per_user = value.parse().expect("count"),
        other => panic!("unknown test flag {other}: set the Settings field in a closure instead"),
    }
}

/// [`base_settings`] changed by `extra`.
pub fn settings(extra: impl Tweak) -> Settings {
    let mut s = base_settings();
    extra.apply(&mut s);
    // Asymmetric keys are sealed with the test KEK unless the test runs in dev mode without one.
    if s.is_asymmetric() && !s.dev && s.key_encryption_key.is_none() {
        s.key_encryption_key = Some(KEK.into());
    }
    s
}

/// A running router over a fresh database.
pub struct TestApp {
    pub db: TestDb,
    pub state: AppState,
    pub router: Router,
}

/// The answer to one request.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub text: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }
    pub fn content_type(&self) -> &str {
        self.headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("")
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

impl TestApp {
    /// `None` when the backend is not available (the test is then skipped).
    pub async fn new(backend: Backend, extra: impl Tweak) -> Option<TestApp> {
        let db = TestDb::new(backend, "auth-service test", auth_service::MIGRATIONS).await?;
        Some(Self::with_db(db, extra).await)
    }

    /// The service with asymmetric keys loaded (and generated) from the database.
    pub async fn asymmetric(backend: Backend, extra: impl Tweak) -> Option<TestApp> {
        Self::new(backend, extra).await
    }

    /// The service over an existing database (e.g. one the CLI wrote to).
    pub async fn with_db(db: TestDb, extra: impl Tweak) -> TestApp {
        let state = AppState::build(settings(extra), db.db.clone()).await.expect("state");
        let router = app(state.clone());
        TestApp { db, state, router }
    }

    /// Adds an active user whose stored hash is `password_hash` as given (e.g. a Django one).
    pub async fn add_user_with_hash(&self, email: &str, password_hash: &str) -> i64 {
        self.state
            .store
            .create_user(NewUser {
                email: email.into(),
                password_hash: password_hash.into(),
                first_name: String::new(),
                last_name: String::new(),
                is_staff: false,
                is_superuser: false,
                groups: Vec::new(),
            })
            .await
            .unwrap()
            .id
    }

    /// The stored password hash of `email`.
    pub async fn stored_hash(&self, email: &str) -> String {
        self.state.store.find_by_email(email).await.unwrap().expect("user exists").password_hash
    }

    /// Flips `is_active` directly in the database (no token revocation, unlike `deactivate`).
    pub async fn set_active(&self, id: i64, active: bool) {
        let db = &self.db.db;
        let done: Result<(), DbError> = async {
            with_conn!(db, |conn| {
                diesel::update(users::table.find(id)).set(users::is_active.eq(active)).execute(conn).await?;
                Ok(())
            })
        }
        .await;
        done.unwrap();
    }

    /// Deletes a user row (its groups and refresh-token records cascade).
    pub async fn delete_user(&self, id: i64) {
        let db = &self.db.db;
        let done: Result<(), DbError> = async {
            with_conn!(db, |conn| {
                diesel::delete(users::table.find(id)).execute(conn).await?;
                Ok(())
            })
        }
        .await;
        done.unwrap();
    }

    /// Sends `body` as is with the given `Content-Type` (none when `None`).
    pub async fn send_typed(&self, path: &str, content_type: Option<&str>, body: &str) -> Reply {
        let mut req = Request::builder().method(Method::POST).uri(path);
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        self.call(req.body(Body::from(body.to_owned())).unwrap()).await
    }

    async fn call(&self, req: Request<Body>) -> Reply {
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        Reply { status, headers, text: String::from_utf8_lossy(&bytes).into_owned() }
    }

    /// Adds an active user with `password` and `groups` (`NAME` or `NAME:LEVEL`); returns its id.
    pub async fn add_user(&self, email: &str, password: &str, staff: bool, groups: &[&str]) -> i64 {
        let hash = self.state.hasher.hash(password.to_owned()).await.unwrap();
        let user = self
            .state
            .store
            .create_user(NewUser {
                email: email.into(),
                password_hash: hash,
                first_name: String::new(),
                last_name: String::new(),
                is_staff: staff,
                is_superuser: false,
                groups: groups.iter().map(|g| AccessGroup::parse(g).unwrap()).collect(),
            })
            .await
            .unwrap();
        user.id
    }

    /// Sends a request; `body` is sent as is with `Content-Type: application/json` when given.
    pub async fn send(&self, method: Method, path: &str, body: Option<&str>, headers: &[(&str, &str)]) -> Reply {
        let mut req = Request::builder().method(method).uri(path);
        if body.is_some() {
            req = req.header("content-type", "application/json");
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req.body(body.map(|b| Body::from(b.to_owned())).unwrap_or_else(Body::empty)).unwrap();
        self.call(req).await
    }

    /// GET with arbitrary headers.
    pub async fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> Reply {
        self.send(Method::GET, path, None, headers).await
    }

    pub async fn post(&self, path: &str, body: &str) -> Reply {
        self.send(Method::POST, path, Some(body), &[]).await
    }

    pub async fn get_bearer(&self, path: &str, token: &str) -> Reply {
        let auth = format!("Bearer {token}");
        self.send(Method::GET, path, None, &[("authorization", auth.as_str())]).await
    }

    /// Obtains a pair; panics unless 200.
    pub async fn login(&self, email: &str, password: &str) -> (String, String) {
        let r = self.post("/auth/token/", &serde_json::json!({"email": email, "password": password}).to_string()).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let v = r.json();
        (v["refresh"].as_str().unwrap().to_owned(), v["access"].as_str().unwrap().to_owned())
    }
}

/// Current epoch seconds.
pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Claims as the service issues them, valid for 5 minutes.
pub fn claims(token_type: &str, user_id: i64) -> Value {
    let now = now();
    json!({
        "token_type": token_type,
        "exp": now + 300,
        "iat": now,
        "jti": uuid::Uuid::new_v4().simple().to_string(),
        "user_id": user_id,
    })
}

/// Signs `claims` with the test key and `alg`.
pub fn craft_with(alg: Algorithm, claims: &Value) -> String {
    shared_user::jsonwebtoken::encode(&Header::new(alg), claims, &EncodingKey::from_secret(KEY.as_bytes())).unwrap()
}

/// Signs `claims` with the test key (HS256), like the service would.
pub fn craft(claims: &Value) -> String {
    craft_with(Algorithm::HS256, claims)
}

fn segment(token: &str, index: usize) -> String {
    let part = token.split('.').nth(index).expect("three segments");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).expect("base64url");
    String::from_utf8(bytes).expect("utf-8")
}

/// The JWT header as the exact JSON text that was signed.
pub fn header_text(token: &str) -> String {
    segment(token, 0)
}

/// The JWT payload as the exact JSON text that was signed.
pub fn payload_text(token: &str) -> String {
    segment(token, 1)
}

/// The decoded payload.
pub fn payload(token: &str) -> Value {
    serde_json::from_str(&payload_text(token)).unwrap()
}

/// The `jti` claim.
pub fn jti_of(token: &str) -> String {
    payload(token)["jti"].as_str().unwrap().to_owned()
}

/// Status, `Content-Type: application/json` exactly, and the exact body text.
#[track_caller]
pub fn assert_json(r: &Reply, status: StatusCode, body: &str) {
    assert_eq!((r.status, r.text.as_str()), (status, body), "status and body");
    assert_eq!(r.content_type(), "application/json", "content-type");
}

/// A 401 with the exact body and `WWW-Authenticate: Bearer realm="api"`.
#[track_caller]
pub fn assert_401(r: &Reply, body: &str) {
    assert_json(r, StatusCode::UNAUTHORIZED, body);
    assert_eq!(r.header("www-authenticate"), Some("Bearer realm=\"api\""), "WWW-Authenticate");
}

/// The token endpoints' body for a refused token.
pub fn token_not_valid(message: &str) -> String {
    json!({"detail": message, "code": "token_not_valid"}).to_string()
}

/// The request-authentication body for a refused bearer token.
pub fn bearer_not_valid(message: &str) -> String {
    json!({
        "detail": "Given token not valid for any token type",
        "code": "token_not_valid",
        "messages": [{"token_class": "AccessToken", "token_type": "access", "message": message}],
    })
    .to_string()
}

/// `{"field":["message"]}`.
pub fn field_error(field: &str, message: &str) -> String {
    json!({ field: [message] }).to_string()
}

/// Every key of the login counters (`login_throttle`).
pub async fn throttle_keys(app: &TestApp) -> Vec<String> {
    use auth_service::schema::login_throttle;
    let db = &app.db.db;
    let keys: Result<Vec<String>, DbError> =
        async { with_conn!(db, |conn| Ok(login_throttle::table.select(login_throttle::key).load(conn).await?)) }.await;
    keys.unwrap()
}

/// The trusted proxy the `via_proxy` requests come through (tests start the app with
/// `--trusted-proxies 10.255.0.0/24`).
pub const PROXY: &str = "10.255.0.1";

/// A JSON `POST` of `body` to `path` on `router`, from the trusted [`PROXY`] forwarding for
/// `ip` (so the service counts it as `ip`'s).
pub async fn post_via_proxy(router: &Router, path: &str, body: &str, ip: &str) -> Reply {
    let req = Request::builder()
        .method(Method::POST)
        .uri(path)
        .header("content-type", "application/json")
        .header("x-forwarded-for", ip)
        .extension(axum::extract::ConnectInfo(std::net::SocketAddr::new(PROXY.parse().unwrap(), 40000)))
        .body(Body::from(body.to_owned()))
        .unwrap();
    let resp = router.clone().oneshot(req).await.unwrap();
    let (status, headers) = (resp.status(), resp.headers().clone());
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    Reply { status, headers, text: String::from_utf8_lossy(&bytes).into_owned() }
}
