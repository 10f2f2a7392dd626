//! Property test: thousands of random and mutated requests (methods, paths, content types,
//! bodies, tokens, Authorization headers) to both services. Neither may panic or answer 5xx;
//! every answer is JSON.

mod common;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request};
use common::{Options, Pair};
use http_body_util::BodyExt;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use shared_user::testing::Backend;
use tower::ServiceExt;

/// Cases per service (two services: twice this many requests in all).
const CASES: u32 = 5_000;

const PATHS: &[&str] = &[
    "/auth/token/",
    "/auth/token",
    "/auth/token/refresh/",
    "/auth/token/verify/",
    "/auth/token/blacklist/",
    "/auth/token/logout/",
    "/auth/user/",
    "/auth/users/1/",
    "/auth/users/abc/",
    "/auth/users/99999999999999999999999/",
    "/auth/password-change/",
    "/auth/create-user/",
    "/api/test/",
    "/api/me/",
    "/api/billing/",
    "/healthz",
    "/.well-known/jwks.json",
    "/nope",
];

#[derive(Debug, Clone)]
struct Case {
    method: Method,
    path: String,
    content_type: Option<String>,
    body: Vec<u8>,
    authorization: Option<String>,
}

/// Flips, drops or duplicates a few characters of `s`.
fn mutate(s: String) -> impl Strategy<Value = String> {
    let len = s.len().max(1);
    proptest::collection::vec((0..len, 0u8..4, any::<char>()), 0..4).prop_map(move |edits| {
        let mut chars: Vec<char> = s.chars().collect();
        for (at, op, c) in edits {
            let at = at.min(chars.len().saturating_sub(1));
            match op {
                0 if !chars.is_empty() => {
                    chars.remove(at);
                }
                1 => chars.insert(at, c),
                2 if !chars.is_empty() => chars[at] = c,
                _ => chars.insert(at, '.'),
            }
        }
        chars.into_iter().collect()
    })
}

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(serde_json::Value::from),
        ".{0,40}".prop_map(serde_json::Value::from),
        Just(serde_json::Value::from("alice@example.com")),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            proptest::collection::btree_map(".{0,8}", inner, 0..4)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

fn body(tokens: Arc<Vec<String>>) -> impl Strategy<Value = Vec<u8>> {
    let fields = ["email", "password", "refresh", "token", "new_password", "first_name"];
    let token = proptest::sample::select(tokens.to_vec()).prop_flat_map(mutate);
    let object = proptest::collection::vec(
        (proptest::sample::select(fields.to_vec()), prop_oneof![json_value(), token.prop_map(serde_json::Value::from)]),
        0..5,
    )
    .prop_map(|pairs| {
        let map: serde_json::Map<String, serde_json::Value> =
            pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        serde_json::to_vec(&map).unwrap()
    });
    prop_oneof![
        4 => object.clone(),
        1 => object.prop_flat_map(|b| mutate(String::from_utf8_lossy(&b).into_owned())).prop_map(String::into_bytes),
        1 => proptest::collection::vec(any::<u8>(), 0..200),
        1 => json_value().prop_map(|v| serde_json::to_vec(&v).unwrap()),
        1 => "[a-z=&%0-9]{0,60}".prop_map(String::into_bytes),
    ]
}

fn authorization(tokens: Arc<Vec<String>>) -> impl Strategy<Value = Option<String>> {
    let token = proptest::sample::select(tokens.to_vec());
    prop_oneof![
        2 => Just(None),
        2 => token.clone().prop_map(|t| Some(format!("Bearer {t}"))),
        3 => token.prop_flat_map(mutate).prop_map(|t| Some(format!("Bearer {t}"))),
        1 => "[ -~]{0,80}".prop_map(Some),
        1 => proptest::sample::select(vec!["Bearer", "Bearer  ", "bearer x", "JWT x", "Bearer a b", "Token"])
            .prop_map(|s| Some(s.to_owned())),
    ]
}

