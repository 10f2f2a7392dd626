//! `keys revoke KID` reaches running replicas within seconds, not at their next key reload:
//! the command (another process) only writes the database, each replica reads the revoked kids
//! every second. `KEYS_RELOAD_INTERVAL` is an hour here, so only that poll can explain a refusal.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use auth_service::keys::watch::KeyWatch;
use axum::http::StatusCode;
use common::{KEK, TestApp, header_text};
use serde_json::{Value, json};
use shared_user::both_backends;
use shared_user::testing::Backend;

const PW: &str = "correct horse battery";
const BIN: &str = env!("CARGO_BIN_EXE_auth-service");
/// Long enough that no periodic reload happens during a test.
const HOUR: Duration = Duration::from_secs(3600);

/// Runs the `auth-service` binary on `database_url` with the test key-encryption key; its stdout.
fn cli(database_url: &str, args: &[&str]) -> String {
    let out = Command::new(BIN)
        .args(args)
        .env_clear()
        .env("DATABASE_URL", database_url)
        .env("KEY_ENCRYPTION_KEY", KEK)
        .env("ALGORITHM", "EdDSA")
        .env("RUST_LOG", "error")
        .output()
        .unwrap();
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// The new signing key named by `keys revoke`'s answer (`KID revoked: ...; NEXT signs now`).
fn successor_in(said: &str) -> String {
    let next = said.split("; ").nth(1).and_then(|s| s.strip_suffix(" signs now\n"));
    next.unwrap_or_else(|| panic!("no successor named: {said}")).to_owned()
}

fn kid_of(token: &str) -> String {
    serde_json::from_str::<Value>(&header_text(token)).unwrap()["kid"].as_str().unwrap().to_owned()
}

/// Five seconds from now: the bound of every "eventually" below.
fn deadline() -> Instant {
    Instant::now() + Duration::from_secs(5)
}

/// Called while a condition does not hold yet: fails past `deadline`, else waits a little.
async fn not_yet(deadline: Instant, what: &str) {
    assert!(Instant::now() < deadline, "not within 5 s: {what}");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

async fn verify_status(app: &TestApp, token: &str) -> StatusCode {
    app.post("/auth/token/verify/", &json!({"token": token}).to_string()).await.status
}

async fn published(app: &TestApp) -> Vec<String> {
    let r = app.send(axum::http::Method::GET, "/.well-known/jwks.json", None, &[]).await;
    r.json()["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap().to_owned()).collect()
}

async fn a_replica_refuses_a_revoked_key_within_seconds_and_keeps_the_others(backend: Backend) {
    let Some(app) = TestApp::asymmetric(backend, &["--algorithm", "EdDSA"]).await else { return };
    let watch = KeyWatch::new(app.state.store.clone(), app.state.keys.clone(), Some(common::kek()), HOUR).spawn();
    app.add_user("alice@example.com", PW, false, &[]).await;
    let (old_refresh, old_access) = app.login("alice@example.com", PW).await;
    let old_kid = kid_of(&old_access);

    // A rotation, picked up the way a replica does at its periodic reload: the old key retires.
    cli(&app.db.url, &["keys", "rotate"]);
    cli(&app.db.url, &["keys", "rotate"]);
    common::reload_keys(&app).await;
    let (_, new_access) = app.login("alice@example.com", PW).await;
    let new_kid = kid_of(&new_access);
    assert_ne!(new_kid, old_kid);
    assert_eq!(verify_status(&app, &old_access).await, StatusCode::OK, "a retired key still verifies");

    // The retired key is revoked by another process.
    let said = cli(&app.db.url, &["keys", "revoke", &old_kid]);
    assert!(said.starts_with(&format!("{old_kid} revoked")), "{said}");
    let until = deadline();
    while verify_status(&app, &old_access).await != StatusCode::UNAUTHORIZED {
        not_yet(until, "the revoked key's token refused by verify").await;
    }
    let r = app.post("/auth/token/verify/", &json!({"token": old_access}).to_string()).await;
    common::assert_401(&r, &common::token_not_valid("Token is invalid or expired"));
    assert_eq!(app.get_bearer("/auth/user/", &old_access).await.status, StatusCode::UNAUTHORIZED);
    let r = app.post("/auth/token/refresh/", &json!({"refresh": old_refresh}).to_string()).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    assert_eq!(published(&app).await, std::slice::from_ref(&new_kid), "unpublished");
    // Tokens of the key still in force keep working.
    assert_eq!(verify_status(&app, &new_access).await, StatusCode::OK);
    assert_eq!(app.get_bearer("/auth/user/", &new_access).await.status, StatusCode::OK);

    // Now the signing key itself: refused, and the replica signs with the successor.
    let successor = successor_in(&cli(&app.db.url, &["keys", "revoke", &new_kid]));
    let until = deadline();
    while verify_status(&app, &new_access).await != StatusCode::UNAUTHORIZED
        || published(&app).await != std::slice::from_ref(&successor)
    {
        not_yet(until, "the signing key refused and its successor published").await;
    }
    assert_eq!(app.get_bearer("/auth/user/", &new_access).await.status, StatusCode::UNAUTHORIZED);
    let (_, fresh) = app.login("alice@example.com", PW).await;
    assert_eq!(kid_of(&fresh), successor, "a login after the revocation is signed by the successor");
    assert_eq!(verify_status(&app, &fresh).await, StatusCode::OK);
    assert_eq!(app.get_bearer("/auth/user/", &fresh).await.status, StatusCode::OK);
    watch.abort();
}

/// A `serve` process on an ephemeral port, killed when dropped.
struct Replica {
    child: Child,
    base: String,
}

impl Replica {
    fn start(database_url: &str) -> Replica {
        let mut child = Command::new(BIN)
            .args(["serve", "--bind", "127.0.0.1:0"])
            .env_clear()
            .env("DATABASE_URL", database_url)
            .env("ALGORITHM", "EdDSA")
            .env("KEY_ENCRYPTION_KEY", KEK)
            .env("KEYS_RELOAD_INTERVAL", "1h")
            .env("DB_POOL_SIZE", "2")
            .env("ARGON2_MEMORY_KIB", "256")
            .env("ARGON2_ITERATIONS", "1")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn auth-service serve");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let addr = lines
            .by_ref()
            .map_while(Result::ok)
            .find_map(|line| line.split("addr=").nth(1).map(|a| a.split_whitespace().next().unwrap().to_owned()));
        // Keep reading the logs so the process never blocks on a full pipe.
        std::thread::spawn(move || lines.map_while(Result::ok).for_each(drop));
        let mut replica = Replica { child, base: String::new() };
        replica.base = format!("http://{}", addr.expect("serve says where it listens"));
        replica
    }

    async fn post(&self, path: &str, body: Value) -> (StatusCode, String) {
        let r = reqwest::Client::new()
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        (StatusCode::from_u16(r.status().as_u16()).unwrap(), r.text().await.unwrap())
    }

    async fn get(&self, path: &str, bearer: Option<&str>) -> (StatusCode, String) {
        let mut req = reqwest::Client::new().get(format!("{}{path}", self.base));
        if let Some(token) = bearer {
            req = req.header("authorization", format!("Bearer {token}"));
        }
        let r = req.send().await.unwrap();
        (StatusCode::from_u16(r.status().as_u16()).unwrap(), r.text().await.unwrap())
    }

    async fn verify(&self, token: &str) -> StatusCode {
        self.post("/auth/token/verify/", json!({"token": token})).await.0
    }

    async fn publishes(&self, kid: &str) -> bool {
        let (status, text) = self.get("/.well-known/jwks.json", None).await;
        assert_eq!(status, StatusCode::OK, "{text}");
        let set: Value = serde_json::from_str(&text).unwrap();
        set["keys"].as_array().unwrap().iter().any(|k| k["kid"] == kid)
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn every_serve_replica_refuses_a_key_the_cli_revoked(backend: Backend) {
    let Some(app) = TestApp::asymmetric(backend, &["--algorithm", "EdDSA"]).await else { return };
    app.add_user("alice@example.com", PW, false, &[]).await;
    let replicas = tokio::task::block_in_place(|| [Replica::start(&app.db.url), Replica::start(&app.db.url)]);
    let (status, text) = replicas[0].post("/auth/token/", json!({"email": "alice@example.com", "password": PW})).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let access = serde_json::from_str::<Value>(&text).unwrap()["access"].as_str().unwrap().to_owned();
    let kid = kid_of(&access);
    for replica in &replicas {
        assert_eq!(replica.verify(&access).await, StatusCode::OK);
        assert!(replica.publishes(&kid).await);
    }

    let said = cli(&app.db.url, &["keys", "revoke", &kid]);
    let successor = successor_in(&said);
    for replica in &replicas {
        let until = deadline();
        // Publishing the successor (created by the command) means the replica signs with it.
        while replica.verify(&access).await != StatusCode::UNAUTHORIZED
            || replica.publishes(&kid).await
            || !replica.publishes(&successor).await
        {
            not_yet(until, "every replica refuses the revoked key and moves to the successor").await;
        }
        assert_eq!(replica.get("/auth/user/", Some(&access)).await.0, StatusCode::UNAUTHORIZED);
    }

    // A new login on one replica is signed by the successor and accepted by the other.
    let (status, text) = replicas[1].post("/auth/token/", json!({"email": "alice@example.com", "password": PW})).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let fresh = serde_json::from_str::<Value>(&text).unwrap()["access"].as_str().unwrap().to_owned();
    assert_eq!(kid_of(&fresh), successor);
    assert_eq!(replicas[0].verify(&fresh).await, StatusCode::OK);
    assert_eq!(replicas[0].get("/auth/user/", Some(&fresh)).await.0, StatusCode::OK);
}

both_backends!(
    a_replica_refuses_a_revoked_key_within_seconds_and_keeps_the_others,
    every_serve_replica_refuses_a_key_the_cli_revoked,
);
