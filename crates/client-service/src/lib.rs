//! Gatehouse client crate: what a Rust microservice mounts to use the central auth-service.
//!
//! What a service author uses, and all that is public:
//! - [`ClientConfig::builder`] → [`ClientConfig`] (explicit [`VerifyMode`]: `local_hmac`,
//!   `local_jwks` or `remote`; [`ConfigError`] when a setting is unusable), then
//!   [`ClientState::new`] over the service's own database after [`migrate`].
//! - [`AuthUser`]: the extractor of the authenticated, active user (also as `Option<AuthUser>`
//!   for routes that serve anonymous callers too); [`ClientError`] is what it answers otherwise.
//! - [`RequireAuthLayer`]: the same check for a whole router, with group requirements that
//!   cannot be put in the wrong order (`RequireAuthLayer::new(state).group("billing", None)`).
//! - [`router`]: `/auth/token/`, `/auth/token/refresh/`, `/auth/token/verify/`,
//!   `/auth/token/blacklist/`, `/auth/token/logout/`, `/auth/password-change/`, `/auth/user/`
//!   and `/auth/users/{id}/`, `/auth/sessions/`, `/auth/sessions/{id}/` and `/auth/logout-all/`,
//!   proxied 1:1 to the auth-service (both slash forms, no redirect); [`health`]: `/healthz` and
//!   `/readyz`; [`metrics::router`]: `GET /metrics`; [`openapi`]: the routes' OpenAPI document;
//!   [`instrument`]: request ids, access log and HTTP metrics around the host's router.
//! - The shared types these hand out, re-exported so a host needs no `shared_user` dependency:
//!   [`User`] and [`AccessGroup`], [`ErrorDetail`] (in [`ClientError`]), the database handle
//!   [`Db`] with [`DbError`], [`Migrations`] (the type of [`MIGRATIONS`]) and [`with_conn!`] for
//!   the host's own queries on the same handle.
//!
//! Each request: the bearer header read as the EasyJWT 1.1 client reads it, the token checked
//! in-process (shared secret or the auth-service's JWKS) or by the auth-service, then the user
//! from a mirror in the service's own database: tables `gatehouse_users` and
//! `gatehouse_access_groups`, created by [`migrate`] next to the host's own tables (diesel
//! versions `2026-11-23-9000NN`, a time no `diesel migration generate` produces, so a host's own
//! diesel migrations never collide with ours). The mirror is filled from the auth-service at
//! login and when a user is unknown or stale; a known user keeps working while the
//! auth-service is down.
//!
//! Revocation in local mode: with a revocation feed token
//! ([`ClientConfigBuilder::revocation_feed`]), a background task polls the auth-service's
//! revocation feed and refuses tokens issued before a user's logout-all, password change or
//! deactivation ([`ClientState::revocation_status`] says whether it is live).
//!
//! The `cli` feature adds the `client-service` demo binary's pieces (clap arguments with the
//! EASY_JWT environment names, the demo app); a library user does not need it.
//!
//! ```no_run
//! use axum::{Router, routing::get};
//! use client_service::{AuthUser, ClientConfig, ClientState, Db, RequireAuthLayer};
//!
//! # async fn run(key: &[u8]) -> Result<(), Box<dyn std::error::Error>> {
//! let db = Db::connect("sqlite://my-service.db", 4).await?;
//! client_service::migrate(&db).await?;
//! let state = ClientState::new(ClientConfig::builder("http://127.0.0.1:8000").local_hmac(key).build()?, db)?;
//! let app = Router::new()
//!     .route("/api/me/", get(|AuthUser(user): AuthUser| async move { user.email.clone() }))
//!     .route("/api/billing/", get(|| async { "billing" }).layer(RequireAuthLayer::new(state.clone()).group("billing", None)))
//!     .with_state(state.clone())
//!     .merge(client_service::router(state));
//! // Serve with peer addresses, so the token proxy can forward the caller's address to the
//! // auth-service (its throttle then counts each caller on its own).
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8001").await?;
//! axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>()).await?;
//! # Ok(()) }
//! ```

#[cfg(feature = "cli")]
mod cli;
mod config;
mod cookies;
#[cfg(feature = "cli")]
pub mod demo;
mod error;
mod keys;
pub mod metrics;
mod mirror;
pub mod openapi;
mod proxy;
mod revocations;
mod schema;
mod tokens;
mod upstream;
mod verify;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::http::HeaderMap;
use shared_user::Verifier;

