//! The client crate's one error type at the HTTP edge: what a protected route or the proxy
//! answers besides success. 401s carry `WWW-Authenticate: Bearer` (no realm) and the bodies of
//! the EasyJWT 1.1 client (DESIGN.md, reference cases C5–C8).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use shared_user::DbError;
use shared_user::http::{detail, json, with_www_authenticate};
use shared_user::wire::{ErrorDetail, msg};

/// Everything the client crate can answer besides success; the rejection of [`AuthUser`]
/// (`IntoResponse` gives the status and body).
///
/// [`AuthUser`]: crate::AuthUser
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// 401 with this body and `WWW-Authenticate: Bearer`.
    #[error("unauthenticated: {}", .0.detail)]
    Unauthenticated(ErrorDetail),
    /// 403 `{"detail":"You do not have permission to perform this action."}`.
    #[error("permission denied")]
    Forbidden,
    /// 403 `{"detail":"This action requires multi-factor authentication.","code":"mfa_required"}`:
    /// the token comes from a password-only login (see [`AuthMethods`]).
    ///
    /// [`AuthMethods`]: crate::AuthMethods
    #[error("multi-factor authentication required")]
    MfaRequired,
    /// 503: the auth-service could not be reached (or timed out) and nothing local can answer.
    #[error("auth-service unavailable: {0}")]
    Unavailable(&'static str),
    /// 502: the auth-service answered something that is not the contract.
    #[error("bad upstream answer: {0}")]
    BadUpstream(String),
    /// 500: a bug or a local database failure; logged, no detail in the body.
    #[error("internal: {0}")]
    Internal(String),
}

impl From<DbError> for ClientError {
    fn from(e: DbError) -> Self {
        match e {
            // The mirror database is restarting or unreachable: worth a retry, not a bug.
            DbError::Pool(reason) => {
                tracing::warn!(%reason, "mirror database unavailable");
                ClientError::Unavailable(DATABASE_UNAVAILABLE)
            }
            other => ClientError::Internal(other.to_string()),
        }
    }
}

/// `WWW-Authenticate` of the 401s the client itself makes (the EasyJWT 1.1 client's: no realm).
pub(crate) const WWW_AUTHENTICATE: &str = "Bearer";

/// Detail of a 503 when the client's own database cannot be used.
pub(crate) const DATABASE_UNAVAILABLE: &str = "Service temporarily unavailable, try again later.";

/// Detail of a 503 when the auth-service does not answer (EasyJWT wording, modern status).
pub(crate) const CONNECTION_ERROR: &str = "Authentication Service Connection Error.";
/// Detail of a 503 when the auth-service answers too slowly.
pub(crate) const TIMED_OUT: &str = "Authentication Service Timed Out.";

/// The EasyJWT client's header messages.
const NO_CREDENTIALS: &str = "Invalid basic header. No credentials provided.";
const CONTAINS_SPACES: &str = "Invalid basic header. Credentials string should not contain spaces.";
/// Any refused token: bad signature, expired, wrong type, unknown key...
const TOKEN_NOT_VALID: &str = "Token is invalid or expired";
/// A route that needs a second factor, called with a password-only token.
const MFA_REQUIRED: &str = "This action requires multi-factor authentication.";

impl ClientError {
    /// 401 `{"detail":"Authentication credentials were not provided."}`: no header, or
    /// another scheme.
    pub(crate) fn not_provided() -> Self {
        ClientError::Unauthenticated(ErrorDetail::new(msg::NOT_PROVIDED))
    }

    /// 401 for a header that is only the scheme (`Bearer`).
    pub(crate) fn no_credentials() -> Self {
        ClientError::Unauthenticated(ErrorDetail::new(NO_CREDENTIALS))
    }

    /// 401 for a header of more than two space-separated parts.
    pub(crate) fn contains_spaces() -> Self {
        ClientError::Unauthenticated(ErrorDetail::new(CONTAINS_SPACES))
    }

    /// 401 `{"detail":"Token is invalid or expired","code":"token_not_valid"}`: the
    /// reference's body plus SimpleJWT's code, so refresh interceptors keyed on either work.
    pub(crate) fn token_not_valid() -> Self {
        ClientError::Unauthenticated(ErrorDetail::with_code(TOKEN_NOT_VALID, "token_not_valid"))
    }
}

impl IntoResponse for ClientError {
    fn into_response(self) -> Response {
        match self {
            ClientError::Unauthenticated(body) => {
                with_www_authenticate(json(StatusCode::UNAUTHORIZED, body), WWW_AUTHENTICATE)
            }
            ClientError::Forbidden => detail(StatusCode::FORBIDDEN, msg::PERMISSION_DENIED),
            ClientError::MfaRequired => {
                json(StatusCode::FORBIDDEN, ErrorDetail::with_code(MFA_REQUIRED, "mfa_required"))
            }
            ClientError::Unavailable(text) => {
                let mut r = detail(StatusCode::SERVICE_UNAVAILABLE, text);
                r.headers_mut().insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from_static("2"));
                r
            }
            ClientError::BadUpstream(reason) => {
                tracing::warn!(%reason, "auth-service answered outside the contract");
                detail(StatusCode::BAD_GATEWAY, "Authentication service returned an error.")
            }
            ClientError::Internal(reason) => {
                tracing::error!(%reason, "internal error");
                detail(StatusCode::INTERNAL_SERVER_ERROR, "A server error occurred.")
            }
        }
    }
}
