//! The account and token operations every front end shares: the REST endpoints, the Hasura
//! action handlers and the GraphQL schema call these, so login throttling, refresh rotation,
//! revocation and registration rules are written once. They take already-parsed fields and
//! answer [`ApiError`]s; each front end maps those to its own wire shape.

use std::net::IpAddr;

use chrono::DateTime;
use serde_json::Value;
use shared_user::http::{Body, FieldErrors};
use shared_user::user::now_utc;
use shared_user::wire::{ErrorDetail, msg};
use shared_user::{Claims, TokenError, TokenType, User};

use crate::AppState;
use crate::claims;
use crate::error::ApiError;
use crate::passwords::Checked;
use crate::store::{Credentials, NewUser, RefreshRecord, Rotation};
use crate::tokens::Minted;
use crate::validators::{self, UserAttributes};

/// A taken email on user creation (the EasyJWT user model's unique message).
pub const EMAIL_TAKEN: &str = "This email already exists.";
/// Longest first or last name (Django's `AbstractUser`).
const MAX_NAME_LENGTH: usize = 150;

/// A signed-in session: a recorded refresh token and an access token.
#[derive(Debug, Clone)]
pub struct Session {
    /// The user it belongs to.
    pub user: User,
    /// The access token.
    pub access: Minted,
    /// The refresh token (recorded).
    pub refresh: Minted,
}

/// The outcome of a refresh.
#[derive(Debug, Clone)]
pub struct Refreshed {
    /// The user, as looked up at refresh.
    pub user: User,
    /// The new access token.
    pub access: Minted,
    /// The new refresh token when rotating.
    pub refresh: Option<Minted>,
    /// Expiry (epoch seconds) of the refresh token the client holds afterwards.
    pub refresh_exp: i64,
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

/// `{field: [messages]}`.
pub fn field_error(field: &str, messages: &[&str]) -> FieldErrors {
    let mut map = serde_json::Map::new();
    map.insert(field.to_owned(), Value::from(messages.to_vec()));
    FieldErrors(map)
}

/// Every message of a field map, in field order, joined by spaces: the one-line `message` of
/// the Hasura and GraphQL answers. DRF's generic messages, which do not say which field they
/// are about ("This field is required."), are prefixed with the field name.
pub fn field_summary(errors: &FieldErrors) -> String {
    const GENERIC: [&str; 4] = [msg::FIELD_REQUIRED, msg::FIELD_BLANK, msg::FIELD_NULL, msg::FIELD_NOT_STRING];
    let mut out: Vec<String> = Vec::new();
    for (field, messages) in &errors.0 {
        let list = match messages {
            Value::Array(list) => list.iter().filter_map(Value::as_str).collect(),
            Value::String(s) => vec![s.as_str()],
            _ => Vec::new(),
        };
        for message in list {
            if GENERIC.contains(&message) {
                out.push(format!("{field}: {message}"));
            } else {
                out.push(message.to_owned());
            }
        }
    }
    out.join(" ")
}

/// The active user with this exact email and password, if any. An unknown email costs a dummy
/// hash check so it takes as long as a wrong password.
///
/// Brute-force protection runs here, so every login path and password change share it: a
/// locked client gets 429 before any hash work, and every failure is counted.
pub async fn authenticate(
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

/// An access token for `user`, with the configured claim preset.
pub fn mint_access(state: &AppState, user: &User) -> Result<Minted, ApiError> {
    let config = &state.config;
    let extra = claims::access_claims(config.claims_preset, user, &config.hasura_default_role);
    state.keys.mint_with(TokenType::Access, user.id, &extra).map_err(mint_error)
}

/// Starts a session for `user`: records a new refresh token family, mints both tokens and
/// records the login (when `UPDATE_LAST_LOGIN`).
pub async fn start_session(state: &AppState, user: User) -> Result<Session, ApiError> {
    let refresh = state.keys.mint(TokenType::Refresh, user.id).map_err(mint_error)?;
    state.store.record_refresh(&refresh.jti, user.id, &refresh.jti, epoch_to_naive(refresh.exp)).await?;
    let access = mint_access(state, &user)?;
    if state.config.update_last_login {
        state.store.touch_last_login(user.id).await?;
    }
    tracing::info!(user_id = user.id, "token pair issued");
    Ok(Session { user, access, refresh })
}

/// Login with `email` and `password` fields from `body` (400 field errors when missing):
/// throttled, upgrades an outdated hash, and starts a session. Bad credentials are
/// [`ApiError::BadCredentials`].
pub async fn log_in(state: &AppState, body: &Body, ip: Option<IpAddr>) -> Result<Session, ApiError> {
    let mut fields = body.fields();
    let email = fields.required("email");
    let password = fields.required("password");
    fields.finish()?;

    let Some((creds, checked)) = authenticate(state, &email, &password, ip).await? else {
        metrics::counter!("gatehouse_logins_total", "outcome" => "failure").increment(1);
        return Err(ApiError::BadCredentials);
    };
    let user = creds.user;
    if checked.needs_rehash {
        match state.hasher.hash(password).await {
            Ok(hash) => state.store.set_password(user.id, &hash).await?,
            Err(e) => tracing::warn!(error = %e, user_id = user.id, "password rehash failed"),
        }
    }
    metrics::counter!("gatehouse_logins_total", "outcome" => "success").increment(1);
    start_session(state, user).await
}

/// Reads and checks a refresh token, and its record. A rotated token presented again after
/// the grace window revokes its whole family.
pub async fn live_refresh(state: &AppState, token: &str) -> Result<RefreshRecord, ApiError> {
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
            metrics::counter!("gatehouse_refresh_reuse_detected_total").increment(1);
            tracing::warn!(user_id = record.user_id, revoked, "rotated refresh token reused; family revoked");
        }
        return Err(TokenError::Blacklisted.into());
    }
    Ok(record)
}