#[cfg(feature = "cli")]
pub use cli::ClientArgs;
pub use config::{ClientConfig, ClientConfigBuilder, ConfigError, CookieConfig, SameSite, VerifyMode};
pub use error::ClientError;
pub use revocations::RevocationStatus;
pub use shared_user::{AccessGroup, Db, DbError, ErrorDetail, Migrations, User, with_conn};
pub use verify::{AuthUser, RequireAuth, RequireAuthLayer};

use crate::keys::{JwksCache, KeySource};
use crate::mirror::{Mirror, Mirrored};
use crate::tokens::VerifiedTokens;
use crate::upstream::Upstream;

/// The mirror's tables (`migrations/client/{postgres,sqlite}`): `gatehouse_users` and
/// `gatehouse_access_groups`, no password anywhere. Pass it to your own migration tooling, or
/// call [`migrate`].
pub const MIGRATIONS: Migrations = Migrations {
    postgres: diesel_migrations::embed_migrations!("../../migrations/client/postgres"),
    sqlite: diesel_migrations::embed_migrations!("../../migrations/client/sqlite"),
};

/// Creates or updates the mirror's tables in the service's database (its other tables are
/// left alone); returns how many migrations ran. Needs a multi-thread tokio runtime.
pub async fn migrate(db: &Db) -> Result<usize, DbError> {
    db.migrate(MIGRATIONS).await
}

struct Inner {
    config: ClientConfig,
    upstream: Upstream,
    mirror: Mirror,
    keys: KeySource,
    /// Fresh mirror entries in memory: the common request reads no database. Writes still go
    /// to the mirror first; this only saves the read.
    cache: Option<quick_cache::sync::Cache<i64, Cached, CachedBytes>>,
    /// Access tokens verified locally (local mode only).
    tokens: Option<VerifiedTokens>,
    /// One lock per user id being fetched, so concurrent first requests make one fetch.
    flights: Mutex<HashMap<i64, Arc<tokio::sync::Mutex<()>>>>,
    /// Revocation watermarks from the auth-service's feed (see `revocations`).
    watermarks: revocations::Watermarks,
    /// Dropped with the state: stops the revocation poller.
    _stop_poller: Option<tokio::sync::oneshot::Sender<()>>,
}

/// A mirrored user held in memory: shared, so a request costs a reference count, not a copy.
#[derive(Clone)]
struct Cached {
    user: Arc<User>,
    synced_at: Option<chrono::NaiveDateTime>,
    /// About the bytes this entry keeps alive (see [`CachedBytes`]).
    bytes: u32,
}

impl Cached {
    fn new(user: Arc<User>, synced_at: Option<chrono::NaiveDateTime>) -> Self {
        // The user and its strings, each group and its strings, the Arc's counts, the cache's
        // slot, and about 16 bytes of allocator rounding per allocation.
        let groups: usize =
            user.access_groups.iter().map(|g| 64 + g.name.len() + g.level.as_ref().map_or(0, |l| 16 + l.len())).sum();
        let strings = 48 + user.email.len() + user.first_name.len() + user.last_name.len();
        let bytes = std::mem::size_of::<User>() + 16 + std::mem::size_of::<Self>() + 48 + strings + groups;
        Self { user, synced_at, bytes: u32::try_from(bytes).unwrap_or(u32::MAX) }
    }
}

impl From<Mirrored> for Cached {
    fn from(m: Mirrored) -> Self {
        Self::new(Arc::new(m.user), m.synced_at)
    }
}

/// Weighs mirror-cache entries by their memory, so the cache follows a memory budget.
#[derive(Clone, Copy)]
struct CachedBytes;

impl quick_cache::Weighter<i64, Cached> for CachedBytes {
    fn weight(&self, _: &i64, entry: &Cached) -> u64 {
        u64::from(entry.bytes)
    }
}

/// A typical mirrored user's entry (one or two groups), to size the cache's table up front.
const TYPICAL_USER_BYTES: u64 = 400;

/// The client crate's state: configuration, the auth-service client, the mirror and the
/// verifier. Cheap to clone; give it to your router and derive it with `FromRef`.
#[derive(Clone)]
pub struct ClientState {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for ClientState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientState").field("remote_url", &self.inner.config.remote_url).finish_non_exhaustive()
    }
}

