//! The auth-service's one error type at the HTTP edge, mapped to the Django/SimpleJWT bodies,
//! and the one place that logs server-side failures for every front end.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use shared_user::http::{FieldErrors, detail, json, with_www_authenticate};
use shared_user::wire::{ErrorDetail, TokenMessage, msg};
use shared_user::{DbError, TokenError};

use crate::service::{AccessRefused, ServiceError};

/// What clients see when the database is unreachable.
pub const UNAVAILABLE: &str = "Service temporarily unavailable, try again later.";
/// What clients see on a bug: no detail.
pub const SERVER_ERROR: &str = "A server error occurred.";

/// Logs an unreachable database (every front end calls this when it answers one) and returns
/// the public message.
pub fn unavailable(reason: &str) -> &'static str {
    tracing::warn!(%reason, "database unavailable");
    UNAVAILABLE
}

/// Logs an internal error (every front end calls this when it answers one) and returns the
/// public message.
pub fn internal(reason: &str) -> &'static str {
    tracing::error!(%reason, "internal error");
    SERVER_ERROR
}

/// Everything a handler can answer besides success.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400 field map.
    #[error("invalid fields")]
    Fields(FieldErrors),
    /// 401 bad credentials on obtain.
    #[error("bad credentials")]
    BadCredentials,
    /// 401 `{"detail":msg,"code":"token_not_valid"}` on the token endpoints.
    #[error("token refused: {0}")]
    Token(TokenError),
    /// 401 with a custom body (request authentication failures, inactive account on refresh).
    #[error("unauthenticated: {}", .0.detail)]
    Unauthenticated(ErrorDetail),
    /// 401 `mfa_required` with the `mfa_token` and the methods that may continue the login.
    #[error("second factor required")]
    MfaRequired(crate::service::MfaChallenge),
    /// 401 with a detail and a code (a refused second factor, a dead `mfa_token`).
    #[error("second factor refused: {0}")]
    MfaRefused(&'static str),
    /// 403 `mfa_enrolment_required`: a staff account must enrol a second factor first.
    #[error("second factor enrolment required")]
    MfaEnrolmentRequired,
    /// 403 `mfa_required`: a password-only token where a second factor is required.
    #[error("sign-in with a second factor required")]
    MfaStepUpRequired,
    /// 403.
    #[error("permission denied")]
    Forbidden,
    /// 404.
    #[error("not found")]
    NotFound,
    /// 429 with `Retry-After` seconds.
    #[error("throttled")]
    Throttled(u64),
    /// 503: the database is unreachable.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// 500: a bug; logged, no detail in the body.
    #[error("internal: {0}")]
    Internal(String),
}

impl From<ServiceError> for ApiError {
    /// The REST mapping of the service's errors.
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::Fields(f) => ApiError::Fields(f),
            ServiceError::BadCredentials => ApiError::BadCredentials,
            ServiceError::Token(e) => ApiError::Token(e),
            ServiceError::Revoked => ApiError::Fields(FieldErrors::non_field("Token is blacklisted")),
            ServiceError::NoActiveAccount => {
                ApiError::Unauthenticated(ErrorDetail::with_code(msg::NO_ACTIVE_ACCOUNT_FOR_TOKEN, "no_active_account"))
            }
            ServiceError::Unauthenticated(reason) => ApiError::Unauthenticated(refusal(reason)),
            ServiceError::MfaRequired(challenge) => ApiError::MfaRequired(challenge),
            ServiceError::MfaRefused => ApiError::MfaRefused(MFA_CODE_INVALID),
            ServiceError::MfaTokenRefused => ApiError::MfaRefused(MFA_TOKEN_INVALID),
            ServiceError::MfaEnrolmentRequired => ApiError::MfaEnrolmentRequired,
            ServiceError::MfaStepUpRequired => ApiError::MfaStepUpRequired,
            ServiceError::Forbidden => ApiError::Forbidden,
            ServiceError::NotFound => ApiError::NotFound,
            ServiceError::Throttled(secs) => ApiError::Throttled(secs),
            ServiceError::Unavailable(reason) => ApiError::Unavailable(reason),
            ServiceError::Internal(reason) => ApiError::Internal(reason),
        }
    }
}

impl From<FieldErrors> for ApiError {
    fn from(e: FieldErrors) -> Self {
        ApiError::Fields(e)
    }
}

impl From<TokenError> for ApiError {
    fn from(e: TokenError) -> Self {
        ApiError::Token(e)
    }
}

impl From<DbError> for ApiError {
    /// As the service layer judges it (unavailable or internal), mapped like any service error.
    fn from(e: DbError) -> Self {
        ServiceError::from(e).into()
    }
}

impl From<crate::passwords::HashError> for ApiError {
    fn from(e: crate::passwords::HashError) -> Self {
        ServiceError::from(e).into()
    }
}

