//! Routes and handlers. Handlers parse the wire shape, call the token/password/store services
//! and map outcomes to the reference bodies; they hold no SQL.

use std::net::IpAddr;

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::DateTime;
use serde_json::{Value, json};
use shared_user::http::{Body, FieldErrors, both_slashes, method_not_allowed, not_found};
use shared_user::user::now_utc;
use shared_user::wire::{ErrorDetail, msg};
use shared_user::{TokenError, TokenType, User};

use crate::AppState;
use crate::auth::{CurrentUser, MayCreateUsers};
use crate::config::CreateUserPolicy;
use crate::error::ApiError;
use crate::passwords::Checked;
use crate::store::{Credentials, NewUser, RefreshRecord, Rotation};
use crate::throttle::ClientIp;
use crate::validators::{self, UserAttributes};

/// Bad credentials on password change.
const INVALID_CREDENTIALS: &str = "Invalid credentials.";
/// A taken email on user creation (the EasyJWT user model's unique message).
const EMAIL_TAKEN: &str = "This email already exists.";
/// Longest first or last name (Django's `AbstractUser`).
const MAX_NAME_LENGTH: usize = 150;

/// All routes of the auth-service.
pub fn router(state: AppState) -> Router {
    let mut r = Router::new();
    r = both_slashes(r, "/auth/token/", post(issue_token));
    r = both_slashes(r, "/auth/token/refresh/", post(refresh_token));
    r = both_slashes(r, "/auth/token/verify/", post(verify_token));
    r = both_slashes(r, "/auth/token/blacklist/", post(blacklist_token));
    r = both_slashes(r, "/auth/user/", get(get_current_user));
    r = both_slashes(r, "/auth/users/{id}/", get(get_user));
    r = both_slashes(r, "/auth/password-change/", post(change_password));
    if state.config.allow_create_user != CreateUserPolicy::Off {
        // Off: not routed at all, so every method gets the 404 of an unknown path.
        r = both_slashes(r, "/auth/create-user/", post(create_user));
    }
    r.route("/.well-known/jwks.json", get(get_jwks))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

fn epoch_to_naive(exp: i64) -> chrono::NaiveDateTime {
    DateTime::from_timestamp(exp, 0).map(|t| t.naive_utc()).unwrap_or_else(now_utc)
}

fn mint_error(e: shared_user::jsonwebtoken::errors::Error) -> ApiError {
    ApiError::Internal(format!("signing failed: {e}"))
}

fn too_long(max: usize) -> String {
    format!("Ensure this field has no more than {max} characters.")
}

/// The active user with this exact email and password, if any. An unknown email costs a dummy
/// hash check so it takes as long as a wrong password.
///
/// Brute-force protection runs here, so obtain and password change share it: a locked client
/// gets 429 before any hash work, and every failure is counted.
async fn authenticate(
    state: &AppState,
    email: &str,
    password: &str,
    ip: Option<IpAddr>,
) -> Result<Option<(Credentials, Checked)>, ApiError> {
    state.throttle.check(&state.store, email, ip).await?;
    let found = state.store.find_by_email(email).await?;
    let checked = state.hasher.check(password.to_owned(), found.as_ref().map(|c| c.password_hash.clone())).await?;
    let result = found.filter(|c| checked.ok && c.user.is_active).map(|c| (c, checked));
    if result.is_some() {
        state.throttle.succeeded(&state.store, email, ip).await?;
    } else {
        state.throttle.failed(&state.store, email, ip).await?;
    }
    Ok(result)
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

    let Some((creds, checked)) = authenticate(&state, &email, &password, ip).await? else {
        return Err(ApiError::BadCredentials);
    };
    let user_id = creds.user.id;
    if checked.needs_rehash {
        match state.hasher.hash(password).await {
            Ok(hash) => state.store.set_password(user_id, &hash).await?,
            Err(e) => tracing::warn!(error = %e, user_id, "password rehash failed"),
        }
    }
    let refresh = state.keys.mint(TokenType::Refresh, user_id).map_err(mint_error)?;
    state.store.record_refresh(&refresh.jti, user_id, &refresh.jti, epoch_to_naive(refresh.exp)).await?;
    let access = state.keys.mint(TokenType::Access, user_id).map_err(mint_error)?;
    if state.config.update_last_login {
        state.store.touch_last_login(user_id).await?;
    }
    tracing::info!(user_id, "token pair issued");
    Ok(Json(json!({"refresh": refresh.token, "access": access.token})).into_response())
}

/// Reads and checks a refresh token, and its record.
async fn live_refresh(state: &AppState, token: &str) -> Result<(i64, RefreshRecord), ApiError> {
    let claims = state.keys.verifier().decode(token, Some(TokenType::Refresh))?;
    let record = state.store.find_refresh(&claims.jti).await?.ok_or(TokenError::Invalid)?;
    if claims.user_id != Some(record.user_id) {
        return Err(TokenError::Invalid.into());
    }
    if record.revoked_at.is_some() {
        return Err(TokenError::Blacklisted.into());
    }
    if let (Some(replaced_at), true) = (record.replaced_at, state.config.blacklist_after_rotation) {
        let grace = chrono::Duration::from_std(state.config.refresh_reuse_grace).unwrap_or_default();
        if now_utc() - replaced_at > grace {
            let revoked = state.store.revoke_family(&record.family).await?;
            tracing::warn!(user_id = record.user_id, revoked, "rotated refresh token reused; family revoked");
        }
        return Err(TokenError::Blacklisted.into());
    }
    Ok((record.user_id, record))
}

/// `POST /auth/token/refresh/`: refresh -> `{"access"}` (+ `"refresh"` when rotating).
pub async fn refresh_token(State(state): State<AppState>, body: Body) -> Result<Response, ApiError> {
    let mut fields = body.fields();
    let token = fields.required("refresh");
    fields.finish()?;

    let (user_id, record) = live_refresh(&state, &token).await?;
    match state.store.find_user(user_id).await? {
        Some(user) if user.is_active => {}
        _ => {
            return Err(ApiError::Unauthenticated(ErrorDetail::with_code(
                msg::NO_ACTIVE_ACCOUNT_FOR_TOKEN,
                "no_active_account",
            )));
        }
    }
    let access = state.keys.mint(TokenType::Access, user_id).map_err(mint_error)?;
    if !state.config.rotate_refresh_tokens {
        return Ok(Json(json!({"access": access.token})).into_response());
    }
    let refresh = state.keys.mint(TokenType::Refresh, user_id).map_err(mint_error)?;
    let outcome = state
        .store
        .rotate_refresh(&record, &refresh.jti, epoch_to_naive(refresh.exp), state.config.blacklist_after_rotation)
        .await?;
    if outcome == Rotation::AlreadyUsed {
        return Err(TokenError::Blacklisted.into());
    }
    Ok(Json(json!({"access": access.token, "refresh": refresh.token})).into_response())
}

/// `POST /auth/token/verify/`: any valid token of ours -> `{}`.
pub async fn verify_token(State(state): State<AppState>, body: Body) -> Result<Response, ApiError> {
    let mut fields = body.fields();
    let token = fields.required("token");
    fields.finish()?;

    let claims = state.keys.verifier().decode(&token, None)?;
    if claims.token_type == Some(TokenType::Refresh)
        && let Some(record) = state.store.find_refresh(&claims.jti).await?
    {
        let rotated_away = record.replaced_by.is_some() && state.config.blacklist_after_rotation;
        if record.revoked_at.is_some() || rotated_away {
            return Err(FieldErrors::non_field("Token is blacklisted").into());
        }
    }
    Ok(Json(json!({})).into_response())
}

/// `POST /auth/token/blacklist/`: revoke a refresh token (logout) -> `{}`.
pub async fn blacklist_token(State(state): State<AppState>, body: Body) -> Result<Response, ApiError> {
    let mut fields = body.fields();
    let token = fields.required("refresh");
    fields.finish()?;

    let (_, record) = live_refresh(&state, &token).await?;
    if !state.store.revoke_refresh(&record.jti).await? {
        return Err(TokenError::Blacklisted.into());
    }
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
    Path(id): Path<String>,
) -> Result<Json<User>, ApiError> {
    // Django's `<int:id>`: digits only (no sign, no spaces).
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::NotFound);
    }
    let id: i64 = id.parse().map_err(|_| ApiError::NotFound)?;
    if id == me.id {
        return Ok(Json(me));
    }
    if !(me.is_staff || me.is_superuser) {
        return Err(ApiError::Forbidden);
    }
    state.store.find_user(id).await?.map(Json).ok_or(ApiError::NotFound)
}

