//! The console's second-factor pages: the second step of a sign-in (`/admin/login/mfa/`), the
//! signed-in user's own factors with TOTP enrolment (QR code) and removal (`/admin/mfa/`), and
//! a superuser's reset of a user's factors, and the passkey ceremonies the console's one script
//! (`passkeys.js`) runs: registering a passkey, and signing in with one (after the password or
//! without it). Those answer JSON and take the page's CSRF token in `X-CSRF-Token`. The rules are `crate::service::mfa`'s; under
//! `MFA_REQUIRED_FOR_STAFF` these pages are the ones a staff account without a factor may
//! reach ([`Enrolling`]).

use askama::Template;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use shared_user::http::both_slashes;

use super::pages::{self, Nav, render};
use super::{Admin, Enrolling, Form, LOGIN_CSRF_COOKIE, Refused, Tls, console_cookie};
use crate::client_ip::ClientIp;
use crate::service::ServiceError;
use shared_user::http::Body;

use crate::service::mfa::{self as factors, TotpEnrolment};
use crate::service::passkeys;
use crate::state::AppState;

/// The second-factor routes of the console.
pub fn routes(mut r: Router<AppState>) -> Router<AppState> {
    r = both_slashes(r, "/admin/login/mfa/", post(second_step));
    r = both_slashes(r, "/admin/mfa/", get(factors_page));
    r = both_slashes(r, "/admin/mfa/totp/", post(begin_totp));
    r = both_slashes(r, "/admin/mfa/totp/confirm/", post(confirm_totp));
    r = both_slashes(r, "/admin/mfa/totp/remove/", post(remove_totp));
    r = both_slashes(r, "/admin/mfa/webauthn/register/start/", post(start_passkey_registration));
    r = both_slashes(r, "/admin/mfa/webauthn/register/finish/", post(finish_passkey_registration));
    r = both_slashes(r, "/admin/mfa/webauthn/{id}/remove/", post(remove_passkey));
    r = both_slashes(r, "/admin/login/webauthn/start/", post(start_passkey_sign_in));
    r = both_slashes(r, "/admin/login/webauthn/finish/", post(finish_passkey_sign_in));
    both_slashes(r, "/admin/users/{id}/mfa/reset/", post(reset_user))
}

/// The header the console's script sends the page's CSRF token in.
const CSRF_HEADER: &str = "x-csrf-token";

fn csrf_header(headers: &HeaderMap) -> &str {
    headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()).unwrap_or_default()
}

/// A JSON error of the passkey endpoints.
fn json_error(status: StatusCode, detail: &str) -> Response {
    shared_user::http::json(status, serde_json::json!({"detail": detail}))
}

/// The JSON answer of a service error to the console's script.
fn json_failure(e: ServiceError) -> Response {
    match e {
        ServiceError::Fields(errors) => json_error(StatusCode::BAD_REQUEST, &pages::error_lines(&errors).join(" ")),
        ServiceError::MfaRefused => json_error(StatusCode::UNAUTHORIZED, "The passkey was not accepted."),
        ServiceError::MfaTokenRefused => {
            json_error(StatusCode::UNAUTHORIZED, "The sign-in expired or was already completed; sign in again.")
        }
        ServiceError::Throttled(secs) => json_error(
            StatusCode::TOO_MANY_REQUESTS,
            &format!("Too many failed sign-ins. Try again in {secs} seconds."),
        ),
        ServiceError::Forbidden => json_error(StatusCode::FORBIDDEN, "This account may not use the admin console."),
        ServiceError::NotFound => json_error(StatusCode::NOT_FOUND, "Not found."),
        ServiceError::Unavailable(reason) => {
            json_error(StatusCode::SERVICE_UNAVAILABLE, crate::error::unavailable(&reason))
        }
        e => json_error(StatusCode::INTERNAL_SERVER_ERROR, crate::error::internal(&e.to_string())),
    }
}

