//! The admin web console at `/admin/`: server-rendered pages (askama templates, auto-escaped)
//! over the same [`crate::service::admin`] functions as the admin API.
//!
//! **Sign-in and sessions.** Staff, superusers and readers (`USERS_READER_GROUP`) sign in with
//! email and password through [`service::authenticate`], so the login throttle applies. A
//! console session is an ordinary session of the auth-service (a recorded refresh-token
//! family): the cookie `gatehouse_admin` holds its refresh token (HttpOnly, SameSite=Strict,
//! path `/admin`, Secure when the request came over TLS as a trusted `X-Forwarded-Proto`
//! says). Every request checks it like a refresh would (revoked, watermark, active user), so
//! sign-out, deactivation, a password change and "end all sessions" end console sessions too.
//!
//! **CSRF.** Every form carries a token: for a signed-in admin, an HMAC keyed by the whole
//! session cookie (the signed refresh token, which only the browser and the server know; the
//! session's id is shown to other admins, so it is no secret); on the sign-in form, a value
//! signed with a server key ([`FormKey`]: issue time, random nonce, HMAC-SHA256) that is also
//! set in the cookie `gatehouse_admin_csrf`. The sign-in accepts the token only when the form
//! and the cookie agree, the signature is ours and the token is at most
//! [`LOGIN_FORM_LIFETIME`] old, so a cookie an attacker planted (from a sibling subdomain, over
//! plain HTTP) with a value of their choosing is refused. A POST without the right token is
//! refused with 403. Every POST is refused with 403 as well when the browser says it comes from
//! another site (`Sec-Fetch-Site` other than `same-origin`/`none`; without it, an `Origin` that
//! is not this host).
//!
//! **Headers.** Every answer carries a strict Content-Security-Policy (`default-src 'self'`,
//! our own stylesheet and our one script only: the passkey buttons, `passkeys.js`; no inline
//! script), `X-Frame-Options: DENY`, `nosniff`,
//! `Referrer-Policy: same-origin`, `Cache-Control: no-store` and `Pragma: no-cache`; when the
//! request came over TLS (a trusted proxy's `X-Forwarded-Proto: https`), also
//! `Strict-Transport-Security`.

mod mfa;
mod pages;

