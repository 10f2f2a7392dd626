//! Passkeys (WebAuthn through `webauthn-rs`): registration by a signed-in user, removal, and
//! sign-in with a passkey, either as the second factor of a login (after the password, with its
//! `mfa_token`) or without a password (a discoverable credential the browser picks).
//!
//! Each ceremony's state (the challenge the browser must sign) lives in `mfa_challenges` under
//! the SHA-256 of an opaque `ticket` (5 minutes, used once whatever the outcome), so any
//! replica finishes a ceremony another started. A passkey is registered as a discoverable
//! credential with user verification required, so the same passkey serves both sign-ins. Its
//! user handle is derived from the user id (no column, no email in the authenticator).
//!
//! `amr` (RFC 8176): `hwk` for a device-bound passkey, `swk` for one that may be synced (the
//! authenticator says it is backup eligible). After a password: `["pwd","hwk","mfa"]`.
//! Without one: `["hwk","user","mfa"]`, since a passkey with user verification is itself two
//! factors (the device, and the PIN or biometric that unlocks it).

use std::net::IpAddr;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use shared_user::User;
use shared_user::http::FieldErrors;
use shared_user::user::now_utc;
use webauthn_rs::Webauthn;
use webauthn_rs::prelude::{
    AuthenticationResult, DiscoverableAuthentication, Passkey, PasskeyAuthentication, PasskeyRegistration,
    PublicKeyCredential, RegisterPublicKeyCredential, Uuid,
};

use super::mfa::{self as login, PasskeyInfo};
use super::{ServiceError, Session, check_text, field_error};
use crate::audit::{AuditEvent, AuditKind};
use crate::factors::{self, amr, method};
use crate::state::AppState;
use crate::store::mfa::{ChallengeRow, NewChallenge, PasskeyRow};
use crate::store::sessions::LoginWrites;

/// The purpose of a registration ceremony's challenge.
pub const PURPOSE_REGISTER: &str = "passkey_register";
/// The purpose of a passkey sign-in after a password (second factor).
pub const PURPOSE_SECOND_FACTOR: &str = "passkey_mfa";
/// The purpose of a passwordless passkey sign-in.
pub const PURPOSE_SIGN_IN: &str = "passkey_login";
/// The answer of every passkey route while `WEBAUTHN_RP_ID` / `WEBAUTHN_ORIGIN` are unset.
pub const NOT_CONFIGURED: &str = "Passkeys are not configured on this server: set WEBAUTHN_RP_ID and WEBAUTHN_ORIGIN.";
/// A `credential` that is not a WebAuthn answer at all (400).
pub const INVALID_CREDENTIAL: &str = "Not a WebAuthn credential (the JSON of PublicKeyCredential.toJSON()).";
/// A registration `ticket` that is unknown, expired, used or another user's (400).
pub const INVALID_TICKET: &str = "Unknown, expired or used ticket; start the registration again.";
/// A registration answer that does not verify (wrong origin, challenge, no user verification).
pub const REGISTRATION_REFUSED: &str = "The passkey could not be verified; start the registration again.";
/// A credential registered already (to this user or another).
pub const ALREADY_REGISTERED: &str = "This passkey is already registered.";
/// The name of a passkey registered without one.
pub const DEFAULT_NAME: &str = "Passkey";
/// Longest passkey name, in characters.
pub const MAX_NAME_LENGTH: usize = 100;

/// A started ceremony: what the browser passes to `navigator.credentials.create/get` and the
/// ticket that finishes it.
#[derive(Debug, Clone)]
pub struct Ceremony {
    /// Opaque, single use, 5 minutes; only its SHA-256 is stored.
    pub ticket: String,
    /// The options as `webauthn-rs` serializes them: `{"publicKey":{...}}` (base64url binary
    /// fields, as `PublicKeyCredential.parseCreationOptionsFromJSON` /
    /// `parseRequestOptionsFromJSON` read them).
    pub options: Value,
}

/// What finishing a registration needs (stored with its challenge).
#[derive(Serialize, Deserialize)]
struct RegistrationState {
    registration: PasskeyRegistration,
    name: Option<String>,
}

/// What finishing a second-factor passkey step needs.
#[derive(Serialize, Deserialize)]
struct SecondFactorState {
    authentication: PasskeyAuthentication,
    /// The `token_id` of the login's `mfa_token`: the ticket finishes that login only.
    login: String,
}

