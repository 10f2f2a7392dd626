//! The client-service's one error type at the HTTP edge.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use shared_user::DbError;
use shared_user::http::{detail, json, with_www_authenticate};
use shared_user::wire::{ErrorDetail, msg};

/// Everything the client crate can answer besides success.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    /// 401 with a SimpleJWT body and `WWW-Authenticate`.
    #[error("unauthenticated: {}", .0.detail)]
    Unauthenticated(ErrorDetail),
    /// 403 `{"detail":"You do not have permission to perform this action."}`.
    #[error("permission denied")]
    Forbidden,
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

/// Detail of a 503 when the client's own database cannot be used.
pub const DATABASE_UNAVAILABLE: &str = "Service temporarily unavailable, try again later.";

/// `WWW-Authenticate` of our 401 answers.
pub const WWW_AUTHENTICATE: &str = "Bearer realm=\"api\"";

/// Detail of a 503 when the auth-service does not answer (EasyJWT wording, modern status).
pub const CONNECTION_ERROR: &str = "Authentication Service Connection Error.";
/// Detail of a 503 when the auth-service answers too slowly.
pub const TIMED_OUT: &str = "Authentication Service Timed Out.";

impl ClientError {
    /// 401 "Authentication credentials were not provided."
    pub fn not_provided() -> Self {
        ClientError::Unauthenticated(ErrorDetail::new(msg::NOT_PROVIDED))
    }
}

impl IntoResponse for ClientError {
    fn into_response(self) -> Response {
        match self {
            ClientError::Unauthenticated(body) => {
                with_www_authenticate(json(StatusCode::UNAUTHORIZED, body), WWW_AUTHENTICATE)
            }
            ClientError::Forbidden => detail(StatusCode::FORBIDDEN, msg::PERMISSION_DENIED),
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