impl ClientState {
    /// State over a connected database that [`migrate`] has prepared.
    pub fn new(config: ClientConfig, db: Db) -> Result<Self, ConfigError> {
        let keys = match (&config.verify_mode, &config.signing_key) {
            (VerifyMode::Local, Some(key)) => KeySource::Hmac(Arc::new(Verifier::hmac(config.verify.clone(), key))),
            (VerifyMode::Local, None) => KeySource::Jwks(Box::new(JwksCache::new(
                config.jwks_url.clone().unwrap_or_else(|| "/.well-known/jwks.json".into()),
                config.verify.clone(),
                config.jwks_ttl,
                config.jwks_min_refetch,
            ))),
            (VerifyMode::Remote, _) => KeySource::None,
        };
        let upstream = Upstream::new(&config)?;
        let budget = config.mirror_cache_memory;
        let cache = (budget > 0).then(|| {
            let estimated = usize::try_from(budget / TYPICAL_USER_BYTES).unwrap_or(usize::MAX).max(16);
            quick_cache::sync::Cache::with_weighter(estimated, budget, CachedBytes)
        });
        let tokens = (config.verify_mode == VerifyMode::Local && config.token_cache_memory > 0)
            .then(|| VerifiedTokens::new(config.token_cache_memory, config.verify.leeway));
        let poll = config.verify_mode == VerifyMode::Local && config.revocation_feed_token.is_some();
        if !poll && config.verify_mode == VerifyMode::Local {
            tracing::info!("REVOCATION_FEED_TOKEN not set: revocations reach this client only when tokens expire");
        }
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let interval = config.revocation_poll_interval;
        let inner = Arc::new(Inner {
            cache,
            tokens,
            config,
            upstream,
            mirror: Mirror::new(db),
            keys,
            flights: Mutex::new(HashMap::new()),
            watermarks: revocations::Watermarks::new(poll),
            _stop_poller: poll.then_some(stop),
        });
        if poll {
            revocations::spawn_poller(Arc::downgrade(&inner), interval, stopped);
        }
        Ok(Self { inner })
    }

    /// The configuration.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// Waits until every write to the mirror made so far is in the database. The mirror is
    /// written behind the requests: a user fetched from the auth-service is answered from
    /// memory at once and committed to the mirror a moment later. Call this after your server
    /// has stopped, so the last users fetched are mirrored before the process exits (the demo
    /// binary does); a write that fails is logged, and that user is fetched again later.
    pub async fn flush_mirror(&self) {
        self.mirror().flush().await;
    }

    /// The user of a request with these headers, checked exactly as [`AuthUser`] does (for
    /// code outside an axum handler, such as a WebSocket upgrade or a GraphQL context).
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Arc<User>, ClientError> {
        verify::authenticate(self, headers).await
    }

    pub(crate) fn upstream(&self) -> &Upstream {
        &self.inner.upstream
    }

    pub(crate) fn mirror(&self) -> &Mirror {
        &self.inner.mirror
    }

    pub(crate) fn keys(&self) -> &KeySource {
        &self.inner.keys
    }

    pub(crate) fn verified_tokens(&self) -> Option<&VerifiedTokens> {
        self.inner.tokens.as_ref()
    }

    fn is_fresh(&self, synced_at: Option<chrono::NaiveDateTime>) -> bool {
        let ttl = chrono::Duration::from_std(self.inner.config.mirror_ttl).unwrap_or_default();
        synced_at.is_some_and(|t| shared_user::user::now_utc() - t < ttl)
    }

    fn remember(&self, entry: Cached) {
        if let Some(cache) = &self.inner.cache {
            cache.insert(entry.user.id, entry);
        }
    }

    fn flight(&self, user_id: i64) -> Arc<tokio::sync::Mutex<()>> {
        let mut flights = self.inner.flights.lock().unwrap_or_else(|p| p.into_inner());
        flights.entry(user_id).or_default().clone()
    }

    fn land(&self, user_id: i64) {
        let mut flights = self.inner.flights.lock().unwrap_or_else(|p| p.into_inner());
        flights.remove(&user_id);
    }

    /// The user `user_id` (whose valid access token is `token`): from memory or the mirror
    /// when fresh, else fetched once from the auth-service and mirrored. When the auth-service
    /// is down a stale mirror entry is used.
    pub(crate) async fn user_for(&self, user_id: i64, token: &str) -> Result<Arc<User>, ClientError> {
        if let Some(user) = self.fresh_in_memory(user_id) {
            return Ok(user);
        }
        if let Some(m) = self.fresh_in_mirror(user_id).await? {
            return Ok(m.user);
        }
        let flight = self.flight(user_id);
        let _guard = flight.lock().await;
        // Whoever held the flight before us may have fetched the user meanwhile.
        if let Some(user) = self.fresh_in_memory(user_id) {
            return Ok(user);
        }
        if let Some(m) = self.fresh_in_mirror(user_id).await? {
            return Ok(m.user);
        }
        let result = self.fetch_and_mirror(user_id, token).await;
        metrics::mirror_fetch(&result);
        self.land(user_id);
        match result {
            Ok(user) => Ok(user),
            Err(ClientError::Unavailable(why)) => match self.mirror().find(user_id).await? {
                // A stale copy (or one another process sharing this database wrote).
                Some(stale) => {
                    tracing::warn!(user_id, why, "auth-service unavailable; serving the mirrored user");
                    Ok(Arc::new(stale.user))
                }
                None => Err(ClientError::Unavailable(why)),
            },
            Err(e) => Err(e),
        }
    }

