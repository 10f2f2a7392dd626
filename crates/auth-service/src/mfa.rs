//! Second factors over REST: `GET /auth/mfa/`, TOTP enrolment (`POST /auth/mfa/totp/`,
//! `POST /auth/mfa/totp/confirm/`, `DELETE /auth/mfa/totp/`), a superuser's reset
//! (`DELETE /auth/admin/users/{id}/mfa/`), and the second step of a login
//! (`POST /auth/token/mfa/`); passkeys: registration (`POST /auth/mfa/webauthn/register/start/`
//! and `.../finish/`), removal (`DELETE /auth/mfa/webauthn/{id}/`) and sign-in
//! (`POST /auth/token/webauthn/start/` and `.../finish/`, after a password or without one).
//! The rules are the service's, in `crate::service::mfa` and `crate::service::passkeys`.

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::middleware::map_response;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use shared_user::http::{Body, both_slashes};

use crate::auth::CurrentUser;
use crate::client_ip::ClientIp;
use crate::error::ApiError;
use crate::service::{mfa, passkeys};
use crate::state::AppState;

/// The second-factor routes of the public API.
pub fn routes(mut r: Router<AppState>) -> Router<AppState> {
    let no_store = || map_response(crate::headers::no_store);
    r = both_slashes(r, "/auth/mfa/", get(get_factors));
    r = both_slashes(r, "/auth/mfa/totp/", post(enrol_totp).delete(remove_totp).layer(no_store()));
    r = both_slashes(r, "/auth/mfa/totp/confirm/", post(confirm_totp).layer(no_store()));
    r = both_slashes(r, "/auth/mfa/webauthn/register/start/", post(start_passkey_registration).layer(no_store()));
    r = both_slashes(r, "/auth/mfa/webauthn/register/finish/", post(finish_passkey_registration).layer(no_store()));
    r = both_slashes(r, "/auth/mfa/webauthn/{id}/", axum::routing::delete(remove_passkey));
    r = both_slashes(r, "/auth/token/webauthn/start/", post(start_passkey_sign_in).layer(no_store()));
    r = both_slashes(r, "/auth/token/webauthn/finish/", post(issue_token_webauthn).layer(no_store()));
    both_slashes(r, "/auth/token/mfa/", post(issue_token_mfa).layer(no_store()))
}

/// The superuser's reset route of the admin API.
pub fn admin_routes(r: Router<AppState>) -> Router<AppState> {
    both_slashes(r, "/auth/admin/users/{id}/mfa/", axum::routing::delete(reset_factors))
}

/// `GET /auth/mfa/`: `{"totp":bool,"recovery_codes_remaining":N,"passkeys":[...]}`.
pub async fn get_factors(State(state): State<AppState>, CurrentUser(user): CurrentUser) -> Result<Response, ApiError> {
    Ok(Json(mfa::factors_of(&state, &user).await?).into_response())
}

/// `POST /auth/mfa/totp/`: a new secret -> `{"secret","otpauth_uri","qr_svg"}`.
pub async fn enrol_totp(State(state): State<AppState>, CurrentUser(user): CurrentUser) -> Result<Response, ApiError> {
    let enrolment = mfa::begin_totp(&state, &user).await?;
    Ok(Json(json!({
        "secret": enrolment.secret,
        "otpauth_uri": enrolment.otpauth_uri,
        "qr_svg": enrolment.qr_svg,
    }))
    .into_response())
}

/// `POST /auth/mfa/totp/confirm/` `{"code"}` -> `{"recovery_codes":[10 codes]}`.
pub async fn confirm_totp(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    body: Body,
) -> Result<Response, ApiError> {
    let mut fields = body.fields();
    let code = fields.required("code");
    fields.finish()?;
    let codes = mfa::confirm_totp(&state, &user, &code).await?;
    Ok(Json(json!({"recovery_codes": codes})).into_response())
}

