//! The service layer's domain error: what went wrong, in the service's words. Each front end
//! (REST `ApiError`, GraphQL, the Hasura actions) maps it once to its wire shape.

use shared_user::http::FieldErrors;
use shared_user::{DbError, TokenError};

/// Why a service operation did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// Input problems, by field (`{"email":["..."],"password":["...", "..."]}`): REST renders
    /// the map, GraphQL and Hasura join its messages and carry it as `extensions`.
    #[error("invalid fields")]
    Fields(FieldErrors),
    /// Unknown email, wrong password or inactive account on login (indistinguishable).
    #[error("bad credentials")]
    BadCredentials,
    /// A token that is not one of ours, expired, of the wrong type, revoked or rotated away.
    #[error("token refused: {0}")]
    Token(TokenError),
    /// A revoked or rotated-away refresh token presented to verify (SimpleJWT answers 400
    /// `non_field_errors` there, unlike the 401 of refresh and blacklist).
    #[error("token revoked")]
    Revoked,
    /// A valid refresh token of an inactive or deleted user.
    #[error("no active account for the token")]
    NoActiveAccount,
    /// A bearer access token that signs no one in (see [`super::authenticate_access`]).
    #[error("not authenticated: {0}")]
    Unauthenticated(AccessRefused),
    /// The caller may not do this.
    #[error("permission denied")]
    Forbidden,
    /// No such record (or none the caller may know about).
    #[error("not found")]
    NotFound,
    /// The password was right and the account has a second factor: the login continues at
    /// `POST /auth/token/mfa/` (or with a passkey) with this `mfa_token`.
    #[error("second factor required")]
    MfaRequired(MfaChallenge),
    /// A second-factor code or passkey assertion that is wrong (the login counters counted it).
    #[error("second factor refused")]
    MfaRefused,
    /// An `mfa_token` that is unknown, expired, used, or out of tries: sign in again.
    #[error("mfa token refused")]
    MfaTokenRefused,
    /// A staff account without a second factor while `MFA_REQUIRED_FOR_STAFF` is on: it must
    /// enrol one before it may use the console or the admin API.
    #[error("second factor enrolment required")]
    MfaEnrolmentRequired,
    /// A staff account that has a second factor, with a token or console session from a
    /// password-only login, while `MFA_REQUIRED_FOR_STAFF` is on: sign in again with it.
    #[error("sign-in with a second factor required")]
    MfaStepUpRequired,
    /// Too many attempts: retry after this many seconds.
    #[error("throttled for {0} s")]
    Throttled(u64),
    /// The database is unreachable.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// A bug or an unexpected failure; logged once by the front end, never shown.
    #[error("internal: {0}")]
    Internal(String),
}

/// The second step a login waits for: the token that names it and the factors that may answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MfaChallenge {
    /// Opaque, single use, 5 minutes.
    pub mfa_token: String,
    /// `totp`, `webauthn`.
    pub methods: Vec<&'static str>,
}

/// Why a bearer access token does not sign its holder in. Each front end words every case
/// its own way (SimpleJWT's `JWTAuthentication` bodies, graphql-jwt's messages).
#[derive(Debug, thiserror::Error)]
pub enum AccessRefused {
    /// Not an acceptable access token of ours: bad signature, expired, wrong type, missing claims.
    #[error("{0}")]
    Token(TokenError),
    /// A valid token without a usable user id claim.
    #[error("{}", TokenError::NoUserId)]
    NoUserId,
    /// A valid token of a user who no longer exists.
    #[error("user not found")]
    UnknownUser,
    /// A valid token of an inactive user.
    #[error("user inactive")]
    Inactive,
    /// Issued before the user's revocation watermark (logout-all, password change, ...).
    #[error("revoked")]
    Revoked,
}

impl From<FieldErrors> for ServiceError {
    fn from(e: FieldErrors) -> Self {
        ServiceError::Fields(e)
    }
}

impl From<TokenError> for ServiceError {
    fn from(e: TokenError) -> Self {
        ServiceError::Token(e)
    }
}

impl From<DbError> for ServiceError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::Pool(m) => ServiceError::Unavailable(m),
            other => ServiceError::Internal(other.to_string()),
        }
    }
}

impl From<crate::throttle::ThrottleError> for ServiceError {
    fn from(e: crate::throttle::ThrottleError) -> Self {
        match e {
            crate::throttle::ThrottleError::Locked(secs) => ServiceError::Throttled(secs),
            crate::throttle::ThrottleError::Db(e) => e.into(),
        }
    }
}

impl From<crate::passwords::HashError> for ServiceError {
    fn from(e: crate::passwords::HashError) -> Self {
        ServiceError::Internal(e.to_string())
    }
}