    /// The user from the memory cache, when there and fresh.
    fn fresh_in_memory(&self, user_id: i64) -> Option<Arc<User>> {
        let m = self.inner.cache.as_ref()?.get(&user_id)?;
        self.is_fresh(m.synced_at).then_some(m.user)
    }

    /// The user from the mirror database, when there and fresh (remembered in memory); no read
    /// at all when the mirror surely has no row for it.
    async fn fresh_in_mirror(&self, user_id: i64) -> Result<Option<Cached>, ClientError> {
        if !self.mirror().may_hold(user_id) {
            return Ok(None);
        }
        match self.mirror().find(user_id).await? {
            Some(m) if self.is_fresh(m.synced_at) => {
                let m = Cached::from(m);
                self.remember(m.clone());
                Ok(Some(m))
            }
            _ => Ok(None),
        }
    }

    async fn fetch_and_mirror(&self, user_id: i64, token: &str) -> Result<Arc<User>, ClientError> {
        match self.upstream().fetch_user(token, user_id).await? {
            Ok(user) if user.id == user_id => {
                let user = Arc::new(user);
                self.mirror().upsert(user.clone()).await;
                self.remember(Cached::new(user.clone(), Some(shared_user::user::now_utc())));
                Ok(user)
            }
            Ok(user) => Err(ClientError::BadUpstream(format!("asked for user {user_id}, got {}", user.id))),
            Err(refusal) => {
                // The auth-service says this user may not sign in any more: record it, so a
                // later outage cannot bring the stale, still-active mirror copy back.
                if matches!(refusal.code.as_deref(), Some("user_inactive" | "user_not_found")) {
                    self.mirror().deactivate(user_id).await;
                }
                if let Some(cache) = &self.inner.cache {
                    cache.remove(&user_id);
                }
                Err(ClientError::Unauthenticated(refusal))
            }
        }
    }

    /// Fetches and mirrors the user of a just-issued access token (login through the proxy).
    pub(crate) async fn refresh_mirror(&self, access: &str) -> Result<Arc<User>, ClientError> {
        let claims = shared_user::token::unverified_claims(access)
            .ok_or_else(|| ClientError::BadUpstream("the access token is not a JWT".into()))?;
        let user_id = shared_user::token::user_id_of(&claims, &self.config().verify.user_id_claim)
            .ok_or_else(|| ClientError::BadUpstream("access token without a user id".into()))?;
        let flight = self.flight(user_id);
        let _guard = flight.lock().await;
        let result = self.fetch_and_mirror(user_id, access).await;
        metrics::mirror_fetch(&result);
        self.land(user_id);
        result
    }
}

/// The `/auth/*` routes (token proxy, logout, user endpoints; `/auth/csrf/` in cookie mode),
/// ready to merge into any router.
pub fn router<S: Clone + Send + Sync + 'static>(state: ClientState) -> Router<S> {
    proxy::routes(state)
}

/// `GET /healthz` (200 `{"status":"ok"}` while the process answers) and `GET /readyz` (the
/// same while the mirror database answers, else 503 `{"status":"unavailable"}`), ready to merge
/// into any router. Neither calls the auth-service: a known user keeps working without it.
pub fn health<S: Clone + Send + Sync + 'static>(state: ClientState) -> Router<S> {
    use axum::Json;
    use axum::http::StatusCode;
    use axum::routing::get;
    use serde_json::json;

    let readyz = |axum::extract::State(state): axum::extract::State<ClientState>| async move {
        match state.mirror().db().ping().await {
            Ok(()) => (StatusCode::OK, Json(json!({"status": "ok"}))),
            Err(e) => {
                tracing::warn!(error = %e, "readiness check failed: the mirror database does not answer");
                (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"status": "unavailable"})))
            }
        }
    };
    Router::new()
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/readyz", get(readyz))
        .with_state(state)
}

pub use shared_user::ops::instrument;

#[cfg(feature = "cli")]
pub use shared_user::runtime::{init_tracing, shutdown_signal};
