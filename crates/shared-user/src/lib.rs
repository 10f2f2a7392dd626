//! What the Gatehouse auth-service and every client-service both need, and nothing only one side
//! uses: the user and its access groups as they travel on the wire ([`user`]), DRF/SimpleJWT
//! error bodies and the revocation feed's contract ([`wire`], [`http`] with the `axum` feature),
//! the OpenAPI descriptions of both (`openapi` feature), token checking ([`token`]) and
//! JWKS parsing ([`jwks`]), the one parser per kind of setting ([`settings`]), and the database
//! handle ([`Db`]: SQLite or PostgreSQL by URL, migrated with the [`Migrations`] set each side
//! owns). Each side keeps its own diesel schema and migrations: the auth-service its tables,
//! a client its `gatehouse_` mirror tables inside its host's database.

pub mod db;
#[cfg(feature = "axum")]
pub mod http;
pub mod jwks;
#[cfg(feature = "openapi")]
pub mod openapi;
#[cfg(feature = "ops")]
pub mod ops;
#[cfg(feature = "pki")]
pub mod pki;
#[cfg(feature = "server")]
pub mod runtime;
#[cfg(feature = "server")]
pub mod server;
pub mod settings;
#[cfg(feature = "testing")]
pub mod testing;
pub mod token;
pub mod user;
pub mod wire;

pub use db::{Db, DbError, Migrations};
pub use token::{Claims, TokenError, TokenType, Verifier, VerifySettings};
pub use user::{AccessGroup, GroupSpecError, User};
pub use wire::ErrorDetail;

pub use jsonwebtoken;
