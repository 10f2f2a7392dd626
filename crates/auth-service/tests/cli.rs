//! The `auth-service` binary: migrate, admin commands, createsuperuser and serve's refusals.
//! Each test runs the built binary with a clean environment and cheap argon2 parameters.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use auth_service::store::audit::AuditFilter;
use axum::http::StatusCode;
use common::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use serde_json::{Value, json};
use shared_user::both_backends;
use shared_user::testing::net::{connect_from, read_to_close};
use shared_user::testing::{Backend, TestDb};

/// How long a test waits for the server to close a connection it should close.
const CLOSE_WITHIN: Duration = Duration::from_secs(30);

const BIN: &str = env!("CARGO_BIN_EXE_auth-service");
const PW: &str = "s3cret pass phrase";

/// What a finished command said.
#[derive(Debug)]
struct Out {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Out {
    #[track_caller]
    fn ok(&self) -> &Self {
        assert_eq!(self.code, Some(0), "stdout: {}\nstderr: {}", self.stdout, self.stderr);
        self
    }

    /// Failed with exactly one non-empty line on stderr, which is returned.
    #[track_caller]
    fn failed(&self) -> &str {
        assert!(matches!(self.code, Some(c) if c != 0), "expected a failure: {self:?}");
        let lines: Vec<&str> = self.stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "one clear line on stderr: {:?}", self.stderr);
        lines[0]
    }

    fn json_lines(&self) -> Vec<Value> {
        self.stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }
}

fn command(database_url: &str, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_clear()
        .env("DATABASE_URL", database_url)
        .env("ARGON2_MEMORY_KIB", "256")
        .env("ARGON2_ITERATIONS", "1")
        .env("RUST_LOG", "warn")
        .envs(env.iter().copied());
    cmd
}

/// Runs the binary to completion with `stdin` piped in.
fn run(database_url: &str, args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> Out {
    let mut cmd = command(database_url, args, env);
    cmd.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let out = tokio::task::block_in_place(|| {
        let mut child = cmd.spawn().expect("spawn auth-service");
        if let Some(input) = stdin {
            child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
        }
        child.wait_with_output().expect("wait auth-service")
    });
    Out {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn add_user(url: &str, email: &str, extra: &[&str]) -> Out {
    let mut args = vec!["users", "add", "--email", email, "--password-stdin"];
    args.extend_from_slice(extra);
    run(url, &args, &[], Some(&format!("{PW}\n")))
}

fn list(url: &str) -> Vec<Value> {
    run(url, &["users", "list"], &[], None).ok().json_lines()
}

/// A database that exists but was never migrated, removed afterwards.
struct EmptyDb {
    url: String,
    _dir: Option<tempfile::TempDir>,
    pg_drop: Option<(String, String)>,
}

impl EmptyDb {
    async fn new(backend: Backend) -> Option<EmptyDb> {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                let url = format!("sqlite://{}", dir.path().join("fresh.db").display());
                Some(EmptyDb { url, _dir: Some(dir), pg_drop: None })
            }
            Backend::Postgres => {
                let admin = shared_user::testing::pg_admin_url("cli (empty database)")?;
                let name = format!("gh_cli_{}", uuid::Uuid::new_v4().simple());
                let mut conn = AsyncPgConnection::establish(&admin).await.unwrap();
                conn.batch_execute(&format!("CREATE DATABASE {name}")).await.unwrap();
                let base = admin.rsplit_once('/').map_or(admin.as_str(), |(base, _)| base);
                Some(EmptyDb { url: format!("{base}/{name}"), _dir: None, pg_drop: Some((admin.clone(), name)) })
            }
        }
    }
}

impl Drop for EmptyDb {
    fn drop(&mut self) {
        if let Some((admin, name)) = self.pg_drop.take() {
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                rt.block_on(async move {
                    if let Ok(mut conn) = AsyncPgConnection::establish(&admin).await {
                        let _ = conn.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await;
                    }
                });
            })
            .join();
        }
    }
}

/// Checks `out` is "N migration(s) applied" with N >= 1 (the whole embedded set).
#[track_caller]
fn assert_migrated(out: &Out) {
    let n: usize = out.ok().stdout.strip_suffix(" migration(s) applied\n").and_then(|n| n.parse().ok()).unwrap_or(0);
    assert!(n >= 1, "{out:?}");
}