/// `POST /auth/create-user/`: registration, as `ALLOW_CREATE_USER` permits -> 201 user JSON.
/// The email is trimmed and lowercased whole (EasyJWT's manager); the password must pass
/// Django's default validators, whose messages are all listed under `"password"`.
pub async fn create_user(State(state): State<AppState>, _: MayCreateUsers, body: Body) -> Result<Response, ApiError> {
    let mut fields = body.fields();
    let raw_email = fields.required("email");
    let password = fields.required("password");
    let first_name = fields.optional("first_name").unwrap_or_default();
    let last_name = fields.optional("last_name").unwrap_or_default();

    let mut email = None;
    if !raw_email.is_empty() {
        if raw_email.trim().chars().count() > validators::MAX_EMAIL_LENGTH {
            fields.error("email", too_long(validators::MAX_EMAIL_LENGTH));
        } else if let Some(normalized) = validators::normalize_email(&raw_email) {
            if state.store.find_by_email(&normalized).await?.is_some() {
                fields.error("email", EMAIL_TAKEN);
            } else {
                email = Some(normalized);
            }
        } else {
            fields.error("email", validators::INVALID_EMAIL);
        }
    }
    if !password.is_empty() {
        let folded = raw_email.trim().to_lowercase();
        let user = UserAttributes { first_name: &first_name, last_name: &last_name, email: &folded };
        for problem in validators::password_problems(&password, &user) {
            fields.error("password", problem);
        }
    }
    for (field, value) in [("first_name", &first_name), ("last_name", &last_name)] {
        if value.chars().count() > MAX_NAME_LENGTH {
            fields.error(field, too_long(MAX_NAME_LENGTH));
        }
    }
    fields.finish()?;
    let email = email.ok_or_else(|| ApiError::Internal("validated email missing".into()))?;

    let password_hash = state.hasher.hash(password).await?;
    let new =
        NewUser { email, password_hash, first_name, last_name, is_staff: false, is_superuser: false, groups: vec![] };
    let user = match state.store.create_user(new).await {
        Ok(user) => user,
        // Lost a race with another registration of the same email.
        Err(shared_user::DbError::Unique) => return Err(field_error("email", &[EMAIL_TAKEN]).into()),
        Err(e) => return Err(e.into()),
    };
    tracing::info!(user_id = user.id, "user created over HTTP");
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

    // Credentials first: validating the new password against the account's names before
    // would tell a stranger what those names are.
    let Some((Credentials { user, .. }, _)) = authenticate(&state, &email, &password, ip).await? else {
        return Err(FieldErrors::non_field(INVALID_CREDENTIALS).into());
    };
    let attributes = UserAttributes { first_name: &user.first_name, last_name: &user.last_name, email: &user.email };
    let problems = validators::password_problems(&new_password, &attributes);
    if !problems.is_empty() {
        return Err(field_error("new_password", &problems).into());
    }
    let hash = state.hasher.hash(new_password).await?;
    let revoked = state.store.change_password(user.id, &hash).await?;
    tracing::info!(user_id = user.id, revoked, "password changed; refresh tokens revoked");
    Ok(Json(json!({})).into_response())
}

fn field_error(field: &str, messages: &[&str]) -> FieldErrors {
    let mut map = serde_json::Map::new();
    map.insert(field.to_owned(), Value::from(messages.to_vec()));
    FieldErrors(map)
}

/// `GET /.well-known/jwks.json`: the public keys that verify our tokens (asymmetric
/// algorithms; an empty set with an HMAC secret, which is never published).
pub async fn get_jwks(State(state): State<AppState>) -> Json<Value> {
    Json(serde_json::to_value(&*state.keys.jwks()).unwrap_or_else(|_| json!({"keys": []})))
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
