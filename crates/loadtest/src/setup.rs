//! The services under test, in-process: auth-service state with a seeded user, client states
//! (local and remote verification) over a SQLite mirror, the routers, and listeners on
//! `127.0.0.1:0`.

use std::net::SocketAddr;
use std::path::Path;

use auth_service::cli::args::{Cli, Command};
use auth_service::store::NewUser;
use auth_service::{AppState, Settings};
use axum::Json;
use axum::Router;
use axum::routing::get;
use clap::Parser;
use client_service::{ClientConfig, ClientConfigBuilder, ClientState, RequireAuthLayer};
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use serde_json::{Value, json};
use shared_user::{AccessGroup, Db};

/// Email of the seeded user.
pub const EMAIL: &str = "load@example.com";
/// Password of the seeded user.
pub const PASSWORD: &str = "load-test-password-2026";

/// A random 64-character signing key (passes the auth-service's strength check).
pub fn signing_key() -> String {
    format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple())
}

/// Auth-service settings: the shipped defaults (OWASP argon2 parameters, HS256) with `key`,
/// refresh rotation on, and tokens that live for an hour so long runs keep them valid.
pub fn auth_settings(key: &str) -> Settings {
    Settings {
        signing_key: Some(key.into()),
        access_token_lifetime: std::time::Duration::from_secs(3600),
        refresh_token_lifetime: std::time::Duration::from_secs(24 * 3600),
        rotate_refresh_tokens: true,
        ..Settings::default()
    }
}

/// [`auth_settings`] with `serve` flags a user gave the load test on its own command line
/// (`--auth-arg=...`), parsed as `auth-service serve` parses them.
pub fn auth_settings_with_flags(key: &str, extra: &[&str]) -> anyhow::Result<Settings> {
    let mut argv = vec![
        "auth-service",
        "serve",
        "--signing-key",
        key,
        "--access-token-lifetime",
        "1h",
        "--refresh-token-lifetime",
        "1d",
        "--rotate-refresh-tokens",
        "true",
    ];
    argv.extend_from_slice(extra);
    match Cli::try_parse_from(argv)?.command {
        Command::Serve(serve) => Ok(serve.settings),
        _ => anyhow::bail!("`serve` did not parse as the serve command"),
    }
}

/// A connected SQLite database in `dir`, migrated with `set` (`auth_service::MIGRATIONS` or
/// `client_service::MIGRATIONS`).
pub async fn sqlite(dir: &Path, name: &str, pool: usize, set: shared_user::Migrations) -> anyhow::Result<Db> {
    let db = Db::connect(&format!("sqlite://{}", dir.join(name).display()), pool).await?;
    db.migrate(set).await?;
    Ok(db)
}

/// Auth-service state over `db` with the seeded user ([`EMAIL`], [`PASSWORD`], group
/// `billing:admin`); returns the state and the user's id.
pub async fn auth_state(settings: &Settings, db: Db) -> anyhow::Result<(AppState, i64)> {
    let state = AppState::build(settings.clone(), db).await.map_err(anyhow::Error::msg)?;
    let hash = state.hasher.hash(PASSWORD.to_owned()).await?;
    let user = state
        .store
        .create_user(NewUser {
            email: EMAIL.into(),
            password_hash: hash,
            first_name: "Load".into(),
            last_name: "Test".into(),
            is_staff: false,
            is_superuser: false,
            groups: vec![AccessGroup { name: "billing".into(), level: Some("admin".into()) }],
        })
        .await?;
    Ok((state, user.id))
}

/// Client state verifying locally with `key` (`Some`) or remotely through `auth_url` (`None`).
pub fn client_state(auth_url: &str, key: Option<&str>, db: Db) -> anyhow::Result<ClientState> {
    client_state_with(auth_url, key, db, |c| c)
}

/// [`client_state`] with settings changed by `adjust` (e.g. `token_cache_memory(0)`).
pub fn client_state_with(
    auth_url: &str,
    key: Option<&str>,
    db: Db,
    adjust: impl FnOnce(ClientConfigBuilder) -> ClientConfigBuilder,
) -> anyhow::Result<ClientState> {
    let builder = match key {
        Some(key) => ClientConfig::builder(auth_url).local_hmac(key),
        None => ClientConfig::builder(auth_url).remote(),
    };
    Ok(ClientState::new(adjust(builder).build()?, db)?)
}

async fn success() -> Json<Value> {
    Json(json!("success"))
}

/// `GET /bare` -> `"success"`, nothing else: the baseline.
pub fn bare_router() -> Router {
    Router::new().route("/bare", get(success))
}

/// The same `GET /bare` behind [`RequireAuthLayer`] (verification + mirror lookup).
pub fn protected_router(state: ClientState) -> Router {
    Router::new().route("/bare", get(success)).layer(RequireAuthLayer::new(state))
}

/// Serves `router` on a fresh `127.0.0.1:0` listener on the current runtime, with the peer
/// address available as `ConnectInfo` like `auth-service serve` does; the task ends with the
/// runtime.
pub async fn serve(router: Router) -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>()).await {
            eprintln!("loadtest: server on {addr} stopped: {e}");
        }
    });
    Ok(addr)
}

/// A database created for this run on a PostgreSQL server and dropped by [`PgDatabase::drop_now`].
#[derive(Debug)]
pub struct PgDatabase {
    admin: String,
    name: String,
    /// URL of the new database.
    pub url: String,
}

impl PgDatabase {
    /// Creates `gh_load_<uuid>` on the server of `admin_url` (any database the user may
    /// connect to, e.g. `postgres://postgres@127.0.0.1:5432/postgres`).
    pub async fn create(admin_url: &str) -> anyhow::Result<Self> {
        let host = admin_url.split("://").nth(1).unwrap_or_default();
        let host = host.rsplit('@').next().unwrap_or_default();
        let loopback = ["127.", "localhost", "[::1]", "/"].iter().any(|p| host.starts_with(p))
            || host.contains("host=/")
            || host.contains("host=127.");
        anyhow::ensure!(loopback, "--postgres must name a server on this machine (127.0.0.1, localhost or ::1)");
        let name = format!("gh_load_{}", uuid::Uuid::new_v4().simple());
        let mut conn = AsyncPgConnection::establish(admin_url).await?;
        conn.batch_execute(&format!("CREATE DATABASE {name}")).await?;
        Ok(Self { admin: admin_url.to_owned(), url: shared_user::db::with_database_name(admin_url, &name), name })
    }

    /// Drops the database (connections still open are terminated).
    pub async fn drop_now(self) -> anyhow::Result<()> {
        let mut conn = AsyncPgConnection::establish(&self.admin).await?;
        conn.batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name)).await?;
        Ok(())
    }
}
