//! The account and token operations every front end shares: the REST endpoints, the Hasura
//! action handlers and the GraphQL schema call these, so login throttling, refresh rotation,
//! revocation and registration rules are written once. They take typed inputs (never a
//! front end's request) and answer a [`ServiceError`]; each front end maps it once to its own
//! wire shape.

pub mod admin;
mod error;
pub mod mfa;
pub mod passkeys;
pub mod sessions;

use std::net::IpAddr;

use chrono::DateTime;
use serde_json::{Map, Value};
use shared_user::http::FieldErrors;
use shared_user::user::now_utc;
use shared_user::wire::msg;
use shared_user::{Claims, TokenError, TokenType, User};

pub use self::error::{AccessRefused, MfaChallenge, ServiceError};
use crate::audit::{AuditEvent, AuditKind};
use crate::passwords::Checked;
use crate::state::AppState;
use crate::store::{Credentials, NewUser, RefreshRecord, Rotation};
use crate::tokens::{self, Minted};
use crate::validators::{self, UserAttributes};
use crate::{claims, roles};

/// Bad credentials on password change (a 400 field error, as EasyJWT answers).
pub const INVALID_CREDENTIALS: &str = "Invalid credentials.";
/// A taken email on user creation (the EasyJWT user model's unique message).
pub const EMAIL_TAKEN: &str = "This email already exists.";
/// Longest first or last name (Django's `AbstractUser`).
pub(crate) const MAX_NAME_LENGTH: usize = 150;

/// A signed-in session: a recorded refresh token and an access token.
#[derive(Debug, Clone)]
pub struct Session {
    /// The user it belongs to.
    pub user: User,
    /// The access token.
    pub access: Minted,
    /// The refresh token (recorded); its `jti` names the session (the rotation family).
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
    /// The session (rotation family) the refresh token belongs to: see [`session_started`].
    pub family: String,
}

/// A new account, as every signup path (REST, GraphQL, Hasura) hands it to [`register`].
/// No `Debug`: it holds a password.
#[derive(Clone, Default)]
pub struct Registration {
    /// Email as given (trimmed and lowercased on creation); empty when not given.
    pub email: String,
    /// Password as given; empty when not given.
    pub password: String,
    /// First name (may be empty).
    pub first_name: String,
    /// Last name (may be empty).
    pub last_name: String,
    /// Problems the front end found reading its request (a missing or non-string field),
    /// reported in one answer with the service's own findings, fields given as empty.
    pub read_errors: Option<FieldErrors>,
}

/// What an admin's creation adds to a [`Registration`]: flags, groups, and the
/// `user_created` event to record with the new row (its user id is filled in).
pub(crate) struct Grant {
    pub(crate) is_staff: bool,
    pub(crate) is_superuser: bool,
    pub(crate) access_groups: Vec<shared_user::AccessGroup>,
    pub(crate) event: AuditEvent,
}

/// A password change by the account's owner. No `Debug`: it holds passwords.
#[derive(Clone)]
pub struct PasswordChange {
    /// The account's email.
    pub email: String,
    /// Its current password.
    pub password: String,
    /// The new password (Django's validators apply).
    pub new_password: String,
}

/// Who a checked token belongs to and when its session began (graphql-jwt's `username` and
/// `origIat`).
#[derive(Debug, Clone)]
pub struct TokenOrigin {
    /// The owner's email (the username), when the user still exists.
    pub username: Option<String>,
    /// Epoch seconds: when the token's session began (the sign-in, kept across refreshes and
    /// rotations). An access token records it in its `jti`; one that does not (minted by an
    /// earlier version) reports its own `iat`.
    pub signed_in_at: i64,
}

fn epoch_to_naive(exp: i64) -> chrono::NaiveDateTime {
    DateTime::from_timestamp(exp, 0).map(|t| t.naive_utc()).unwrap_or_else(now_utc)
}

fn mint_error(e: shared_user::jsonwebtoken::errors::Error) -> ServiceError {
    ServiceError::Internal(format!("signing failed: {e}"))
}

