//! Routes and handlers. Handlers parse the wire shape, call the token/password/store services
//! and map outcomes to the reference bodies; they hold no SQL.

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
use crate::auth::CurrentUser;
use crate::error::ApiError;
use crate::store::{RefreshRecord, Rotation};

/// All routes of the auth-service.
pub fn router(state: AppState) -> Router {
    let mut r = Router::new();
    r = both_slashes(r, "/auth/token/", post(issue_token));
    r = both_slashes(r, "/auth/token/refresh/", post(refresh_token));
    r = both_slashes(r, "/auth/token/verify/", post(verify_token));
    r = both_slashes(r, "/auth/token/blacklist/", post(blacklist_token));
    r = both_slashes(r, "/auth/user/", get(get_current_user));
    r = both_slashes(r, "/auth/users/{id}/", get(get_user));
    r.route("/healthz", get(healthz))
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

/// `POST /auth/token/`: email + password -> `{"refresh","access"}`.
pub async fn issue_token(State(state): State<AppState>, body: Body) -> Result<Response, ApiError> {
    let mut fields = body.fields();
    let email = fields.required("email");
    let password = fields.required("password");
    fields.finish()?;

    let found = state.store.find_by_email(&email).await?;
    let checked = state.hasher.check(password.clone(), found.as_ref().map(|c| c.password_hash.clone())).await?;
    let Some(creds) = found.filter(|c| checked.ok && c.user.is_active) else {
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
    if claims.token_type == Some(TokenType::Refresh) {
        if let Some(record) = state.store.find_refresh(&claims.jti).await? {
            let rotated_away = record.replaced_by.is_some() && state.config.blacklist_after_rotation;
            if record.revoked_at.is_some() || rotated_away {
                return Err(FieldErrors::non_field("Token is blacklisted").into());
            }
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
    let id: i64 = id.parse().map_err(|_| ApiError::NotFound)?;
    if id == me.id {
        return Ok(Json(me));
    }
    if !(me.is_staff || me.is_superuser) {
        return Err(ApiError::Forbidden);
    }
    state.store.find_user(id).await?.map(Json).ok_or(ApiError::NotFound)
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
