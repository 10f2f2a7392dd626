//! Bearer authentication on the auth-service's own user endpoints (SimpleJWT `JWTAuthentication`)
//! and the gates built on it: `ALLOW_CREATE_USER`, and `MFA_REQUIRED_FOR_STAFF` on the admin API.

use axum::extract::{FromRef, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use shared_user::User;
use shared_user::wire::{ErrorDetail, msg};

use crate::error::ApiError;
use crate::service;
use crate::settings::CreateUserPolicy;
use crate::state::AppState;

/// The active user named by a valid access token in the configured header.
#[derive(Debug, Clone)]
pub struct CurrentUser(pub User);

impl<S> FromRequestParts<S> for CurrentUser
where
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let state = AppState::from_ref(state);
        let config = &state.settings;
        let token = bearer_token(&parts.headers, &config.auth_header_name, &config.auth_header_types)
            .map_err(ApiError::Unauthenticated)?
            .ok_or_else(|| ApiError::Unauthenticated(ErrorDetail::new(msg::NOT_PROVIDED)))?;
        let (user, _) = service::authenticate_access(&state, token).await?;
        Ok(CurrentUser(user))
    }
}

/// SimpleJWT's message for a `Bearer` header with no token, or more than two parts.
const BAD_HEADER: &str = "Authorization header must contain two space-delimited values";

/// Reads a bearer token the way SimpleJWT's `JWTAuthentication` does: the header split on
/// whitespace, the scheme compared case-sensitively against `types`.
///
/// `Ok(None)`: no credentials (no header, or another scheme). `Err`: the scheme matched but
/// the header does not have exactly two parts (`bad_authorization_header`).
fn bearer_token<'a>(
    headers: &'a axum::http::HeaderMap,
    name: &str,
    types: &[String],
) -> Result<Option<&'a str>, ErrorDetail> {
    let Some(value) = headers.get(name).and_then(|v| v.to_str().ok()) else { return Ok(None) };
    let mut words = value.split_whitespace();
    let Some(scheme) = words.next() else { return Ok(None) };
    if !types.iter().any(|t| t == scheme) {
        return Ok(None);
    }
    match (words.next(), words.next()) {
        (Some(token), None) => Ok(Some(token)),
        _ => Err(ErrorDetail::with_code(BAD_HEADER, "bad_authorization_header")),
    }
}

/// Permission to create users over HTTP under `ALLOW_CREATE_USER`: `open` lets anyone through,
/// `admin` needs the access token of an active staff or superuser (else the 401 bodies of
/// [`CurrentUser`], or 403), `off` answers 404 as if the route did not exist.
#[derive(Debug, Clone, Copy)]
pub struct MayCreateUsers;

impl<S> FromRequestParts<S> for MayCreateUsers
where
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match AppState::from_ref(state).settings.allow_create_user {
            CreateUserPolicy::Off => Err(ApiError::NotFound),
            CreateUserPolicy::Open => Ok(MayCreateUsers),
            CreateUserPolicy::Admin => {
                let CurrentUser(user) = CurrentUser::from_request_parts(parts, state).await?;
                if user.is_staff || user.is_superuser { Ok(MayCreateUsers) } else { Err(ApiError::Forbidden) }
            }
        }
    }
}

/// `MFA_REQUIRED_FOR_STAFF` in front of the admin API: a request whose bearer token is a staff
/// or superuser's is refused with 403 `mfa_enrolment_required` while the account has no second
/// factor, and with 403 `mfa_required` when the token comes from a password-only login (see
/// [`service::mfa::check_staff_factor`]). Requests without a valid token go on to the handler,
/// which answers them as it always did.
pub async fn staff_factor_gate(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if state.settings.mfa_required_for_staff {
        let config = &state.settings;
        if let Ok(Some(token)) = bearer_token(request.headers(), &config.auth_header_name, &config.auth_header_types)
            && let Ok((user, claims)) = service::authenticate_access(&state, token).await
            && let Err(e) = service::mfa::check_staff_factor(&state, &user, &claims.amr).await
        {
            return ApiError::from(e).into_response();
        }
    }
    next.run(request).await
}