use aws_lc_rs::hmac;
use axum::Router;
use axum::extract::{FromRequestParts, Path, RawQuery, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{Next, from_fn};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use base64::Engine;
use cookie::{Cookie, SameSite};
use shared_user::User;
use shared_user::http::both_slashes;
use subtle::ConstantTimeEq;

use self::pages::render;
use crate::client_ip::{ClientIp, from_trusted_proxy};
use crate::params::{parse_id, parse_page, query_pairs, read_audit_filter};
use crate::roles;
use crate::service::admin::{self as ops, may_change_users};
use crate::service::{self, ServiceError};
use crate::state::AppState;
use crate::store::admin::UserPatch;

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "gatehouse_admin";
/// Name of the sign-in form's CSRF cookie.
pub const LOGIN_CSRF_COOKIE: &str = "gatehouse_admin_csrf";
/// Path of every console cookie.
pub const COOKIE_PATH: &str = "/admin";
/// The Content-Security-Policy of every console answer.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; \
     object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";
/// The console's stylesheet.
const STYLESHEET: &str = include_str!("console/console.css");
/// The console's one script: the passkey buttons.
const PASSKEYS_SCRIPT: &str = include_str!("console/passkeys.js");

/// `Strict-Transport-Security` of console answers served over TLS (one year).
pub const HSTS: &str = "max-age=31536000";

pub use crate::form_key::{FormKey, LOGIN_FORM_LIFETIME};

/// The console routes (with their security headers and the cross-site check).
pub fn router() -> Router<AppState> {
    let mut r = Router::new()
        .route("/admin", get(|| async { Redirect::to("/admin/users/") }))
        .route("/admin/", get(|| async { Redirect::to("/admin/users/") }))
        .route("/admin/static/console.css", get(stylesheet))
        .route("/admin/static/passkeys.js", get(passkeys_script));
    r = both_slashes(r, "/admin/login/", get(login_form).post(login));
    r = both_slashes(r, "/admin/logout/", post(logout));
    r = both_slashes(r, "/admin/users/", get(users_page));
    r = both_slashes(r, "/admin/users/{id}/", get(user_page).post(save_user));
    r = both_slashes(r, "/admin/users/{id}/password/", post(set_password));
    r = both_slashes(r, "/admin/users/{id}/deactivate/", post(deactivate));
    r = both_slashes(r, "/admin/users/{id}/activate/", post(activate));
    r = both_slashes(r, "/admin/users/{id}/sessions/end-all/", post(end_all_sessions));
    r = both_slashes(r, "/admin/users/{id}/sessions/{session}/end/", post(end_one_session));
    r = both_slashes(r, "/admin/audit/", get(audit_page));
    r = mfa::routes(r);
    r.layer(from_fn(guard))
}

/// Refuses cross-site POSTs before any work, and sets the security headers of every answer.
async fn guard(request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let tls = over_tls(&parts.headers, from_trusted_proxy(&parts));
    let mut response = if parts.method == Method::POST && cross_site(&parts) {
        pages::cross_site()
    } else {
        next.run(Request::from_parts(parts, body)).await
    };
    let h = response.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    if tls {
        h.insert(header::STRICT_TRANSPORT_SECURITY, HeaderValue::from_static(HSTS));
    }
    crate::headers::no_store(response).await
}

/// Whether the browser says this request comes from another site: `Sec-Fetch-Site` other than
/// `same-origin` or `none` (a sibling subdomain, `same-site`, is another site here), or, from a
/// browser that does not send it, an `Origin` other than this host (`Host`, the request's
/// authority, or a trusted proxy's `X-Forwarded-Host`). A request with neither header (not a
/// browser) is left to the CSRF token.
fn cross_site(parts: &Parts) -> bool {
    let text = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    if let Some(site) = text("sec-fetch-site") {
        return !(site.eq_ignore_ascii_case("same-origin") || site.eq_ignore_ascii_case("none"));
    }
    let Some(origin) = text("origin") else { return false };
    let Some((_, authority)) = origin.split_once("://") else { return true };
    let mut ours = vec![text("host"), parts.uri.authority().map(|a| a.as_str())];
    if from_trusted_proxy(parts) {
        ours.push(text("x-forwarded-host").and_then(|h| h.split(',').next()).map(str::trim));
    }
    !ours.into_iter().flatten().any(|host| host.eq_ignore_ascii_case(authority))
}

async fn passkeys_script() -> Response {
    ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], PASSKEYS_SCRIPT).into_response()
}

async fn stylesheet() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8"), (header::CACHE_CONTROL, "public, max-age=3600")], STYLESHEET)
        .into_response()
}

/// The value of cookie `name` in the request.
fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| Cookie::split_parse(v.to_owned()))
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .map(|c| c.value().to_owned())
}

/// Whether the request came over TLS: a trusted proxy's `X-Forwarded-Proto: https`.
fn over_tls(parts_headers: &HeaderMap, trusted: bool) -> bool {
    trusted
        && parts_headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.split(',').next().is_some_and(|p| p.trim().eq_ignore_ascii_case("https")))
}

/// A console cookie: HttpOnly, SameSite=Strict, path `/admin`, Secure over TLS.
fn console_cookie(name: &'static str, value: String, secure: bool) -> HeaderValue {
    let cookie = Cookie::build((name, value))
        .http_only(true)
        .same_site(SameSite::Strict)
        .path(COOKIE_PATH)
        .secure(secure)
        .build();
    HeaderValue::from_str(&cookie.to_string()).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The removal of a console cookie.
fn removal_cookie(name: &'static str, secure: bool) -> HeaderValue {
    let cookie = Cookie::build((name, ""))
        .http_only(true)
        .same_site(SameSite::Strict)
        .path(COOKIE_PATH)
        .secure(secure)
        .removal()
        .build();
    HeaderValue::from_str(&cookie.to_string()).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The CSRF token of the console session whose cookie holds `session_token`: an HMAC-SHA256
/// keyed by the whole signed refresh token. Only the browser holding the HttpOnly cookie and
/// the server know that token (its id alone is shown to other admins), and every replica
/// derives the same value without a shared secret of its own.
fn session_csrf(session_token: &str) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, session_token.as_bytes());
    let tag = hmac::sign(&key, b"gatehouse-admin-csrf");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(tag.as_ref())
}

