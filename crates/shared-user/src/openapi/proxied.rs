//! The auth-service's user-facing operations that a client-service proxies 1:1, described once.
//! The auth-service lists these descriptions in its document as they are; the client crate
//! lists the same ones and adds only what its proxy adds (its tag, a note on cookie mode, the
//! answers of an unreachable auth-service). Each function stands for one operation: give it to
//! `#[openapi(paths(...))]`; [`document`] holds them all.
//!
//! `POST /auth/token/logout/` is not here: it is the client's own route (a best-effort
//! blacklist), with no counterpart on the auth-service.

use utoipa::OpenApi;

use super::tag::{SESSIONS, TOKENS, USERS};
use super::{
    Empty, FieldErrors, ObtainRequest, PasswordChangeRequest, RefreshRequest, Refreshed, SessionDoc, TokenPair,
    VerifyRequest,
};
use crate::user::User;
use crate::wire::ErrorDetail;

/// Obtain a token pair.
///
/// Email and password in, `{"refresh","access"}` out. Throttled per address and account.
#[utoipa::path(post, path = "/auth/token/", tag = TOKENS, operation_id = "issue_token",
    request_body(content((ObtainRequest = "application/json"), (ObtainRequest = "application/x-www-form-urlencoded"))),
    responses(
        (status = 200, description = "Signed in", body = TokenPair),
        (status = 400, description = "A field is missing or blank", body = FieldErrors),
        (status = 401, description = "Wrong email or password, or an inactive account", body = ErrorDetail,
            example = json!({"detail": "No active account found with the given credentials"})),
        (status = 429, description = "Too many failed attempts", body = ErrorDetail,
            headers(("Retry-After" = u64, description = "Seconds until the next attempt may succeed")),
            example = json!({"detail": "Request was throttled. Expected available in 2 seconds."})),
    ))]
pub fn issue_token() {}

/// Exchange a refresh token for a new access token.
#[utoipa::path(post, path = "/auth/token/refresh/", tag = TOKENS, operation_id = "refresh_token",
    request_body(content((RefreshRequest = "application/json"), (RefreshRequest = "application/x-www-form-urlencoded"))),
    responses(
        (status = 200, description = "Refreshed", body = Refreshed),
        (status = 400, description = "Missing field", body = FieldErrors),
        (status = 401, description = "Invalid, expired, revoked or reused token", body = ErrorDetail,
            example = json!({"detail": "Token is invalid or expired", "code": "token_not_valid"})),
    ))]
pub fn refresh_token() {}

/// Check a token.
#[utoipa::path(post, path = "/auth/token/verify/", tag = TOKENS, operation_id = "verify_token",
    request_body(content((VerifyRequest = "application/json"), (VerifyRequest = "application/x-www-form-urlencoded"))),
    responses(
        (status = 200, description = "Valid", body = Empty),
        (status = 400, description = "Missing field", body = FieldErrors),
        (status = 401, description = "Invalid or expired", body = ErrorDetail,
            example = json!({"detail": "Token is invalid or expired", "code": "token_not_valid"})),
    ))]
pub fn verify_token() {}

/// Revoke a refresh token (logout).
#[utoipa::path(post, path = "/auth/token/blacklist/", tag = TOKENS, operation_id = "blacklist_token",
    request_body(content((RefreshRequest = "application/json"), (RefreshRequest = "application/x-www-form-urlencoded"))),
    responses(
        (status = 200, description = "Revoked", body = Empty),
        (status = 400, description = "Missing field", body = FieldErrors),
        (status = 401, description = "Invalid or expired", body = ErrorDetail,
            example = json!({"detail": "Token is invalid or expired", "code": "token_not_valid"})),
    ))]
pub fn blacklist_token() {}

/// The bearer token's own user.
#[utoipa::path(get, path = "/auth/user/", tag = USERS, operation_id = "get_current_user",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The user", body = User),
        (status = 401, description = "No or bad token", body = ErrorDetail,
            headers(("WWW-Authenticate" = String, description = "`Bearer realm=\"api\"`")),
            example = json!({"detail": "Authentication credentials were not provided."})),
    ))]