/// What finishing a passwordless sign-in needs.
#[derive(Serialize, Deserialize)]
struct SignInState {
    authentication: DiscoverableAuthentication,
}

fn internal(e: impl std::fmt::Display) -> ServiceError {
    ServiceError::Internal(e.to_string())
}

/// The relying party, or the 400 that says which settings to set.
fn relying_party(state: &AppState) -> Result<&Webauthn, ServiceError> {
    state.webauthn.as_deref().ok_or_else(|| ServiceError::Fields(FieldErrors::non_field(NOT_CONFIGURED)))
}

/// The WebAuthn user handle of `user_id`: derived, so every replica agrees without a column,
/// and no email or name goes into the authenticator's handle.
pub fn user_handle(user_id: i64) -> Uuid {
    let id = factors::token_id(&format!("gatehouse passkey user handle\0{user_id}"));
    let mut bytes = [0u8; 16];
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = u8::from_str_radix(&id[2 * i..2 * i + 2], 16).unwrap_or(0);
    }
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}

/// The stored id of a credential id: base64url without padding.
fn credential_key(id: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(id)
}

fn parse_passkey(row: &PasskeyRow) -> Result<Passkey, ServiceError> {
    serde_json::from_str(&row.passkey).map_err(|e| internal(format!("stored passkey {} does not parse: {e}", row.id)))
}

fn lifetime() -> chrono::Duration {
    chrono::Duration::from_std(factors::MFA_TOKEN_LIFETIME).unwrap_or_default()
}

/// Stores a ceremony's `saved` state for `purpose` and answers its ticket with `options`.
async fn store_ceremony(
    state: &AppState,
    user_id: Option<i64>,
    purpose: &str,
    saved: &impl Serialize,
    options: &impl Serialize,
) -> Result<Ceremony, ServiceError> {
    let ticket = factors::new_challenge_token();
    let saved = serde_json::to_string(saved).map_err(internal)?;
    state
        .store
        .insert_challenge(&NewChallenge {
            id: &factors::token_id(&ticket),
            user_id,
            purpose,
            state: &saved,
            expires_at: now_utc() + lifetime(),
        })
        .await?;
    Ok(Ceremony { ticket, options: serde_json::to_value(options).map_err(internal)? })
}

/// The live challenge of `ticket` for `purpose`, used (taken) here: `None` when it is unknown,
/// expired, used already, or someone else took it first.
async fn take_ticket(state: &AppState, ticket: &str, purpose: &str) -> Result<Option<ChallengeRow>, ServiceError> {
    let id = factors::token_id(ticket);
    let Some(row) = state.store.live_challenge(&id, purpose, 1).await? else { return Ok(None) };
    Ok(state.store.take_challenge(&id).await?.then_some(row))
}

/// A `credential` as the browser sent it: a JSON object (or that object as a JSON string).
fn credential<T: serde::de::DeserializeOwned>(credential: &Value) -> Result<T, ServiceError> {
    let parsed = match credential {
        Value::String(text) => serde_json::from_str(text),
        other => serde_json::from_value(other.clone()),
    };
    parsed.map_err(|_| field_error("credential", &[INVALID_CREDENTIAL]).into())
}

/// A passkey name as given (trimmed), or `None`; refused when too long or holding control
/// characters.
fn passkey_name(name: Option<&str>) -> Result<Option<String>, ServiceError> {
    let Some(name) = name.map(str::trim).filter(|n| !n.is_empty()) else { return Ok(None) };
    check_text(&[("name", name)])?;
    if name.chars().count() > MAX_NAME_LENGTH {
        return Err(field_error("name", &[&super::too_long(MAX_NAME_LENGTH)]).into());
    }
    Ok(Some(name.to_owned()))
}