async fn migrate_applies_the_schema_once(backend: Backend) {
    let Some(db) = EmptyDb::new(backend).await else { return };
    assert_migrated(&run(&db.url, &["migrate"], &[], None));
    assert_eq!(run(&db.url, &["migrate"], &[], None).ok().stdout, "0 migration(s) applied\n");
    assert!(list(&db.url).is_empty());
}

async fn users_add_reads_the_password_from_stdin_and_the_user_can_log_in(backend: Backend) {
    let Some(db) = TestDb::new(backend, "cli", auth_service::MIGRATIONS).await else { return };
    let url = db.url.clone();
    let out =
        add_user(&url, " Carol@Example.COM ", &["--first-name", "Carol", "--group", "ops", "--group", "billing:admin"]);
    let printed = out.ok().json_lines();
    assert_eq!(printed.len(), 1);
    let carol = &printed[0];
    assert_eq!(carol["email"], "carol@example.com", "the whole email is lowercased, like EasyJWT's manager");
    assert_eq!(carol["first_name"], "Carol");
    assert_eq!((carol["is_staff"].as_bool(), carol["is_superuser"].as_bool()), (Some(false), Some(false)));
    assert_eq!(carol["access_groups"], json!([{"name": "billing", "level": "admin"}, {"name": "ops", "level": null}]));
    assert_eq!(list(&url), printed);
    let app = TestApp::with_db(db, &[]).await;
    assert!(app.stored_hash("carol@example.com").await.starts_with("$argon2id$v=19$m=256,t=1,p=1$"));
    let (_, access) = app.login("carol@example.com", PW).await;
    let r = app.get_bearer("/auth/user/", &access).await;
    assert_eq!(r.json()["id"], carol["id"]);
}

async fn users_add_refuses_duplicates_bad_emails_and_missing_passwords(backend: Backend) {
    let Some(db) = TestDb::new(backend, "cli", auth_service::MIGRATIONS).await else { return };
    add_user(&db.url, "dave@example.com", &[]).ok();
    assert_eq!(
        add_user(&db.url, "DAVE@example.com", &[]).failed(),
        "auth-service: a user with that email already exists"
    );
    assert_eq!(
        add_user(&db.url, "not-an-email", &[]).failed(),
        r#"auth-service: "not-an-email" is not a valid email address"#
    );
    let out = run(&db.url, &["users", "add", "--email", "erin@example.com", "--password-stdin"], &[], Some("\n"));
    assert_eq!(out.failed(), "auth-service: the password is empty");
    let out = run(&db.url, &["users", "add", "--email", "erin@example.com"], &[], None);
    assert!(out.failed().contains("no password"), "{out:?}");
    let out = run(
        &db.url,
        &["users", "add", "--email", "erin@example.com", "--group", ":3", "--password-stdin"],
        &[],
        Some("pw\n"),
    );
    assert!(out.failed().contains("invalid group"), "{out:?}");
    assert_eq!(list(&db.url).len(), 1);
}

async fn users_list_prints_one_json_line_per_user_by_id(backend: Backend) {
    let Some(db) = TestDb::new(backend, "cli", auth_service::MIGRATIONS).await else { return };
    assert_eq!(run(&db.url, &["users", "list"], &[], None).ok().stdout, "");
    add_user(&db.url, "b@example.com", &[]).ok();
    add_user(&db.url, "a@example.com", &["--staff"]).ok();
    let users = list(&db.url);
    let emails: Vec<&str> = users.iter().map(|u| u["email"].as_str().unwrap()).collect();
    assert_eq!(emails, ["b@example.com", "a@example.com"]);
    assert!(users[0]["id"].as_i64().unwrap() < users[1]["id"].as_i64().unwrap());
    assert_eq!(users[1]["is_staff"], true);
    assert!(users.iter().all(|u| u.get("password").is_none()));
}

