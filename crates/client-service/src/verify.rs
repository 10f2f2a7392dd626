//! Bearer verification on every protected request: the [`AuthUser`] extractor, the
//! [`RequireAuthLayer`] tower layer and the [`RequireGroupLayer`] permission layer.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::{FromRef, FromRequestParts, Request};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use shared_user::http::bearer_token;
use shared_user::token::{unverified_claims, user_id_of};
use shared_user::wire::ErrorDetail;
use shared_user::{TokenError, TokenType, User};
use tower::{Layer, Service};

use crate::ClientState;
use crate::config::VerifyMode;
use crate::error::ClientError;
use crate::keys::KeySource;

/// The authenticated, active, mirrored user of a request (shared with the mirror's memory
/// cache: read its fields through the `Arc`, clone what you need to keep).
#[derive(Debug, Clone)]
pub struct AuthUser(pub Arc<User>);

impl AuthUser {
    /// `Ok` when the user is in `group` (at `level`, when given), else 403.
    pub fn require_group(&self, group: &str, level: Option<&str>) -> Result<(), ClientError> {
        if self.0.has_group(group, level) { Ok(()) } else { Err(ClientError::Forbidden) }
    }
}

fn refused(e: &TokenError) -> ClientError {
    ClientError::Unauthenticated(ErrorDetail::invalid_bearer(&e.to_string()))
}

/// Reads the claims of a token the auth-service has just verified (signature already checked
/// there), to learn its type and user.
fn claims_after_remote_verify(token: &str, user_id_claim: &str) -> Result<i64, ClientError> {
    let claims = unverified_claims(token).ok_or_else(|| refused(&TokenError::Invalid))?;
    match claims.get("token_type").and_then(Value::as_str) {
        Some("access") => {}
        None => return Err(refused(&TokenError::NoType)),
        Some(_) => return Err(refused(&TokenError::WrongType)),
    }
    user_id_of(&claims, user_id_claim).ok_or_else(|| {
        ClientError::Unauthenticated(ErrorDetail::with_code(TokenError::NoUserId.to_string(), "token_not_valid"))
    })
}

/// The user (and `iat`) of a locally checked token; a good token is remembered (see
/// [`crate::tokens`]).
fn user_of(
    state: &ClientState,
    token: &str,
    generation: u64,
    claims: Result<shared_user::Claims, TokenError>,
) -> Result<(i64, Option<i64>), ClientError> {
    let claims = claims.map_err(|e| refused(&e))?;
    let user_id = claims
        .require_user_id()
        .map_err(|e| ClientError::Unauthenticated(ErrorDetail::with_code(e.to_string(), "token_not_valid")))?;
    if let Some(tokens) = state.verified_tokens() {
        tokens.remember(token, user_id, claims.iat, claims.exp, generation);
    }
    Ok((user_id, claims.iat))
}

/// The user (and `iat`) of a token this service verified before against key set `generation`.
fn remembered(state: &ClientState, token: &str, generation: u64) -> Option<(i64, Option<i64>)> {
    state.verified_tokens()?.user_of(token, generation)
}