fn case(tokens: Arc<Vec<String>>) -> impl Strategy<Value = Case> {
    let method = proptest::sample::select(vec![Method::GET, Method::POST, Method::POST, Method::PUT, Method::DELETE]);
    let path = prop_oneof![
        6 => proptest::sample::select(PATHS.to_vec()).prop_map(str::to_owned),
        1 => proptest::sample::select(PATHS.to_vec()).prop_flat_map(|p| mutate(p.to_owned()))
            .prop_map(|p| format!("/{}", p.trim_start_matches('/').replace(['?', '#', ' '], ""))),
    ];
    let content_type = prop_oneof![
        4 => Just(Some("application/json".to_owned())),
        1 => Just(None),
        1 => Just(Some("application/x-www-form-urlencoded".to_owned())),
        1 => "[ -~]{0,30}".prop_map(Some),
    ];
    (method, path, content_type, body(tokens.clone()), authorization(tokens)).prop_map(
        |(method, path, content_type, body, authorization)| Case { method, path, content_type, body, authorization },
    )
}

static SENT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

async fn send(router: &Router, case: &Case) -> Result<(), TestCaseError> {
    SENT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut req = Request::builder().method(case.method.clone());
    req = req.uri(axum::http::Uri::try_from(case.path.as_str()).unwrap_or_else(|_| "/garbage".parse().unwrap()));
    if let Some(ct) = case.content_type.as_deref().filter(|c| axum::http::HeaderValue::from_str(c).is_ok()) {
        req = req.header("content-type", ct);
    }
    if let Some(a) = case.authorization.as_deref().filter(|a| axum::http::HeaderValue::from_str(a).is_ok()) {
        req = req.header("authorization", a);
    }
    let resp = router
        .clone()
        .oneshot(req.body(Body::from(case.body.clone())).unwrap())
        .await
        .map_err(|e| TestCaseError::fail(format!("service error: {e:?}")))?;
    let status = resp.status();
    let content_type = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let bytes = resp.into_body().collect().await.map_err(|e| TestCaseError::fail(format!("{e}")))?.to_bytes();
    prop_assert!(status.as_u16() < 500, "{case:?} -> {status} {}", String::from_utf8_lossy(&bytes));
    prop_assert_eq!(content_type, "application/json", "{:?} -> {}", case, status);
    prop_assert!(serde_json::from_slice::<serde_json::Value>(&bytes).is_ok(), "{case:?}: body is not JSON");
    Ok(())
}

fn run(name: &str, router: Router, tokens: Arc<Vec<String>>, rt: &tokio::runtime::Handle) {
    let mut runner = TestRunner::new(Config { cases: CASES, failure_persistence: None, ..Config::default() });
    let result = runner.run(&case(tokens), |case| rt.block_on(send(&router, &case)));
    if let Err(e) = result {
        panic!("{name}: {e}");
    }
}

#[test]
fn random_and_mutated_requests_never_panic_or_answer_5xx() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let p = rt
        .block_on(Pair::start(Backend::Sqlite, Options::new(client_service::VerifyMode::Local)))
        .expect("sqlite pair");
    let (tokens, auth, client) = rt.block_on(async {
        p.add_user("alice@example.com", &["billing:admin"]).await;
        let (refresh, access) = p.login("alice@example.com").await;
        let tokens = vec![refresh, access, "garbage".to_owned(), String::new()];
        (Arc::new(tokens), auth_service::app(p.auth.clone()), client_service::demo::app(p.client.clone()))
    });
    run("auth-service", auth, tokens.clone(), rt.handle());
    run("client-service", client, tokens, rt.handle());
    let proxied = p.counter.total();
    rt.block_on(p.finish());
    let sent = SENT.load(std::sync::atomic::Ordering::Relaxed);
    assert!(sent >= 2 * CASES, "only {sent} requests were sent");
    assert!(proxied > 100, "the client forwarded only {proxied} requests to the auth-service");
    eprintln!("{sent} requests sent; the client forwarded {proxied} to the auth-service");
}
