//! Second factors over REST: `GET /auth/mfa/`, TOTP enrolment (`POST /auth/mfa/totp/`,
//! `POST /auth/mfa/totp/confirm/`, `DELETE /auth/mfa/totp/`), a superuser's reset
//! (`DELETE /auth/admin/users/{id}/mfa/`), and the second step of a login
//! (`POST /auth/token/mfa/`). The rules are the service's, in `crate::service::mfa`.

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
use crate::service::mfa;
use crate::state::AppState;

/// The second-factor routes of the public API.
pub fn routes(mut r: Router<AppState>) -> Router<AppState> {
    let no_store = || map_response(crate::headers::no_store);
    r = both_slashes(r, "/auth/mfa/", get(get_factors));
    r = both_slashes(r, "/auth/mfa/totp/", post(enrol_totp).delete(remove_totp).layer(no_store()));
    r = both_slashes(r, "/auth/mfa/totp/confirm/", post(confirm_totp).layer(no_store()));
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
