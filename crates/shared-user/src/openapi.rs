//! OpenAPI schemas (feature `openapi`) of the wire bodies both the auth-service and the client
//! crate's proxy speak, and the descriptions of the auth-service's operations a client proxies
//! ([`proxied`]); each service's document is built from them (`auth_service::openapi`,
//! `client_service::openapi`).

pub mod proxied;

use utoipa::ToSchema;
use utoipa::openapi::PathItem;
use utoipa::openapi::path::Operation;

/// The operations of a path, whatever their methods (for code that changes every operation of a
/// document).
pub fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.options,
        &mut item.head,
        &mut item.patch,
        &mut item.trace,
    ]
    .into_iter()
    .flatten()
}

/// The tags of the auth-service's operations (a client files the ones it proxies under its own).
pub mod tag {
    /// Obtain, refresh, verify and revoke tokens.
    pub const TOKENS: &str = "tokens";
    /// Users and passwords.
    pub const USERS: &str = "users";
    /// Sessions, logout everywhere and the revocation feed.
    pub const SESSIONS: &str = "sessions";
}

/// `POST /auth/token/` body (JSON or form).
#[derive(ToSchema)]
#[schema(example = json!({"email": "ada@example.com", "password": "correct horse battery"}))]
pub struct ObtainRequest {
    /// The account's email (case-insensitive).
    pub email: String,
    /// The password.
    pub password: String,
}

/// A new token pair.
#[derive(ToSchema)]
#[schema(example = json!({"refresh": "eyJhbGciOiJIUzI1NiJ9.eyJ0b2tlbl90eXBlIjoicmVmcmVzaCJ9.c2ln", "access": "eyJhbGciOiJIUzI1NiJ9.eyJ0b2tlbl90eXBlIjoiYWNjZXNzIn0.c2ln"}))]
pub struct TokenPair {
    /// Refresh token (long-lived).
    pub refresh: String,
    /// Access token (short-lived bearer).
    pub access: String,
}

/// A body carrying one refresh token (refresh, blacklist).
#[derive(ToSchema)]
#[schema(example = json!({"refresh": "eyJhbGciOiJIUzI1NiJ9.eyJ0b2tlbl90eXBlIjoicmVmcmVzaCJ9.c2ln"}))]
pub struct RefreshRequest {
    /// The refresh token.
    pub refresh: String,
}

/// A refreshed access token, with a new refresh token when rotation is on.
#[derive(ToSchema)]
#[schema(example = json!({"access": "eyJhbGciOiJIUzI1NiJ9.eyJ0b2tlbl90eXBlIjoiYWNjZXNzIn0.c2ln"}))]
pub struct Refreshed {
    /// New access token.
    pub access: String,
    /// New refresh token (only with `ROTATE_REFRESH_TOKENS`).
    pub refresh: Option<String>,
}

/// `POST /auth/token/verify/` body.
#[derive(ToSchema)]
#[schema(example = json!({"token": "eyJhbGciOiJIUzI1NiJ9.eyJ0b2tlbl90eXBlIjoiYWNjZXNzIn0.c2ln"}))]
pub struct VerifyRequest {
    /// Any token (access or refresh) of this service.
    pub token: String,
}

/// `POST /auth/password-change/` body.
#[derive(ToSchema)]
#[schema(example = json!({"email": "ada@example.com", "password": "correct horse battery", "new_password": "staple tuna vessel"}))]
pub struct PasswordChangeRequest {
    /// The account's email.
    pub email: String,
    /// The current password.
    pub password: String,
    /// The new password (Django's default validators apply).
    pub new_password: String,
}

/// An empty JSON object `{}`.
#[derive(ToSchema)]
#[schema(example = json!({}))]
pub struct Empty {}

/// Field errors in Django REST framework's shape: each field (or `non_field_errors`) with its
/// messages.
#[derive(ToSchema)]
#[schema(example = json!({"email": ["This field is required."]}))]
pub struct FieldErrors(pub std::collections::BTreeMap<String, Vec<String>>);

/// A health answer.
#[derive(ToSchema)]
#[schema(example = json!({"status": "ok"}))]
pub struct Health {
    /// `ok`, or `unavailable` on a failed readiness check.
    pub status: String,
}

/// One live session (a refresh-token family) of `GET /auth/sessions/`.
#[derive(ToSchema)]
#[schema(example = json!({"id": "3f2c6a0e8b6d4c1f9a7e2b5d8c0f1a3e", "created": "2026-12-01T16:35:07Z", "last_used": "2026-12-01T16:40:07Z", "expires": "2026-12-02T16:40:07Z", "ip": "203.0.113.7", "user_agent": "curl/8.5.0"}))]
pub struct SessionDoc {
    /// Session id (the refresh-token family).
    pub id: String,
    /// Login time (UTC).
    pub created: String,
    /// Last refresh (UTC).
    pub last_used: String,
    /// When its current refresh token expires (UTC).
    pub expires: String,
    /// Client address at login.
    pub ip: Option<String>,
    /// User agent at login.
    pub user_agent: Option<String>,
}