/// `{"ticket","publicKey"}` of a started ceremony.
fn ceremony_json(ceremony: passkeys::Ceremony) -> Response {
    let mut body = serde_json::Map::new();
    body.insert("ticket".into(), ceremony.ticket.into());
    if let serde_json::Value::Object(options) = ceremony.options {
        body.extend(options);
    }
    shared_user::http::json(StatusCode::OK, body)
}

/// A text field of a JSON body (absent or not text: empty).
fn text<'a>(body: &'a Body, name: &str) -> &'a str {
    body.0.get(name).and_then(serde_json::Value::as_str).unwrap_or_default()
}

/// `POST /admin/mfa/webauthn/register/start/` `{"name"}` -> the options of
/// `navigator.credentials.create()` and a ticket.
async fn start_passkey_registration(
    State(state): State<AppState>,
    Enrolling(admin, _): Enrolling,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if !super::same_token(csrf_header(&headers), &admin.csrf) {
        return json_error(StatusCode::FORBIDDEN, "CSRF check failed: reload the page.");
    }
    let name = Some(text(&body, "name")).filter(|n| !n.is_empty());
    match passkeys::begin_registration(&state, &admin.user, name).await {
        Ok(ceremony) => ceremony_json(ceremony),
        Err(e) => json_failure(e),
    }
}

/// `POST /admin/mfa/webauthn/register/finish/` `{"ticket","credential","name"}` -> 201.
async fn finish_passkey_registration(
    State(state): State<AppState>,
    Enrolling(admin, _): Enrolling,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if !super::same_token(csrf_header(&headers), &admin.csrf) {
        return json_error(StatusCode::FORBIDDEN, "CSRF check failed: reload the page.");
    }
    let credential = body.0.get("credential").cloned().unwrap_or_default();
    let name = Some(text(&body, "name")).filter(|n| !n.is_empty());
    match passkeys::finish_registration(&state, &admin.user, text(&body, "ticket"), &credential, name).await {
        Ok(passkey) => shared_user::http::json(StatusCode::CREATED, passkey),
        Err(e) => json_failure(e),
    }
}

/// `POST /admin/mfa/webauthn/{id}/remove/` (a form): the signed-in user's passkey removed.
async fn remove_passkey(
    State(state): State<AppState>,
    Enrolling(admin, _): Enrolling,
    Path(id): Path<String>,
    form: Form,
) -> Response {
    if let Err(r) = admin.check_csrf(&form) {
        return r.into_response();
    }
    let Ok(id) = id.parse::<i64>() else { return Refused::NoSuchUser.into_response() };
    match passkeys::remove_passkey(&state, &admin.user, id).await {
        Ok(()) => Redirect::to("/admin/mfa/?done=passkey-removed").into_response(),
        Err(e) => refused(&state, &admin, e, None).await,
    }
}

/// Whether the `X-CSRF-Token` of a sign-in request is the sign-in form's cookie, signed by us.
fn login_csrf_header_ok(state: &AppState, headers: &HeaderMap) -> bool {
    let expected = super::cookie_value(headers, LOGIN_CSRF_COOKIE).unwrap_or_default();
    super::same_token(csrf_header(headers), &expected) && state.console_form_key.accepts(&expected)
}

/// `POST /admin/login/webauthn/start/` `{"mfa_token"}` (after the password) or `{}`
/// (passwordless) -> the options of `navigator.credentials.get()` and a ticket.
async fn start_passkey_sign_in(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if !login_csrf_header_ok(&state, &headers) {
        return json_error(StatusCode::FORBIDDEN, "CSRF check failed: reload the page.");
    }
    let mfa_token = Some(text(&body, "mfa_token")).filter(|t| !t.is_empty());
    match passkeys::begin_sign_in(&state, mfa_token, ip).await {
        Ok(ceremony) => ceremony_json(ceremony),
        Err(e) => json_failure(e),
    }
}

