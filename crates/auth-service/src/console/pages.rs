//! The console's pages: one askama template (auto-escaped HTML under
//! `crates/auth-service/templates/admin/`) per page, the values each shows, and the error pages.

use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use chrono::NaiveDateTime;
use serde_json::Value;
use shared_user::User;
use shared_user::http::FieldErrors;

use super::Admin;
use crate::audit::AuditKind;
use crate::service::ServiceError;
use crate::service::admin::{UserPage, UsersAt};
use crate::store::audit::AuditRow;
use crate::store::sessions::SessionRow;

/// Audit events on one console page.
pub const AUDIT_PAGE: i64 = 50;

/// Renders `page` with `status` (a 500 page when the template fails).
pub fn render<T: Template>(status: StatusCode, page: &T) -> Response {
    match page.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => {
            crate::error::internal(&format!("template: {e}"));
            (StatusCode::INTERNAL_SERVER_ERROR, "A server error occurred.").into_response()
        }
    }
}

fn when(t: &NaiveDateTime) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// The navigation bar of a signed-in admin.
#[derive(Debug, Clone)]
pub struct Nav {
    /// Who is signed in.
    pub email: String,
    /// The session's CSRF token (the sign-out form).
    pub csrf: String,
    /// Whether the audit log and the change forms are shown.
    pub may_change: bool,
    /// The current section (`users`, `audit`).
    pub section: &'static str,
}

impl Nav {
    /// The bar of `admin` in `section`.
    pub fn of(admin: &Admin, section: &'static str) -> Self {
        Nav { email: admin.user.email.clone(), csrf: admin.csrf.clone(), may_change: admin.may_change(), section }
    }
}

/// An error or notice page.
#[derive(Template)]
#[template(path = "admin/message.html")]
pub struct Message {
    /// Page title.
    pub title: String,
    /// What happened.
    pub text: String,
}

/// A page saying `text`.
pub fn message(status: StatusCode, title: &str, text: &str) -> Response {
    render(status, &Message { title: title.to_owned(), text: text.to_owned() })
}

/// 403 for a form without the right CSRF token.
pub fn csrf_failed() -> Response {
    message(
        StatusCode::FORBIDDEN,
        "Forbidden",
        "The form's security token is missing or wrong (CSRF check failed). Reload the page and try again.",
    )
}

/// 403 for a form posted from another site.
pub fn cross_site() -> Response {
    message(StatusCode::FORBIDDEN, "Forbidden", "Forms posted from another site are refused (cross-site request).")
}

/// 403 for a change a read-only admin tried.
pub fn forbidden() -> Response {
    message(StatusCode::FORBIDDEN, "Forbidden", "You do not have permission to perform this action.")
}

/// The page of a service error.
pub fn failure(e: ServiceError) -> Response {
    match e {
        ServiceError::Forbidden => forbidden(),
        ServiceError::NotFound => message(StatusCode::NOT_FOUND, "Not found", "No such record."),
        ServiceError::Throttled(secs) => {
            message(StatusCode::TOO_MANY_REQUESTS, "Too many requests", &format!("Try again in {secs} seconds."))
        }
        ServiceError::Fields(errors) => {
            message(StatusCode::BAD_REQUEST, "Invalid input", &error_lines(&errors).join(" "))
        }
        ServiceError::Unavailable(reason) => {
            message(StatusCode::SERVICE_UNAVAILABLE, "Unavailable", crate::error::unavailable(&reason))
        }
        ServiceError::Internal(reason) => {
            message(StatusCode::INTERNAL_SERVER_ERROR, "Server error", crate::error::internal(&reason))
        }
        other => message(StatusCode::BAD_REQUEST, "Refused", &other.to_string()),
    }
}

/// `field: message` lines of a field map.
pub fn error_lines(errors: &FieldErrors) -> Vec<String> {
    let mut out = Vec::new();
    for (field, messages) in &errors.0 {
        let list: Vec<String> = match messages {
            Value::Array(items) => items.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
            Value::String(s) => vec![s.clone()],
            other => vec![other.to_string()],
        };
        for m in list {
            out.push(format!("{field}: {m}"));
        }
    }
    out
}