fn same_token(a: &str, b: &str) -> bool {
    !a.is_empty() && a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// Why a console request is refused before any work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The form's CSRF token is missing or wrong (403).
    Csrf,
    /// A read-only admin tried a change (403).
    Forbidden,
    /// The path names no user (404).
    NoSuchUser,
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        match self {
            Refused::Csrf => pages::csrf_failed(),
            Refused::Forbidden => pages::forbidden(),
            Refused::NoSuchUser => pages::message(StatusCode::NOT_FOUND, "Not found", "No such user."),
        }
    }
}

/// A signed-in console user: an active user who may read users, with a live console session.
#[derive(Debug, Clone)]
pub struct Admin {
    /// The signed-in user.
    pub user: User,
    /// The session's refresh token (the cookie's value).
    token: String,
    /// The CSRF token every form of this session carries.
    pub csrf: String,
    /// Whether cookies are set Secure.
    secure: bool,
}

impl Admin {
    /// Whether this admin may change users (else the console is read-only).
    pub fn may_change(&self) -> bool {
        may_change_users(&self.user)
    }

    /// [`Refused::Csrf`] unless the form's `csrf` field is this session's token.
    fn check_csrf(&self, form: &Form) -> Result<(), Refused> {
        if same_token(form.get("csrf"), &self.csrf) { Ok(()) } else { Err(Refused::Csrf) }
    }
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = Response;

    /// A console session, and under `MFA_REQUIRED_FOR_STAFF` a staff account with a second
    /// factor that the session's sign-in used: one without a factor is sent to enrol
    /// (`/admin/mfa/`), a password-only session to sign in again.
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let Enrolling(admin, amr) = Enrolling::from_request_parts(parts, state).await?;
        match service::mfa::check_staff_factor(state, &admin.user, &amr).await {
            Ok(()) => Ok(admin),
            Err(ServiceError::MfaEnrolmentRequired) => Err(Redirect::to("/admin/mfa/").into_response()),
            Err(ServiceError::MfaStepUpRequired) => Err(Redirect::to("/admin/login/").into_response()),
            Err(e) => Err(pages::failure(e)),
        }
    }
}

/// A signed-in console user before the `MFA_REQUIRED_FOR_STAFF` check (the second-factor
/// pages, where such a user enrols), with what the session's sign-in proved (`amr`).
#[derive(Debug, Clone)]
pub struct Enrolling(pub Admin, pub Vec<String>);

impl FromRequestParts<AppState> for Enrolling {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let to_login = || Redirect::to("/admin/login/").into_response();
        let secure = over_tls(&parts.headers, from_trusted_proxy(parts));
        let Some(token) = cookie_value(&parts.headers, SESSION_COOKIE) else { return Err(to_login()) };
        let (record, claims) = match service::live_refresh_claims(state, &token).await {
            Ok(found) => found,
            Err(ServiceError::Unavailable(reason)) => return Err(pages::failure(ServiceError::Unavailable(reason))),
            Err(ServiceError::Internal(reason)) => return Err(pages::failure(ServiceError::Internal(reason))),
            Err(_) => return Err(to_login()),
        };
        let user = match state.store.find_user(record.user_id).await {
            Ok(Some(user)) if user.is_active && roles::may_read_users(&state.settings, &user) => user,
            Ok(_) => return Err(to_login()),
            Err(e) => return Err(pages::failure(e.into())),
        };
        let amr = claims.amr;
        Ok(Enrolling(Admin { user, csrf: session_csrf(&token), token, secure }, amr))
    }
}

/// A submitted form's fields (urlencoded; a repeated field keeps its first value).
#[derive(Debug, Default)]
pub struct Form(Vec<(String, String)>);