/// `POST /admin/login/webauthn/finish/` `{"ticket","credential","mfa_token"}` -> the session
/// cookie and `{"redirect":"/admin/users/"}`. A passkey of an account that may not use the
/// console signs nothing in (its new session is ended at once).
async fn finish_passkey_sign_in(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Tls(secure): Tls,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if !login_csrf_header_ok(&state, &headers) {
        return json_error(StatusCode::FORBIDDEN, "CSRF check failed: reload the page.");
    }
    let credential = body.0.get("credential").cloned().unwrap_or_default();
    let mfa_token = Some(text(&body, "mfa_token")).filter(|t| !t.is_empty());
    let session = match passkeys::finish_sign_in(&state, text(&body, "ticket"), &credential, mfa_token, ip).await {
        Ok(session) => session,
        Err(e) => return json_failure(e),
    };
    if !crate::roles::may_read_users(&state.settings, &session.user) {
        if let Err(e) = crate::service::revoke_refresh(&state, &session.refresh.token).await {
            return json_failure(e);
        }
        return json_failure(ServiceError::Forbidden);
    }
    let mut response = super::signed_in(session, secure);
    *response.status_mut() = StatusCode::OK;
    response.headers_mut().remove(header::LOCATION);
    *response.body_mut() = axum::body::Body::from(serde_json::json!({"redirect": "/admin/users/"}).to_string());
    response.headers_mut().insert(header::CONTENT_TYPE, axum::http::HeaderValue::from_static("application/json"));
    response
}

/// The second step of a sign-in: a TOTP or recovery code for the `mfa_token` of the first.
#[derive(Template)]
#[template(path = "admin/login_mfa.html")]
pub struct SecondStep {
    /// The form's CSRF token (the sign-in form's kind).
    pub csrf: String,
    /// The login it continues.
    pub mfa_token: String,
    /// The methods that may continue it, comma separated (`totp`, `webauthn`).
    pub methods: String,
    /// Why the last code was refused.
    pub error: Option<String>,
}

/// The second-step form (with a fresh signed CSRF token, set in its cookie too).
pub fn second_step_page(
    state: &AppState,
    status: StatusCode,
    mfa_token: &str,
    methods: &str,
    error: Option<String>,
    secure: bool,
) -> Response {
    let csrf = state.console_form_key.login_token();
    // Only the names we know go back into the page.
    let methods: Vec<&str> = methods
        .split(',')
        .filter(|m| [crate::factors::method::TOTP, crate::factors::method::WEBAUTHN].contains(m))
        .collect();
    let page = SecondStep { csrf: csrf.clone(), mfa_token: mfa_token.to_owned(), methods: methods.join(","), error };
    let mut response = render(status, &page);
    response.headers_mut().append(header::SET_COOKIE, console_cookie(LOGIN_CSRF_COOKIE, csrf, secure));
    response
}

/// `POST /admin/login/mfa/`: `mfa_token` + `code` (counted like a password).
async fn second_step(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Tls(secure): Tls,
    headers: HeaderMap,
    form: Form,
) -> Response {
    if !super::login_csrf_ok(&state, &headers, &form) {
        return pages::csrf_failed();
    }
    let (token, code) = (form.get("mfa_token"), form.get("code").trim());
    // A code was posted, so the code form is shown again, with a passkey when the login has one.
    let methods = if form.get("methods").contains(crate::factors::method::WEBAUTHN) { "totp,webauthn" } else { "totp" };
    if code.is_empty() {
        return second_step_page(
            &state,
            StatusCode::BAD_REQUEST,
            token,
            methods,
            Some("Enter the code.".into()),
            secure,
        );
    }
    match factors::finish_login_with_code(&state, token, code, ip).await {
        Ok(session) => super::signed_in(session, secure),
        Err(ServiceError::MfaRefused) => {
            let error = "That code is wrong or was already used.".to_owned();
            second_step_page(&state, StatusCode::BAD_REQUEST, token, methods, Some(error), secure)
        }
        Err(ServiceError::Throttled(secs)) => {
            let error = format!("Too many failed sign-ins. Try again in {secs} seconds.");
            let mut r = second_step_page(&state, StatusCode::TOO_MANY_REQUESTS, token, methods, Some(error), secure);
            r.headers_mut().insert(header::RETRY_AFTER, secs.into());
            r
        }
        Err(e) => super::login_refused(&state, "", e, secure),
    }
}