pub fn get_current_user() {}

/// A user by id: your own, or any for staff (legacy EasyJWT <= 0.5 endpoint).
#[utoipa::path(get, path = "/auth/users/{id}/", tag = USERS, operation_id = "get_user",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "User id")),
    responses(
        (status = 200, description = "The user", body = User),
        (status = 401, description = "No or bad token", body = ErrorDetail),
        (status = 403, description = "Another user's id, not staff", body = ErrorDetail,
            example = json!({"detail": "You do not have permission to perform this action."})),
        (status = 404, description = "Unknown id", body = ErrorDetail, example = json!({"detail": "Not found."})),
    ))]
pub fn get_user() {}

/// Change a password; every refresh token of the user is revoked.
#[utoipa::path(post, path = "/auth/password-change/", tag = USERS, operation_id = "change_password",
    request_body(content((PasswordChangeRequest = "application/json"), (PasswordChangeRequest = "application/x-www-form-urlencoded"))),
    responses(
        (status = 200, description = "Changed", body = Empty),
        (status = 400, description = "Missing field, wrong credentials or a weak new password", body = FieldErrors,
            example = json!({"non_field_errors": ["Invalid credentials."]})),
        (status = 429, description = "Too many failed attempts", body = ErrorDetail),
    ))]
pub fn change_password() {}

/// The caller's live sessions, newest first, 100 a page.
#[utoipa::path(get, path = "/auth/sessions/", tag = SESSIONS, operation_id = "list_sessions",
    security(("bearer" = [])),
    params(("page" = Option<i64>, Query, description = "Page number (1 first); a full page means there may be more")),
    responses(
        (status = 200, description = "One page of live sessions", body = Vec<SessionDoc>),
        (status = 401, description = "No or bad token", body = ErrorDetail),
        (status = 404, description = "Invalid page", body = ErrorDetail),
    ))]
pub fn list_sessions() {}

/// End one of the caller's sessions (its refresh tokens are revoked).
#[utoipa::path(delete, path = "/auth/sessions/{id}/", tag = SESSIONS, operation_id = "end_session",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Session id")),
    responses(
        (status = 204, description = "Ended"),
        (status = 401, description = "No or bad token", body = ErrorDetail),
        (status = 404, description = "Not one of the caller's live sessions", body = ErrorDetail),
    ))]
pub fn end_session() {}

/// End every session of the caller and refuse every access token issued before now.
#[utoipa::path(post, path = "/auth/logout-all/", tag = SESSIONS, operation_id = "logout_all",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Logged out everywhere", body = Empty),
        (status = 401, description = "No or bad token", body = ErrorDetail),
    ))]
pub fn logout_all() {}

/// All of them.
#[derive(OpenApi)]
#[openapi(paths(
    issue_token,
    refresh_token,
    verify_token,
    blacklist_token,
    get_current_user,
    get_user,
    change_password,
    list_sessions,
    end_session,
    logout_all,
))]
struct Proxied;

/// A document holding only the proxied operations (and the schemas they use): for checks that
/// a service describes them all, and as they are.
pub fn document() -> utoipa::openapi::OpenApi {
    Proxied::openapi()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_proxied_route_is_described_once() {
        let doc = document();
        // Sorted: a document keeps its paths in alphabetical order.
        let mut paths: Vec<&str> = doc.paths.paths.keys().map(String::as_str).collect();
        paths.sort_unstable();
        assert_eq!(
            paths,
            [
                "/auth/logout-all/",
                "/auth/password-change/",
                "/auth/sessions/",
                "/auth/sessions/{id}/",
                "/auth/token/",
                "/auth/token/blacklist/",
                "/auth/token/refresh/",
                "/auth/token/verify/",
                "/auth/user/",
                "/auth/users/{id}/",
            ]
        );
        let schemas = doc.components.map(|c| c.schemas.into_keys().collect::<Vec<_>>()).unwrap_or_default();
        for name in ["TokenPair", "ErrorDetail", "User", "SessionDoc"] {
            assert!(schemas.iter().any(|s| s == name), "{name} collected from the operations: {schemas:?}");
        }
    }
}