async fn set_staff_grants_and_removes_staff(backend: Backend) {
    let Some(db) = TestDb::new(backend, "cli", auth_service::MIGRATIONS).await else { return };
    add_user(&db.url, "frank@example.com", &[]).ok();
    assert_eq!(run(&db.url, &["users", "set-staff", "--email", "frank@example.com"], &[], None).ok().stdout, "ok\n");
    assert_eq!(list(&db.url)[0]["is_staff"], true);
    run(&db.url, &["users", "set-staff", "--email", "frank@example.com", "--staff", "false"], &[], None).ok();
    assert_eq!(list(&db.url)[0]["is_staff"], false);
    let frank = list(&db.url)[0]["id"].as_i64().unwrap();
    assert_eq!(updates(&db, frank).await, [json!({"is_staff": true}), json!({"is_staff": false})]);
}

async fn set_groups_replaces_the_access_groups(backend: Backend) {
    let Some(db) = TestDb::new(backend, "cli", auth_service::MIGRATIONS).await else { return };
    add_user(&db.url, "gina@example.com", &["--group", "old"]).ok();
    let args = ["users", "set-groups", "--email", "gina@example.com", "--group", "reports:3", "--group", "billing"];
    run(&db.url, &args, &[], None).ok();
    let groups = json!([{"name": "billing", "level": null}, {"name": "reports", "level": "3"}]);
    assert_eq!(list(&db.url)[0]["access_groups"], groups);
    assert_eq!(list(&db.url)[0]["accessgroup"], json!({"user_type": "billing"}));
    run(&db.url, &["users", "set-groups", "--email", "gina@example.com"], &[], None).ok();
    assert_eq!(list(&db.url)[0]["access_groups"], json!([]));
    assert_eq!(list(&db.url)[0]["accessgroup"], Value::Null);
    let gina = list(&db.url)[0]["id"].as_i64().unwrap();
    assert_eq!(
        updates(&db, gina).await,
        [json!({"access_groups": ["reports", "billing"]}), json!({"access_groups": []})]
    );
}