impl Form {
    /// The field's value, empty when absent.
    pub fn get(&self, name: &str) -> &str {
        self.0.iter().find(|(k, _)| k == name).map_or("", |(_, v)| v.as_str())
    }

    /// Whether a checkbox was ticked.
    pub fn checked(&self, name: &str) -> bool {
        self.0.iter().any(|(k, _)| k == name)
    }
}

impl<S: Send + Sync> axum::extract::FromRequest<S> for Form {
    type Rejection = Response;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = axum::body::Bytes::from_request(req, state).await.map_err(|_| {
            pages::message(StatusCode::PAYLOAD_TOO_LARGE, "Request too large", "The form is too large.")
        })?;
        let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(&bytes)
            .map_err(|_| pages::message(StatusCode::BAD_REQUEST, "Bad request", "The form could not be read."))?;
        Ok(Form(pairs))
    }
}

/// Whether the request came over TLS: `X-Forwarded-Proto: https` from a trusted proxy.
#[derive(Debug, Clone, Copy)]
pub struct Tls(pub bool);

impl<S: Send + Sync> FromRequestParts<S> for Tls {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Tls(over_tls(&parts.headers, from_trusted_proxy(parts))))
    }
}

/// `GET /admin/login/`: the sign-in form (or the user list when already signed in).
async fn login_form(State(state): State<AppState>, signed_in: Result<Admin, Response>, Tls(secure): Tls) -> Response {
    if signed_in.is_ok() {
        return Redirect::to("/admin/users/").into_response();
    }
    login_page(&state, StatusCode::OK, "", None, secure)
}

/// The sign-in form with a fresh signed CSRF token (set in its cookie too).
fn login_page(state: &AppState, status: StatusCode, email: &str, error: Option<String>, secure: bool) -> Response {
    let csrf = state.console_form_key.login_token();
    let passkeys = state.webauthn.is_some();
    let mut response = render(status, &pages::Login { csrf: csrf.clone(), email: email.to_owned(), error, passkeys });
    response.headers_mut().append(header::SET_COOKIE, console_cookie(LOGIN_CSRF_COOKIE, csrf, secure));
    response
}

/// `POST /admin/login/`: email + password (throttled like a login); staff, superusers and
/// readers only.
async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Tls(secure): Tls,
    headers: HeaderMap,
    form: Form,
) -> Response {
    // The form's token must be the cookie's, and one we signed: a value an attacker planted
    // in the cookie is not.
    if !login_csrf_ok(&state, &headers, &form) {
        return pages::csrf_failed();
    }
    let email = form.get("email").trim().to_owned();
    let password = form.get("password");
    if email.is_empty() || password.is_empty() {
        return login_page(
            &state,
            StatusCode::BAD_REQUEST,
            &email,
            Some("Enter your email and password.".into()),
            secure,
        );
    }
    let admit = |user: &User| roles::may_read_users(&state.settings, user);
    let session = match service::log_in_admitted(&state, &email, password, ip, admit).await {
        Ok(session) => session,
        Err(ServiceError::MfaRequired(challenge)) => {
            let methods = challenge.methods.join(",");
            return mfa::second_step_page(&state, StatusCode::OK, &challenge.mfa_token, &methods, None, secure);
        }
        Err(e) => return login_refused(&state, &email, e, secure),
    };
    signed_in(session, secure)
}

/// The sign-in page saying why `e` refused a sign-in (or the error page of a failure).
fn login_refused(state: &AppState, email: &str, e: ServiceError, secure: bool) -> Response {
    match e {
        ServiceError::BadCredentials => {
            let error = "Email or password is wrong, or the account is inactive.".to_owned();
            login_page(state, StatusCode::BAD_REQUEST, email, Some(error), secure)
        }
        ServiceError::Forbidden => {
            let error = "This account may not use the admin console.".to_owned();
            login_page(state, StatusCode::FORBIDDEN, email, Some(error), secure)
        }
        ServiceError::Throttled(secs) => {
            let error = format!("Too many failed sign-ins. Try again in {secs} seconds.");
            let mut r = login_page(state, StatusCode::TOO_MANY_REQUESTS, email, Some(error), secure);
            r.headers_mut().insert(header::RETRY_AFTER, secs.into());
            r
        }
        ServiceError::MfaTokenRefused => {
            let error = "The sign-in expired or was already completed; sign in again.".to_owned();
            login_page(state, StatusCode::BAD_REQUEST, email, Some(error), secure)
        }
        // Characters no email holds: said on the form, without echoing them back.
        ServiceError::Fields(errors) => {
            let error = pages::error_lines(&errors).join(" ");
            login_page(state, StatusCode::BAD_REQUEST, "", Some(error), secure)
        }
        e => pages::failure(e),
    }
}

