//! Types shared by the Gatehouse auth-service and every client-service: the user and its access
//! groups, the wire error bodies, token checking, the diesel schema and the database handle.

pub mod db;
#[cfg(feature = "axum")]
pub mod http;
pub mod jwks;
#[cfg(feature = "openapi")]
pub mod openapi;
#[cfg(feature = "ops")]
pub mod ops;
#[cfg(feature = "server")]
pub mod runtime;
pub mod schema;
pub mod settings;
#[cfg(feature = "testing")]
pub mod testing;
pub mod token;
pub mod user;
pub mod wire;

pub use db::{Db, DbError};
pub use token::{Claims, TokenError, TokenType, Verifier, VerifySettings};
pub use user::{AccessGroup, User};
pub use wire::ErrorDetail;

pub use jsonwebtoken;
