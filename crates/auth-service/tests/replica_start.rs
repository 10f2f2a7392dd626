//! A fleet's first deployment: several `auth-service serve` processes started at the same moment
//! on a fresh database (each migrates it, each finds no signing key) must end with exactly one
//! first key, published by every replica from its first answer, so that a local-mode client that
//! fetched the JWKS from one replica accepts the tokens of every other. And a database an earlier
//! version left with several `current` keys is repaired by `migrate` (and so at start): the
//! newest stays current, the others retire and stay published until their tokens have expired.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use auth_service::schema::signing_keys;
use axum::http::{HeaderMap, HeaderValue, header};
use client_service::{ClientConfig, ClientState};
use common::KEK;
use diesel::prelude::*;
use diesel_async::{RunQueryDsl, SimpleAsyncConnection};
use serde_json::{Value, json};
use shared_user::jsonwebtoken::{Algorithm, EncodingKey, Header};
use shared_user::testing::{Backend, TestDb};
use shared_user::{both_backends, with_conn};

const BIN: &str = env!("CARGO_BIN_EXE_auth-service");
const PW: &str = "correct horse battery";
/// Replicas started together in each round (an orchestrator's usual first deployment).
const REPLICAS: usize = 3;
/// Rounds per backend: before the fix, every round failed (several current keys, or a replica
/// that could not migrate).
const ROUNDS: usize = 6;

/// The environment every process of a test deployment shares (nothing from the test's own).
fn deployment(cmd: &mut Command, database_url: &str, algorithm: &str) {
    cmd.env_clear()
        .env("DATABASE_URL", database_url)
        .env("ALGORITHM", algorithm)
        .env("KEY_ENCRYPTION_KEY", KEK)
        .env("ARGON2_MEMORY_KIB", "256")
        .env("ARGON2_ITERATIONS", "1");
}

