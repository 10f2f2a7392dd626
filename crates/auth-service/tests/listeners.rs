//! Separate listeners: `MANAGEMENT_BIND` takes `/metrics` and `/openapi.json` off the public
//! listener (the health checks answer on both), `CONSOLE_BIND` takes the admin console and the
//! admin API; unset, everything stays on the public one. The routers of each listener first,
//! then the real binary with three listeners, its shutdown and a bind conflict.

mod common;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use auth_service::app::{console_app, management_app, public_app};
use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use common::*;
use http_body_util::BodyExt;
use shared_user::both_backends;
use shared_user::testing::{Backend, TestDb};
use tower::ServiceExt;

const BIN: &str = env!("CARGO_BIN_EXE_auth-service");

/// The JSON 404 the service answers for a path it does not route.
const NOT_FOUND: &str = r#"{"detail":"Not found."}"#;

/// Some address; only whether the setting is set matters to the routers.
fn somewhere() -> Option<SocketAddr> {
    Some("127.0.0.1:0".parse().unwrap())
}

/// `GET path` on `router`: status, `Content-Type`, `X-Request-Id`, `WWW-Authenticate` and body.
async fn get(router: &Router, path: &str) -> (StatusCode, String, bool, Option<String>, String) {
    let request = Request::builder().method(Method::GET).uri(path).body(Body::empty()).unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let (content_type, request_id, challenge) =
        (header("content-type").unwrap_or_default(), header("x-request-id").is_some(), header("www-authenticate"));
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, content_type, request_id, challenge, String::from_utf8_lossy(&body).into_owned())
}

#[track_caller]
fn assert_not_found(answer: &(StatusCode, String, bool, Option<String>, String), what: &str) {
    assert_eq!(answer.0, StatusCode::NOT_FOUND, "{what}: {answer:?}");
    assert_eq!((answer.1.as_str(), answer.4.as_str()), ("application/json", NOT_FOUND), "{what}: the JSON 404");
}