/// The answer to a completed sign-in: the session cookie, the sign-in form's cookie dropped,
/// on to the user list.
fn signed_in(session: service::Session, secure: bool) -> Response {
    let mut response = Redirect::to("/admin/users/").into_response();
    let h = response.headers_mut();
    h.append(header::SET_COOKIE, console_cookie(SESSION_COOKIE, session.refresh.token, secure));
    h.append(header::SET_COOKIE, removal_cookie(LOGIN_CSRF_COOKIE, secure));
    response
}

/// Whether the sign-in form's token (`form`'s `csrf`) is the cookie's and one we signed.
fn login_csrf_ok(state: &AppState, headers: &HeaderMap, form: &Form) -> bool {
    let expected = cookie_value(headers, LOGIN_CSRF_COOKIE).unwrap_or_default();
    same_token(form.get("csrf"), &expected) && state.console_form_key.accepts(&expected)
}

/// `POST /admin/logout/`: ends the console session and drops its cookie.
async fn logout(State(state): State<AppState>, admin: Admin, form: Form) -> Response {
    if let Err(r) = admin.check_csrf(&form) {
        return r.into_response();
    }
    match service::revoke_refresh(&state, &admin.token).await {
        Ok(()) | Err(ServiceError::Token(_)) => {}
        Err(e) => return pages::failure(e),
    }
    let mut response = Redirect::to("/admin/login/").into_response();
    response.headers_mut().append(header::SET_COOKIE, removal_cookie(SESSION_COOKIE, admin.secure));
    response
}

/// `GET /admin/users/?search=&page=` (or `&after=ID`, which the pages after
/// [`ops::LAST_NUMBERED_PAGE`] link to): the user list.
async fn users_page(State(state): State<AppState>, admin: Admin, RawQuery(query): RawQuery) -> Response {
    let pairs = query_pairs(query.as_deref());
    let value = |k: &str| pairs.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
    let search = value("search").unwrap_or_default();
    let at = match value("after") {
        Some(after) => after.parse::<i64>().ok().filter(|id| *id >= 0).map(ops::UsersAt::After),
        None => parse_page(value("page").as_deref()).map(ops::UsersAt::Page),
    };
    let Some(at) = at else {
        return pages::message(StatusCode::NOT_FOUND, "Not found", "There is no such page.");
    };
    match ops::list_users(&state, &admin.user, Some(&search), at).await {
        Ok(found) => render(StatusCode::OK, &pages::Users::new(&admin, search, found)),
        Err(ServiceError::NotFound) => pages::message(StatusCode::NOT_FOUND, "Not found", "There is no such page."),
        Err(e) => pages::failure(e),
    }
}

/// Reads a user id from the path (digits only).
pub(crate) fn user_id(raw: &str) -> Result<i64, Refused> {
    parse_id(raw).map_err(|_| Refused::NoSuchUser)
}

/// The user page, with `notice` and the errors of one form.
async fn show_user(state: &AppState, admin: &Admin, id: i64, status: StatusCode, view: pages::UserForms) -> Response {
    let user = match ops::get_user(state, &admin.user, id).await {
        Ok(user) => user,
        Err(e) => return pages::failure(e),
    };
    let sessions = match ops::sessions(state, &admin.user, id, 1).await {
        Ok(sessions) => sessions.unwrap_or_default(),
        Err(e) => return pages::failure(e),
    };
    render(status, &pages::UserDetail::new(admin, &user, &sessions, view))
}

