//! Gatehouse auth-service: the private service that issues, refreshes, verifies and revokes
//! EasyJWT/SimpleJWT-compatible tokens and serves the users they belong to.
//!
//! `app(state)` is the whole HTTP service; the binary only parses configuration, opens the
//! database and serves it. What lives here and nowhere else: the REST, GraphQL and Hasura
//! front ends, token issuing and key management, password hashing, throttling, the user store
//! with its own diesel [`schema`] and migrations ([`MIGRATIONS`], `migrations/auth/`), and the
//! admin CLI. What a client-service needs as well (user and wire types, token checking, the
//! database handle, setting parsers) lives in `shared_user`.

pub mod admin;
pub mod audit;
pub mod auth;
pub mod claims;
pub mod cli;
pub mod config;
pub mod console;
pub mod error;
pub mod graphql;
pub mod hasura;
pub mod headers;
pub mod keys;
mod metrics;
pub mod openapi;
pub mod passwords;
pub mod roles;
pub mod routes;
pub mod schema;
pub mod service;
pub mod sessions;
pub mod settings;
pub mod store;
pub mod throttle;
pub mod tokens;
pub mod validators;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, header};
use axum::middleware::map_response;
use axum::response::Response;
use shared_user::{Db, VerifySettings};
use tower_http::timeout::TimeoutLayer;

use crate::config::{ClaimsPreset, CreateUserPolicy};
use crate::passwords::Hasher;
use crate::store::Store;
use crate::throttle::Throttle;
use crate::tokens::Keys;

/// The auth-service's own tables (`migrations/auth/{postgres,sqlite}`): users, access groups,
/// refresh tokens, signing keys and login counters. Versions `2026-11-23-0000NN`.
pub const MIGRATIONS: shared_user::Migrations = shared_user::Migrations {
    postgres: diesel_migrations::embed_migrations!("../../migrations/auth/postgres"),
    sqlite: diesel_migrations::embed_migrations!("../../migrations/auth/sqlite"),
};

/// Applies the auth-service's pending migrations to `db`; returns how many ran.
pub async fn migrate(db: &Db) -> Result<usize, shared_user::DbError> {
    db.migrate(MIGRATIONS).await
}

/// Runtime settings the handlers read.
#[derive(Debug, Clone)]
pub struct Config {
    /// Header carrying the bearer token (lowercase HTTP name).
    pub auth_header_name: String,
    /// Accepted schemes (case-sensitive, at least one); the first is named in `WWW-Authenticate`.
    pub auth_header_types: Vec<String>,
    /// Issue a new refresh token on refresh.
    pub rotate_refresh_tokens: bool,
    /// Revoke rotated tokens and detect reuse.
    pub blacklist_after_rotation: bool,
    /// Reuse window after a rotation that does not revoke the family.
    pub refresh_reuse_grace: Duration,
    /// Record `last_login` on obtain.
    pub update_last_login: bool,
    /// Who may create users over HTTP.
    pub allow_create_user: CreateUserPolicy,
    /// Whole-request timeout.
    pub request_timeout: Duration,
    /// Extra claims in access tokens.
    pub claims_preset: ClaimsPreset,
    /// `x-hasura-default-role` of the Hasura preset.
    pub hasura_default_role: String,
    /// Shared secret the Hasura action handlers require, when set.
    pub hasura_action_secret: Option<Redacted>,
    /// Access group whose members may read every user; their role is its name.
    pub users_reader_group: Option<String>,
    /// Root fields one GraphQL operation may select.
    pub graphql_max_root_fields: usize,
    /// Fields one GraphQL operation may select, at every depth.
    pub graphql_max_complexity: usize,
    /// Shared secret the revocation feed requires in `X-Revocation-Feed-Token`; unset: no feed (404).
    pub revocation_feed_token: Option<Redacted>,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Record Prometheus metrics and serve `GET /metrics`.
    pub metrics: bool,
    /// Signs the admin console's sign-in form tokens.
    pub console_form_key: console::FormKey,
    /// Live sessions one user may hold (`None`: no cap); a login beyond it ends the oldest.
    pub max_sessions_per_user: Option<usize>,
}

/// A secret setting: compared, never printed (`Debug` shows `[redacted]`).
#[derive(Clone)]
pub struct Redacted(pub String);

impl Redacted {
    /// Whether `given` is this secret. The SHA-256 digests are compared in constant time, so
    /// the time taken depends neither on where the first difference is nor on the lengths.
    pub fn matches(&self, given: &[u8]) -> bool {
        use sha2::{Digest, Sha256};
        use subtle::ConstantTimeEq;
        let (given, expected): ([u8; 32], [u8; 32]) =
            (Sha256::digest(given).into(), Sha256::digest(self.0.as_bytes()).into());
        bool::from(given.ct_eq(&expected))
    }
}

impl std::fmt::Debug for Redacted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

/// The one state type of the service.
#[derive(Debug, Clone)]
pub struct AppState {
    /// Users and refresh-token records.
    pub store: Store,
    /// Signing and verification keys.
    pub keys: Arc<Keys>,
    /// Password hashing pool.
    pub hasher: Hasher,
    /// Settings.
    pub config: Arc<Config>,
    /// Brute-force protection on obtain.
    pub throttle: Arc<Throttle>,
}

