//! Second factors: TOTP enrolment, confirmation and removal, the factors a user has, a
//! superuser's reset, and the second step of a login.
//!
//! A login of a user with a factor stops after the password check
//! ([`super::log_in`] answers [`ServiceError::MfaRequired`]): a challenge is stored under the
//! SHA-256 of an opaque `mfa_token` (5 minutes, single use) with the password step's counted
//! attempt. The second step ([`finish_login_with_code`], or a passkey) counts its own attempt
//! in the same login counters, so guessing codes is throttled like guessing passwords; only a
//! completed second step settles both attempts, marks the address known and opens the
//! session. No password is hashed in the second step.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use shared_user::User;
use shared_user::user::now_utc;

use super::{FieldErrors, MfaChallenge, ServiceError, Session, check_password, field_error};
use crate::audit::{AuditEvent, AuditKind};
use crate::factors::{self, Authenticator, amr, method};
use crate::state::AppState;
use crate::store::mfa::{FactorCount, NewChallenge};
use crate::store::sessions::LoginWrites;
use crate::throttle::Attempt;

/// The purpose of the challenge behind an `mfa_token`.
pub const PURPOSE_LOGIN: &str = "login";
/// A wrong code (field error of enrolment confirmation and removal).
pub const INVALID_CODE: &str = "Invalid code.";
/// Starting a TOTP enrolment while one is confirmed.
pub const ALREADY_ENROLLED: &str = "A TOTP authenticator is already enrolled; remove it first.";
/// Confirming when no enrolment waits.
pub const NOTHING_TO_CONFIRM: &str =
    "No TOTP enrolment is waiting for confirmation; start one with POST /auth/mfa/totp/.";

/// What the second step of a login needs from the first (stored with the challenge).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct LoginState {
    /// The password step's counted attempt, settled when the login completes.
    attempt: Attempt,
    /// A new hash of the password (the stored one used outdated parameters), written when the
    /// login completes.
    #[serde(default)]
    password_hash: Option<String>,
}

/// A TOTP enrolment waiting for its first code.
#[derive(Debug, Clone)]
pub struct TotpEnrolment {
    /// The secret, base32.
    pub secret: String,
    /// The `otpauth://` URI.
    pub otpauth_uri: String,
    /// The URI as an SVG QR code.
    pub qr_svg: String,
}

/// A registered passkey as its owner sees it.
#[derive(Debug, Clone, Serialize)]
pub struct PasskeyInfo {
    /// What `DELETE /auth/mfa/webauthn/{id}/` names.
    pub id: i64,
    /// The name given at registration.
    pub name: String,
    /// When it was registered.
    #[serde(rename = "created", serialize_with = "crate::store::sessions::ser_time")]
    pub created_at: chrono::NaiveDateTime,
    /// When it last signed a sign-in.
    #[serde(rename = "last_used", serialize_with = "ser_optional_time")]
    pub last_used_at: Option<chrono::NaiveDateTime>,
}

fn ser_optional_time<S: serde::Serializer>(t: &Option<chrono::NaiveDateTime>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => crate::store::sessions::ser_time(t, s),
        None => s.serialize_none(),
    }
}

/// A user's second factors (`GET /auth/mfa/`).
#[derive(Debug, Clone, Serialize)]
pub struct Factors {
    /// A confirmed TOTP authenticator.
    pub totp: bool,
    /// Unused recovery codes.
    pub recovery_codes_remaining: i64,
    /// Registered passkeys.
    pub passkeys: Vec<PasskeyInfo>,
}

/// The name an authenticator app shows for this service: the host of `ISSUER`, else
/// `Gatehouse`.
fn totp_issuer(state: &AppState) -> String {
    let Some(issuer) = state.settings.issuer.as_deref() else { return factors::DEFAULT_TOTP_ISSUER.to_owned() };
    let rest = issuer.split_once("://").map_or(issuer, |(_, rest)| rest);
    let host = rest.split('/').next().unwrap_or(rest);
    let host =
        host.rsplit_once(':').map_or(host, |(h, port)| if port.bytes().all(|b| b.is_ascii_digit()) { h } else { host });
    if host.is_empty() { factors::DEFAULT_TOTP_ISSUER.to_owned() } else { host.to_owned() }
}

fn internal(e: impl std::fmt::Display) -> ServiceError {
    ServiceError::Internal(e.to_string())
}

fn unix_now() -> u64 {
    u64::try_from(chrono::Utc::now().timestamp()).unwrap_or(0)
}

fn code_error() -> ServiceError {
    field_error("code", &[INVALID_CODE]).into()
}