/// `GET /admin/users/{id}/`: the user's details, forms and sessions.
async fn user_page(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let id = match user_id(&id) {
        Ok(id) => id,
        Err(r) => return r.into_response(),
    };
    let pairs = query_pairs(query.as_deref());
    let done = pairs.iter().find(|(k, _)| k == "done").map(|(_, v)| v.as_str());
    let view = pages::UserForms { notice: pages::notice(done), ..Default::default() };
    show_user(&state, &admin, id, StatusCode::OK, view).await
}

/// Checks session, CSRF and permission of a change form; the user id on success.
fn change_allowed(admin: &Admin, form: &Form, raw_id: &str) -> Result<i64, Refused> {
    admin.check_csrf(form)?;
    if !admin.may_change() {
        return Err(Refused::Forbidden);
    }
    user_id(raw_id)
}

fn after(id: i64, done: &str) -> Response {
    Redirect::to(&format!("/admin/users/{id}/?done={done}")).into_response()
}

/// Renders a refused change: field errors on the user page (400), or the error page.
async fn refused(state: &AppState, admin: &Admin, id: i64, e: ServiceError, view: pages::UserForms) -> Response {
    match e {
        ServiceError::Fields(errors) => {
            let view = pages::UserForms { errors: pages::error_lines(&errors), ..view };
            show_user(state, admin, id, StatusCode::BAD_REQUEST, view).await
        }
        other => pages::failure(other),
    }
}

/// `POST /admin/users/{id}/`: names, flags (superusers only) and groups.
async fn save_user(State(state): State<AppState>, admin: Admin, Path(id): Path<String>, form: Form) -> Response {
    let id = match change_allowed(&admin, &form, &id) {
        Ok(id) => id,
        Err(r) => return r.into_response(),
    };
    let groups_text = form.get("access_groups").to_owned();
    let mut groups = Vec::new();
    for line in groups_text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        match shared_user::AccessGroup::parse(line) {
            Ok(g) => groups.push(g),
            Err(e) => {
                let view = pages::UserForms {
                    errors: vec![format!("access_groups: {e}")],
                    groups_text: Some(groups_text.clone()),
                    ..Default::default()
                };
                return show_user(&state, &admin, id, StatusCode::BAD_REQUEST, view).await;
            }
        }
    }
    let superuser = admin.user.is_superuser;
    let patch = UserPatch {
        first_name: Some(form.get("first_name").trim().to_owned()),
        last_name: Some(form.get("last_name").trim().to_owned()),
        is_staff: superuser.then(|| form.checked("is_staff")),
        is_superuser: superuser.then(|| form.checked("is_superuser")),
        access_groups: Some(groups),
        ..UserPatch::default()
    };
    match ops::update_user(&state, &admin.user, id, patch).await {
        Ok(_) => after(id, "saved"),
        Err(e) => {
            let view = pages::UserForms { groups_text: Some(groups_text), ..Default::default() };
            refused(&state, &admin, id, e, view).await
        }
    }
}

/// `POST /admin/users/{id}/password/`: a new password (signup's validators); ends every
/// session of the user.
async fn set_password(State(state): State<AppState>, admin: Admin, Path(id): Path<String>, form: Form) -> Response {
    let id = match change_allowed(&admin, &form, &id) {
        Ok(id) => id,
        Err(r) => return r.into_response(),
    };
    if form.get("password") != form.get("password2") {
        let view =
            pages::UserForms { errors: vec!["password: The two passwords differ.".into()], ..Default::default() };
        return show_user(&state, &admin, id, StatusCode::BAD_REQUEST, view).await;
    }
    match ops::set_password(&state, &admin.user, id, form.get("password")).await {
        Ok(()) => after(id, "password"),
        Err(e) => refused(&state, &admin, id, e, pages::UserForms::default()).await,
    }
}

async fn set_active(state: &AppState, admin: &Admin, raw_id: &str, form: &Form, active: bool) -> Response {
    let id = match change_allowed(admin, form, raw_id) {
        Ok(id) => id,
        Err(r) => return r.into_response(),
    };
    let patch = UserPatch { is_active: Some(active), ..UserPatch::default() };
    match ops::update_user(state, &admin.user, id, patch).await {
        Ok(_) => after(id, if active { "activated" } else { "deactivated" }),
        Err(e) => refused(state, admin, id, e, pages::UserForms::default()).await,
    }
}

