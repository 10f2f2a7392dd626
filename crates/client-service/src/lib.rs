//! Gatehouse client crate: what every microservice mounts to use the central auth-service.
//!
//! - [`router`]: `/auth/token/`, `/auth/token/refresh/`, `/auth/token/verify/`,
//!   `/auth/token/blacklist/`, `/auth/token/logout/`, `/auth/password-change/`, `/auth/user/`
//!   and `/auth/users/{id}/`, proxied 1:1 to the auth-service (never a redirect, both slash forms).
//! - [`AuthUser`] (extractor) and [`RequireAuthLayer`] (tower layer): bearer verification on every
//!   request, `local` (in-process, no network) or `remote` (EasyJWT's verify call), answering
//!   SimpleJWT's 401 bodies.
//! - A local user mirror (users + access groups in the service's own database), filled from the
//!   auth-service at login and when a user is unknown or stale; a known user keeps working while
//!   the auth-service is down.
//! - [`RequireGroupLayer`]: 403 unless the user is in an access group.
//!
//! ```no_run
//! use axum::{Router, routing::get};
//! use client_service::{AuthUser, ClientConfig, ClientState, shared_user::Db};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let db = Db::connect("sqlite://my-service.db", 4).await?;
//! db.migrate().await?;
//! let state = ClientState::new(ClientConfig::new("http://127.0.0.1:8000", Some(b"the shared key".to_vec())), db)?;
//! let app = Router::new()
//!     .route("/api/me/", get(|AuthUser(user): AuthUser| async move { user.email.clone() }))
//!     .with_state(state.clone())
//!     .merge(client_service::router(state));
//! axum::serve(tokio::net::TcpListener::bind("127.0.0.1:8001").await?, app).await?;
//! # Ok(()) }
//! ```

pub mod config;
pub mod cookies;
pub mod demo;
pub mod error;
pub mod keys;
pub mod metrics;
pub mod mirror;
pub mod openapi;
pub mod proxy;
mod tokens;
pub mod upstream;
pub mod verify;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use shared_user::{Db, User, Verifier};

pub use config::{ClientArgs, ClientConfig, CookieConfig, VerifyMode};
pub use error::ClientError;
pub use shared_user;
pub use verify::{AuthUser, RequireAuthLayer, RequireGroupLayer, authenticate};

use crate::keys::{JwksCache, KeySource};
use crate::mirror::{Mirror, Mirrored};
use crate::tokens::VerifiedTokens;
use crate::upstream::Upstream;

struct Inner {
    config: ClientConfig,
    upstream: Upstream,
    mirror: Mirror,
    keys: KeySource,
    /// Fresh mirror entries in memory: the common request reads no database. Writes still go
    /// to the mirror first; this only saves the read.
    cache: Option<quick_cache::sync::Cache<i64, Cached>>,
    /// Access tokens verified locally (local mode only).
    tokens: Option<VerifiedTokens>,
    /// One lock per user id being fetched, so concurrent first requests make one fetch.
    flights: Mutex<HashMap<i64, Arc<tokio::sync::Mutex<()>>>>,
}

/// A mirrored user held in memory: shared, so a request costs a reference count, not a copy.
#[derive(Clone)]
struct Cached {
    user: Arc<User>,
    synced_at: Option<chrono::NaiveDateTime>,
}

impl From<Mirrored> for Cached {
    fn from(m: Mirrored) -> Self {
        Self { user: Arc::new(m.user), synced_at: m.synced_at }
    }
}

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
    /// State over a connected, migrated database.
    pub fn new(config: ClientConfig, db: Db) -> Result<Self, String> {
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
        let cache = (config.mirror_cache_size > 0).then(|| quick_cache::sync::Cache::new(config.mirror_cache_size));
        let tokens = (config.verify_mode == VerifyMode::Local && config.token_cache_size > 0)
            .then(|| VerifiedTokens::new(config.token_cache_size, config.verify.leeway));
        Ok(Self {
            inner: Arc::new(Inner {
                cache,
                tokens,
                config,
                upstream,
                mirror: Mirror::new(db),
                keys,
                flights: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// The auth-service client.
    pub fn upstream(&self) -> &Upstream {
        &self.inner.upstream
    }

    /// The local user mirror.
    pub fn mirror(&self) -> &Mirror {
        &self.inner.mirror
    }

    /// Where local verification gets its keys.
    pub fn keys(&self) -> &KeySource {
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

    /// The user `user_id` (whose valid access token is `token`): from the mirror when fresh,
    /// else fetched once from the auth-service and mirrored. When the auth-service is down a
    /// stale mirror entry is used.
    pub async fn user_for(&self, user_id: i64, token: &str) -> Result<Arc<User>, ClientError> {
        if let Some(m) = self.inner.cache.as_ref().and_then(|c| c.get(&user_id))
            && self.is_fresh(m.synced_at)
        {
            return Ok(m.user);
        }
        if let Some(m) = self.mirror().find(user_id).await?
            && self.is_fresh(m.synced_at)
        {
            let m = Cached::from(m);
            self.remember(m.clone());
            return Ok(m.user);
        }
        let flight = self.flight(user_id);
        let _guard = flight.lock().await;
        let cached = self.mirror().find(user_id).await?;
        if let Some(m) = &cached
            && self.is_fresh(m.synced_at)
        {
            return Ok(Arc::new(m.user.clone()));
        }
        let result = self.fetch_and_mirror(user_id, token).await;
        metrics::mirror_fetch(&result);
        self.land(user_id);
        match (result, cached) {
            (Ok(user), _) => Ok(user),
            (Err(ClientError::Unavailable(why)), Some(stale)) => {
                tracing::warn!(user_id, why, "auth-service unavailable; serving the mirrored user");
                Ok(Arc::new(stale.user))
            }
            (Err(e), _) => Err(e),
        }
    }

    async fn fetch_and_mirror(&self, user_id: i64, token: &str) -> Result<Arc<User>, ClientError> {
        match self.upstream().fetch_user(token, user_id).await? {
            Ok(user) if user.id == user_id => {
                self.mirror().upsert(&user).await?;
                let user = Arc::new(user);
                self.remember(Cached { user: user.clone(), synced_at: Some(shared_user::user::now_utc()) });
                Ok(user)
            }
            Ok(user) => Err(ClientError::BadUpstream(format!("asked for user {user_id}, got {}", user.id))),
            Err(refusal) => {
                // The auth-service says this user may not sign in any more: record it, so a
                // later outage cannot bring the stale, still-active mirror copy back.
                if matches!(refusal.code.as_deref(), Some("user_inactive" | "user_not_found")) {
                    self.mirror().deactivate(user_id).await?;
                }
                if let Some(cache) = &self.inner.cache {
                    cache.remove(&user_id);
                }
                Err(ClientError::Unauthenticated(refusal))
            }
        }
    }

    /// Fetches and mirrors the user of a just-issued access token (login through the proxy).
    pub async fn refresh_mirror(&self, access: &str) -> Result<Arc<User>, ClientError> {
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

/// The `/auth/*` routes (token proxy, logout, user endpoints), ready to merge into any router.
pub fn router<S: Clone + Send + Sync + 'static>(state: ClientState) -> Router<S> {
    proxy::routes(state)
}

pub use shared_user::ops::instrument;
pub use shared_user::runtime::{init_tracing, shutdown_signal};

/// `GET /metrics` for the host's router: see [`metrics::router`].
pub fn metrics_router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    metrics::router()
}