pub(crate) fn too_long(max: usize) -> String {
    format!("Ensure this field has no more than {max} characters.")
}

/// `{field: [messages]}`.
pub fn field_error(field: &str, messages: &[&str]) -> FieldErrors {
    let mut map = serde_json::Map::new();
    map.insert(field.to_owned(), Value::from(messages.to_vec()));
    FieldErrors(map)
}

/// Refuses text fields holding a character none may hold ([`validators::text_problem`]: NUL,
/// control and bidirectional formatting characters), as `{field: [message], ...}`. Every
/// service function that stores or looks up text given by a caller runs it first, so every
/// front end (REST, GraphQL, Hasura, admin API, console) refuses such input the same way.
pub fn check_text(fields: &[(&str, &str)]) -> Result<(), FieldErrors> {
    let mut errors = Fields(serde_json::Map::new());
    for (field, value) in fields {
        if let Some(problem) = validators::text_problem(value) {
            errors.error(field, problem);
        }
    }
    errors.finish()
}

/// Every message of a field map, in field order, joined by spaces: the one-line `message` of
/// the Hasura and GraphQL answers. DRF's generic messages, which do not say which field they
/// are about ("This field is required."), are prefixed with the field name.
pub fn field_summary(errors: &FieldErrors) -> String {
    const GENERIC: [&str; 6] = [
        msg::FIELD_REQUIRED,
        msg::FIELD_BLANK,
        msg::FIELD_NULL,
        msg::FIELD_NOT_STRING,
        validators::NULL_CHARACTERS,
        validators::CONTROL_CHARACTERS,
    ];
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

/// A password check that succeeded, not yet settled: [`log_in`] writes its throttle
/// settlement with the session it opens, [`authenticate`] on its own.
#[derive(Debug, Clone)]
pub struct SignIn {
    /// The account.
    pub creds: Credentials,
    /// The check's outcome (whether the stored hash wants an upgrade).
    pub checked: Checked,
    /// The counted attempt.
    attempt: crate::throttle::Attempt,
}

/// The active user with this exact email and password, if any, with the login counters
/// settled. An unknown email costs a dummy hash check so it takes as long as a wrong password.
///
/// Brute-force protection runs here, so every login path and password change share it: every
/// attempt is counted before any hash work, a locked client gets 429, and a success refunds.
pub async fn authenticate(
    state: &AppState,
    email: &str,
    password: &str,
    ip: Option<IpAddr>,
) -> Result<Option<(Credentials, Checked)>, ServiceError> {
    let Some(sign_in) = check_password(state, email, password, ip).await? else { return Ok(None) };
    state.throttle.succeeded(&state.store, &sign_in.attempt).await?;
    Ok(Some((sign_in.creds, sign_in.checked)))
}

/// [`authenticate`] without the settlement of a success (the caller writes it, see [`SignIn`]).
/// A failure is recorded (`login_failed`) and padded to the failure floor here.
pub async fn check_password(
    state: &AppState,
    email: &str,
    password: &str,
    ip: Option<IpAddr>,
) -> Result<Option<SignIn>, ServiceError> {
    // No account has such an email: refuse it before anything is written (throttle keys) or
    // looked up (PostgreSQL refuses a NUL).
    check_text(&[("email", email)])?;
    // No account has a longer email: refuse it before anything is written (throttle keys).
    if email.trim().chars().count() > validators::MAX_EMAIL_LENGTH {
        return Err(field_error("email", &[&too_long(validators::MAX_EMAIL_LENGTH)]).into());
    }
    let started = tokio::time::Instant::now();
    // Counted before the hash, so parallel guesses cannot pass the limit.
    let attempt = match state.throttle.reserve(&state.store, email, ip).await {
        Ok(attempt) => attempt,
        Err(e) => {
            if matches!(e, crate::throttle::ThrottleError::Locked(_))
                && crate::audit::should_record_throttled(email, ip)
            {
                let user_id = state.store.find_by_email(email).await?.map(|c| c.user.id);
                state.store.record_audit(&AuditEvent { user_id, ..AuditEvent::new(AuditKind::Throttled) }).await?;
            }
            return Err(e.into());
        }
    };
    let found = state.store.find_by_email(email).await?;
    let checked = state.hasher.check(password.to_owned(), found.as_ref().map(|c| c.password_hash.clone())).await?;
    let known_id = found.as_ref().map(|c| c.user.id);
    match found.filter(|c| checked.ok && c.user.is_active) {
        Some(creds) => Ok(Some(SignIn { creds, checked, attempt })),
        None => {
            state
                .store
                .record_audit(&AuditEvent { user_id: known_id, ..AuditEvent::new(AuditKind::LoginFailed) })
                .await?;
            state.throttle.pad_failure(started).await;
            Ok(None)
        }
    }
}

/// An access token for `user` in the session that began at `session_started_ms` (epoch
/// milliseconds, recorded in its `jti`: see [`crate::tokens::session_jti`]), with the
/// configured claim preset (its default role is the user's [`roles::role`]), and `amr` (how the
/// user proved who they are, RFC 8176) right after the user id when the login used a second
/// factor; a password-only login's tokens carry no `amr`.
pub fn mint_access(
    state: &AppState,
    user: &User,
    session_started_ms: i64,
    amr: &[String],
) -> Result<Minted, ServiceError> {
    let config = &state.settings;
    let mut extra = amr_claim(amr);
    extra.extend(claims::access_claims(config.claims_preset, user, roles::role(config, user)));
    state.keys.mint_in_session(TokenType::Access, user.id, &extra, session_started_ms).map_err(mint_error)
}

/// `{"amr": [...]}`, or nothing for a password-only login.
fn amr_claim(amr: &[String]) -> Map<String, Value> {
    let mut extra = Map::new();
    if !amr.is_empty() {
        extra.insert("amr".into(), Value::from(amr.to_vec()));
    }
    extra
}

/// Starts a session for `user`: records a new refresh token family, mints both tokens and
/// records the login (when `UPDATE_LAST_LOGIN`). For a user who did not just sign in with a
/// password (a sign-up's first session); [`log_in`] opens its own.
pub async fn start_session(state: &AppState, user: User) -> Result<Session, ServiceError> {
    open_session(state, user, crate::store::sessions::LoginWrites::default(), &[]).await
}

/// [`start_session`] with what the login also writes (`writes`: throttle settlement, new
/// hash), all in one transaction; `last_login` and the session cap are filled in here.
/// `amr` is what the login proved (empty: a password only), carried by both tokens and by
/// every token a refresh of the session mints.
pub(crate) async fn open_session(
    state: &AppState,
    user: User,
    mut writes: crate::store::sessions::LoginWrites,
    amr: &[String],
) -> Result<Session, ServiceError> {
    sessions::wait_past_watermark(state, user.id).await?;
    // The sign-in time, recorded in the family id (the first refresh token's `jti`) and in
    // every access token of the session.
    let started_ms = chrono::Utc::now().timestamp_millis();
    let refresh =
        state.keys.mint_in_session(TokenType::Refresh, user.id, &amr_claim(amr), started_ms).map_err(mint_error)?;
    let access = mint_access(state, &user, started_ms, amr)?;
    let new = crate::store::sessions::NewSession {
        jti: refresh.jti.clone(),
        user_id: user.id,
        expires_at: epoch_to_naive(refresh.exp),
    };
    writes.last_login = state.settings.update_last_login;
    writes.max_sessions = state.settings.session_cap();
    let mut event = AuditEvent::new(AuditKind::LoginSucceeded).user(user.id).actor(user.id);
    if !amr.is_empty() {
        event = event.detail(serde_json::json!({"amr": amr}));
    }
    let capped = state.store.open_session(&new, &event, &writes).await?;
    if !capped.is_empty() {
        metrics::counter!("gatehouse_sessions_capped_total").increment(capped.len() as u64);
    }
    tracing::info!(user_id = user.id, "token pair issued");
    Ok(Session { user, access, refresh })
}

/// Login with `email` and `password` from the client at `ip`: throttled, upgrades an
/// outdated hash, and starts a session. Everything a success writes (throttle settlement,
/// new hash, `last_login`, refresh record, session, the sessions the cap ends, audit events)
/// is one transaction after the password check. Bad credentials are
/// [`ServiceError::BadCredentials`].
pub async fn log_in(
    state: &AppState,
    email: &str,
    password: &str,
    ip: Option<IpAddr>,
) -> Result<Session, ServiceError> {
    log_in_admitted(state, email, password, ip, |_| true).await
}

/// [`log_in`] for a front end only some users may sign in to (the admin console): after the
/// right password, a user `admit` refuses is [`ServiceError::Forbidden`] (the attempt is
/// settled as a success, and no session is opened). A user with a second factor is
/// [`ServiceError::MfaRequired`], as for [`log_in`].
pub async fn log_in_admitted(
    state: &AppState,
    email: &str,
    password: &str,
    ip: Option<IpAddr>,
    admit: impl Fn(&User) -> bool,
) -> Result<Session, ServiceError> {
    let Some(sign_in) = check_password(state, email, password, ip).await? else {
        metrics::counter!("gatehouse_logins_total", "outcome" => "failure").increment(1);
        return Err(ServiceError::BadCredentials);
    };
    if !admit(&sign_in.creds.user) {
        state.throttle.succeeded(&state.store, &sign_in.attempt).await?;
        return Err(ServiceError::Forbidden);
    }
    let user = sign_in.creds.user;
    let mut password_hash = None;
    if sign_in.checked.needs_rehash {
        match state.hasher.hash(password.to_owned()).await {
            Ok(hash) => password_hash = Some(hash),
            Err(e) => tracing::warn!(error = %e, user_id = user.id, "password rehash failed"),
        }
    }
    let factors = state.store.factor_count(user.id).await?;
    if factors.any() {
        // The password step is done; the login waits for the second factor, and nothing of
        // a success is written yet (the counters keep this attempt until it completes).
        let challenge = mfa::begin_login(state, &user, factors, sign_in.attempt, password_hash).await?;
        return Err(ServiceError::MfaRequired(challenge));
    }
    let writes = crate::store::sessions::LoginWrites {
        throttle: state.throttle.settlement(&sign_in.attempt),
        password_hash,
        ..Default::default()
    };
    metrics::counter!("gatehouse_logins_total", "outcome" => "success").increment(1);
    open_session(state, user, writes, &[]).await
}

/// Reads and checks a refresh token, and its record. A rotated token presented again after
/// the grace window revokes its whole family.
pub async fn live_refresh(state: &AppState, token: &str) -> Result<RefreshRecord, ServiceError> {
    Ok(live_refresh_claims(state, token).await?.0)
}

/// [`live_refresh`] with the token's claims.
pub async fn live_refresh_claims(state: &AppState, token: &str) -> Result<(RefreshRecord, Claims), ServiceError> {
    let claims = state.keys.verifier().decode(token, Some(TokenType::Refresh))?;
    let record = state.store.find_refresh(&claims.jti).await?.ok_or(TokenError::Invalid)?;
    if claims.user_id != Some(record.user_id) {
        return Err(TokenError::Invalid.into());
    }
    if record.revoked_at.is_some() {
        return Err(TokenError::Blacklisted.into());
    }
    if let (Some(replaced_at), true) = (record.replaced_at, state.settings.blacklist_after_rotation) {
        let grace = chrono::Duration::from_std(state.settings.refresh_reuse_grace).unwrap_or_default();
        if now_utc() - replaced_at > grace {
            let event = AuditEvent::new(AuditKind::RefreshReuseDetected)
                .user(record.user_id)
                .detail(serde_json::json!({"session": record.family}));
            let revoked = state.store.revoke_family_recorded(&record.family, &event).await?;
            metrics::counter!("gatehouse_refresh_reuse_detected_total").increment(1);
            tracing::warn!(user_id = record.user_id, revoked, "rotated refresh token reused; family revoked");
        }
        return Err(TokenError::Blacklisted.into());
    }
    // Dead too when issued before the user's revocation watermark.
    sessions::check_watermark(state, record.user_id, claims.iat).await?;
    Ok((record, claims))
}

/// A new access token (with the user looked up again, so claim presets are current) and,
/// when `ROTATE_REFRESH_TOKENS`, a new refresh token. A missing or inactive user is
/// [`ServiceError::NoActiveAccount`].
pub async fn refresh_session(state: &AppState, token: &str) -> Result<Refreshed, ServiceError> {
    let counted = crate::metrics::RefreshOutcome::default();
    let (record, claims) = live_refresh_claims(state, token).await?;
    let user = match state.store.find_user(record.user_id).await? {
        Some(user) if user.is_active => user,
        _ => return Err(ServiceError::NoActiveAccount),
    };
    // What the login proved stays with the session: the refresh token carries it, signed.
    let amr = claims.amr.clone();
    let access = mint_access(state, &user, session_started_ms(state, &record.family).await?, &amr)?;
    let family = record.family.clone();
    if !state.settings.rotate_refresh_tokens {
        let refresh_exp = record.expires_at.and_utc().timestamp();
        touch_session(state, &record.family, record.expires_at).await;
        counted.succeeded();
        return Ok(Refreshed { user, access, refresh: None, refresh_exp, family });
    }
    let refresh = state.keys.mint_with(TokenType::Refresh, user.id, &amr_claim(&amr)).map_err(mint_error)?;
    let outcome = state
        .store
        .rotate_refresh(&record, &refresh.jti, epoch_to_naive(refresh.exp), state.settings.blacklist_after_rotation)
        .await?;
    if outcome == Rotation::AlreadyUsed {
        return Err(TokenError::Blacklisted.into());
    }
    let refresh_exp = refresh.exp;
    touch_session(state, &record.family, epoch_to_naive(refresh_exp)).await;
    counted.succeeded();
    Ok(Refreshed { user, access, refresh: Some(refresh), refresh_exp, family })
}

/// Records a session's last use, best effort: the refresh has happened (and a rotation is
/// committed), so failing it now would send the client to retry with a token already rotated
/// away.
async fn touch_session(state: &AppState, family: &str, expires_at: chrono::NaiveDateTime) {
    if let Err(e) = state.store.touch_session(family, expires_at).await {
        tracing::warn!(error = %e, "session last use not recorded");
    }
}

/// Revokes a live refresh token (logout). Revoking twice is [`TokenError::Blacklisted`].
pub async fn revoke_refresh(state: &AppState, token: &str) -> Result<(), ServiceError> {
    let record = live_refresh(state, token).await?;
    let event = AuditEvent::new(AuditKind::SessionRevoked)
        .user(record.user_id)
        .actor(record.user_id)
        .detail(serde_json::json!({"session": record.family}));
    if !state.store.revoke_refresh_recorded(&record.jti, &event).await? {
        return Err(TokenError::Blacklisted.into());
    }
    Ok(())
}

/// Checks any token of ours (either type). A revoked or rotated-away refresh token is
/// [`ServiceError::Revoked`].
pub async fn verify(state: &AppState, token: &str) -> Result<Claims, ServiceError> {
    let claims = state.keys.verifier().decode(token, None)?;
    if let Some(user_id) = claims.user_id {
        sessions::check_watermark(state, user_id, claims.iat).await?;
    }
    if claims.token_type == Some(TokenType::Refresh)
        && let Some(record) = state.store.find_refresh(&claims.jti).await?
    {
        let rotated_away = record.replaced_by.is_some() && state.settings.blacklist_after_rotation;
        if record.revoked_at.is_some() || rotated_away {
            return Err(ServiceError::Revoked);
        }
    }
    Ok(claims)
}

/// The active user a bearer access token signs in, with the token's claims: the one check
/// behind the REST `CurrentUser` extractor and GraphQL's signed-in fields, each
/// of which words the [`ServiceError::Unauthenticated`] reasons its own way. The account is
/// checked before the revocation watermark, so a deactivated user is reported as
/// [`AccessRefused::Inactive`], not as a revoked token.
pub async fn authenticate_access(state: &AppState, token: &str) -> Result<(User, Claims), ServiceError> {
    let refused = ServiceError::Unauthenticated;
    let claims =
        state.keys.verifier().decode(token, Some(TokenType::Access)).map_err(|e| refused(AccessRefused::Token(e)))?;
    let user_id = claims.user_id.ok_or(refused(AccessRefused::NoUserId))?;
    let user = match state.store.find_user(user_id).await? {
        None => return Err(refused(AccessRefused::UnknownUser)),
        Some(user) if !user.is_active => return Err(refused(AccessRefused::Inactive)),
        Some(user) => user,
    };
    // Revoked (logout-all, password change, ...) after this token was issued.
    if sessions::is_revoked(state, user_id, claims.iat).await? {
        return Err(refused(AccessRefused::Revoked));
    }
    Ok((user, claims))
}

/// Who `claims` (of a token [`verify`] accepted) belong to, and when their session began.
pub async fn token_origin(state: &AppState, claims: &Claims) -> Result<TokenOrigin, ServiceError> {
    let username = match claims.user_id {
        Some(id) => state.store.find_user(id).await?.map(|u| u.email),
        None => None,
    };
    let mut signed_in_at = claims.iat.unwrap_or(claims.exp);
    if claims.token_type == Some(TokenType::Refresh) {
        if let Some(record) = state.store.find_refresh(&claims.jti).await? {
            signed_in_at = session_started(state, &record.family).await?;
        }
    } else if let Some(started_ms) = tokens::session_started_ms(&claims.jti) {
        signed_in_at = started_ms.div_euclid(1000);
    }
    Ok(TokenOrigin { username, signed_in_at })
}

/// When the session (refresh-token rotation `family`; a new session's family is its refresh
/// token's `jti`) began, epoch seconds: the sign-in, the same across refreshes (graphql-jwt's
/// `origIat`).
pub async fn session_started(state: &AppState, family: &str) -> Result<i64, ServiceError> {
    Ok(session_started_ms(state, family).await?.div_euclid(1000))
}

/// [`session_started`] in epoch milliseconds. A session's family id records its sign-in (see
/// [`crate::tokens::session_jti`]); a session opened before family ids did reports its oldest
/// surviving refresh record (records are purged once expired).
async fn session_started_ms(state: &AppState, family: &str) -> Result<i64, ServiceError> {
    if let Some(started_ms) = tokens::session_started_ms(family) {
        return Ok(started_ms);
    }
    let started = state.store.family_started(family).await?.unwrap_or_else(now_utc);
    Ok(started.and_utc().timestamp_millis())
}

/// The user `id` as `viewer` may see it on the legacy `/auth/users/{id}/`: their own record, or
/// any record for staff and superusers; [`ServiceError::Forbidden`] otherwise (the wire of
/// EasyJWT; the reader group reads users through GraphQL `users` and [`list_users`]).
pub async fn user_for(state: &AppState, viewer: User, id: i64) -> Result<User, ServiceError> {
    if id == viewer.id {
        return Ok(viewer);
    }
    if !(viewer.is_staff || viewer.is_superuser) {
        return Err(ServiceError::Forbidden);
    }
    state.store.find_user(id).await?.ok_or(ServiceError::NotFound)
}

/// Every user, for a `viewer` who may read users ([`roles::may_read_users`]).
pub async fn list_users(state: &AppState, viewer: &User) -> Result<Vec<User>, ServiceError> {
    if !roles::may_read_users(&state.settings, viewer) {
        return Err(ServiceError::Forbidden);
    }
    Ok(state.store.list_users().await?)
}

/// Changes the password of the account `change.email` after checking its current password
/// (throttled like a login), and revokes every refresh token of the user, so other sessions
/// must log in again. Bad credentials are `{"non_field_errors":["Invalid credentials."]}`; a
/// new password Django's validators refuse is `{"new_password":[...]}`.
pub async fn change_password(
    state: &AppState,
    change: &PasswordChange,
    ip: Option<IpAddr>,
) -> Result<(), ServiceError> {
    // Credentials first: validating the new password against the account's names before
    // would tell a stranger what those names are.
    let Some((Credentials { user, .. }, _)) = authenticate(state, &change.email, &change.password, ip).await? else {
        return Err(FieldErrors::non_field(INVALID_CREDENTIALS).into());
    };
    let attributes = UserAttributes { first_name: &user.first_name, last_name: &user.last_name, email: &user.email };
    let problems = validators::password_problems(&change.new_password, &attributes);
    if !problems.is_empty() {
        return Err(field_error("new_password", &problems).into());
    }
    let hash = state.hasher.hash(change.new_password.clone()).await?;
    let revoked = state.store.change_password(user.id, &hash).await?;
    tracing::info!(user_id = user.id, revoked, "password changed; refresh tokens revoked");
    Ok(())
}

/// Registration of `input` from the client at `ip`: the one function every signup path
/// (REST, GraphQL `createUser`/`userCreate`, the Hasura action) calls. The email is trimmed and
/// lowercased whole (EasyJWT's manager); the password must pass Django's default validators,
/// whose messages are all listed under `"password"`; a taken email is
/// `{"email":["This email already exists."]}`. Every problem (with the front end's
/// `read_errors`) is reported at once as [`ServiceError::Fields`]. The caller decides whether
/// registration is allowed at all.
pub async fn register(state: &AppState, input: Registration, ip: Option<IpAddr>) -> Result<User, ServiceError> {
    let grant = Grant {
        is_staff: false,
        is_superuser: false,
        access_groups: Vec::new(),
        event: AuditEvent::new(AuditKind::UserCreated),
    };
    register_as(state, input, ip, grant).await
}

/// [`register`], with what an admin's creation adds (`grant`) written in the same
/// transaction as the new user.
pub(crate) async fn register_as(
    state: &AppState,
    input: Registration,
    ip: Option<IpAddr>,
    grant: Grant,
) -> Result<User, ServiceError> {
    let Registration { email: raw_email, password, first_name, last_name, read_errors } = input;
    let mut fields = Fields(read_errors.map(|e| e.0).unwrap_or_default());
    // Required fields given blank (a front end that reads typed arguments reports nothing).
    for (field, value) in [("email", &raw_email), ("password", &password)] {
        if value.trim().is_empty() && !fields.0.contains_key(field) {
            fields.error(field, msg::FIELD_BLANK);
        }
    }

    let text = [("email", raw_email.as_str()), ("first_name", first_name.as_str()), ("last_name", last_name.as_str())];
    let unsafe_text = check_text(&text).err().map(|e| e.0).unwrap_or_default();
    for (field, messages) in &unsafe_text {
        for message in messages.as_array().into_iter().flatten().filter_map(Value::as_str) {
            fields.error(field, message);
        }
    }
    let mut email = None;
    if !raw_email.trim().is_empty() && !unsafe_text.contains_key("email") {
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
    if !password.trim().is_empty() {
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
    let email = email.ok_or_else(|| ServiceError::Internal("validated email missing".into()))?;
    state.throttle.reserve_signup(&state.store, ip).await?;

    let password_hash = state.hasher.hash(password).await?;
    let Grant { is_staff, is_superuser, access_groups, event } = grant;
    let new = NewUser { email, password_hash, first_name, last_name, is_staff, is_superuser, groups: access_groups };
    let user = match state.store.create_user_recorded(new, event).await {
        Ok(user) => user,
        // Lost a race with another registration of the same email.
        Err(shared_user::DbError::Unique) => return Err(field_error("email", &[EMAIL_TAKEN]).into()),
        Err(e) => return Err(e.into()),
    };
    tracing::info!(user_id = user.id, client = ?ip, "user created");
    Ok(user)
}

/// A field map being filled in order (the order the answer lists fields in).
struct Fields(serde_json::Map<String, Value>);

impl Fields {
    fn error(&mut self, field: &str, message: impl Into<String>) {
        let entry = self.0.entry(field.to_owned()).or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(list) = entry {
            list.push(Value::from(message.into()));
        }
    }

    fn finish(self) -> Result<(), FieldErrors> {
        if self.0.is_empty() { Ok(()) } else { Err(FieldErrors(self.0)) }
    }
}