/// Counts a refused second factor of `method` (`gatehouse_mfa_failed_total`).
pub(crate) fn failed(method: &'static str) {
    metrics::counter!("gatehouse_mfa_failed_total", "method" => method).increment(1);
}

/// Starts (or restarts, while unconfirmed) the TOTP enrolment of `user`: a new secret, its
/// `otpauth://` URI and QR code. A confirmed authenticator must be removed first.
pub async fn begin_totp(state: &AppState, user: &User) -> Result<TotpEnrolment, ServiceError> {
    let refused = || ServiceError::Fields(FieldErrors::non_field(ALREADY_ENROLLED));
    if state.store.find_totp(user.id).await?.is_some_and(|row| row.confirmed_at.is_some()) {
        return Err(refused());
    }
    let secret = factors::new_totp_secret().map_err(internal)?;
    let sealed = state.sealer.seal(user.id, &secret).map_err(internal)?;
    let authenticator = Authenticator::new(secret, &totp_issuer(state), &user.email).map_err(internal)?;
    if !state.store.begin_totp(user.id, &sealed).await? {
        return Err(refused());
    }
    Ok(TotpEnrolment {
        secret: authenticator.secret_base32(),
        otpauth_uri: authenticator.uri().map_err(internal)?,
        qr_svg: authenticator.qr_svg().map_err(internal)?,
    })
}

/// The authenticator stored for `user_id` (confirmed or not).
async fn authenticator(state: &AppState, user: &User) -> Result<Option<(Authenticator, bool)>, ServiceError> {
    let Some(row) = state.store.find_totp(user.id).await? else { return Ok(None) };
    let secret = state.sealer.open(user.id, &row.secret).map_err(internal)?;
    let authenticator = Authenticator::new(secret, &totp_issuer(state), &user.email).map_err(internal)?;
    Ok(Some((authenticator, row.confirmed_at.is_some())))
}

/// Confirms the pending TOTP enrolment of `user` with a first `code`; answers the ten recovery
/// codes (shown once, stored hashed). Audited `mfa_enrolled`.
pub async fn confirm_totp(state: &AppState, user: &User, code: &str) -> Result<Vec<String>, ServiceError> {
    let nothing = || ServiceError::Fields(FieldErrors::non_field(NOTHING_TO_CONFIRM));
    let Some((authenticator, false)) = authenticator(state, user).await? else { return Err(nothing()) };
    let Some(step) = authenticator.step_of(code, unix_now()) else {
        failed(method::TOTP);
        return Err(code_error());
    };
    let codes = factors::new_recovery_codes();
    let hashes: Vec<String> = codes.iter().map(|c| factors::recovery_code_hash(c)).collect();
    let event = AuditEvent::new(AuditKind::MfaEnrolled)
        .user(user.id)
        .actor(user.id)
        .detail(serde_json::json!({"method": method::TOTP}));
    let step = i64::try_from(step).unwrap_or(i64::MAX);
    if !state.store.confirm_totp(user.id, step, &hashes, &event).await? {
        return Err(code_error());
    }
    metrics::counter!("gatehouse_mfa_enrolled_total", "method" => method::TOTP).increment(1);
    Ok(codes)
}

/// Which factor `code` proves for `user` (a TOTP code of a step not used before, or an unused
/// recovery code), taking it so it cannot be used again; `None` when it proves nothing.
async fn take_code(state: &AppState, user: &User, code: &str) -> Result<Option<&'static str>, ServiceError> {
    if factors::is_recovery_code(code) {
        let used = state.store.take_recovery_code(user.id, &factors::recovery_code_hash(code)).await?;
        return Ok(used.then_some("recovery_code"));
    }
    let Some((authenticator, true)) = authenticator(state, user).await? else { return Ok(None) };
    let Some(step) = authenticator.step_of(code, unix_now()) else { return Ok(None) };
    let taken = state.store.take_totp_step(user.id, i64::try_from(step).unwrap_or(i64::MAX)).await?;
    Ok(taken.then_some(method::TOTP))
}

fn record_failure(user_id: i64, method: &'static str) -> AuditEvent {
    failed(method);
    AuditEvent::new(AuditKind::MfaFailed).user(user_id).detail(serde_json::json!({"method": method}))
}