/// `DELETE /auth/mfa/totp/` `{"password","code"}` -> 204.
pub async fn remove_totp(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ClientIp(ip): ClientIp,
    body: Body,
) -> Result<StatusCode, ApiError> {
    let mut fields = body.fields();
    let password = fields.required("password");
    let code = fields.required("code");
    fields.finish()?;
    mfa::remove_totp(&state, &user, &password, &code, ip).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /auth/token/mfa/` `{"mfa_token","code"}` (a TOTP or recovery code) -> `{"refresh","access"}`.
pub async fn issue_token_mfa(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    body: Body,
) -> Result<Response, ApiError> {
    let mut fields = body.fields();
    let mfa_token = fields.required("mfa_token");
    let code = fields.required("code");
    fields.finish()?;
    let session = mfa::finish_login_with_code(&state, &mfa_token, &code, ip).await?;
    Ok(Json(json!({"refresh": session.refresh.token, "access": session.access.token})).into_response())
}

/// `DELETE /auth/admin/users/{id}/mfa/` (superuser): every factor of the user removed ->
/// `{"removed":N}`.
pub async fn reset_factors(
    State(state): State<AppState>,
    CurrentUser(actor): CurrentUser,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id: i64 = id.parse().map_err(|_| ApiError::NotFound)?;
    let removed = mfa::reset_factors(&state, &actor, id).await?;
    Ok(Json(json!({"removed": removed})).into_response())
}

/// `{"ticket": ..., "publicKey": {...}}`: a ceremony's ticket next to its options.
fn ceremony_body(ceremony: passkeys::Ceremony) -> Response {
    let mut body = serde_json::Map::new();
    body.insert("ticket".into(), ceremony.ticket.into());
    if let serde_json::Value::Object(options) = ceremony.options {
        body.extend(options);
    }
    Json(body).into_response()
}

/// The `credential` field: the browser's answer, a JSON object (or that object as a string).
fn credential_field(body: &Body, fields: &mut shared_user::http::FieldCheck<'_>) -> serde_json::Value {
    match body.0.get("credential") {
        Some(value @ (serde_json::Value::Object(_) | serde_json::Value::String(_))) => value.clone(),
        Some(_) => {
            fields.error("credential", passkeys::INVALID_CREDENTIAL);
            serde_json::Value::Null
        }
        None => {
            fields.error("credential", shared_user::wire::msg::FIELD_REQUIRED);
            serde_json::Value::Null
        }
    }
}

/// `POST /auth/mfa/webauthn/register/start/` (optional `{"name"}`) ->
/// `{"ticket","publicKey":{...}}`, the options of `navigator.credentials.create()`.
pub async fn start_passkey_registration(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    body: Body,
) -> Result<Response, ApiError> {
    let mut fields = body.fields();
    let name = fields.optional("name");
    fields.finish()?;
    Ok(ceremony_body(passkeys::begin_registration(&state, &user, name.as_deref()).await?))
}

/// `POST /auth/mfa/webauthn/register/finish/` `{"ticket","credential","name"}` -> 201 the
/// passkey (`{"id","name","created","last_used"}`).
pub async fn finish_passkey_registration(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    body: Body,
) -> Result<Response, ApiError> {
    let mut fields = body.fields();
    let ticket = fields.required("ticket");
    let name = fields.optional("name");
    let credential = credential_field(&body, &mut fields);
    fields.finish()?;
    let passkey = passkeys::finish_registration(&state, &user, &ticket, &credential, name.as_deref()).await?;
    Ok((StatusCode::CREATED, Json(passkey)).into_response())
}

/// `DELETE /auth/mfa/webauthn/{id}/` -> 204 (404 when it is not one of the caller's passkeys).
pub async fn remove_passkey(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id: i64 = id.parse().map_err(|_| ApiError::NotFound)?;
    passkeys::remove_passkey(&state, &user, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /auth/token/webauthn/start/` `{"mfa_token"}` (second factor) or `{}` (passwordless)
/// -> `{"ticket","publicKey":{...}}`, the options of `navigator.credentials.get()`.
pub async fn start_passkey_sign_in(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    body: Body,
) -> Result<Response, ApiError> {
    let mut fields = body.fields();
    let mfa_token = fields.optional("mfa_token").filter(|t| !t.is_empty());
    fields.finish()?;
    Ok(ceremony_body(passkeys::begin_sign_in(&state, mfa_token.as_deref(), ip).await?))
}

/// `POST /auth/token/webauthn/finish/` `{"ticket","credential"}` (+ `"mfa_token"` after a
/// password) -> `{"refresh","access"}`.
pub async fn issue_token_webauthn(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    body: Body,
) -> Result<Response, ApiError> {
    let mut fields = body.fields();
    let ticket = fields.required("ticket");
    let mfa_token = fields.optional("mfa_token").filter(|t| !t.is_empty());
    let credential = credential_field(&body, &mut fields);
    fields.finish()?;
    let session = passkeys::finish_sign_in(&state, &ticket, &credential, mfa_token.as_deref(), ip).await?;
    Ok(Json(json!({"refresh": session.refresh.token, "access": session.access.token})).into_response())
}