/// Runs one admin command to completion; its stdout (panics on failure).
fn cli(database_url: &str, algorithm: &str, args: &[&str], stdin: Option<&str>) -> String {
    let mut cmd = Command::new(BIN);
    deployment(&mut cmd, database_url, algorithm);
    cmd.args(args).env("RUST_LOG", "error").stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn auth-service");
    if let Some(text) = stdin {
        use std::io::Write;
        child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// `keys list`, one JSON object per key.
fn keys_list(database_url: &str) -> Vec<Value> {
    cli(database_url, "EdDSA", &["keys", "list"], None).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// A `serve` process on an ephemeral port, killed when dropped.
struct Replica {
    child: Child,
    base: String,
}

impl Replica {
    /// Spawns the process and returns at once (it migrates, loads its keys and listens later).
    fn spawn(database_url: &str, algorithm: &str) -> Child {
        let mut cmd = Command::new(BIN);
        deployment(&mut cmd, database_url, algorithm);
        cmd.args(["serve", "--bind", "127.0.0.1:0"])
            // No periodic reload during the test: only what a replica did at start counts.
            .env("KEYS_RELOAD_INTERVAL", "1h")
            .env("DB_POOL_SIZE", "2")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn auth-service serve")
    }

    /// Waits until `child` says where it listens; panics with its logs when it exits instead.
    fn listening(mut child: Child) -> Replica {
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let mut seen = Vec::new();
        let addr = lines.by_ref().map_while(Result::ok).find_map(|line| {
            let addr = line.split("addr=").nth(1).map(|a| a.split_whitespace().next().unwrap().to_owned());
            seen.push(line);
            addr
        });
        let Some(addr) = addr else {
            let _ = child.kill();
            panic!("a replica exited before listening: {}", seen.join("\n"));
        };
        // Keep reading the logs so the process never blocks on a full pipe.
        std::thread::spawn(move || lines.map_while(Result::ok).for_each(drop));
        Replica { child, base: format!("http://{addr}") }
    }

    /// Starts `n` replicas back to back (as an orchestrator starts pods), then waits for all.
    fn start_together(n: usize, database_url: &str, algorithm: &str) -> Vec<Replica> {
        let children: Vec<Child> = (0..n).map(|_| Self::spawn(database_url, algorithm)).collect();
        children.into_iter().map(Self::listening).collect()
    }

    async fn get(&self, path: &str) -> (u16, String) {
        let r = reqwest::get(format!("{}{path}", self.base)).await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    async fn jwks(&self) -> Value {
        let (status, text) = self.get("/.well-known/jwks.json").await;
        assert_eq!(status, 200, "{text}");
        serde_json::from_str(&text).unwrap()
    }

    async fn login(&self, email: &str) -> String {
        let r = reqwest::Client::new()
            .post(format!("{}/auth/token/", self.base))
            .json(&json!({"email": email, "password": PW}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        r.json::<Value>().await.unwrap()["access"].as_str().unwrap().to_owned()
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn kids(jwks: &Value) -> Vec<String> {
    let mut kids: Vec<String> =
        jwks["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap().to_owned()).collect();
    kids.sort();
    kids
}

/// A local-mode client (the client crate) of `replica`: it verifies tokens against that
/// replica's JWKS, fetched once (no refetch for an unknown `kid` during the test, so a key the
/// replica did not publish in its first answer shows as a refusal).
async fn local_client(replica: &Replica, mirror: &TestDb) -> ClientState {
    let config = ClientConfig::builder(replica.base.clone())
        .local_jwks()
        .jwks_min_refetch(Duration::from_secs(3600))
        .build()
        .unwrap();
    ClientState::new(config, mirror.db.clone()).unwrap()
}

async fn accepts(client: &ClientState, token: &str) -> Result<String, String> {
    let mut headers = HeaderMap::new();
    headers.insert(header::AUTHORIZATION, HeaderValue::from_str(&format!("Bearer {token}")).unwrap());
    client.authenticate(&headers).await.map(|u| u.email.clone()).map_err(|e| format!("{e:?}"))
}

async fn replicas_started_together_on_a_fresh_database_share_one_first_key(backend: Backend) {
    if backend == Backend::Postgres && shared_user::testing::pg_admin_url("replica start").is_none() {
        return;
    }
    for round in 0..ROUNDS {
        // The clients' mirror (user ids start again in each round's database): the backend under
        // test is the auth-service's.
        let mirror = TestDb::new(Backend::Sqlite, "replica start mirror", client_service::MIGRATIONS).await.unwrap();
        let algorithm = if round % 3 == 2 { "ES256" } else { "EdDSA" };
        // Every other round has no table at all: each replica migrates the database itself (pods
        // that migrate at start); the others were migrated before (by an init job).
        let db = if round % 2 == 0 {
            TestDb::empty(backend, "replica start").await.unwrap()
        } else {
            TestDb::new(backend, "replica start", auth_service::MIGRATIONS).await.unwrap()
        };
        let replicas = tokio::task::block_in_place(|| Replica::start_together(REPLICAS, &db.url, algorithm));

        // Each replica's first answer: the JWKS, the same one everywhere, holding one key.
        let mut sets = Vec::new();
        for replica in &replicas {
            sets.push(replica.jwks().await);
        }
        let first = kids(&sets[0]);
        assert_eq!(first.len(), 1, "round {round}: one first key, got {sets:?}");
        for (i, set) in sets.iter().enumerate() {
            assert_eq!(kids(set), first, "round {round}: replica {i} publishes another set");
        }
        assert_eq!(sets[0]["keys"][0]["alg"], algorithm, "round {round}");

        // One key in the database, and it is current.
        let listed = tokio::task::block_in_place(|| keys_list(&db.url));
        let current: Vec<&Value> = listed.iter().filter(|k| k["status"] == "current").collect();
        assert_eq!((listed.len(), current.len()), (1, 1), "round {round}: {listed:?}");
        assert_eq!(current[0]["kid"], first[0].as_str(), "round {round}");

        // Tokens of every replica are signed by that key and accepted by a local-mode client that
        // fetched the JWKS from another replica.
        let email = format!("r{round}@example.com");
        tokio::task::block_in_place(|| {
            cli(&db.url, algorithm, &["users", "add", "--email", &email, "--password-stdin"], Some(&format!("{PW}\n")))
        });
        for (i, replica) in replicas.iter().enumerate() {
            let token = replica.login(&email).await;
            let other = &replicas[(i + 1) % REPLICAS];
            let client = local_client(other, &mirror).await;
            assert_eq!(
                accepts(&client, &token).await,
                Ok(email.clone()),
                "round {round}: a token of replica {i} is refused by a client of replica {}",
                (i + 1) % REPLICAS
            );
        }
        drop(replicas);
        tokio::task::spawn_blocking(move || drop(db)).await.unwrap();
    }
}

/// The version of the migration that repairs several `current` keys and forbids them after.
const REPAIR_VERSION: &str = "20261203140000";

/// A database as an earlier version left it: the schema before the repair, with two `current`
/// keys (the older activated first); the kids and private PEMs, oldest first.
async fn database_with_two_current_keys(db: &TestDb) -> Result<Vec<(String, String)>, shared_user::DbError> {
    with_conn!(&db.db, |conn| {
        conn.batch_execute(&format!(
            "DROP INDEX signing_keys_one_current; \
             DELETE FROM __diesel_schema_migrations WHERE version = '{REPAIR_VERSION}';"
        ))
        .await?;
        Ok::<_, shared_user::DbError>(())
    })?;
    let kek = common::kek();
    let now = shared_user::user::now_utc();
    let mut made = Vec::new();
    for (kid, ago) in [("oldcurrent0001", 60), ("newcurrent0002", 30)] {
        let pem = auth_service::tokens::generate_private_pem(Algorithm::EdDSA).unwrap();
        let sealed = kek.seal(kid, &pem).unwrap();
        let at = now - chrono::Duration::seconds(ago);
        with_conn!(&db.db, |conn| {
            diesel::insert_into(signing_keys::table)
                .values((
                    signing_keys::kid.eq(kid),
                    signing_keys::algorithm.eq("EdDSA"),
                    signing_keys::private_pem.eq(&sealed),
                    signing_keys::status.eq("current"),
                    signing_keys::created_at.eq(at),
                    signing_keys::activated_at.eq(Some(at)),
                ))
                .execute(conn)
                .await?;
            Ok::<_, shared_user::DbError>(())
        })?;
        made.push((kid.to_owned(), pem));
    }
    Ok(made)
}

/// A token signed by `kid` with its private key, as the replica that used it signed them.
fn signed_by(kid: &str, pem: &str, user_id: i64) -> String {
    let now = chrono::Utc::now().timestamp();
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(kid.to_owned());
    let claims = json!({"token_type": "access", "exp": now + 300, "iat": now, "jti": "0123456789abcdef0123456789abcdef", "user_id": user_id});
    shared_user::jsonwebtoken::encode(&header, &claims, &EncodingKey::from_ed_pem(pem.as_bytes()).unwrap()).unwrap()
}

async fn migrate_repairs_several_current_keys_from_an_earlier_version(backend: Backend) {
    let Some(db) = TestDb::new(backend, "repair current keys", auth_service::MIGRATIONS).await else { return };
    let made = database_with_two_current_keys(&db).await.unwrap();
    let url = db.url.clone();
    let out = tokio::task::block_in_place(|| cli(&url, "EdDSA", &["migrate"], None));
    assert!(out.starts_with("1 migration(s) applied"), "{out}");

    // The newest stays current; the other is retired now (so published until its tokens expire).
    let listed = tokio::task::block_in_place(|| keys_list(&url));
    let status = |kid: &str| listed.iter().find(|k| k["kid"] == kid).map(|k| k["status"].clone());
    assert_eq!(status(&made[1].0), Some(json!("current")), "{listed:?}");
    assert_eq!(status(&made[0].0), Some(json!("retired")), "{listed:?}");
    let retired = listed.iter().find(|k| k["kid"] == made[0].0.as_str()).unwrap();
    assert!(retired["retired_at"].is_string(), "{retired}");

    // The repair is audited like every other change of the signing keys.
    let audit = tokio::task::block_in_place(|| cli(&url, "EdDSA", &["audit", "--kind", "key_rotated", "--json"], None));
    assert!(audit.contains(&made[0].0) && audit.contains("retired"), "{audit}");

    // A second current key can no longer be stored.
    let pem = auth_service::tokens::generate_private_pem(Algorithm::EdDSA).unwrap();
    let store = auth_service::store::Store::new(db.db.clone());
    let again = store.add_signing_key("anothercurrent", "EdDSA", &pem, "current").await;
    assert!(matches!(again, Err(shared_user::DbError::Unique)), "{again:?}");

    // A replica signs with the current key and still accepts the retired key's tokens.
    cli(&url, "EdDSA", &["users", "add", "--email", "old@example.com", "--password-stdin"], Some(&format!("{PW}\n")));
    let replica = tokio::task::block_in_place(|| Replica::start_together(1, &url, "EdDSA")).remove(0);
    assert_eq!(kids(&replica.jwks().await), {
        let mut k = vec![made[0].0.clone(), made[1].0.clone()];
        k.sort();
        k
    });
    let token = replica.login("old@example.com").await;
    let header: Value = serde_json::from_str(&common::header_text(&token)).unwrap();
    assert_eq!(header["kid"], made[1].0.as_str(), "the newest key signs");
    let user_id = {
        let users = cli(&url, "EdDSA", &["users", "list"], None);
        serde_json::from_str::<Value>(users.lines().next().unwrap()).unwrap()["id"].as_i64().unwrap()
    };
    let old = signed_by(&made[0].0, &made[0].1, user_id);
    let r = reqwest::Client::new()
        .post(format!("{}/auth/token/verify/", replica.base))
        .json(&json!({"token": old}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200, "a token of the retired key still verifies");
}

both_backends!(
    replicas_started_together_on_a_fresh_database_share_one_first_key,
    migrate_repairs_several_current_keys_from_an_earlier_version,
);