async fn deactivate_blocks_login_and_revokes_refresh_tokens(backend: Backend) {
    let Some(db) = TestDb::new(backend, "cli", auth_service::MIGRATIONS).await else { return };
    let url = db.url.clone();
    add_user(&url, "hank@example.com", &[]).ok();
    let app = TestApp::with_db(db, &[]).await;
    let (refresh, _) = app.login("hank@example.com", PW).await;
    assert_eq!(run(&url, &["users", "deactivate", "--email", "hank@example.com"], &[], None).ok().stdout, "ok\n");
    assert_eq!(list(&url)[0]["is_active"], false);
    let r = app.post("/auth/token/", &json!({"email": "hank@example.com", "password": PW}).to_string()).await;
    assert_401(&r, r#"{"detail":"No active account found with the given credentials"}"#);
    let r = app.post("/auth/token/refresh/", &json!({"refresh": refresh}).to_string()).await;
    assert_401(&r, &token_not_valid("Token is blacklisted"));
    let hank = list(&url)[0]["id"].as_i64().unwrap();
    assert_eq!(updates(&app.db, hank).await, [json!({"is_active": false, "refresh_tokens_revoked": 1})]);
    let watermarks = app.state.store.revocations_after(0, 10).await.unwrap();
    assert_eq!(watermarks.iter().map(|w| w.user_id).collect::<Vec<_>>(), [hank], "in the same transaction");
}

/// `users revoke-sessions`: every session ends, the old refresh token is refused at once, and
/// a running service (another process as far as the command knows) refuses the old access
/// token within seconds; a new login works; audited as `logout_all`.
async fn revoke_sessions_ends_every_session_and_old_tokens(backend: Backend) {
    let Some(db) = TestDb::new(backend, "cli", auth_service::MIGRATIONS).await else { return };
    let url = db.url.clone();
    add_user(&url, "ivy@example.com", &[]).ok();
    add_user(&url, "jack@example.com", &[]).ok();
    let app = TestApp::with_db(db, &[]).await;
    let (refresh, access) = app.login("ivy@example.com", PW).await;
    app.login("ivy@example.com", PW).await;
    let (_, jack) = app.login("jack@example.com", PW).await;
    assert_eq!(app.get_bearer("/auth/user/", &access).await.status, StatusCode::OK);
    let ivy = list(&url)[0]["id"].as_i64().unwrap();
    assert_eq!(app.state.store.live_sessions(ivy).await.unwrap().len(), 2);

    let args = ["users", "revoke-sessions", "--email", "ivy@example.com"];
    assert_eq!(run(&url, &args, &[], None).ok().stdout, "ok\n");
    assert!(app.state.store.live_sessions(ivy).await.unwrap().is_empty(), "every session ended");
    let r = app.post("/auth/token/refresh/", &json!({"refresh": refresh}).to_string()).await;
    assert_401(&r, &token_not_valid("Token is blacklisted"));
    let until = Instant::now() + Duration::from_secs(5);
    while app.get_bearer("/auth/user/", &access).await.status != StatusCode::UNAUTHORIZED {
        assert!(Instant::now() < until, "the service still accepts the old access token after 5 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_401(&app.get_bearer("/auth/user/", &access).await, &bearer_not_valid("Token is invalid or expired"));
    let r = app.post("/auth/token/verify/", &json!({"token": access}).to_string()).await;
    assert_401(&r, &token_not_valid("Token is invalid or expired"));
    assert_eq!(app.get_bearer("/auth/user/", &jack).await.status, StatusCode::OK, "another user is untouched");
    let (_, fresh) = app.login("ivy@example.com", PW).await;
    assert_eq!(app.get_bearer("/auth/user/", &fresh).await.status, StatusCode::OK, "a new login works");
    let filter = AuditFilter { user_id: Some(ivy), kind: Some("logout_all".into()), ..Default::default() };
    let rows = app.state.store.list_audit(&filter).await.unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].detail.as_deref(), Some(r#"{"refresh_tokens_revoked":2}"#));
}

/// Each `keys rotate` step is a `key_rotated` event naming the step and the key.
async fn keys_rotate_is_audited(backend: Backend) {
    let Some(db) = TestDb::new(backend, "cli", auth_service::MIGRATIONS).await else { return };
    let env = [("KEY_ENCRYPTION_KEY", KEK), ("ALGORITHM", "EdDSA")];
    let rotate = || run(&db.url, &["keys", "rotate"], &env, None).ok().stdout.clone();
    let first = rotate();
    let first = first.strip_suffix(" is now current; the previous key stays published until its tokens expire\n");
    let first = first.unwrap_or_else(|| panic!("the first key is made current"));
    let staged = rotate();
    let staged = staged.strip_prefix("staged ").and_then(|s| s.split_whitespace().next()).unwrap().to_owned();
    assert!(rotate().starts_with(&format!("{staged} is now current")));

    let out = run(&db.url, &["audit", "--kind", "key_rotated", "--json"], &[], None);
    let mut rows = out.ok().json_lines();
    rows.reverse();
    let details: Vec<Value> =
        rows.iter().map(|r| serde_json::from_str(r["detail"].as_str().unwrap()).unwrap()).collect();
    assert_eq!(
        details,
        [
            json!({"step": "promoted", "kid": first}),
            json!({"step": "staged", "kid": staged}),
            json!({"step": "promoted", "kid": staged}),
        ]
    );
    assert!(rows.iter().all(|r| r["user_id"].is_null() && r["actor_id"].is_null()), "{rows:?}");
}

/// The details of the user's `user_updated` events, oldest first.
async fn updates(db: &TestDb, user_id: i64) -> Vec<Value> {
    let store = auth_service::store::Store::new(db.db.clone());
    let filter = AuditFilter { user_id: Some(user_id), kind: Some("user_updated".into()), ..Default::default() };
    let rows = store.list_audit(&filter).await.unwrap();
    assert!(rows.iter().all(|r| r.actor_id.is_none()), "an operator's command has no actor: {rows:?}");
    rows.iter().rev().map(|r| serde_json::from_str(r.detail.as_deref().unwrap()).unwrap()).collect()
}

async fn commands_on_an_unknown_email_fail_with_one_line(backend: Backend) {
    let Some(db) = TestDb::new(backend, "cli", auth_service::MIGRATIONS).await else { return };
    for args in [
        &["users", "set-staff", "--email", "nobody@example.com"][..],
        &["users", "set-groups", "--email", "nobody@example.com", "--group", "x"],
        &["users", "deactivate", "--email", "nobody@example.com"],
    ] {
        assert_eq!(run(&db.url, args, &[], None).failed(), r#"auth-service: no user with email "nobody@example.com""#);
    }
}

async fn createsuperuser_takes_the_password_from_the_environment_or_stdin(backend: Backend) {
    let Some(db) = TestDb::new(backend, "cli", auth_service::MIGRATIONS).await else { return };
    let url = db.url.clone();
    let env = [("AUTH_SUPERUSER_PASSWORD", PW)];
    let out = run(&url, &["createsuperuser", "--email", "Root@Example.com"], &env, None);
    let root = &out.ok().json_lines()[0];
    assert_eq!(root["email"], "root@example.com");
    assert_eq!((root["is_staff"].as_bool(), root["is_superuser"].as_bool()), (Some(true), Some(true)));
    let out =
        run(&url, &["createsuperuser", "--email", "ops@example.com", "--password-stdin"], &[], Some("other pass\n"));
    out.ok();
    let out = run(&url, &["createsuperuser", "--email", "x@example.com"], &[], None);
    assert!(out.failed().starts_with("auth-service: no password"), "{out:?}");
    let app = TestApp::with_db(db, &[]).await;
    let (_, access) = app.login("root@example.com", PW).await;
    app.login("ops@example.com", "other pass").await;
    let ops = list(&url)[1]["id"].as_i64().unwrap();
    assert_eq!(app.get_bearer(&format!("/auth/users/{ops}/"), &access).await.status, StatusCode::OK);
}

async fn serve_refuses_to_start_without_a_signing_key(backend: Backend) {
    let Some(db) = TestDb::new(backend, "cli", auth_service::MIGRATIONS).await else { return };
    let out = run(&db.url, &["serve", "--bind", "127.0.0.1:0"], &[], None);
    let line = out.failed();
    assert!(line.starts_with("auth-service: SIGNING_KEY is not set"), "{line}");
}

async fn serve_refuses_a_weak_or_short_signing_key(backend: Backend) {
    let Some(db) = TestDb::new(backend, "cli", auth_service::MIGRATIONS).await else { return };
    for (key, why) in [
        ("secret", "development placeholder"),
        ("django-insecure-0123456789abcdefghijklmnopqrstuvwxyz", "development placeholder"),
        ("only-twenty-bytes-ok", "shorter than 32 bytes"),
        ("x", "shorter than 32 bytes"),
        ("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "repeats a 1-byte pattern"),
        ("changemechangemechangemechangemechangeme", "repeats a 8-byte pattern"),
        ("abcdefabcdefabcdefabcdefabcdefabcdefX", "distinct characters"),
    ] {
        let out = run(&db.url, &["serve", "--bind", "127.0.0.1:0"], &[("SIGNING_KEY", key)], None);
        let line = out.failed();
        assert!(line.starts_with("auth-service: SIGNING_KEY") && line.contains(why), "{key}: {line}");
        // ("secret" itself is a word of the message.)
        assert!(key == "secret" || !line.contains(key), "the key is never printed: {line}");
    }
}

async fn serve_refuses_bad_settings_before_touching_the_database(backend: Backend) {
    let Some(db) = EmptyDb::new(backend).await else { return };
    for (name, value, says) in [
        ("AUTH_HEADER_NAME", "bad header", "AUTH_HEADER_NAME"),
        ("AUTH_HEADER_TYPES", " , ", "AUTH_HEADER_TYPES"),
        ("ARGON2_MEMORY_KIB", "1", "argon2"),
        ("ACCESS_TOKEN_LIFETIME", "0", "lifetimes"),
        ("REQUEST_TIMEOUT", "0s", "REQUEST_TIMEOUT"),
        ("USER_ID_CLAIM", " ", "USER_ID_CLAIM"),
        ("TRUST_X_FORWARDED_FOR", "true", "TRUSTED_PROXIES"),
        ("TRUSTED_PROXIES", "10.0.0.0/8,proxy.internal", "TRUSTED_PROXIES"),
        ("IDLE_TIMEOUT", "5s", "IDLE_TIMEOUT"),
        ("MAX_CONNECTIONS", "0", "MAX_CONNECTIONS"),
        ("MAX_CONNECTIONS_PER_IP", "0", "MAX_CONNECTIONS_PER_IP"),
        ("HEADER_READ_TIMEOUT", "0s", "HEADER_READ_TIMEOUT"),
    ] {
        let out = run(&db.url, &["serve", "--bind", "127.0.0.1:0"], &[("SIGNING_KEY", KEY), (name, value)], None);
        let line = out.failed();
        assert!(line.starts_with("auth-service: ") && line.contains(says), "{name}={value:?}: {line}");
    }
    // Nothing was migrated by the refused starts.
    assert_migrated(&run(&db.url, &["migrate"], &[], None));
}

async fn serve_refuses_max_connections_beyond_the_hard_open_file_limit(backend: Backend) {
    let Some(db) = EmptyDb::new(backend).await else { return };
    // `sh` lowers the soft and hard limits, then runs the binary in its place.
    let cmd = command(&db.url, &[], &[("SIGNING_KEY", KEY), ("MAX_CONNECTIONS", "1000")]);
    let mut shell = Command::new("/bin/sh");
    shell
        .args(["-c", "ulimit -n 256 && exec \"$0\" \"$@\"", BIN, "serve", "--bind", "127.0.0.1:0"])
        .env_clear()
        .envs(cmd.get_envs().filter_map(|(k, v)| Some((k.to_owned(), v?.to_owned()))))
        .stdin(Stdio::null());
    let out = tokio::task::block_in_place(|| shell.output()).expect("run auth-service under sh");
    let out = Out {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    let line = out.failed();
    assert!(line.starts_with("auth-service: MAX_CONNECTIONS=1000 needs") && line.contains("at most 256"), "{line}");
    // Nothing was migrated by the refused start.
    assert_migrated(&run(&db.url, &["migrate"], &[], None));
}

async fn serve_limits_connections_per_address_and_closes_silent_ones(backend: Backend) {
    let Some(db) = TestDb::new(backend, "cli", auth_service::MIGRATIONS).await else { return };
    let env =
        [("SIGNING_KEY", KEY), ("RUST_LOG", "info"), ("MAX_CONNECTIONS_PER_IP", "2"), ("HEADER_READ_TIMEOUT", "3s")];
    let mut cmd = command(&db.url, &["serve", "--bind", "127.0.0.1:0"], &env);
    let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let addr = tokio::task::block_in_place(|| {
        let mut lines = BufReader::new(stderr).lines();
        let addr = lines
            .by_ref()
            .map_while(Result::ok)
            .find_map(|line| line.split("addr=").nth(1).map(|a| a.split_whitespace().next().unwrap().to_owned()));
        std::thread::spawn(move || lines.for_each(drop));
        addr
    });
    let Some(addr) = addr else {
        let _ = child.kill();
        panic!("serve never said where it listens");
    };
    let addr: std::net::SocketAddr = addr.parse().unwrap();
    let mut silent = [connect_from(2, addr).await, connect_from(2, addr).await];
    let over = read_to_close(&mut connect_from(2, addr).await, CLOSE_WITHIN).await;
    // Another address is served meanwhile, and the refusal shows in the metrics.
    let metrics = reqwest::get(format!("http://{addr}/metrics")).await.unwrap().text().await.unwrap();
    let mut closed = Vec::new();
    for stream in &mut silent {
        closed.push(read_to_close(stream, CLOSE_WITHIN).await);
    }
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(over.as_deref(), Some(&b""[..]), "the third connection from 127.0.0.2 is closed unanswered");
    assert!(metrics.contains("gatehouse_connections_refused_total{reason=\"per_ip\"} 1"), "{metrics}");
    assert!(closed.iter().all(|c| c.as_deref() == Some(&b""[..])), "silent connections closed unanswered: {closed:?}");
}

/// Touches no database: runs once, not once per backend.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_database_url_fails_with_one_line() {
    let out = run("mysql://root@localhost/app", &["migrate"], &[], None);
    assert_eq!(
        out.failed(),
        r#"auth-service: DATABASE_URL must start with postgres://, postgresql:// or sqlite:// (got "mysql")"#
    );
}

async fn serve_answers_and_stops_on_sigterm(backend: Backend) {
    let Some(db) = TestDb::new(backend, "cli", auth_service::MIGRATIONS).await else { return };
    let mut cmd = command(&db.url, &["serve", "--bind", "127.0.0.1:0"], &[("SIGNING_KEY", KEY), ("RUST_LOG", "info")]);
    let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    tokio::task::block_in_place(|| {
        let mut lines = BufReader::new(stderr).lines();
        let addr = lines
            .by_ref()
            .map_while(Result::ok)
            .find_map(|line| line.split("addr=").nth(1).map(|a| a.split_whitespace().next().unwrap().to_owned()));
        let Some(addr) = addr else {
            let _ = child.kill();
            panic!("serve never said where it listens");
        };
        let mut conn = std::net::TcpStream::connect(&addr).unwrap();
        conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
        let mut response = String::new();
        conn.read_to_string(&mut response).unwrap();
        assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");
        assert!(response.to_ascii_lowercase().contains("content-type: application/json\r\n"), "{response}");
        assert!(response.ends_with(r#"{"status":"ok"}"#), "{response}");
        let term = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
        assert!(term.success());
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                assert!(status.success(), "graceful shutdown exits 0: {status}");
                break;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("serve did not stop on SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    });
}

async fn serve_cuts_off_a_client_that_never_finishes_its_request_head(backend: Backend) {
    let Some(db) = TestDb::new(backend, "cli", auth_service::MIGRATIONS).await else { return };
    let env = [("SIGNING_KEY", KEY), ("RUST_LOG", "info"), ("HEADER_READ_TIMEOUT", "300ms")];
    let mut cmd = command(&db.url, &["serve", "--bind", "127.0.0.1:0"], &env);
    let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    tokio::task::block_in_place(|| {
        let addr = BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .find_map(|line| line.split("addr=").nth(1).map(|a| a.split_whitespace().next().unwrap().to_owned()));
        let Some(addr) = addr else {
            let _ = child.kill();
            panic!("serve never said where it listens");
        };
        let mut slow = std::net::TcpStream::connect(&addr).unwrap();
        slow.write_all(b"POST /auth/token/ HTTP/1.1\r\nHost: x\r\nContent-Ty").unwrap();
        // A bound far above the deadline, so a hang fails the test instead of blocking it.
        slow.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut rest = Vec::new();
        let closed = slow.read_to_end(&mut rest);
        let _ = child.kill();
        let _ = child.wait();
        assert!(closed.is_ok(), "the server closed the stalled connection: {closed:?}");
    });
}

/// Touches no database (`--help` exits before opening one): runs once, not once per backend.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn help_documents_flags_with_their_environment_variables() {
    let dir = tempfile::tempdir().unwrap();
    let unused = format!("sqlite://{}", dir.path().join("never-created.db").display());
    let help = run(&unused, &["serve", "--help"], &[], None);
    assert!(!dir.path().join("never-created.db").exists(), "--help opened the database");
    for needle in [
        "--bind",
        "[env: BIND=",
        "[env: SIGNING_KEY",
        "[env: DATABASE_URL=",
        "[env: ROTATE_REFRESH_TOKENS=",
        "[env: ALLOW_CREATE_USER=",
        "[env: AUTH_HEADER_TYPES=",
    ] {
        assert!(help.ok().stdout.contains(needle), "{needle} missing from serve --help");
    }
}

both_backends!(
    migrate_applies_the_schema_once,
    users_add_reads_the_password_from_stdin_and_the_user_can_log_in,
    users_add_refuses_duplicates_bad_emails_and_missing_passwords,
    users_list_prints_one_json_line_per_user_by_id,
    set_staff_grants_and_removes_staff,
    set_groups_replaces_the_access_groups,
    deactivate_blocks_login_and_revokes_refresh_tokens,
    revoke_sessions_ends_every_session_and_old_tokens,
    keys_rotate_is_audited,
    commands_on_an_unknown_email_fail_with_one_line,
    createsuperuser_takes_the_password_from_the_environment_or_stdin,
    serve_refuses_to_start_without_a_signing_key,
    serve_cuts_off_a_client_that_never_finishes_its_request_head,
    serve_refuses_a_weak_or_short_signing_key,
    serve_refuses_bad_settings_before_touching_the_database,
    serve_refuses_max_connections_beyond_the_hard_open_file_limit,
    serve_limits_connections_per_address_and_closes_silent_ones,
    serve_answers_and_stops_on_sigterm,
);
