//! Routes and handlers. Handlers parse the wire shape, call one service function and map its
//! outcome to the reference bodies (service errors through `From<ServiceError> for ApiError`);
//! they hold no SQL and do no service work.

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::middleware::map_response;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use shared_user::User;
use shared_user::http::{Body, both_slashes, method_not_allowed, not_found};

use crate::auth::{CurrentUser, MayCreateUsers};
use crate::client_ip::ClientIp;
use crate::error::ApiError;
use crate::params::registration;
use crate::service::PasswordChange;
use crate::settings::CreateUserPolicy;
use crate::state::AppState;
use crate::{graphql, hasura, service};

/// The public API: tokens, users, sessions, sign-up, GraphQL, the Hasura actions, the
/// revocation feed and the JWKS.
pub fn api(state: &AppState) -> Router<AppState> {
    let mut r = Router::new();
    // Answers carrying tokens are never stored by a cache.
    let no_store = || map_response(crate::headers::no_store);
    r = both_slashes(r, "/auth/token/", post(issue_token).layer(no_store()));
    r = both_slashes(r, "/auth/token/refresh/", post(refresh_token).layer(no_store()));
    r = both_slashes(r, "/auth/token/verify/", post(verify_token));
    r = both_slashes(r, "/auth/token/blacklist/", post(blacklist_token));
    r = both_slashes(r, "/auth/user/", get(get_current_user));
    r = both_slashes(r, "/auth/users/{id}/", get(get_user));
    r = both_slashes(r, "/auth/password-change/", post(change_password));
    if state.settings.allow_create_user != CreateUserPolicy::Off {
        // Off: not routed at all, so every method gets the 404 of an unknown path.
        r = both_slashes(r, "/auth/create-user/", post(create_user));
    }
    r = both_slashes(r, "/hasura/actions/signup/", post(hasura::signup_action).layer(no_store()));
    r = both_slashes(r, "/hasura/actions/login/", post(hasura::login_action).layer(no_store()));
    r = both_slashes(r, "/graphql/", graphql::route(state).layer(no_store()));
    r = crate::sessions::routes(r);
    r = crate::mfa::routes(r);
    r.route(crate::discovery::JWKS_PATH, get(get_jwks))
        .route(crate::discovery::OPENID_CONFIGURATION_PATH, get(get_discovery))
        .route(crate::discovery::OAUTH_SERVER_PATH, get(get_discovery))
}

/// The admin API (`/auth/admin/...`, behind [`crate::auth::staff_factor_gate`]) and the admin
/// console (`/admin/...`).
pub fn admin(state: &AppState) -> Router<AppState> {
    let gate = axum::middleware::from_fn_with_state(state.clone(), crate::auth::staff_factor_gate);
    crate::mfa::admin_routes(crate::admin::routes(Router::new())).route_layer(gate).merge(crate::console::router())
}

/// `GET /healthz` and `GET /readyz`.
pub fn health() -> Router<AppState> {
    Router::new().route("/healthz", get(healthz)).route("/readyz", get(readyz))
}

/// `routes` (some of [`api`], [`admin`] and [`health`], as one listener serves them) with the
/// service's JSON answers for an unknown path (404) and a method a path does not take (405),
/// over `state`.
pub fn finish(routes: Router<AppState>, state: AppState) -> Router {
    routes.fallback(not_found).method_not_allowed_fallback(method_not_allowed).with_state(state)
}

/// `POST /auth/token/`: email + password -> `{"refresh","access"}`.
pub async fn issue_token(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    body: Body,
) -> Result<Response, ApiError> {
    let mut fields = body.fields();
    let email = fields.required("email");
    let password = fields.required("password");
    fields.finish()?;

    let session = service::log_in(&state, &email, &password, ip).await?;
    Ok(Json(json!({"refresh": session.refresh.token, "access": session.access.token})).into_response())
}

/// `POST /auth/token/refresh/`: refresh -> `{"access"}` (+ `"refresh"` when rotating).
pub async fn refresh_token(State(state): State<AppState>, body: Body) -> Result<Response, ApiError> {
    let mut fields = body.fields();
    let token = fields.required("refresh");
    fields.finish()?;

    let refreshed = service::refresh_session(&state, &token).await?;
    Ok(match refreshed.refresh {
        None => Json(json!({"access": refreshed.access.token})),
        Some(refresh) => Json(json!({"access": refreshed.access.token, "refresh": refresh.token})),
    }
    .into_response())
}

/// `POST /auth/token/verify/`: any valid token of ours -> `{}`.
pub async fn verify_token(State(state): State<AppState>, body: Body) -> Result<Response, ApiError> {
    let mut fields = body.fields();
    let token = fields.required("token");
    fields.finish()?;

    service::verify(&state, &token).await?;
    Ok(Json(json!({})).into_response())
}