/// Removes `user`'s TOTP authenticator and recovery codes, with the password and a current
/// code (or a recovery code). The password check is the login's (counted, throttled); a wrong
/// code stays counted too. Audited `mfa_removed`.
pub async fn remove_totp(
    state: &AppState,
    user: &User,
    password: &str,
    code: &str,
    ip: Option<IpAddr>,
) -> Result<(), ServiceError> {
    if !state.store.factor_count(user.id).await?.totp {
        return Err(ServiceError::NotFound);
    }
    let Some(sign_in) = check_password(state, &user.email, password, ip).await? else {
        return Err(field_error("password", &[super::INVALID_CREDENTIALS]).into());
    };
    if take_code(state, user, code).await?.is_none() {
        state.store.record_audit(&record_failure(user.id, method::TOTP)).await?;
        return Err(code_error());
    }
    state.throttle.succeeded(&state.store, &sign_in_attempt(sign_in)).await?;
    let event = AuditEvent::new(AuditKind::MfaRemoved)
        .user(user.id)
        .actor(user.id)
        .detail(serde_json::json!({"method": method::TOTP}));
    if !state.store.remove_totp(user.id, &event).await? {
        return Err(ServiceError::NotFound);
    }
    metrics::counter!("gatehouse_mfa_removed_total", "method" => method::TOTP).increment(1);
    Ok(())
}

fn sign_in_attempt(sign_in: super::SignIn) -> Attempt {
    sign_in.attempt
}

/// `user`'s second factors.
pub async fn factors_of(state: &AppState, user: &User) -> Result<Factors, ServiceError> {
    let count = state.store.factor_count(user.id).await?;
    let passkeys = state
        .store
        .passkeys_of(user.id)
        .await?
        .into_iter()
        .map(|p| PasskeyInfo { id: p.id, name: p.name, created_at: p.created_at, last_used_at: p.last_used_at })
        .collect();
    Ok(Factors { totp: count.totp, recovery_codes_remaining: count.recovery_codes, passkeys })
}

/// Removes every second factor of user `user_id` (a superuser helping someone who lost their
/// phone); audited `mfa_reset` with the superuser as actor. Returns how many factors went.
pub async fn reset_factors(state: &AppState, actor: &User, user_id: i64) -> Result<usize, ServiceError> {
    if !actor.is_superuser {
        return Err(ServiceError::Forbidden);
    }
    if state.store.find_user(user_id).await?.is_none() {
        return Err(ServiceError::NotFound);
    }
    let event = AuditEvent::new(AuditKind::MfaReset).user(user_id).actor(actor.id);
    let removed = state.store.reset_factors(user_id, &event).await?;
    metrics::counter!("gatehouse_mfa_reset_total").increment(1);
    Ok(removed)
}

/// `MFA_REQUIRED_FOR_STAFF`: a staff or superuser account may reach the admin console and the
/// admin API only with a second factor enrolled ([`ServiceError::MfaEnrolmentRequired`]) and
/// a session that used it (`amr` of its token; else [`ServiceError::MfaStepUpRequired`]).
/// Others, and everyone while the setting is off, pass.
pub async fn check_staff_factor(state: &AppState, user: &User, amr: &[String]) -> Result<(), ServiceError> {
    if !state.settings.mfa_required_for_staff
        || !(user.is_staff || user.is_superuser)
        || shared_user::token::is_multi_factor(amr)
    {
        return Ok(());
    }
    if state.store.factor_count(user.id).await?.any() {
        Err(ServiceError::MfaStepUpRequired)
    } else {
        Err(ServiceError::MfaEnrolmentRequired)
    }
}

/// The methods that may answer a challenge of a user with `count`, on a server where passkeys
/// are `passkeys_on` (`WEBAUTHN_*` set): a passkey that cannot be used here is not offered.
pub fn methods(count: FactorCount, passkeys_on: bool) -> Vec<&'static str> {
    let mut methods = Vec::new();
    if count.totp {
        methods.push(method::TOTP);
    }
    if count.passkeys > 0 && passkeys_on {
        methods.push(method::WEBAUTHN);
    }
    methods
}

/// Stores the challenge of a login whose password step succeeded for `user` (who has
/// `count` factors) and answers what the client needs to continue.
pub(crate) async fn begin_login(
    state: &AppState,
    user: &User,
    count: FactorCount,
    attempt: Attempt,
    password_hash: Option<String>,
) -> Result<MfaChallenge, ServiceError> {
    let token = factors::new_challenge_token();
    let id = factors::token_id(&token);
    let login = serde_json::to_string(&LoginState { attempt, password_hash }).map_err(internal)?;
    let lifetime = chrono::Duration::from_std(factors::MFA_TOKEN_LIFETIME).unwrap_or_default();
    state
        .store
        .insert_challenge(&NewChallenge {
            id: &id,
            user_id: Some(user.id),
            purpose: PURPOSE_LOGIN,
            state: &login,
            expires_at: now_utc() + lifetime,
        })
        .await?;
    metrics::counter!("gatehouse_mfa_challenges_total").increment(1);
    tracing::info!(user_id = user.id, "password accepted; second factor required");
    let methods = methods(count, state.webauthn.is_some());
    if methods.is_empty() {
        // Passkeys were switched off while this user's only factor is one: the login cannot
        // complete here until they are on again or a superuser resets the account's factors.
        tracing::warn!(user_id = user.id, "second factor required, but passkeys are off (WEBAUTHN_*)");
    }
    Ok(MfaChallenge { mfa_token: token, methods })
}

