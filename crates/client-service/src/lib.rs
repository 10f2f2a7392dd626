//! Gatehouse client crate: what a Rust microservice mounts to use the central auth-service.
//!
//! What a service author uses, and all that is public:
//! - [`ClientConfig::builder`] → [`ClientConfig`] (explicit [`VerifyMode`]: `local_hmac`,
//!   `local_jwks` or `remote`; [`ConfigError`] when a setting is unusable), or the same from
//!   [`ClientSettings`] (every setting with its environment name, defaults in [`defaults`]),
//!   then [`ClientState::new`] over the service's own database after [`migrate`].
//! - [`AuthUser`]: the extractor of the authenticated, active user (also as `Option<AuthUser>`
//!   for routes that serve anonymous callers too); [`ClientError`] is what it answers otherwise.
//! - [`RequireAuthLayer`]: the same check for a whole router, with group requirements that
//!   cannot be put in the wrong order (`RequireAuthLayer::new(state).group("billing", None)`).
//! - A second factor (`amr` claim, RFC 8176): [`AuthMethods`] says how the user signed in and
//!   [`AuthMethods::require_mfa`] refuses a password-only login with 403
//!   `{"detail":"This action requires multi-factor authentication.","code":"mfa_required"}`
//!   ([`ClientError::MfaRequired`]); [`RequireMfaLayer`] does the same for a whole router.
//! - [`router`]: `/auth/token/`, `/auth/token/refresh/`, `/auth/token/verify/`,
//!   `/auth/token/blacklist/`, `/auth/token/logout/`, the second-factor steps of a login
//!   (`/auth/token/mfa/`, `/auth/token/webauthn/start/`, `/auth/token/webauthn/finish/`),
//!   `/auth/password-change/`, `/auth/user/` and `/auth/users/{id}/`, `/auth/sessions/`, `/auth/sessions/{id}/` and `/auth/logout-all/`,
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
//! The `cli` feature adds the `client-service` demo binary's pieces ([`ClientSettings`] as clap
//! arguments with the EASY_JWT environment names, the demo app); a library user does not need
//! it. The `testing` feature adds `testing`: a state with a known test key, a token factory
//! and mirror seeding, so a host tests its protected routes without an auth-service.
//!
//! The crate's rooms: `state` ([`ClientState`]), `users` (the user lookup: memory cache,
//! mirror, single-flight fetches), `verify` (extractor and layer), `mfa` (requiring a second
//! factor), `proxy` (`/auth/*`),
//! `health`, `settings` and `config` (settings, then the checked configuration), `revocations`
//! (the feed poller) over `watermarks` (what it learnt),
//! `mirror` (all SQL), `upstream` (calls to the auth-service) over `tls` (what it trusts and
//! presents, and the words for a refused handshake); this file only opens the door.
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
mod compact;
mod config;
mod cookies;
#[cfg(feature = "cli")]
pub mod demo;
mod error;
mod health;
mod keys;
pub mod metrics;
mod mfa;
mod mirror;
pub mod openapi;
mod proxy;
mod revocations;
mod schema;
mod settings;
mod state;
#[cfg(feature = "testing")]
pub mod testing;
mod tls;
mod tokens;
mod upstream;
mod users;
mod verify;
mod watermarks;

use axum::Router;

#[cfg(feature = "cli")]
pub use cli::ClientArgs;
pub use config::{ClientConfig, ClientConfigBuilder, CookieConfig};
pub use error::ClientError;
pub use mfa::{AuthMethods, RequireMfa, RequireMfaLayer};
pub use schema::MIGRATIONS;
pub use settings::{ClientSettings, ConfigError, SameSite, SslVerify, VerifyMode, defaults};
pub use shared_user::ops::instrument;
#[cfg(feature = "cli")]
pub use shared_user::runtime::{init_tracing, shutdown_signal};
pub use shared_user::{AccessGroup, Db, DbError, ErrorDetail, Migrations, User, with_conn};
pub use state::ClientState;
pub use verify::{AuthUser, RequireAuth, RequireAuthLayer};
pub use watermarks::RevocationStatus;

/// Creates or updates the mirror's tables in the service's database (its other tables are
/// left alone); returns how many migrations ran. Needs a multi-thread tokio runtime.
pub async fn migrate(db: &Db) -> Result<usize, DbError> {
    db.migrate(MIGRATIONS).await
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
    health::routes(state)
}