/// Starts the registration of a passkey for the signed-in `user` (optionally named `name`):
/// the creation options (a discoverable credential with user verification; the user's
/// passkeys excluded) and the ticket of [`finish_registration`].
pub async fn begin_registration(state: &AppState, user: &User, name: Option<&str>) -> Result<Ceremony, ServiceError> {
    let webauthn = relying_party(state)?;
    let name = passkey_name(name)?;
    let mut exclude = Vec::new();
    for row in state.store.passkeys_of(user.id).await? {
        exclude.push(parse_passkey(&row)?.cred_id().clone());
    }
    let display = format!("{} {}", user.first_name, user.last_name);
    let display = if display.trim().is_empty() { user.email.clone() } else { display.trim().to_owned() };
    let exclude = (!exclude.is_empty()).then_some(exclude);
    let (options, registration) =
        webauthn.start_passkey_registration(user_handle(user.id), &user.email, &display, exclude).map_err(internal)?;
    // A passkey signs in without a password too: ask for a discoverable (resident) credential
    // (`webauthn-rs` does not re-export the type of this option; it is not part of what the
    // answer is verified against).
    let mut options = serde_json::to_value(&options).map_err(internal)?;
    if let Some(selection) = options.pointer_mut("/publicKey/authenticatorSelection").and_then(Value::as_object_mut) {
        selection.insert("residentKey".into(), "required".into());
        selection.insert("requireResidentKey".into(), true.into());
    }
    let saved = RegistrationState { registration, name };
    store_ceremony(state, Some(user.id), PURPOSE_REGISTER, &saved, &options).await
}

/// Finishes the registration `ticket` of `user` with the browser's `credential` (the JSON of
/// `navigator.credentials.create()`'s answer), named `name` (else the name given at the start,
/// else [`DEFAULT_NAME`]). Audited `mfa_enrolled` `{"method":"webauthn"}`.
pub async fn finish_registration(
    state: &AppState,
    user: &User,
    ticket: &str,
    answer: &Value,
    name: Option<&str>,
) -> Result<PasskeyInfo, ServiceError> {
    let webauthn = relying_party(state)?;
    check_text(&[("ticket", ticket)])?;
    let name = passkey_name(name)?;
    let answer: RegisterPublicKeyCredential = credential(answer)?;
    let ticket_refused = || ServiceError::from(field_error("ticket", &[INVALID_TICKET]));
    let Some(row) = take_ticket(state, ticket, PURPOSE_REGISTER).await? else { return Err(ticket_refused()) };
    if row.user_id != Some(user.id) {
        return Err(ticket_refused());
    }
    let saved: RegistrationState = serde_json::from_str(&row.state).map_err(internal)?;
    let passkey = match webauthn.finish_passkey_registration(&answer, &saved.registration) {
        Ok(passkey) => passkey,
        Err(e) => {
            tracing::info!(user_id = user.id, error = %e, "passkey registration refused");
            login::failed(method::WEBAUTHN);
            return Err(field_error("credential", &[REGISTRATION_REFUSED]).into());
        }
    };
    let credential_id = credential_key(passkey.cred_id());
    if state.store.find_passkey(&credential_id).await?.is_some() {
        return Err(field_error("credential", &[ALREADY_REGISTERED]).into());
    }
    let name = name.or(saved.name).unwrap_or_else(|| DEFAULT_NAME.to_owned());
    let stored = serde_json::to_string(&passkey).map_err(internal)?;
    let event = AuditEvent::new(AuditKind::MfaEnrolled)
        .user(user.id)
        .actor(user.id)
        .detail(serde_json::json!({"method": method::WEBAUTHN}));
    let id = match state.store.insert_passkey(user.id, &credential_id, &stored, &name, &event).await {
        Ok(id) => id,
        // Registered by a concurrent request between the check and the insert.
        Err(shared_user::DbError::Unique) => {
            return Err(field_error("credential", &[ALREADY_REGISTERED]).into());
        }
        Err(e) => return Err(e.into()),
    };
    metrics::counter!("gatehouse_mfa_enrolled_total", "method" => method::WEBAUTHN).increment(1);
    Ok(PasskeyInfo { id, name, created_at: now_utc(), last_used_at: None })
}

/// Removes passkey `id` of `user` ([`ServiceError::NotFound`] when it is not theirs). Audited
/// `mfa_removed` `{"method":"webauthn"}`. Works with passkeys off too.
pub async fn remove_passkey(state: &AppState, user: &User, id: i64) -> Result<(), ServiceError> {
    let event = AuditEvent::new(AuditKind::MfaRemoved)
        .user(user.id)
        .actor(user.id)
        .detail(serde_json::json!({"method": method::WEBAUTHN}));
    if !state.store.delete_passkey(user.id, id, &event).await? {
        return Err(ServiceError::NotFound);
    }
    metrics::counter!("gatehouse_mfa_removed_total", "method" => method::WEBAUTHN).increment(1);
    Ok(())
}

