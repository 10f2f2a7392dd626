//! Test harness: a fresh database per test, the real router, and small request helpers.
#![allow(dead_code)]

use auth_service::config::{Cli, Command, SettingsArgs};
use auth_service::store::NewUser;
use auth_service::{AppState, app};
use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use clap::Parser;
use http_body_util::BodyExt;
use serde_json::Value;
use shared_user::AccessGroup;
use shared_user::testing::{Backend, TestDb};
use tower::ServiceExt;

/// Signing key used by every test service.
pub const KEY: &str = "test-signing-key-0123456789abcdef0123456789";

/// Settings as `auth-service serve` would parse them from `extra` flags, with cheap argon2.
pub fn settings(extra: &[&str]) -> SettingsArgs {
    let mut argv =
        vec!["auth-service", "serve", "--signing-key", KEY, "--argon2-memory-kib", "256", "--argon2-iterations", "1"];
    argv.extend_from_slice(extra);
    match Cli::try_parse_from(argv).expect("settings parse").command {
        Command::Serve(s) => s.settings,
        _ => unreachable!(),
    }
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
    pub async fn new(backend: Backend, extra: &[&str]) -> Option<TestApp> {
        let db = TestDb::new(backend, "auth-service test").await?;
        let state = AppState::new(&settings(extra), db.db.clone()).expect("state");
        let router = app(state.clone());
        Some(TestApp { db, state, router })
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
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        Reply { status, headers, text: String::from_utf8_lossy(&bytes).into_owned() }
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