async fn management_takes_metrics_and_openapi_and_health_answers_on_both(backend: Backend) {
    let Some(app) = TestApp::new(backend, |s: &mut auth_service::Settings| s.management_bind = somewhere()).await
    else {
        return;
    };
    let (public, management) = (public_app(app.state.clone()), management_app(app.state.clone()));
    for path in ["/metrics", "/openapi.json"] {
        assert_not_found(&get(&public, path).await, &format!("{path} on the public listener"));
        let there = get(&management, path).await;
        assert_eq!(there.0, StatusCode::OK, "{path} on the management listener: {there:?}");
        assert!(there.2, "{path}: the request id layer runs on the management listener");
    }
    assert!(get(&management, "/openapi.json").await.4.contains("\"openapi\""));
    for path in ["/healthz", "/readyz"] {
        for (name, router) in [("public", &public), ("management", &management)] {
            let (status, _, _, _, body) = get(router, path).await;
            assert_eq!((status, body.as_str()), (StatusCode::OK, r#"{"status":"ok"}"#), "{path} on {name}");
        }
    }
    // The API stays public only.
    assert_eq!(get(&public, "/.well-known/jwks.json").await.0, StatusCode::OK);
    assert_not_found(&get(&management, "/.well-known/jwks.json").await, "the JWKS on the management listener");
    assert_not_found(&get(&management, "/admin/login/").await, "the console on the management listener");
    // Without CONSOLE_BIND the console stays public.
    assert_eq!(get(&public, "/admin/login/").await.0, StatusCode::OK);
}

async fn console_takes_the_admin_console_and_the_admin_api(backend: Backend) {
    let tweak = |s: &mut auth_service::Settings| {
        s.console_bind = somewhere();
        // A non-default scheme shows the shared `WWW-Authenticate` layer runs on the console too.
        s.auth_header_types = vec!["JWT".into()];
    };
    let Some(app) = TestApp::new(backend, tweak).await else { return };
    let (public, console) = (public_app(app.state.clone()), console_app(app.state.clone()));
    for path in ["/admin/login/", "/admin/login", "/admin/users/", "/auth/admin/users/", "/auth/admin/audit/"] {
        assert_not_found(&get(&public, path).await, &format!("{path} on the public listener"));
    }
    let login = get(&console, "/admin/login/").await;
    assert_eq!(login.0, StatusCode::OK, "{login:?}");
    assert!(login.1.starts_with("text/html") && login.2, "the console's page, with a request id: {login:?}");
    let users = get(&console, "/auth/admin/users/").await;
    assert_eq!(users.0, StatusCode::UNAUTHORIZED, "the admin API asks for a token: {users:?}");
    assert_eq!(users.3.as_deref(), Some(r#"JWT realm="api""#));
    // The console listener serves nothing else.
    for path in ["/auth/user/", "/healthz", "/metrics", "/openapi.json"] {
        assert_not_found(&get(&console, path).await, &format!("{path} on the console listener"));
    }
    // The public API and, without MANAGEMENT_BIND, the operations routes stay public.
    assert_eq!(get(&public, "/auth/user/").await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(get(&public, "/metrics").await.0, StatusCode::OK);
}

async fn with_neither_set_everything_is_on_the_public_listener(backend: Backend) {
    let Some(app) = TestApp::new(backend, &[]).await else { return };
    let public = public_app(app.state.clone());
    for (path, status) in [
        ("/metrics", StatusCode::OK),
        ("/openapi.json", StatusCode::OK),
        ("/healthz", StatusCode::OK),
        ("/readyz", StatusCode::OK),
        ("/admin/login/", StatusCode::OK),
        ("/auth/admin/users/", StatusCode::UNAUTHORIZED),
        ("/auth/user/", StatusCode::UNAUTHORIZED),
        ("/.well-known/jwks.json", StatusCode::OK),
    ] {
        assert_eq!(get(&public, path).await.0, status, "{path}");
        assert_eq!(get(&app.router, path).await.0, status, "{path} on app()");
    }
}

both_backends!(
    management_takes_metrics_and_openapi_and_health_answers_on_both,
    console_takes_the_admin_console_and_the_admin_api,
    with_neither_set_everything_is_on_the_public_listener
);

// ---------------------------------------------------------------------------------------------
// The binary

/// `auth-service serve` on `db` with `env`, its stderr piped.
fn spawn_serve(db: &TestDb, env: &[(&str, &str)]) -> Child {
    Command::new(BIN)
        .args(["serve"])
        .env_clear()
        .env("DATABASE_URL", &db.url)
        .env("SIGNING_KEY", KEY)
        .env("BIND", "127.0.0.1:0")
        .env("RUST_LOG", "info")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn auth-service serve")
}

async fn status(base: &str, path: &str) -> (u16, String) {
    let r = reqwest::get(format!("http://{base}{path}")).await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

async fn serve_runs_three_listeners_and_stops_them_all_on_sigterm(backend: Backend) {
    let Some(db) = TestDb::new(backend, "listeners", auth_service::MIGRATIONS).await else { return };
    let env = [("MANAGEMENT_BIND", "127.0.0.1:0"), ("CONSOLE_BIND", "127.0.0.1:0")];
    let mut child = spawn_serve(&db, &env);
    let found = tokio::task::block_in_place(|| shared_user::testing::logs::listening(&mut child, "auth-service", 3));
    let roles: Vec<&str> = found.iter().map(|(role, _)| role.as_str()).collect();
    assert_eq!(roles, ["public", "management", "console"], "one line per listener, public first");
    let [public, management, console] = [0, 1, 2].map(|i| found[i].1.clone());

    for path in ["/metrics", "/openapi.json", "/admin/login/", "/auth/admin/users/"] {
        assert_eq!(status(&public, path).await, (404, NOT_FOUND.to_owned()), "{path} on the public listener");
    }
    assert_eq!(status(&management, "/metrics").await.0, 200);
    assert_eq!(status(&management, "/openapi.json").await.0, 200);
    assert_eq!(status(&console, "/admin/login/").await.0, 200);
    assert_eq!(status(&console, "/auth/admin/users/").await.0, 401);
    for base in [&public, &management] {
        assert_eq!(status(base, "/healthz").await, (200, r#"{"status":"ok"}"#.to_owned()), "healthz on {base}");
        assert_eq!(status(base, "/readyz").await.0, 200, "readyz on {base}");
    }
    assert_eq!(status(&public, "/.well-known/jwks.json").await.0, 200);
    // A request on the public listener shows in the metrics served by the management one.
    let metrics = status(&management, "/metrics").await.1;
    assert!(metrics.contains(r#"route="/.well-known/jwks.json""#), "{metrics}");

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
    assert!(exit.success(), "graceful shutdown of every listener exits 0: {exit}");
    for base in [&public, &management, &console] {
        assert!(std::net::TcpStream::connect(base).is_err(), "{base} closed after the shutdown");
    }
}

async fn a_listener_that_cannot_bind_stops_the_start_naming_its_setting(backend: Backend) {
    let Some(db) = TestDb::new(backend, "listeners", auth_service::MIGRATIONS).await else { return };
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    for (setting, role) in [("MANAGEMENT_BIND", "management"), ("CONSOLE_BIND", "console")] {
        let child = spawn_serve(&db, &[(setting, &addr), ("RUST_LOG", "warn")]);
        let out = tokio::task::block_in_place(|| child.wait_with_output()).unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{setting}: {stderr}");
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "one clear line: {stderr}");
        let expected = format!("auth-service: cannot listen on {addr} ({setting}, the {role} listener): ");
        assert!(lines[0].starts_with(&expected), "{setting}: {stderr}");
    }
    drop(taken);
}

/// With `TLS_CERT_FILE` and client certificates required on the public listener, the
/// management and console listeners speak TLS with the same certificate but never ask for a
/// client certificate; the public one refuses a caller without one.
async fn every_listener_speaks_tls_and_only_the_public_one_asks_for_client_certificates(backend: Backend) {
    use shared_user::pki::{Ca, Overwrite, files, write_issued};
    let Some(db) = TestDb::new(backend, "listeners", auth_service::MIGRATIONS).await else { return };
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("listeners CA").unwrap();
    ca.write(dir.path(), Overwrite::Refuse).unwrap();
    let server = ca.server(&["127.0.0.1"]).unwrap();
    write_issued(dir.path(), files::SERVER_CERT, files::SERVER_KEY, &server, Overwrite::Refuse).unwrap();
    let client = ca.client("billing").unwrap();
    let path = |name: &str| dir.path().join(name).display().to_string();
    let (cert, key, ca_file) = (path(files::SERVER_CERT), path(files::SERVER_KEY), path(files::CA_CERT));
    let env = [
        ("MANAGEMENT_BIND", "127.0.0.1:0"),
        ("CONSOLE_BIND", "127.0.0.1:0"),
        ("TLS_CERT_FILE", cert.as_str()),
        ("TLS_KEY_FILE", key.as_str()),
        ("TLS_CLIENT_CA_FILE", ca_file.as_str()),
        ("TLS_CLIENT_AUTH", "required"),
    ];
    let mut child = spawn_serve(&db, &env);
    let found = tokio::task::block_in_place(|| shared_user::testing::logs::listening(&mut child, "auth-service", 3));
    let [public, management, console] = [0, 1, 2].map(|i| found[i].1.clone());
    let trusting = || {
        let ca = reqwest::Certificate::from_pem(ca.cert_pem().as_bytes()).unwrap();
        reqwest::Client::builder().tls_certs_only([ca])
    };
    let bare = trusting().build().unwrap();
    let get = |client: &reqwest::Client, base: &str, path: &str| client.get(format!("https://{base}{path}")).send();
    assert_eq!(get(&bare, &management, "/healthz").await.unwrap().status().as_u16(), 200);
    assert_eq!(get(&bare, &console, "/admin/login/").await.unwrap().status().as_u16(), 200);
    assert!(get(&bare, &public, "/healthz").await.is_err(), "the public listener requires a client certificate");
    let identity = reqwest::Identity::from_pem(format!("{}{}", client.cert_pem, client.key_pem).as_bytes()).unwrap();
    let with_cert = trusting().identity(identity).build().unwrap();
    assert_eq!(get(&with_cert, &public, "/healthz").await.unwrap().status().as_u16(), 200);
    // Plain HTTP on a TLS listener gets no answer.
    assert!(status_plain(&management).await.is_err());
    let _ = child.kill();
    let _ = child.wait();
}

async fn status_plain(base: &str) -> Result<u16, reqwest::Error> {
    Ok(reqwest::get(format!("http://{base}/healthz")).await?.status().as_u16())
}

both_backends!(
    serve_runs_three_listeners_and_stops_them_all_on_sigterm,
    a_listener_that_cannot_bind_stops_the_start_naming_its_setting,
    every_listener_speaks_tls_and_only_the_public_one_asks_for_client_certificates
);

/// Touches no database: the settings are refused before it is opened.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_files_of_the_extra_listeners_need_their_listener_and_both_halves() {
    let run = |env: &[(&str, &str)]| {
        let out = Command::new(BIN)
            .args(["serve"])
            .env_clear()
            .env("DATABASE_URL", "sqlite:///nonexistent-dir/never-opened.db")
            .env("SIGNING_KEY", KEY)
            .envs(env.iter().copied())
            .output()
            .unwrap();
        assert!(!out.status.success(), "{env:?}");
        String::from_utf8_lossy(&out.stderr).trim().to_owned()
    };
    assert_eq!(
        run(&[("CONSOLE_TLS_CERT_FILE", "/c.pem")]),
        "auth-service: CONSOLE_TLS_CERT_FILE and CONSOLE_TLS_KEY_FILE need CONSOLE_BIND (the listener they are for)"
    );
    let refused = run(&[("MANAGEMENT_BIND", "127.0.0.1:0"), ("MANAGEMENT_TLS_KEY_FILE", "/k.pem")]);
    assert_eq!(refused, "auth-service: MANAGEMENT_TLS_KEY_FILE is set without MANAGEMENT_TLS_CERT_FILE");
}
