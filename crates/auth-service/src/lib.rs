//! Gatehouse auth-service: the private service that issues, refreshes, verifies and revokes
//! EasyJWT/SimpleJWT-compatible tokens and serves the users they belong to.
//!
//! [`app()`] is the whole HTTP service over an [`AppState`] built from [`Settings`]; the binary
//! only parses the command line ([`cli`]), opens the database and serves it. What a
//! client-service needs as well (user and wire types, token checking, the database handle,
//! setting parsers) lives in `shared_user`.
//!
//! The modules form layers; each imports only from the layers below it:
//!
//! | layer | modules |
//! |---|---|
//! | command line | [`cli`] |
//! | the HTTP service | [`mod@app`] |
//! | front ends | [`routes`] (REST), [`sessions`], [`admin`] (admin API), [`console`], [`graphql`], [`hasura`], [`openapi`] |
//! | HTTP edge | [`auth`] (bearer extractors), [`error`] (`ApiError`), [`params`] (query and body reading), [`headers`] |
//! | state | [`state`] (`AppState`) |
//! | service | [`service`] (login, refresh, verify, registration, sessions, admin rules) |
//! | domain | [`tokens`], [`keys`], [`passwords`], [`throttle`], [`claims`], [`roles`], [`validators`] |
//! | storage | [`store`] (diesel queries, [`MIGRATIONS`]), [`schema`] |
//! | ground | [`settings`], [`audit`] (event types, request metadata), [`client_ip`], [`kek`], [`form_key`], `metrics` |

pub mod admin;
pub mod app;
pub mod audit;
pub mod auth;
pub mod claims;
pub mod cli;
pub mod client_ip;
pub mod console;
pub mod discovery;
pub mod error;
pub mod factors;
pub mod form_key;
pub mod graphql;
pub mod hasura;
pub mod headers;
pub mod kek;
pub mod keys;
mod metrics;
pub mod mfa;
pub mod openapi;
pub mod params;
pub mod passwords;
pub mod roles;
pub mod routes;
pub mod schema;
pub mod service;
pub mod sessions;
pub mod settings;
pub mod state;
pub mod store;
pub mod throttle;
pub mod tokens;
pub mod validators;

pub use app::app;
pub use settings::{Redacted, Settings};
pub use shared_user::runtime::{init_tracing, shutdown_signal};
pub use state::{AppState, BuildError};
pub use store::{MIGRATIONS, migrate};
