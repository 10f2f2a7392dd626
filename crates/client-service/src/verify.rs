//! Bearer verification on every protected request: the [`AuthUser`] extractor (also as
//! `Option<AuthUser>`) and the [`RequireAuthLayer`] tower layer with its optional group
//! requirements. Headers are read as the EasyJWT 1.1 client reads them, and refusals answer
//! its bodies (see [`ClientError`]). A request is checked once: the [`AuthUser`] and the
//! token's [`AuthMethods`] go into its extensions, where later extractors and inner layers
//! (such as [`RequireMfaLayer`](crate::RequireMfaLayer)) find them.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::{FromRef, FromRequestParts, OptionalFromRequestParts, Request};
use axum::http::Extensions;
use axum::http::HeaderMap;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use shared_user::token::{amr_of, unverified_claims, user_id_of};
use shared_user::wire::ErrorDetail;
use shared_user::{TokenError, TokenType, User};
use tower::{Layer, Service};

use crate::error::ClientError;
use crate::keys::KeySource;
use crate::mfa::AuthMethods;
use crate::settings::VerifyMode;
use crate::state::ClientState;

/// The authenticated, active, mirrored user of a request (shared with the mirror's memory
/// cache: read its fields through the `Arc`, clone what you need to keep).
///
/// As an extractor it answers 401 without valid credentials. As `Option<AuthUser>` it gives
/// `None` when the request carries no credentials (no header, or another scheme) and still
/// answers 401 for a malformed header or a bad token.
#[derive(Debug, Clone)]
pub struct AuthUser(pub Arc<User>);

impl AuthUser {
    /// `Ok` when the user is in `group` (at `level`, when given), else 403.
    pub fn require_group(&self, group: &str, level: Option<&str>) -> Result<(), ClientError> {
        if self.0.has_group(group, level) { Ok(()) } else { Err(ClientError::Forbidden) }
    }
}

/// Every token refusal answers the same body, whatever the reason (the reason is not logged
/// either: it says nothing an operator can act on, and a flood would drown the log).
fn refused(_: &TokenError) -> ClientError {
    ClientError::token_not_valid()
}

/// The token of a request, read as the EasyJWT 1.1 client reads it: the header split on single
/// spaces; one part or more than two is an error whatever the scheme; a scheme not in `types`
/// (case-sensitive) or no header at all means no credentials (`Ok(None)`).
pub(crate) fn credentials<'a>(
    headers: &'a HeaderMap,
    name: &str,
    types: &[String],
) -> Result<Option<&'a str>, ClientError> {
    let Some(value) = headers.get(name) else { return Ok(None) };
    let Ok(value) = value.to_str() else { return Err(ClientError::token_not_valid()) };
    if value.is_empty() {
        return Ok(None);
    }
    let mut parts = value.split(' ');
    let scheme = parts.next().unwrap_or_default();
    let (Some(token), None) = (parts.next(), parts.next()) else {
        return Err(if value.contains(' ') { ClientError::contains_spaces() } else { ClientError::no_credentials() });
    };
    if !types.iter().any(|t| t == scheme) {
        return Ok(None);
    }
    Ok(Some(token))
}

/// Reads the claims of a token the auth-service has just verified (signature already checked
/// there), to learn its type, user and authentication methods.
fn claims_after_remote_verify(token: &str, user_id_claim: &str) -> Result<Checked, ClientError> {
    let claims = unverified_claims(token).ok_or_else(|| refused(&TokenError::Invalid))?;
    match claims.get("token_type").and_then(Value::as_str) {
        Some("access") => {}
        None => return Err(refused(&TokenError::NoType)),
        Some(_) => return Err(refused(&TokenError::WrongType)),
    }
    let user_id = user_id_of(&claims, user_id_claim).ok_or_else(|| refused(&TokenError::NoUserId))?;
    let methods = AuthMethods::new(amr_of(&claims).map_err(|e| refused(&e))?);
    // The auth-service applied the revocation watermark itself.
    Ok(Checked { user_id, iat: None, methods })
}