/// The REST answer to a refused bearer token: SimpleJWT's `JWTAuthentication` bodies (mapped
/// once, for every route, by `From<ServiceError> for ApiError`).
fn refusal(reason: AccessRefused) -> ErrorDetail {
    match reason {
        AccessRefused::Token(e) => invalid_bearer(&e.to_string()),
        AccessRefused::NoUserId => ErrorDetail::with_code(TokenError::NoUserId.to_string(), "token_not_valid"),
        AccessRefused::UnknownUser => ErrorDetail::with_code("User not found", "user_not_found"),
        AccessRefused::Inactive => ErrorDetail::with_code("User is inactive", "user_inactive"),
        // Refused like a bad token once the user's revocation watermark is past its `iat`.
        AccessRefused::Revoked => invalid_bearer(&TokenError::Invalid.to_string()),
    }
}

/// The body JWTAuthentication answers when a bearer token is refused.
fn invalid_bearer(reason: &str) -> ErrorDetail {
    ErrorDetail {
        detail: "Given token not valid for any token type".into(),
        code: Some("token_not_valid".into()),
        messages: Some(vec![TokenMessage {
            token_class: "AccessToken".into(),
            token_type: "access".into(),
            message: reason.into(),
        }]),
    }
}

/// `Retry-After` of a 503 (the database is restarting or unreachable): a short wait.
const RETRY_UNAVAILABLE_SECS: u64 = 2;

/// The `detail` of a login that needs its second factor.
pub const MFA_REQUIRED: &str = "Multi-factor authentication required.";
/// The `detail` of a wrong second factor.
pub const MFA_CODE_INVALID: &str = "Invalid code.";
/// The `detail` of a dead `mfa_token`.
pub const MFA_TOKEN_INVALID: &str = "The sign-in expired or was already completed; sign in again.";
/// The `detail` of a staff account that must enrol a second factor.
pub const MFA_ENROLMENT_REQUIRED: &str =
    "Staff accounts must enrol a second factor first (POST /auth/mfa/totp/ or a passkey).";

/// The `detail` of a password-only token where a second factor is required.
pub const MFA_STEP_UP_REQUIRED: &str = "This action requires a sign-in with a second factor; sign in again.";

/// The `WWW-Authenticate` value of our 401 answers.
pub const WWW_AUTHENTICATE: &str = "Bearer realm=\"api\"";

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::Fields(f) => f.into_response(),
            ApiError::BadCredentials => {
                with_www_authenticate(detail(StatusCode::UNAUTHORIZED, msg::NO_ACTIVE_ACCOUNT), WWW_AUTHENTICATE)
            }
            ApiError::Token(e) => with_www_authenticate(
                json(StatusCode::UNAUTHORIZED, ErrorDetail::with_code(e.to_string(), "token_not_valid")),
                WWW_AUTHENTICATE,
            ),
            ApiError::Unauthenticated(body) => {
                with_www_authenticate(json(StatusCode::UNAUTHORIZED, body), WWW_AUTHENTICATE)
            }
            ApiError::MfaRequired(challenge) => with_www_authenticate(
                json(
                    StatusCode::UNAUTHORIZED,
                    serde_json::json!({
                        "detail": MFA_REQUIRED,
                        "code": "mfa_required",
                        "mfa_token": challenge.mfa_token,
                        "methods": challenge.methods,
                    }),
                ),
                WWW_AUTHENTICATE,
            ),
            ApiError::MfaRefused(message) => {
                let code = if message == MFA_CODE_INVALID { "mfa_code_invalid" } else { "mfa_token_invalid" };
                with_www_authenticate(
                    json(StatusCode::UNAUTHORIZED, ErrorDetail::with_code(message, code)),
                    WWW_AUTHENTICATE,
                )
            }
            ApiError::MfaEnrolmentRequired => {
                json(StatusCode::FORBIDDEN, ErrorDetail::with_code(MFA_ENROLMENT_REQUIRED, "mfa_enrolment_required"))
            }
            ApiError::MfaStepUpRequired => {
                json(StatusCode::FORBIDDEN, ErrorDetail::with_code(MFA_STEP_UP_REQUIRED, "mfa_required"))
            }
            ApiError::Forbidden => detail(StatusCode::FORBIDDEN, msg::PERMISSION_DENIED),
            ApiError::NotFound => detail(StatusCode::NOT_FOUND, msg::NOT_FOUND),
            ApiError::Throttled(secs) => {
                let mut r = detail(
                    StatusCode::TOO_MANY_REQUESTS,
                    &format!("Request was throttled. Expected available in {secs} seconds."),
                );
                r.headers_mut().insert(axum::http::header::RETRY_AFTER, secs.into());
                r
            }
            ApiError::Unavailable(reason) => {
                let mut r = detail(StatusCode::SERVICE_UNAVAILABLE, unavailable(&reason));
                r.headers_mut().insert(axum::http::header::RETRY_AFTER, RETRY_UNAVAILABLE_SECS.into());
                r
            }
            ApiError::Internal(reason) => detail(StatusCode::INTERNAL_SERVER_ERROR, internal(&reason)),
        }
    }
}