/// Starts a passkey sign-in: with `mfa_token`, the second step of that login (the request
/// options list the user's passkeys); without, a passwordless sign-in (the browser offers the
/// discoverable passkeys it holds for this site). Answers the options and the ticket of
/// [`finish_sign_in`].
pub async fn begin_sign_in(
    state: &AppState,
    mfa_token: Option<&str>,
    ip: Option<IpAddr>,
) -> Result<Ceremony, ServiceError> {
    let webauthn = relying_party(state)?;
    let Some(mfa_token) = mfa_token else {
        // Nobody is known yet and a challenge is stored: counted per address.
        state.throttle.reserve_passkey_start(&state.store, ip).await?;
        let (mut options, authentication) = webauthn.start_discoverable_authentication().map_err(internal)?;
        // `webauthn-rs` asks for conditional mediation (autofill UI); the page decides that.
        options.mediation = None;
        return store_ceremony(state, None, PURPOSE_SIGN_IN, &SignInState { authentication }, &options).await;
    };
    check_text(&[("mfa_token", mfa_token)])?;
    let challenge = login::login_challenge(state, mfa_token).await?;
    let mut passkeys = Vec::new();
    for row in state.store.passkeys_of(challenge.user.id).await? {
        passkeys.push(parse_passkey(&row)?);
    }
    if passkeys.is_empty() {
        // The user has another factor only: nothing a passkey could answer.
        return Err(ServiceError::Fields(FieldErrors::non_field(
            "This account has no passkey; answer with another factor at /auth/token/mfa/.",
        )));
    }
    let (options, authentication) = webauthn.start_passkey_authentication(&passkeys).map_err(internal)?;
    let saved = SecondFactorState { authentication, login: factors::token_id(mfa_token) };
    store_ceremony(state, Some(challenge.user.id), PURPOSE_SECOND_FACTOR, &saved, &options).await
}

/// The `amr` of a passkey sign-in: `hwk` for a device-bound passkey, `swk` for one that may be
/// synced, after `pwd` (second factor) or before `user` (passwordless), then `mfa`.
pub fn passkey_amr(backup_eligible: bool, after_password: bool) -> Vec<String> {
    let key = if backup_eligible { amr::SWK } else { amr::HWK };
    let list = if after_password { [amr::PWD, key, amr::MFA] } else { [key, amr::USER, amr::MFA] };
    list.iter().map(|s| (*s).to_owned()).collect()
}

/// Records the use of the passkey of `row` (its new signature counter and the time).
async fn record_use(state: &AppState, row: &PasskeyRow, result: &AuthenticationResult) -> Result<(), ServiceError> {
    let mut passkey = parse_passkey(row)?;
    passkey.update_credential(result);
    let stored = serde_json::to_string(&passkey).map_err(internal)?;
    Ok(state.store.passkey_used(row.id, &stored).await?)
}

/// A refused passwordless sign-in (audited `mfa_failed` for the user when known).
async fn refuse_sign_in(state: &AppState, user_id: Option<i64>) -> Result<ServiceError, ServiceError> {
    login::failed(method::WEBAUTHN);
    metrics::counter!("gatehouse_logins_total", "outcome" => "failure").increment(1);
    if let Some(user_id) = user_id {
        let event =
            AuditEvent::new(AuditKind::MfaFailed).user(user_id).detail(serde_json::json!({"method": method::WEBAUTHN}));
        state.store.record_audit(&event).await?;
    }
    Ok(ServiceError::MfaRefused)
}

/// Finishes the passkey sign-in `ticket` with the browser's `credential` (the JSON of
/// `navigator.credentials.get()`'s answer). A second-factor ticket needs its login's
/// `mfa_token`; the attempt is counted in the login counters before the assertion is checked,
/// and a wrong one is [`ServiceError::MfaRefused`] (the `mfa_token` dies after 5). A
/// passwordless sign-in is counted in the counters of the account the passkey names. A dead
/// ticket or `mfa_token` is [`ServiceError::MfaTokenRefused`].
pub async fn finish_sign_in(
    state: &AppState,
    ticket: &str,
    answer: &Value,
    mfa_token: Option<&str>,
    ip: Option<IpAddr>,
) -> Result<Session, ServiceError> {
    let webauthn = relying_party(state)?;
    check_text(&[("ticket", ticket), ("mfa_token", mfa_token.unwrap_or_default())])?;
    let answer: PublicKeyCredential = credential(answer)?;
    match mfa_token {
        Some(mfa_token) => finish_second_factor(state, webauthn, ticket, &answer, mfa_token, ip).await,
        None => finish_passwordless(state, webauthn, ticket, &answer, ip).await,
    }
}