/// The sign-in page.
#[derive(Template)]
#[template(path = "admin/login.html")]
pub struct Login {
    /// The form's CSRF token.
    pub csrf: String,
    /// The email given (kept after a failure).
    pub email: String,
    /// Why the last attempt failed.
    pub error: Option<String>,
    /// Whether passkeys are configured (the passwordless button is shown).
    pub passkeys: bool,
}

/// One user in the list.
#[derive(Debug, Clone)]
pub struct UserLine {
    /// Id.
    pub id: i64,
    /// Email.
    pub email: String,
    /// First and last name.
    pub name: String,
    /// Active flag.
    pub active: bool,
    /// `staff`, `superuser` or empty.
    pub role: &'static str,
    /// Groups as `NAME[:LEVEL]`, comma separated.
    pub groups: String,
    /// Last login, or `never`.
    pub last_login: String,
}

fn group_specs(user: &User) -> Vec<String> {
    user.access_groups
        .iter()
        .map(|g| match &g.level {
            Some(level) => format!("{}:{level}", g.name),
            None => g.name.clone(),
        })
        .collect()
}

impl UserLine {
    fn of(user: &User) -> Self {
        UserLine {
            id: user.id,
            email: user.email.clone(),
            name: format!("{} {}", user.first_name, user.last_name).trim().to_owned(),
            active: user.is_active,
            role: if user.is_superuser {
                "superuser"
            } else if user.is_staff {
                "staff"
            } else {
                ""
            },
            groups: group_specs(user).join(", "),
            last_login: user.last_login.as_ref().map_or_else(|| "never".to_owned(), when),
        }
    }
}

/// The user list.
#[derive(Template)]
#[template(path = "admin/users.html")]
pub struct Users {
    /// Navigation.
    pub nav: Nav,
    /// The search term.
    pub search: String,
    /// Matches in all pages (counted up to a cap).
    pub count: i64,
    /// Whether more than `count` match.
    pub more: bool,
    /// This page's number (`None` for a page after an id).
    pub page: Option<i64>,
    /// This page's users.
    pub users: Vec<UserLine>,
    /// Link to the previous page.
    pub previous: Option<String>,
    /// Link to the next page.
    pub next: Option<String>,
}

fn users_link(search: &str, at: UsersAt) -> String {
    let mut pairs: Vec<(&str, String)> = Vec::new();
    if !search.is_empty() {
        pairs.push(("search", search.to_owned()));
    }
    match at {
        UsersAt::Page(page) => pairs.push(("page", page.to_string())),
        UsersAt::After(id) => pairs.push(("after", id.to_string())),
    }
    format!("/admin/users/?{}", serde_urlencoded::to_string(&pairs).unwrap_or_default())
}

impl Users {
    /// The page of `found` for `admin`.
    pub fn new(admin: &Admin, search: String, found: UserPage) -> Self {
        let previous = found.previous().map(|at| users_link(&search, at));
        let next = found.next().map(|at| users_link(&search, at));
        Users {
            nav: Nav::of(admin, "users"),
            count: found.count,
            more: found.more,
            page: found.page,
            users: found.users.iter().map(UserLine::of).collect(),
            search,
            previous,
            next,
        }
    }
}

/// What the user page shows besides the user: a notice after a change, the errors of a
/// refused form, and the groups text as it was typed.
#[derive(Debug, Clone, Default)]
pub struct UserForms {
    /// Notice after a successful change.
    pub notice: Option<&'static str>,
    /// Errors of the refused form, `field: message`.
    pub errors: Vec<String>,
    /// The groups text as typed (after a refusal).
    pub groups_text: Option<String>,
}

/// The notice after the change named by `?done=`.
pub fn notice(done: Option<&str>) -> Option<&'static str> {
    Some(match done? {
        "saved" => "Changes saved.",
        "password" => "Password set; every session of the user was ended.",
        "deactivated" => "User deactivated; every session of the user was ended.",
        "activated" => "User activated.",
        "sessions" => "Every session of the user was ended.",
        "session" => "Session ended.",
        "mfa-reset" => "Every second factor of the user was removed (audited as mfa_reset).",
        _ => return None,
    })
}

/// One session on the user page.
#[derive(Debug, Clone)]
pub struct SessionLine {
    /// Session id.
    pub id: String,
    /// Sign-in time.
    pub created: String,
    /// Last refresh.
    pub last_used: String,
    /// Client address.
    pub ip: String,
    /// User agent.
    pub user_agent: String,
}