/// What checking a token concluded: its user, `iat` and `amr`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Checked {
    /// The user id claim.
    pub(crate) user_id: i64,
    /// `iat`, epoch seconds, when present (checked against revocation watermarks).
    pub(crate) iat: Option<i64>,
    /// The `amr` claim.
    pub(crate) methods: AuthMethods,
}

/// What a locally checked token says; a good token is remembered (see [`crate::tokens`]).
fn user_of(
    state: &ClientState,
    token: &str,
    generation: u64,
    claims: Result<shared_user::Claims, TokenError>,
) -> Result<Checked, ClientError> {
    let claims = claims.map_err(|e| refused(&e))?;
    let user_id = claims.require_user_id().map_err(|e| refused(&e))?;
    let checked = Checked { user_id, iat: claims.iat, methods: AuthMethods::new(claims.amr) };
    if let Some(tokens) = state.verified_tokens() {
        tokens.remember(token, &checked, claims.exp, generation);
    }
    Ok(checked)
}

/// What a token this service verified before against key set `generation` said.
fn remembered(state: &ClientState, token: &str, generation: u64) -> Option<Checked> {
    state.verified_tokens()?.user_of(token, generation)
}

impl ClientState {
    /// The user of a request with these headers, checked exactly as [`AuthUser`] does (for
    /// code outside an axum handler, such as a WebSocket upgrade or a GraphQL context).
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Arc<User>, ClientError> {
        authenticate(self, headers).await.map(|(user, _)| user)
    }
}

/// Authenticates a request from its headers: token check (local or remote), then the user from
/// the mirror (fetched from the auth-service when unknown or stale).
async fn authenticate(state: &ClientState, headers: &HeaderMap) -> Result<(Arc<User>, AuthMethods), ClientError> {
    let config = state.config();
    let token = credentials(headers, &config.auth_header_name, &config.auth_header_types)?
        .ok_or_else(ClientError::not_provided)?;
    authenticate_token(state, token).await
}

/// The user and token methods of a request: those an earlier extractor or outer layer put in
/// its extensions, else checked from its headers (and put there).
pub(crate) async fn authenticated(
    state: &ClientState,
    parts: &mut Parts,
) -> Result<(AuthUser, AuthMethods), ClientError> {
    if let (Some(user), Some(methods)) = (parts.extensions.get::<AuthUser>(), parts.extensions.get::<AuthMethods>()) {
        return Ok((user.clone(), methods.clone()));
    }
    let (user, methods) = authenticate(state, &parts.headers).await?;
    Ok(remember(&mut parts.extensions, AuthUser(user), methods))
}

/// [`authenticated`] for a whole request (in a layer).
pub(crate) async fn authenticated_request(
    state: &ClientState,
    req: &mut Request,
) -> Result<(AuthUser, AuthMethods), ClientError> {
    let (mut parts, body) = std::mem::take(req).into_parts();
    let result = authenticated(state, &mut parts).await;
    *req = Request::from_parts(parts, body);
    result
}

/// Puts the checked user and methods in the request's extensions.
fn remember(extensions: &mut Extensions, user: AuthUser, methods: AuthMethods) -> (AuthUser, AuthMethods) {
    extensions.insert(user.clone());
    extensions.insert(methods.clone());
    (user, methods)
}

/// The active, mirrored user of `token`, and how it was earned.
async fn authenticate_token(state: &ClientState, token: &str) -> Result<(Arc<User>, AuthMethods), ClientError> {
    let config = state.config();
    let checked = match (config.verify_mode, state.keys()) {
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
                return Err(refused(&TokenError::Invalid));
            }
            claims_after_remote_verify(token, &config.verify.user_id_claim)?
        }
    };
    let Checked { user_id, iat, methods } = checked;
    // Revoked (logout-all, password change, deactivation) after this token was issued: a lookup
    // in memory, fed by the background poller (see `revocations`).
    if config.verify_mode == VerifyMode::Local && state.is_revoked(user_id, iat) {
        return Err(refused(&TokenError::Invalid));
    }
    let user = state.user_for(user_id, token).await?;
    if !user.is_active {
        return Err(ClientError::Unauthenticated(ErrorDetail::with_code("User is inactive", "user_inactive")));
    }
    Ok((user, methods))
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
        authenticated(&state, parts).await.map(|(user, _)| user)
    }
}