/// `POST /admin/users/{id}/deactivate/`: deactivates the user and ends their sessions.
async fn deactivate(State(state): State<AppState>, admin: Admin, Path(id): Path<String>, form: Form) -> Response {
    set_active(&state, &admin, &id, &form, false).await
}

/// `POST /admin/users/{id}/activate/`: lets the user sign in again.
async fn activate(State(state): State<AppState>, admin: Admin, Path(id): Path<String>, form: Form) -> Response {
    set_active(&state, &admin, &id, &form, true).await
}

/// `POST /admin/users/{id}/sessions/end-all/`: ends every session of the user.
async fn end_all_sessions(State(state): State<AppState>, admin: Admin, Path(id): Path<String>, form: Form) -> Response {
    let id = match change_allowed(&admin, &form, &id) {
        Ok(id) => id,
        Err(r) => return r.into_response(),
    };
    match ops::end_sessions(&state, &admin.user, id).await {
        Ok(()) => after(id, "sessions"),
        Err(e) => pages::failure(e),
    }
}

/// `POST /admin/users/{id}/sessions/{session}/end/`: ends one session of the user.
async fn end_one_session(
    State(state): State<AppState>,
    admin: Admin,
    Path((id, session)): Path<(String, String)>,
    form: Form,
) -> Response {
    let id = match change_allowed(&admin, &form, &id) {
        Ok(id) => id,
        Err(r) => return r.into_response(),
    };
    match ops::end_session(&state, &admin.user, id, &session).await {
        Ok(()) => after(id, "session"),
        Err(e) => pages::failure(e),
    }
}

/// `GET /admin/audit/?user=&kind=&before=`: the audit log, newest first (staff and superusers).
async fn audit_page(State(state): State<AppState>, admin: Admin, RawQuery(query): RawQuery) -> Response {
    if !admin.may_change() {
        return pages::forbidden();
    }
    let pairs = query_pairs(query.as_deref());
    let value = |k: &str| pairs.iter().find(|(key, _)| key == k).map_or(String::new(), |(_, v)| v.clone());
    let mut filter = match read_audit_filter(&pairs) {
        Ok(filter) => filter,
        Err(errors) => {
            let page = pages::Audit::new(&admin, value("user"), value("kind"), &[], None, pages::error_lines(&errors));
            return render(StatusCode::BAD_REQUEST, &page);
        }
    };
    filter.limit = pages::AUDIT_PAGE;
    match ops::audit_log(&state, &admin.user, &filter).await {
        Ok(rows) => {
            let older = (rows.len() as i64 == pages::AUDIT_PAGE).then(|| rows.last().map(|r| r.id)).flatten();
            render(StatusCode::OK, &pages::Audit::new(&admin, value("user"), value("kind"), &rows, older, Vec::new()))
        }
        Err(e) => pages::failure(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> Parts {
        let mut req = Request::builder().method(Method::POST).uri("/admin/login/");
        for (k, v) in pairs {
            req = req.header(*k, *v);
        }
        req.body(()).unwrap().into_parts().0
    }

    #[test]
    fn cross_site_follows_fetch_metadata_then_origin() {
        assert!(!cross_site(&headers(&[])), "no browser headers: left to the token");
        assert!(!cross_site(&headers(&[("sec-fetch-site", "same-origin")])));
        assert!(!cross_site(&headers(&[("sec-fetch-site", "none")])));
        assert!(cross_site(&headers(&[("sec-fetch-site", "cross-site")])));
        assert!(cross_site(&headers(&[("sec-fetch-site", "same-site")])));
        assert!(!cross_site(&headers(&[("origin", "https://Console.Example:8443"), ("host", "console.example:8443")])));
        assert!(cross_site(&headers(&[("origin", "https://console.example"), ("host", "console.example:8443")])));
        assert!(cross_site(&headers(&[("origin", "null"), ("host", "console.example")])));
        assert!(cross_site(&headers(&[("origin", "https://evil.example")])), "no host to match");
    }
}