/// Why [`AppState::build`] could not build the state. The message is the one line the binary
/// prints before it exits.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// A setting is invalid: the message names it and says what to set instead.
    #[error("{0}")]
    Settings(String),
    /// The asymmetric signing keys could not be loaded, generated or unsealed (an unreachable
    /// database, a wrong `KEY_ENCRYPTION_KEY`, a stored key that does not parse).
    #[error("{0}")]
    Keys(String),
    /// The password hashing threads could not start.
    #[error("{0}")]
    Hashing(String),
}

impl AppState {
    /// Builds the state from `settings` over a connected, migrated database, for every
    /// algorithm: the settings are validated first; with an asymmetric ALGORITHM the signing
    /// keys are loaded from the database (the first one is generated).
    pub async fn build(settings: Settings, db: Db) -> Result<Self, BuildError> {
        settings.validate().map_err(BuildError::Settings)?;
        let verify = VerifySettings {
            algorithms: vec![settings.algorithm],
            leeway: settings.leeway,
            audience: settings.audience.clone(),
            issuer: settings.issuer.clone(),
            user_id_claim: settings.user_id_claim.clone(),
        };
        let (access, refresh) = (settings.access_token_lifetime, settings.refresh_token_lifetime);
        let kek = settings.key_encryption_key().map_err(BuildError::Settings)?;
        let hmac_secret = if settings.is_asymmetric() {
            None
        } else {
            Some(settings.resolve_signing_key().map_err(BuildError::Settings)?)
        };
        // The console's form key comes from a secret every replica shares.
        let console_form_key = match (&hmac_secret, &kek) {
            (Some(secret), _) => console::FormKey::derive(secret),
            (None, Some(kek)) => console::FormKey::derive(kek.secret()),
            (None, None) => console::FormKey::random(),
        };
        let keys = match hmac_secret {
            None => {
                let rows = keys::ensure_current(&Store::new(db.clone()), settings.algorithm, kek.as_ref())
                    .await
                    .map_err(BuildError::Keys)?;
                Keys::from_rows(&rows, verify, access, refresh).map_err(BuildError::Keys)?
            }
            Some(secret) => Keys::hmac(&secret, verify, access, refresh),
        };
        let hasher = Hasher::new(settings.hashing, settings.hash_concurrency).map_err(BuildError::Hashing)?;
        let config = Config {
            auth_header_name: settings.header_name().map_err(BuildError::Settings)?,
            auth_header_types: settings.header_types().map_err(BuildError::Settings)?,
            rotate_refresh_tokens: settings.rotate_refresh_tokens,
            blacklist_after_rotation: settings.blacklist_after_rotation,
            refresh_reuse_grace: settings.refresh_reuse_grace,
            update_last_login: settings.update_last_login,
            allow_create_user: settings.allow_create_user,
            request_timeout: settings.request_timeout,
            claims_preset: settings.claims_preset,
            hasura_default_role: settings.hasura_default_role.trim().to_owned(),
            hasura_action_secret: settings.hasura_action_secret.clone().map(Redacted),
            users_reader_group: settings.reader_group().map(str::to_owned),
            graphql_max_root_fields: settings.graphql_max_root_fields,
            graphql_max_complexity: settings.graphql_max_complexity,
            revocation_feed_token: settings.revocation_feed_token.clone().map(Redacted),
            trusted_proxies: settings.trusted_proxies().map_err(BuildError::Settings)?,
            metrics: settings.metrics,
            console_form_key,
            max_sessions_per_user: usize::try_from(settings.max_sessions_per_user).ok().filter(|n| *n > 0),
        };
        let signup = (settings.signup_throttle_per_hour > 0)
            .then(|| throttle::signups_per_hour(settings.signup_throttle_per_hour));
        let throttle = Throttle {
            enabled: settings.login_throttle,
            signup,
            failure_floor: settings.login_failure_min_time,
            ..Throttle::default()
        };
        Ok(Self {
            store: Store::new(db),
            keys: Arc::new(keys),
            hasher,
            config: Arc::new(config),
            throttle: Arc::new(throttle),
        })
    }
}

/// The whole HTTP service.
pub fn app(state: AppState) -> Router {
    let timeout = state.config.request_timeout;
    // 401 answers name the first accepted scheme (SimpleJWT's `AUTH_HEADER_TYPES[0]`).
    let scheme = state.config.auth_header_types.first().map_or("Bearer", String::as_str);
    let challenge = HeaderValue::from_str(&format!("{scheme} realm=\"api\"")).ok();
    let trusted = throttle::TrustedProxies(state.config.trusted_proxies.clone().into());
    let metrics = state.config.metrics;
    let mut router = routes::router(state).layer(audit::CaptureRequestMeta).merge(openapi::router());
    if metrics {
        router = router.merge(shared_user::ops::metrics::router());
    }
    if !trusted.0.is_empty() {
        router = router.layer(axum::Extension(trusted));
    }
    if let Some(challenge) = challenge.filter(|c| c != error::WWW_AUTHENTICATE) {
        router = router.layer(map_response(move |mut response: Response| {
            let challenge = challenge.clone();
            async move {
                if let Some(value) = response.headers_mut().get_mut(header::WWW_AUTHENTICATE) {
                    *value = challenge;
                }
                response
            }
        }));
    }
    let router = router
        .layer(DefaultBodyLimit::max(shared_user::http::MAX_BODY))
        .layer(TimeoutLayer::with_status_code(axum::http::StatusCode::REQUEST_TIMEOUT, timeout));
    shared_user::ops::instrument(router)
}

pub use settings::Settings;
pub use shared_user::runtime::{init_tracing, shutdown_signal};
