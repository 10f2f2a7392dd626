//! The demo binary's listeners: with `MANAGEMENT_BIND`, `/metrics` and `/openapi.json` answer
//! there and 404 on the public listener, the health checks on both; unset, everything stays on
//! the public one. The routers first, then the real binary with two listeners and a bind
//! conflict.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use client_service::demo;
use client_service::testing::TestAuth;
use http_body_util::BodyExt;
use shared_user::both_backends;
use shared_user::testing::{Backend, TestDb};
use tower::ServiceExt;

const BIN: &str = env!("CARGO_BIN_EXE_client-service");
const KEY: &str = "8Jq1sZ0bV7xYt3Lw9Pe2Rk5Hn6Cm4Ud0";
/// The JSON 404 of a path the service does not route.
const NOT_FOUND: &str = r#"{"detail":"Not found."}"#;

/// `GET path` on `router`: status, whether an `X-Request-Id` came back, and the body.
async fn get(router: &Router, path: &str) -> (StatusCode, bool, String) {
    let response = router.clone().oneshot(Request::get(path).body(Body::empty()).unwrap()).await.unwrap();
    let (status, request_id) = (response.status(), response.headers().contains_key("x-request-id"));
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, request_id, String::from_utf8_lossy(&body).into_owned())
}

async fn the_management_routes_leave_the_public_router(backend: Backend) {
    let Some(db) = TestDb::new(backend, "client listeners", client_service::MIGRATIONS).await else { return };
    let state = TestAuth::new(db.db.clone()).unwrap().state();
    let (public, management, all) =
        (demo::public_app(state.clone()), demo::management_app(state.clone()), demo::app(state));
    for path in ["/metrics", "/openapi.json"] {
        assert_eq!(get(&public, path).await, (StatusCode::NOT_FOUND, true, NOT_FOUND.into()), "{path} on public");
        let there = get(&management, path).await;
        assert_eq!((there.0, there.1), (StatusCode::OK, true), "{path} on management: {there:?}");
        assert_eq!(get(&all, path).await.0, StatusCode::OK, "{path} with one listener");
    }
    for path in ["/healthz", "/readyz"] {
        for (name, router) in [("public", &public), ("management", &management), ("single", &all)] {
            assert_eq!(get(router, path).await.2, r#"{"status":"ok"}"#, "{path} on {name}");
        }
    }
    // `/auth/user/` is proxied to an auth-service that is not there: 503, but routed.
    for (path, status) in [("/api/test/", StatusCode::UNAUTHORIZED), ("/auth/user/", StatusCode::SERVICE_UNAVAILABLE)] {
        assert_eq!(get(&public, path).await.0, status, "{path} stays public");
        assert_eq!(get(&management, path).await, (StatusCode::NOT_FOUND, true, NOT_FOUND.into()), "{path}");
    }
}

both_backends!(the_management_routes_leave_the_public_router);

/// `client-service serve` on a fresh SQLite mirror with `env`, stderr piped.
fn spawn_serve(dir: &tempfile::TempDir, env: &[(&str, &str)]) -> Child {
    Command::new(BIN)
        .args(["serve", "--bind", "127.0.0.1:0"])
        .env_clear()
        .env("DATABASE_URL", format!("sqlite://{}", dir.path().join("client.db").display()))
        .env("REMOTE_AUTH_SERVICE_URL", "http://127.0.0.1:9")
        .env("SIGNING_KEY", KEY)
        .env("RUST_LOG", "info")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run client-service")
}

async fn status(base: &str, path: &str) -> (u16, String) {
    let r = reqwest::get(format!("http://{base}{path}")).await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_runs_a_management_listener_and_stops_both_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = spawn_serve(&dir, &[("MANAGEMENT_BIND", "127.0.0.1:0")]);
    let found = tokio::task::block_in_place(|| shared_user::testing::logs::listening(&mut child, "client-service", 2));
    let roles: Vec<&str> = found.iter().map(|(role, _)| role.as_str()).collect();
    assert_eq!(roles, ["public", "management"], "one line per listener, public first");
    let (public, management) = (found[0].1.clone(), found[1].1.clone());
    for path in ["/metrics", "/openapi.json"] {
        assert_eq!(status(&public, path).await, (404, NOT_FOUND.to_owned()), "{path} on the public listener");
        assert_eq!(status(&management, path).await.0, 200, "{path} on the management listener");
    }
    for base in [&public, &management] {
        assert_eq!(status(base, "/healthz").await, (200, r#"{"status":"ok"}"#.to_owned()), "healthz on {base}");
        assert_eq!(status(base, "/readyz").await.0, 200, "readyz on {base}");
    }
    assert_eq!(status(&public, "/api/test/").await.0, 401);
    assert_eq!(status(&management, "/api/test/").await.0, 404);

    let term = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(term.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("serve did not stop on SIGTERM");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(exit.success(), "graceful shutdown of both listeners exits 0: {exit}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_management_bind_everything_stays_on_one_listener() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = spawn_serve(&dir, &[]);
    let found = tokio::task::block_in_place(|| shared_user::testing::logs::listening(&mut child, "client-service", 1));
    assert_eq!(found[0].0, "public");
    let public = &found[0].1;
    for path in ["/metrics", "/openapi.json", "/healthz", "/readyz"] {
        assert_eq!(status(public, path).await.0, 200, "{path}");
    }
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn a_management_listener_that_cannot_bind_stops_the_start_naming_its_setting() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let out = spawn_serve(&dir, &[("MANAGEMENT_BIND", &addr), ("RUST_LOG", "warn")]).wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one clear line: {stderr}");
    let expected = format!("client-service: cannot listen on {addr} (MANAGEMENT_BIND, the management listener): ");
    assert!(lines[0].starts_with(&expected), "{stderr}");
    drop(taken);
}

#[test]
fn management_tls_files_need_their_listener_and_both_halves() {
    let dir = tempfile::tempdir().unwrap();
    let run = |env: &[(&str, &str)]| {
        let out = spawn_serve(&dir, env).wait_with_output().unwrap();
        assert!(!out.status.success(), "{env:?}");
        String::from_utf8_lossy(&out.stderr).trim().to_owned()
    };
    assert_eq!(
        run(&[("MANAGEMENT_TLS_CERT_FILE", "/c.pem")]),
        "client-service: MANAGEMENT_TLS_CERT_FILE and MANAGEMENT_TLS_KEY_FILE need MANAGEMENT_BIND (the listener they are for)"
    );
    let refused = run(&[("MANAGEMENT_BIND", "127.0.0.1:0"), ("MANAGEMENT_TLS_KEY_FILE", "/k.pem")]);
    assert_eq!(refused, "client-service: MANAGEMENT_TLS_KEY_FILE is set without MANAGEMENT_TLS_CERT_FILE");
    assert!(!dir.path().join("client.db").exists(), "refused before the database is touched");
}