/// The signed-in user's second factors, with an enrolment in progress or new recovery codes.
#[derive(Template)]
#[template(path = "admin/mfa.html")]
pub struct FactorsPage {
    /// Navigation.
    pub nav: Nav,
    /// A confirmed TOTP authenticator.
    pub totp: bool,
    /// Unused recovery codes.
    pub recovery_codes_remaining: i64,
    /// Registered passkeys: id and name.
    pub passkeys: Vec<(i64, String)>,
    /// Whether passkeys are configured here (`WEBAUTHN_RP_ID`, `WEBAUTHN_ORIGIN`).
    pub passkeys_configured: bool,
    /// `MFA_REQUIRED_FOR_STAFF` applies to this account and it has no factor yet.
    pub must_enrol: bool,
    /// An enrolment waiting for its first code.
    pub enrolment: Option<Enrolment>,
    /// Recovery codes just made (shown once).
    pub recovery_codes: Vec<String>,
    /// Notice after a change.
    pub notice: Option<&'static str>,
    /// Errors of the last form.
    pub errors: Vec<String>,
}

/// A TOTP enrolment as the page shows it.
#[derive(Debug, Clone)]
pub struct Enrolment {
    /// The secret, base32, in groups of four.
    pub secret: String,
    /// The QR code (an SVG document we made; shown as markup).
    pub qr_svg: String,
    /// The `otpauth://` URI.
    pub uri: String,
}

impl Enrolment {
    fn of(e: TotpEnrolment) -> Self {
        let grouped: Vec<String> =
            e.secret.as_bytes().chunks(4).map(|c| String::from_utf8_lossy(c).into_owned()).collect();
        // The SVG is ours (qrcode's renderer over the URI), so it is shown as markup; the XML
        // declaration is dropped for inline use.
        let svg = e.qr_svg.find("<svg").map_or(e.qr_svg.clone(), |at| e.qr_svg[at..].to_owned());
        Enrolment { secret: grouped.join(" "), qr_svg: svg, uri: e.otpauth_uri }
    }
}

/// The factors page of `admin` with `extra` shown.
async fn show(
    state: &AppState,
    admin: &Admin,
    status: StatusCode,
    enrolment: Option<Enrolment>,
    recovery_codes: Vec<String>,
    notice: Option<&'static str>,
    errors: Vec<String>,
) -> Response {
    let found = match factors::factors_of(state, &admin.user).await {
        Ok(found) => found,
        Err(e) => return pages::failure(e),
    };
    let staff = admin.user.is_staff || admin.user.is_superuser;
    let must_enrol = state.settings.mfa_required_for_staff && staff && !found.totp && found.passkeys.is_empty();
    let page = FactorsPage {
        nav: Nav::of(admin, "mfa"),
        totp: found.totp,
        recovery_codes_remaining: found.recovery_codes_remaining,
        passkeys: found.passkeys.into_iter().map(|p| (p.id, p.name)).collect(),
        passkeys_configured: state.webauthn.is_some(),
        must_enrol,
        enrolment,
        recovery_codes,
        notice,
        errors,
    };
    render(status, &page)
}

/// `GET /admin/mfa/` (`?done=passkey` or `passkey-removed` after a change).
async fn factors_page(
    State(state): State<AppState>,
    Enrolling(admin, _): Enrolling,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
) -> Response {
    let notice = match query.as_deref() {
        Some("done=passkey") => Some("Passkey registered."),
        Some("done=passkey-removed") => Some("Passkey removed."),
        _ => None,
    };
    show(&state, &admin, StatusCode::OK, None, Vec::new(), notice, Vec::new()).await
}

