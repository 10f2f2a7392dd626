//! Requiring a second factor: [`AuthMethods`] (the `amr` claim of the request's token, as an
//! extractor with [`require_mfa`](AuthMethods::require_mfa)) and the [`RequireMfaLayer`] tower
//! layer. Authentication itself stays in `verify`: a missing or bad token answers the same 401s
//! as [`AuthUser`](crate::AuthUser); only a good token of a password-only login is refused here,
//! with 403 `mfa_required` ([`ClientError::MfaRequired`]).

use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::{FromRef, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use tower::{Layer, Service};

use crate::error::ClientError;
use crate::state::ClientState;
use crate::verify::{BoxFuture, authenticated, authenticated_request};

/// How the user of a request signed in: the `amr` claim (RFC 8176) of its access token, e.g.
/// `["pwd","otp","mfa"]` after a password and a TOTP or recovery code, `["hwk","user"]` after a
/// passkey sign-in; empty for a password-only login, whose tokens carry no `amr`.
///
/// As an extractor it authenticates the request exactly as [`AuthUser`](crate::AuthUser) does (the same 401s,
/// and no second check when both are extracted); it refuses nothing by itself: call
/// [`require_mfa`](Self::require_mfa) where an action needs a second factor.
///
/// ```no_run
/// use axum::{Router, routing::delete};
/// use client_service::{AuthMethods, AuthUser, ClientError, ClientState};
///
/// /// 401 without a valid token; 403 `mfa_required` after a password-only login.
/// async fn delete_account(AuthUser(user): AuthUser, methods: AuthMethods) -> Result<String, ClientError> {
///     methods.require_mfa()?;
///     Ok(format!("deleting {}", user.email))
/// }
///
/// # fn app(state: ClientState) -> Router {
/// Router::new().route("/api/account/", delete(delete_account)).with_state(state)
/// # }
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthMethods {
    /// `None` for a token without `amr`: the common password-only token costs no allocation.
    amr: Option<Arc<[String]>>,
}

impl AuthMethods {
    /// The methods of a token's `amr` claim (empty: none).
    pub(crate) fn new(amr: Vec<String>) -> Self {
        Self { amr: (!amr.is_empty()).then(|| amr.into()) }
    }

    /// The `amr` values in token order; empty for a password-only login.
    pub fn values(&self) -> &[String] {
        self.amr.as_deref().unwrap_or_default()
    }

    /// Whether more than one factor was used: `amr` holds `"mfa"` (a password and a second
    /// factor) or a passkey (`"hwk"`, `"swk"`: possession and user verification).
    pub fn is_multi_factor(&self) -> bool {
        shared_user::token::is_multi_factor(self.values())
    }

    /// `Ok` after a multi-factor login, else [`ClientError::MfaRequired`]: 403
    /// `{"detail":"This action requires multi-factor authentication.","code":"mfa_required"}`.
    pub fn require_mfa(&self) -> Result<(), ClientError> {
        if self.is_multi_factor() { Ok(()) } else { Err(ClientError::MfaRequired) }
    }

    /// Heap bytes this value keeps alive (for the token cache's memory budget).
    pub(crate) fn heap_bytes(&self) -> usize {
        self.amr
            .as_deref()
            .map_or(0, |values| 16 + values.iter().map(|v| std::mem::size_of::<String>() + v.len() + 16).sum::<usize>())
    }
}

impl<S> FromRequestParts<S> for AuthMethods
where
    ClientState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ClientError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if let Some(methods) = parts.extensions.get::<AuthMethods>() {
            return Ok(methods.clone());
        }
        let state = ClientState::from_ref(state);
        authenticated(&state, parts).await.map(|(_, methods)| methods)
    }
}

/// Tower layer: every request must carry a valid bearer token of an active user (the 401s of
/// [`AuthUser`](crate::AuthUser)) from a multi-factor login (403 `mfa_required` otherwise, see
/// [`AuthMethods::require_mfa`]). The [`AuthUser`](crate::AuthUser) and its [`AuthMethods`] are put in the
/// request extensions for handlers and inner layers.
///
/// Under a [`RequireAuthLayer`](crate::RequireAuthLayer) (added after it, so it runs inside)
/// it reuses that layer's check instead of verifying the token again:
///
/// ```no_run
/// # use axum::{Router, routing::post};
/// # use client_service::{ClientState, RequireAuthLayer, RequireMfaLayer};
/// # fn payouts(state: ClientState) -> Router {
/// Router::new()
///     .route("/api/payouts/", post(|| async { "sent" }))
///     // Runs second: 403 mfa_required after a password-only login.
///     .layer(RequireMfaLayer::new(state.clone()))
///     // Runs first: 401 without a valid token, 403 outside the billing group.
///     .layer(RequireAuthLayer::new(state).group("billing", None))
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct RequireMfaLayer {
    state: ClientState,
}

impl RequireMfaLayer {
    /// The layer for `state`.
    pub fn new(state: ClientState) -> Self {
        Self { state }
    }
}

impl<S> Layer<S> for RequireMfaLayer {
    type Service = RequireMfa<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequireMfa { inner, state: self.state.clone() }
    }
}

/// Service made by [`RequireMfaLayer`].
#[derive(Debug, Clone)]
pub struct RequireMfa<S> {
    inner: S,
    state: ClientState,
}

impl<S> Service<Request> for RequireMfa<S>
where
    S: Service<Request, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = BoxFuture<Result<Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request) -> Self::Future {
        // The clone is not ready; keep the ready one for this call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let state = self.state.clone();
        Box::pin(async move {
            let checked = match authenticated_request(&state, &mut req).await {
                Ok((_, methods)) => methods.require_mfa(),
                Err(e) => Err(e),
            };
            match checked {
                Ok(()) => inner.call(req).await,
                Err(e) => Ok(e.into_response()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn methods(values: &[&str]) -> AuthMethods {
        AuthMethods::new(values.iter().map(|v| (*v).to_owned()).collect())
    }

    #[test]
    fn a_second_factor_or_a_passkey_is_multi_factor_a_password_is_not() {
        assert!(methods(&["pwd", "otp", "mfa"]).require_mfa().is_ok(), "password and TOTP");
        assert!(methods(&["hwk", "user"]).require_mfa().is_ok(), "hardware passkey");
        assert!(methods(&["swk", "user"]).require_mfa().is_ok(), "synced passkey");
        assert!(matches!(methods(&[]).require_mfa(), Err(ClientError::MfaRequired)), "no amr");
        assert!(matches!(methods(&["pwd"]).require_mfa(), Err(ClientError::MfaRequired)), "password only");
        assert_eq!(methods(&[]), AuthMethods::default(), "an empty amr is no amr");
        assert_eq!(methods(&["pwd", "otp", "mfa"]).values(), ["pwd", "otp", "mfa"], "values in token order");
    }
}