/// `POST /auth/token/blacklist/`: revoke a refresh token (logout) -> `{}`.
pub async fn blacklist_token(State(state): State<AppState>, body: Body) -> Result<Response, ApiError> {
    let mut fields = body.fields();
    let token = fields.required("refresh");
    fields.finish()?;

    service::revoke_refresh(&state, &token).await?;
    Ok(Json(json!({})).into_response())
}

/// `GET /auth/user/`: the token's own user.
pub async fn get_current_user(CurrentUser(user): CurrentUser) -> Json<User> {
    Json(user)
}

/// `GET /auth/users/{id}/`: own record, or any record for staff.
pub async fn get_user(
    State(state): State<AppState>,
    CurrentUser(me): CurrentUser,
    id: Result<Path<String>, axum::extract::rejection::PathRejection>,
) -> Result<Json<User>, ApiError> {
    // A path segment that is not valid percent-encoded UTF-8 is an unknown user, like any other.
    let Ok(Path(id)) = id else { return Err(ApiError::NotFound) };
    // Django's `<int:id>`: digits only (no sign, no spaces).
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::NotFound);
    }
    let id: i64 = id.parse().map_err(|_| ApiError::NotFound)?;
    Ok(Json(service::user_for(&state, me, id).await?))
}

/// `POST /auth/create-user/`: registration, as `ALLOW_CREATE_USER` permits -> 201 user JSON.
/// The email is trimmed and lowercased whole (EasyJWT's manager); the password must pass
/// Django's default validators, whose messages are all listed under `"password"`.
pub async fn create_user(
    State(state): State<AppState>,
    _: MayCreateUsers,
    ClientIp(ip): ClientIp,
    body: Body,
) -> Result<Response, ApiError> {
    let user = service::register(&state, registration(&body), ip).await?;
    Ok((StatusCode::CREATED, Json(user)).into_response())
}

/// `POST /auth/password-change/`: email + password + new_password -> `{}`. Every refresh token
/// of the user is revoked with the change, so other sessions must log in again.
pub async fn change_password(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    body: Body,
) -> Result<Response, ApiError> {
    let mut fields = body.fields();
    let email = fields.required("email");
    let password = fields.required("password");
    let new_password = fields.required("new_password");
    fields.finish()?;

    let change = PasswordChange { email, password, new_password };
    service::change_password(&state, &change, ip).await?;
    Ok(Json(json!({})).into_response())
}

/// `GET /.well-known/jwks.json`: the public keys that verify our tokens (asymmetric
/// algorithms; an empty set with an HMAC secret, which is never published). Cacheable for
/// `JWKS_MAX_AGE`, with an `ETag`; a matching `If-None-Match` answers 304 without a body.
pub async fn get_jwks(State(state): State<AppState>, headers: axum::http::HeaderMap) -> Response {
    use axum::http::{HeaderValue, header};
    let published = state.keys.published();
    let cache = key_cache_control(&state);
    let etag = HeaderValue::from_str(&published.etag).unwrap_or(HeaderValue::from_static("\"\""));
    let unchanged =
        headers.get_all(header::IF_NONE_MATCH).iter().filter_map(|v| v.to_str().ok()).any(|v| published.matches(v));
    if unchanged {
        return (StatusCode::NOT_MODIFIED, [(header::CACHE_CONTROL, cache), (header::ETAG, etag)]).into_response();
    }
    let json = HeaderValue::from_static("application/json");
    ([(header::CONTENT_TYPE, json), (header::CACHE_CONTROL, cache), (header::ETAG, etag)], published.body)
        .into_response()
}

/// `GET /.well-known/openid-configuration` and `GET /.well-known/oauth-authorization-server`:
/// the issuer's metadata ([`crate::discovery::document`]), cacheable like the JWKS; the JSON
/// 404 of an unknown path while `ISSUER` is not a URL (the log says why, at start-up).
pub async fn get_discovery(State(state): State<AppState>) -> Result<Response, ApiError> {
    use axum::http::header;
    let document = crate::discovery::document(&state.settings).map_err(|why| {
        tracing::debug!(%why, "discovery asked for");
        ApiError::NotFound
    })?;
    Ok(([(header::CACHE_CONTROL, key_cache_control(&state))], Json(document)).into_response())
}

/// `Cache-Control` of the JWKS and the discovery documents: `public, max-age=JWKS_MAX_AGE`.
fn key_cache_control(state: &AppState) -> axum::http::HeaderValue {
    let value = format!("public, max-age={}", state.settings.jwks_max_age.as_secs());
    axum::http::HeaderValue::from_str(&value).unwrap_or(axum::http::HeaderValue::from_static("no-cache"))
}

/// `GET /healthz`: the process answers.
pub async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// `GET /readyz`: the database answers.
pub async fn readyz(State(state): State<AppState>) -> Response {
    match state.store.db().ping().await {
        Ok(()) => Json(json!({"status": "ok"})).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"status": "unavailable"}))).into_response()
        }
    }
}