/// Authenticates a request from its headers: token check (local or remote), then the user from
/// the mirror (fetched from the auth-service when unknown or stale).
pub async fn authenticate(state: &ClientState, headers: &HeaderMap) -> Result<Arc<User>, ClientError> {
    let config = state.config();
    let token = bearer_token(headers, &config.auth_header_name, &config.auth_header_types)
        .map_err(ClientError::Unauthenticated)?
        .ok_or_else(ClientError::not_provided)?;
    let (user_id, iat) = match (config.verify_mode, state.keys()) {
        // One fixed secret: every entry was checked against it (generation 0).
        (VerifyMode::Local, KeySource::Hmac(verifier)) => match remembered(state, token, 0) {
            Some(known) => known,
            None => user_of(state, token, 0, verifier.decode(token, Some(TokenType::Access)))?,
        },
        (VerifyMode::Local, KeySource::Jwks(jwks)) => {
            let set = jwks.verifier(state.upstream()).await?;
            match remembered(state, token, set.generation) {
                Some(known) => known,
                None => {
                    let (generation, claims) = match set.verifier.decode(token, Some(TokenType::Access)) {
                        Err(TokenError::UnknownKid(kid)) => match jwks.refetch_for(state.upstream(), &kid).await {
                            Some(newer) => (newer.generation, newer.verifier.decode(token, Some(TokenType::Access))),
                            None => (set.generation, Err(TokenError::UnknownKid(kid))),
                        },
                        checked => (set.generation, checked),
                    };
                    user_of(state, token, generation, claims)?
                }
            }
        }
        _ => {
            let reply = state.upstream().post_json("/auth/token/verify/", &serde_json::json!({"token": token})).await?;
            if reply.status != axum::http::StatusCode::OK {
                if reply.status.is_server_error() {
                    return Err(ClientError::Unavailable(crate::error::CONNECTION_ERROR));
                }
                let reason = reply.detail().map(|d| d.detail).unwrap_or_else(|| TokenError::Invalid.to_string());
                return Err(ClientError::Unauthenticated(ErrorDetail::invalid_bearer(&reason)));
            }
            // The auth-service applied the revocation watermark itself.
            (claims_after_remote_verify(token, &config.verify.user_id_claim)?, None)
        }
    };
    // Revoked (logout-all, password change, deactivation) after this token was issued: a lookup
    // in memory, fed by the background poller (see `revocations`).
    if config.verify_mode == VerifyMode::Local && state.is_revoked(user_id, iat) {
        return Err(refused(&TokenError::Invalid));
    }
    let user = state.user_for(user_id, token).await?;
    if !user.is_active {
        return Err(ClientError::Unauthenticated(ErrorDetail::with_code("User is inactive", "user_inactive")));
    }
    Ok(user)
}

impl<S> FromRequestParts<S> for AuthUser
where
    ClientState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ClientError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if let Some(user) = parts.extensions.get::<AuthUser>() {
            return Ok(user.clone());
        }
        let state = ClientState::from_ref(state);
        authenticate(&state, &parts.headers).await.map(AuthUser)
    }
}

/// Tower layer: every request must carry a valid bearer token of an active user; the
/// [`AuthUser`] is put in the request extensions for handlers and inner layers.
#[derive(Debug, Clone)]
pub struct RequireAuthLayer {
    state: ClientState,
}

impl RequireAuthLayer {
    /// The layer for `state`.
    pub fn new(state: ClientState) -> Self {
        Self { state }
    }
}

impl<S> Layer<S> for RequireAuthLayer {
    type Service = RequireAuth<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequireAuth { inner, state: self.state.clone() }
    }
}

/// Service made by [`RequireAuthLayer`].
#[derive(Debug, Clone)]
pub struct RequireAuth<S> {
    inner: S,
    state: ClientState,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

impl<S> Service<Request> for RequireAuth<S>
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
            match authenticate(&state, req.headers()).await {
                Ok(user) => {
                    req.extensions_mut().insert(AuthUser(user));
                    inner.call(req).await
                }
                Err(e) => Ok(e.into_response()),
            }
        })
    }
}

/// Tower layer: the authenticated user (see [`RequireAuthLayer`], which must run first) must
/// be in an access group, optionally at a given level; otherwise 403.
#[derive(Debug, Clone)]
pub struct RequireGroupLayer {
    group: String,
    level: Option<String>,
}

impl RequireGroupLayer {
    /// Requires membership of `group` (at `level`, when given).
    pub fn new(group: impl Into<String>, level: Option<&str>) -> Self {
        Self { group: group.into(), level: level.map(str::to_owned) }
    }
}

impl<S> Layer<S> for RequireGroupLayer {
    type Service = RequireGroup<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequireGroup { inner, group: self.group.clone(), level: self.level.clone() }
    }
}

/// Service made by [`RequireGroupLayer`].
#[derive(Debug, Clone)]
pub struct RequireGroup<S> {
    inner: S,
    group: String,
    level: Option<String>,
}

impl<S> Service<Request> for RequireGroup<S>
where
    S: Service<Request, Response = Response> + Send + 'static,
    S::Error: Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = BoxFuture<Result<Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let verdict = match req.extensions().get::<AuthUser>() {
            None => Err(ClientError::not_provided()),
            Some(user) => user.require_group(&self.group, self.level.as_deref()),
        };
        match verdict {
            Ok(()) => Box::pin(self.inner.call(req)),
            Err(e) => Box::pin(std::future::ready(Ok(e.into_response()))),
        }
    }
}
