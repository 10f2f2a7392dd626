//! Wire bodies shared by both services: the Django REST framework / SimpleJWT error shapes, and
//! the revocation feed's contract ([`revocations`]).

pub mod revocations;

use serde::{Deserialize, Serialize};

/// `{"detail": "...", "code": "...", "messages": [...]}` with `code` and `messages` optional.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorDetail {
    /// Human readable message, byte-identical to the Django reference.
    pub detail: String,
    /// Machine readable code such as `token_not_valid`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// Per token class failure list (only on request authentication failures).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messages: Option<Vec<TokenMessage>>,
}

/// One entry of `messages` in a "Given token not valid for any token type" body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenMessage {
    /// Always `AccessToken` here.
    pub token_class: String,
    /// Always `access` here.
    pub token_type: String,
    /// Why the token was refused, e.g. `Token is invalid or expired`.
    pub message: String,
}

impl ErrorDetail {
    /// `{"detail": detail}`.
    pub fn new(detail: impl Into<String>) -> Self {
        Self { detail: detail.into(), code: None, messages: None }
    }

    /// `{"detail": detail, "code": code}`.
    pub fn with_code(detail: impl Into<String>, code: impl Into<String>) -> Self {
        Self { detail: detail.into(), code: Some(code.into()), messages: None }
    }
}

/// Messages used verbatim by the reference implementation.
pub mod msg {
    /// Bad credentials on obtain (unknown email, wrong password, inactive user alike).
    pub const NO_ACTIVE_ACCOUNT: &str = "No active account found with the given credentials";
    /// No Authorization header on a protected endpoint.
    pub const NOT_PROVIDED: &str = "Authentication credentials were not provided.";
    /// Authenticated but not allowed.
    pub const PERMISSION_DENIED: &str = "You do not have permission to perform this action.";
    /// Unknown object.
    pub const NOT_FOUND: &str = "Not found.";
    /// Required field missing.
    pub const FIELD_REQUIRED: &str = "This field is required.";
    /// Required field empty.
    pub const FIELD_BLANK: &str = "This field may not be blank.";
    /// Field is JSON null.
    pub const FIELD_NULL: &str = "This field may not be null.";
    /// Field is an object, array or bool.
    pub const FIELD_NOT_STRING: &str = "Not a valid string.";
    /// Refresh token of an inactive or deleted user (SimpleJWT >= 5.4 wording).
    pub const NO_ACTIVE_ACCOUNT_FOR_TOKEN: &str = "No active account found for the given token.";
}