async fn finish_second_factor(
    state: &AppState,
    webauthn: &Webauthn,
    ticket: &str,
    answer: &PublicKeyCredential,
    mfa_token: &str,
    ip: Option<IpAddr>,
) -> Result<Session, ServiceError> {
    let challenge = login::login_challenge(state, mfa_token).await?;
    let Some(row) = take_ticket(state, ticket, PURPOSE_SECOND_FACTOR).await? else {
        return Err(ServiceError::MfaTokenRefused);
    };
    let saved: SecondFactorState = serde_json::from_str(&row.state).map_err(internal)?;
    if saved.login != factors::token_id(mfa_token) || row.user_id != Some(challenge.user.id) {
        return Err(ServiceError::MfaTokenRefused);
    }
    let attempt = login::count_attempt(state, &challenge, ip).await?;
    let verified = match webauthn.finish_passkey_authentication(answer, &saved.authentication) {
        Ok(result) => state
            .store
            .find_passkey(&credential_key(result.cred_id()))
            .await?
            .filter(|row| row.user_id == challenge.user.id)
            .map(|row| (row, result)),
        Err(e) => {
            tracing::info!(user_id = challenge.user.id, error = %e, "passkey assertion refused");
            None
        }
    };
    let Some((passkey, result)) = verified else {
        login::refuse(state, &challenge, method::WEBAUTHN).await?;
        return Err(ServiceError::MfaRefused);
    };
    record_use(state, &passkey, &result).await?;
    let amr = passkey_amr(result.backup_eligible(), true);
    login::complete_login(state, challenge, &attempt, amr, method::WEBAUTHN).await
}

async fn finish_passwordless(
    state: &AppState,
    webauthn: &Webauthn,
    ticket: &str,
    answer: &PublicKeyCredential,
    ip: Option<IpAddr>,
) -> Result<Session, ServiceError> {
    let Some(row) = take_ticket(state, ticket, PURPOSE_SIGN_IN).await? else {
        return Err(ServiceError::MfaTokenRefused);
    };
    let saved: SignInState = serde_json::from_str(&row.state).map_err(internal)?;
    let Ok((handle, credential_id)) = webauthn.identify_discoverable_authentication(answer) else {
        return Err(refuse_sign_in(state, None).await?);
    };
    let Some(passkey) = state.store.find_passkey(&credential_key(credential_id)).await? else {
        return Err(refuse_sign_in(state, None).await?);
    };
    let user = match state.store.find_user(passkey.user_id).await? {
        Some(user) if user.is_active && user_handle(user.id) == handle => user,
        _ => return Err(refuse_sign_in(state, Some(passkey.user_id)).await?),
    };
    // Counted like a password attempt of that account, before the assertion is checked.
    let attempt = state.throttle.reserve(&state.store, &user.email, ip).await?;
    let stored = parse_passkey(&passkey)?;
    let result = match webauthn.finish_discoverable_authentication_v2(answer, saved.authentication, &stored) {
        Ok(result) => result,
        Err(e) => {
            tracing::info!(user_id = user.id, error = %e, "passwordless passkey assertion refused");
            return Err(refuse_sign_in(state, Some(user.id)).await?);
        }
    };
    record_use(state, &passkey, &result).await?;
    let amr = passkey_amr(result.backup_eligible(), false);
    let writes = LoginWrites { throttle: state.throttle.settlement(&attempt), ..Default::default() };
    metrics::counter!("gatehouse_mfa_verified_total", "method" => method::WEBAUTHN).increment(1);
    metrics::counter!("gatehouse_logins_total", "outcome" => "success").increment(1);
    tracing::info!(user_id = user.id, "passwordless passkey sign-in");
    super::open_session(state, user, writes, &amr).await
}