/// The page of a refused form: its errors, or the error page.
async fn refused(state: &AppState, admin: &Admin, e: ServiceError, enrolment: Option<Enrolment>) -> Response {
    match e {
        ServiceError::Fields(errors) => {
            let lines = pages::error_lines(&errors);
            show(state, admin, StatusCode::BAD_REQUEST, enrolment, Vec::new(), None, lines).await
        }
        ServiceError::NotFound => {
            let lines = vec!["There is no authenticator to remove.".to_owned()];
            show(state, admin, StatusCode::NOT_FOUND, None, Vec::new(), None, lines).await
        }
        e => pages::failure(e),
    }
}

/// `POST /admin/mfa/totp/`: a new secret, shown as a QR code with a form for the first code.
async fn begin_totp(State(state): State<AppState>, Enrolling(admin, _): Enrolling, form: Form) -> Response {
    if let Err(r) = admin.check_csrf(&form) {
        return r.into_response();
    }
    match factors::begin_totp(&state, &admin.user).await {
        Ok(e) => show(&state, &admin, StatusCode::OK, Some(Enrolment::of(e)), Vec::new(), None, Vec::new()).await,
        Err(e) => refused(&state, &admin, e, None).await,
    }
}

/// `POST /admin/mfa/totp/confirm/`: the first code; the recovery codes are shown once.
async fn confirm_totp(State(state): State<AppState>, Enrolling(admin, _): Enrolling, form: Form) -> Response {
    if let Err(r) = admin.check_csrf(&form) {
        return r.into_response();
    }
    match factors::confirm_totp(&state, &admin.user, form.get("code")).await {
        Ok(codes) => {
            let notice = Some(
                "Authenticator app enrolled. Keep these recovery codes somewhere safe: each signs you in once without the app. They are not shown again.",
            );
            show(&state, &admin, StatusCode::OK, None, codes, notice, Vec::new()).await
        }
        Err(ServiceError::Fields(errors)) if errors.0.contains_key("code") => {
            // The secret stays pending: the page offers to start again.
            let lines = vec!["That code is wrong: set up the app again and enter the code it shows.".to_owned()];
            show(&state, &admin, StatusCode::BAD_REQUEST, None, Vec::new(), None, lines).await
        }
        Err(e) => refused(&state, &admin, e, None).await,
    }
}

/// `POST /admin/mfa/totp/remove/`: password + code.
async fn remove_totp(
    State(state): State<AppState>,
    Enrolling(admin, _): Enrolling,
    ClientIp(ip): ClientIp,
    form: Form,
) -> Response {
    if let Err(r) = admin.check_csrf(&form) {
        return r.into_response();
    }
    match factors::remove_totp(&state, &admin.user, form.get("password"), form.get("code"), ip).await {
        Ok(()) => {
            let notice = Some("Authenticator app removed.");
            show(&state, &admin, StatusCode::OK, None, Vec::new(), notice, Vec::new()).await
        }
        Err(e) => refused(&state, &admin, e, None).await,
    }
}

/// `POST /admin/users/{id}/mfa/reset/` (superusers): every factor of the user removed.
async fn reset_user(State(state): State<AppState>, admin: Admin, Path(id): Path<String>, form: Form) -> Response {
    if let Err(r) = admin.check_csrf(&form) {
        return r.into_response();
    }
    let Ok(id) = super::user_id(&id) else { return Refused::NoSuchUser.into_response() };
    match factors::reset_factors(&state, &admin.user, id).await {
        Ok(_) => Redirect::to(&format!("/admin/users/{id}/?done=mfa-reset")).into_response(),
        Err(e) => pages::failure(e),
    }
}