/// A new access token (with the user looked up again, so claim presets are current) and,
/// when `ROTATE_REFRESH_TOKENS`, a new refresh token. A missing or inactive user is
/// [`ApiError::Unauthenticated`] `no_active_account`.
pub async fn refresh_session(state: &AppState, token: &str) -> Result<Refreshed, ApiError> {
    let counted = crate::metrics::RefreshOutcome::default();
    let record = live_refresh(state, token).await?;
    let user = match state.store.find_user(record.user_id).await? {
        Some(user) if user.is_active => user,
        _ => {
            return Err(ApiError::Unauthenticated(ErrorDetail::with_code(
                msg::NO_ACTIVE_ACCOUNT_FOR_TOKEN,
                "no_active_account",
            )));
        }
    };
    let access = mint_access(state, &user)?;
    if !state.config.rotate_refresh_tokens {
        let refresh_exp = record.expires_at.and_utc().timestamp();
        counted.succeeded();
        return Ok(Refreshed { user, access, refresh: None, refresh_exp });
    }
    let refresh = state.keys.mint(TokenType::Refresh, user.id).map_err(mint_error)?;
    let outcome = state
        .store
        .rotate_refresh(&record, &refresh.jti, epoch_to_naive(refresh.exp), state.config.blacklist_after_rotation)
        .await?;
    if outcome == Rotation::AlreadyUsed {
        return Err(TokenError::Blacklisted.into());
    }
    let refresh_exp = refresh.exp;
    counted.succeeded();
    Ok(Refreshed { user, access, refresh: Some(refresh), refresh_exp })
}

/// Revokes a live refresh token (logout). Revoking twice is [`TokenError::Blacklisted`].
pub async fn revoke_refresh(state: &AppState, token: &str) -> Result<(), ApiError> {
    let record = live_refresh(state, token).await?;
    if !state.store.revoke_refresh(&record.jti).await? {
        return Err(TokenError::Blacklisted.into());
    }
    Ok(())
}

/// Checks any token of ours (either type). A revoked or rotated-away refresh token is a 400
/// `{"non_field_errors":["Token is blacklisted"]}`, like SimpleJWT's verify.
pub async fn verify(state: &AppState, token: &str) -> Result<Claims, ApiError> {
    let claims = state.keys.verifier().decode(token, None)?;
    if claims.token_type == Some(TokenType::Refresh)
        && let Some(record) = state.store.find_refresh(&claims.jti).await?
    {
        let rotated_away = record.replaced_by.is_some() && state.config.blacklist_after_rotation;
        if record.revoked_at.is_some() || rotated_away {
            return Err(FieldErrors::non_field("Token is blacklisted").into());
        }
    }
    Ok(claims)
}

/// Registration from the `email`, `password`, `first_name` and `last_name` fields of `body`.
/// The email is trimmed and lowercased whole (EasyJWT's manager); the password must pass
/// Django's default validators, whose messages are all listed under `"password"`; a taken
/// email is `{"email":["This email already exists."]}`. Every problem is reported at once as
/// [`ApiError::Fields`]. The caller decides whether registration is allowed at all.
pub async fn register(state: &AppState, body: &Body) -> Result<User, ApiError> {
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
    tracing::info!(user_id = user.id, "user created");
    Ok(user)
}