/// A live login challenge: the user it is for and what its first step left.
#[derive(Debug, Clone)]
pub struct LoginChallenge {
    id: String,
    /// The user signing in.
    pub user: User,
    state: LoginState,
}

/// The live login challenge of `mfa_token`, or [`ServiceError::MfaTokenRefused`].
pub async fn login_challenge(state: &AppState, mfa_token: &str) -> Result<LoginChallenge, ServiceError> {
    let id = factors::token_id(mfa_token);
    let row = state
        .store
        .live_challenge(&id, PURPOSE_LOGIN, factors::MFA_TOKEN_MAX_FAILURES)
        .await?
        .ok_or(ServiceError::MfaTokenRefused)?;
    let user_id = row.user_id.ok_or(ServiceError::MfaTokenRefused)?;
    let user = match state.store.find_user(user_id).await? {
        Some(user) if user.is_active => user,
        _ => return Err(ServiceError::MfaTokenRefused),
    };
    let login: LoginState = serde_json::from_str(&row.state).map_err(internal)?;
    Ok(LoginChallenge { id, user, state: login })
}

/// Counts a second-factor attempt of `challenge` in the login counters (before the factor is
/// checked, as a password is): `Err(429)` when they are locked.
pub async fn count_attempt(
    state: &AppState,
    challenge: &LoginChallenge,
    ip: Option<IpAddr>,
) -> Result<Attempt, ServiceError> {
    Ok(state.throttle.reserve(&state.store, &challenge.user.email, ip).await?)
}

/// Records a wrong second factor for `challenge` (audited `mfa_failed`; the challenge dies
/// after [`factors::MFA_TOKEN_MAX_FAILURES`]).
pub async fn refuse(state: &AppState, challenge: &LoginChallenge, method: &'static str) -> Result<(), ServiceError> {
    state.store.fail_challenge(&challenge.id).await?;
    state.store.record_audit(&record_failure(challenge.user.id, method)).await?;
    metrics::counter!("gatehouse_logins_total", "outcome" => "failure").increment(1);
    Ok(())
}

/// Completes `challenge` with a proven second factor: uses the challenge (once), settles the
/// password step's and this step's counted attempts, and opens the session with `amr`.
pub async fn complete_login(
    state: &AppState,
    challenge: LoginChallenge,
    attempt: &Attempt,
    amr: Vec<String>,
    method: &'static str,
) -> Result<Session, ServiceError> {
    if !state.store.take_challenge(&challenge.id).await? {
        return Err(ServiceError::MfaTokenRefused);
    }
    state.throttle.succeeded(&state.store, &challenge.state.attempt).await?;
    let writes = LoginWrites {
        throttle: state.throttle.settlement(attempt),
        password_hash: challenge.state.password_hash,
        ..Default::default()
    };
    metrics::counter!("gatehouse_mfa_verified_total", "method" => method).increment(1);
    metrics::counter!("gatehouse_logins_total", "outcome" => "success").increment(1);
    super::open_session(state, challenge.user, writes, &amr).await
}

/// The second step of a login with a TOTP code or a recovery code: `POST /auth/token/mfa/`.
/// A wrong code is [`ServiceError::MfaRefused`] (counted); a dead `mfa_token` is
/// [`ServiceError::MfaTokenRefused`].
pub async fn finish_login_with_code(
    state: &AppState,
    mfa_token: &str,
    code: &str,
    ip: Option<IpAddr>,
) -> Result<Session, ServiceError> {
    super::check_text(&[("mfa_token", mfa_token), ("code", code)])?;
    let challenge = login_challenge(state, mfa_token).await?;
    let attempt = count_attempt(state, &challenge, ip).await?;
    let Some(used) = take_code(state, &challenge.user, code).await? else {
        refuse(state, &challenge, method::TOTP).await?;
        return Err(ServiceError::MfaRefused);
    };
    let amr = vec![amr::PWD.to_owned(), amr::OTP.to_owned(), amr::MFA.to_owned()];
    complete_login(state, challenge, &attempt, amr, used).await
}