/// The user page.
#[derive(Template)]
#[template(path = "admin/user.html")]
pub struct UserDetail {
    /// Navigation.
    pub nav: Nav,
    /// The user.
    pub user: UserLine,
    /// First name.
    pub first_name: String,
    /// Last name.
    pub last_name: String,
    /// Staff flag.
    pub is_staff: bool,
    /// Superuser flag.
    pub is_superuser: bool,
    /// Joined.
    pub joined: String,
    /// Groups, one `NAME[:LEVEL]` a line.
    pub groups_text: String,
    /// Whether the viewer may change this user.
    pub may_change: bool,
    /// Whether the viewer may change the flags (superusers).
    pub may_grant: bool,
    /// Whether this is the viewer's own account.
    pub is_self: bool,
    /// Live sessions.
    pub sessions: Vec<SessionLine>,
    /// Notice and errors.
    pub forms: UserForms,
}

impl UserDetail {
    /// The page of `user` for `admin`.
    pub fn new(admin: &Admin, user: &User, sessions: &[SessionRow], forms: UserForms) -> Self {
        // A staff or superuser account only a superuser changes (see `service::admin`).
        let may_change = admin.may_change() && (admin.user.is_superuser || !(user.is_staff || user.is_superuser));
        UserDetail {
            nav: Nav::of(admin, "users"),
            user: UserLine::of(user),
            first_name: user.first_name.clone(),
            last_name: user.last_name.clone(),
            is_staff: user.is_staff,
            is_superuser: user.is_superuser,
            joined: when(&user.date_joined),
            groups_text: forms.groups_text.clone().unwrap_or_else(|| group_specs(user).join("\n")),
            may_change,
            may_grant: admin.user.is_superuser,
            is_self: admin.user.id == user.id,
            sessions: sessions
                .iter()
                .map(|s| SessionLine {
                    id: s.id.clone(),
                    created: when(&s.created_at),
                    last_used: when(&s.last_used_at),
                    ip: s.ip.clone().unwrap_or_default(),
                    user_agent: s.user_agent.clone().unwrap_or_default(),
                })
                .collect(),
            forms,
        }
    }
}

/// One audit event on the audit page.
#[derive(Debug, Clone)]
pub struct AuditLine {
    /// When.
    pub when: String,
    /// Kind.
    pub kind: String,
    /// About whom (user id).
    pub user: Option<i64>,
    /// By whom (user id).
    pub actor: Option<i64>,
    /// Client address.
    pub ip: String,
    /// Details.
    pub detail: String,
}

/// The audit log page.
#[derive(Template)]
#[template(path = "admin/audit.html")]
pub struct Audit {
    /// Navigation.
    pub nav: Nav,
    /// The user filter as given.
    pub user_filter: String,
    /// The kind filter as given.
    pub kind_filter: String,
    /// Every kind (the filter's choices).
    pub kinds: Vec<&'static str>,
    /// Events, newest first.
    pub rows: Vec<AuditLine>,
    /// Link to older events.
    pub older: Option<String>,
    /// Filter errors.
    pub errors: Vec<String>,
}

impl Audit {
    /// The page of `rows` for `admin`.
    pub fn new(
        admin: &Admin,
        user_filter: String,
        kind_filter: String,
        rows: &[AuditRow],
        older_than: Option<i64>,
        errors: Vec<String>,
    ) -> Self {
        let older = older_than.map(|before| {
            let mut pairs: Vec<(&str, String)> = Vec::new();
            if !user_filter.is_empty() {
                pairs.push(("user", user_filter.clone()));
            }
            if !kind_filter.is_empty() {
                pairs.push(("kind", kind_filter.clone()));
            }
            pairs.push(("before", before.to_string()));
            format!("/admin/audit/?{}", serde_urlencoded::to_string(&pairs).unwrap_or_default())
        });
        Audit {
            nav: Nav::of(admin, "audit"),
            kinds: AuditKind::ALL.iter().map(|k| k.as_str()).collect(),
            rows: rows
                .iter()
                .map(|r| AuditLine {
                    when: when(&r.created_at),
                    kind: r.kind.clone(),
                    user: r.user_id,
                    actor: r.actor_id,
                    ip: r.ip.clone().unwrap_or_default(),
                    detail: r.detail.clone().unwrap_or_default(),
                })
                .collect(),
            user_filter,
            kind_filter,
            older,
            errors,
        }
    }
}