impl<S> OptionalFromRequestParts<S> for AuthUser
where
    ClientState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ClientError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Option<Self>, Self::Rejection> {
        if let Some(user) = parts.extensions.get::<AuthUser>() {
            return Ok(Some(user.clone()));
        }
        let state = ClientState::from_ref(state);
        let config = state.config();
        match credentials(&parts.headers, &config.auth_header_name, &config.auth_header_types)? {
            None => Ok(None),
            Some(token) => {
                let (user, methods) = authenticate_token(&state, token).await?;
                Ok(Some(remember(&mut parts.extensions, AuthUser(user), methods).0))
            }
        }
    }
}

/// One access-group requirement: `group`, at `level` when given.
#[derive(Debug, Clone)]
struct GroupRequirement {
    group: String,
    level: Option<String>,
}

/// Tower layer: every request must carry a valid bearer token of an active user (401
/// otherwise), and that user must be in each group required with [`group`](Self::group) (403
/// otherwise). The [`AuthUser`] is put in the request extensions for handlers and inner layers.
///
/// ```no_run
/// # use axum::{Router, routing::get};
/// # use client_service::{ClientState, RequireAuthLayer};
/// # fn billing(state: ClientState) -> Router {
/// Router::new()
///     .route("/api/billing/", get(|| async { "ok" }))
///     .layer(RequireAuthLayer::new(state).group("billing", Some("admin")))
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct RequireAuthLayer {
    state: ClientState,
    groups: Arc<[GroupRequirement]>,
}

impl RequireAuthLayer {
    /// The layer for `state`: any authenticated, active user passes.
    pub fn new(state: ClientState) -> Self {
        Self { state, groups: Arc::new([]) }
    }

    /// Also requires membership of `group` (at exactly `level`, when given). Each call adds a
    /// requirement; a user must meet all of them.
    pub fn group(self, group: impl Into<String>, level: Option<&str>) -> Self {
        let mut groups = self.groups.to_vec();
        groups.push(GroupRequirement { group: group.into(), level: level.map(str::to_owned) });
        Self { state: self.state, groups: groups.into() }
    }
}

impl<S> Layer<S> for RequireAuthLayer {
    type Service = RequireAuth<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequireAuth { inner, state: self.state.clone(), groups: self.groups.clone() }
    }
}

/// Service made by [`RequireAuthLayer`].
#[derive(Debug, Clone)]
pub struct RequireAuth<S> {
    inner: S,
    state: ClientState,
    groups: Arc<[GroupRequirement]>,
}

pub(crate) type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

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
        let groups = self.groups.clone();
        Box::pin(async move {
            let user = match authenticated_request(&state, &mut req).await {
                Ok((user, _)) => user,
                Err(e) => return Ok(e.into_response()),
            };
            for g in groups.iter() {
                if let Err(e) = user.require_group(&g.group, g.level.as_deref()) {
                    return Ok(e.into_response());
                }
            }
            inner.call(req).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(value: &str) -> Result<Option<String>, String> {
        let mut headers = HeaderMap::new();
        headers.insert("authorization", value.parse().unwrap());
        credentials(&headers, "authorization", &["Bearer".into()]).map(|t| t.map(str::to_owned)).map_err(|e| match e {
            ClientError::Unauthenticated(d) => d.detail,
            other => panic!("{other:?}"),
        })
    }

    #[test]
    fn headers_are_read_as_the_easyjwt_client_reads_them() {
        assert_eq!(read("Bearer abc"), Ok(Some("abc".into())));
        assert_eq!(read("JWT abc"), Ok(None), "another scheme is no credentials");
        assert_eq!(read("bearer abc"), Ok(None), "schemes are case-sensitive");
        assert_eq!(read("Bearer: abc"), Ok(None), "the old colon form is another scheme");
        assert_eq!(read("Bearer"), Err("Invalid basic header. No credentials provided.".into()));
        let spaces = Err("Invalid basic header. Credentials string should not contain spaces.".into());
        assert_eq!(read("Bearer a b"), spaces);
        assert_eq!(read("Bearer  abc"), spaces, "a double space makes three parts");
        assert_eq!(read(""), Ok(None));
    }
}
