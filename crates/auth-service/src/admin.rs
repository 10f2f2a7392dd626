//! The admin HTTP API under `/auth/admin/` (staff bearer token; readers of
//! `USERS_READER_GROUP` may read users and sessions): handlers that read the wire shape, call
//! one [`crate::service::admin`] function and answer DRF's shapes (PageNumberPagination,
//! field errors, 401/403 as elsewhere).
//!
//! Routes (both slash forms): `GET/POST /auth/admin/users/` (`?search=`, `?page=` or `?after=`),
//! `GET/PATCH /auth/admin/users/{id}/`, `POST /auth/admin/users/{id}/set-password/`,
//! `GET/DELETE /auth/admin/users/{id}/sessions/`, `DELETE /auth/admin/users/{id}/sessions/{session}/`,
//! `GET /auth/admin/audit/` (`?user=`, `?kind=`, `?before=`, `?limit=`).

use axum::Json;
use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use serde_json::{Map, Value, json};
use shared_user::http::{Body, FieldErrors, both_slashes};
use shared_user::wire::msg;
use shared_user::{AccessGroup, User};

use crate::auth::CurrentUser;
use crate::error::ApiError;
use crate::params::{
    invalid_page, parse_id, parse_page, query_pairs, query_value, read_audit_filter, registration, requested_page,
};
use crate::service::admin::{self as ops, NewAccount, UsersAt};
use crate::service::{Registration, ServiceError, field_error};
use crate::state::AppState;
use crate::store::admin::UserPatch;

/// DRF's `BooleanField` message.
pub const NOT_A_BOOLEAN: &str = "Must be a valid boolean.";

/// The admin API routes.
pub fn routes(mut r: Router<AppState>) -> Router<AppState> {
    r = both_slashes(r, "/auth/admin/users/", get(list_users).post(create_user));
    r = both_slashes(r, "/auth/admin/users/{id}/", get(get_user).patch(patch_user));
    r = both_slashes(r, "/auth/admin/users/{id}/set-password/", post(set_password));
    r = both_slashes(r, "/auth/admin/users/{id}/sessions/", get(list_sessions).delete(end_sessions));
    r = both_slashes(r, "/auth/admin/users/{id}/sessions/{session}/", delete(end_session));
    both_slashes(r, "/auth/admin/audit/", get(audit_log))
}

/// Refusal of an `?after=` that is not a user id.
pub const INVALID_AFTER: &str = "A valid integer is required.";
/// Refusal of `?page=` and `?after=` together.
pub const PAGE_AND_AFTER: &str = "Give either page or after, not both.";

/// The link to page `at` of a listing: a path relative to the host (`/auth/admin/users/?page=2`,
/// `/auth/admin/users/?after=1234`), never built from the request's `Host`, which the caller
/// chooses.
fn page_url(search: Option<&str>, at: UsersAt) -> String {
    let mut pairs = Vec::new();
    match at {
        UsersAt::Page(1) => {}
        UsersAt::Page(page) => pairs.push(("page", page.to_string())),
        UsersAt::After(id) => pairs.push(("after", id.to_string())),
    }
    if let Some(s) = search.filter(|s| !s.is_empty()) {
        pairs.push(("search", s.to_owned()));
    }
    let query = serde_urlencoded::to_string(&pairs).unwrap_or_default();
    let base = "/auth/admin/users/";
    if query.is_empty() { base.to_owned() } else { format!("{base}?{query}") }
}

/// `GET /auth/admin/users/?search=&page=` (or `&after=ID`): DRF's
/// `{"count","next","previous","results"}` plus `count_exact` (`false` when more than
/// [`crate::store::admin::COUNT_CAP`] match: `count` is then that cap). `next` links pages by
/// number up to [`ops::LAST_NUMBERED_PAGE`], then with `?after=` the last id, which reads a
/// page at any depth as fast as the first; a page after an id has no `previous`. A bad
/// `?after=` is a 400 field error.
pub async fn list_users(
    State(state): State<AppState>,
    CurrentUser(viewer): CurrentUser,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let pairs = query_pairs(query.as_deref());
    let search = query_value(&pairs, "search");
    let at = match (query_value(&pairs, "page"), query_value(&pairs, "after")) {
        (_, None) => parse_page(query_value(&pairs, "page")).map(UsersAt::Page),
        (None, Some(after)) => match after.parse::<i64>() {
            Ok(id) if id >= 0 => Some(UsersAt::After(id)),
            _ => {
                ops::list_users(&state, &viewer, search, UsersAt::Page(1)).await?;
                return Err(ApiError::Fields(field_error("after", &[INVALID_AFTER])));
            }
        },
        (Some(_), Some(_)) => {
            ops::list_users(&state, &viewer, search, UsersAt::Page(1)).await?;
            return Err(ApiError::Fields(field_error("after", &[PAGE_AND_AFTER])));
        }
    };
    let Some(at) = at else {
        // A reader's permission is checked first, as DRF does.
        ops::list_users(&state, &viewer, search, UsersAt::Page(1)).await?;
        return Ok(invalid_page());
    };
    let found = match ops::list_users(&state, &viewer, search, at).await {
        Err(ServiceError::NotFound) => return Ok(invalid_page()),
        other => other?,
    };
    let next = found.next().map(|at| page_url(search, at));
    let previous = found.previous().map(|at| page_url(search, at));
    Ok(Json(json!({
        "count": found.count,
        "count_exact": !found.more,
        "next": next,
        "previous": previous,
        "results": found.users
    }))
    .into_response())
}

/// `GET /auth/admin/users/{id}/`.
pub async fn get_user(
    State(state): State<AppState>,
    CurrentUser(viewer): CurrentUser,
    Path(id): Path<String>,
) -> Result<Json<User>, ApiError> {
    Ok(Json(ops::get_user(&state, &viewer, parse_id(&id)?).await?))
}

/// Reads a boolean field (JSON `true`/`false`, or DRF's accepted strings from a form).
fn read_bool(map: &Map<String, Value>, field: &str, errors: &mut Map<String, Value>) -> Option<bool> {
    let value = map.get(field)?;
    let parsed = match value {
        Value::Bool(b) => Some(*b),
        Value::String(s) => match s.to_ascii_lowercase().as_str() {
            "true" | "1" | "on" | "yes" | "t" | "y" => Some(true),
            "false" | "0" | "off" | "no" | "f" | "n" => Some(false),
            _ => None,
        },
        Value::Number(n) if n.as_i64() == Some(1) => Some(true),
        Value::Number(n) if n.as_i64() == Some(0) => Some(false),
        _ => None,
    };
    if parsed.is_none() {
        errors.insert(field.into(), json!([NOT_A_BOOLEAN]));
    }
    parsed
}

fn read_string(map: &Map<String, Value>, field: &str, errors: &mut Map<String, Value>) -> Option<String> {
    match map.get(field)? {
        Value::String(s) => Some(s.clone()),
        Value::Null => {
            errors.insert(field.into(), json!([msg::FIELD_NULL]));
            None
        }
        _ => {
            errors.insert(field.into(), json!([msg::FIELD_NOT_STRING]));
            None
        }
    }
}

/// Reads `access_groups`: a list of `{"name","level"}` objects or `"NAME[:LEVEL]"` strings.
fn read_groups(map: &Map<String, Value>, errors: &mut Map<String, Value>) -> Option<Vec<AccessGroup>> {
    let value = map.get("access_groups")?;
    let Value::Array(items) = value else {
        let kind = match value {
            Value::String(_) => "str",
            Value::Object(_) => "dict",
            Value::Null => "NoneType",
            _ => "value",
        };
        errors.insert("access_groups".into(), json!([format!("Expected a list of items but got type \"{kind}\".")]));
        return None;
    };
    let mut groups = Vec::with_capacity(items.len());
    for item in items {
        let group = match item {
            Value::String(spec) => AccessGroup::parse(spec).ok(),
            Value::Object(o) => match (o.get("name"), o.get("level")) {
                (Some(Value::String(name)), None | Some(Value::Null)) => {
                    Some(AccessGroup { name: name.trim().to_owned(), level: None })
                }
                (Some(Value::String(name)), Some(Value::String(level))) => Some(AccessGroup {
                    name: name.trim().to_owned(),
                    level: Some(level.trim().to_owned()).filter(|l| !l.is_empty()),
                }),
                _ => None,
            },
            _ => None,
        };
        match group {
            Some(g) => groups.push(g),
            None => {
                errors.insert(
                    "access_groups".into(),
                    json!(["Each group is {\"name\": NAME, \"level\": LEVEL or null} or \"NAME[:LEVEL]\"."]),
                );
                return None;
            }
        }
    }
    Some(groups)
}

/// The patch fields of a body (unknown and read-only fields are ignored, as DRF does).
pub fn read_patch(body: &Body) -> Result<UserPatch, FieldErrors> {
    let map = &body.0;
    let mut errors = Map::new();
    let patch = UserPatch {
        first_name: read_string(map, "first_name", &mut errors),
        last_name: read_string(map, "last_name", &mut errors),
        is_active: read_bool(map, "is_active", &mut errors),
        is_staff: read_bool(map, "is_staff", &mut errors),
        is_superuser: read_bool(map, "is_superuser", &mut errors),
        access_groups: read_groups(map, &mut errors),
    };
    if errors.is_empty() { Ok(patch) } else { Err(FieldErrors(errors)) }
}

/// `POST /auth/admin/users/`: email, password (signup's validators), names, flags and
/// `access_groups` -> 201 user JSON.
pub async fn create_user(
    State(state): State<AppState>,
    CurrentUser(actor): CurrentUser,
    body: Body,
) -> Result<Response, ApiError> {
    let mut registration = registration(&body);
    let patch = read_patch(&body);
    if let Err(FieldErrors(extra)) = &patch {
        let mut all = registration.read_errors.take().map(|e| e.0).unwrap_or_default();
        all.extend(extra.clone());
        registration.read_errors = Some(FieldErrors(all));
    }
    let patch = patch.unwrap_or_default();
    let account = NewAccount {
        registration: Registration { ..registration },
        is_staff: patch.is_staff.unwrap_or(false),
        is_superuser: patch.is_superuser.unwrap_or(false),
        access_groups: patch.access_groups.unwrap_or_default(),
    };
    let user = ops::create_user(&state, &actor, account).await?;
    Ok((StatusCode::CREATED, Json(user)).into_response())
}

/// `PATCH /auth/admin/users/{id}/`: names, `is_active`, `is_staff`, `is_superuser`,
/// `access_groups` -> the user.
pub async fn patch_user(
    State(state): State<AppState>,
    CurrentUser(actor): CurrentUser,
    Path(id): Path<String>,
    body: Body,
) -> Result<Json<User>, ApiError> {
    let id = parse_id(&id)?;
    // Permission before input problems, as DRF checks it.
    if !ops::may_change_users(&actor) {
        return Err(ApiError::Forbidden);
    }
    let patch = read_patch(&body)?;
    Ok(Json(ops::update_user(&state, &actor, id, patch).await?))
}

/// `POST /auth/admin/users/{id}/set-password/`: `{"password"}` -> `{}`; every session of the
/// user ends.
pub async fn set_password(
    State(state): State<AppState>,
    CurrentUser(actor): CurrentUser,
    Path(id): Path<String>,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&id)?;
    if !ops::may_change_users(&actor) {
        return Err(ApiError::Forbidden);
    }
    let mut fields = body.fields();
    let password = fields.required("password");
    fields.finish()?;
    ops::set_password(&state, &actor, id, &password).await?;
    Ok(Json(json!({})))
}

/// `GET /auth/admin/users/{id}/sessions/?page=N`: one page of the user's live sessions, a
/// plain list (see `crate::service::sessions` on paging).
pub async fn list_sessions(
    State(state): State<AppState>,
    CurrentUser(viewer): CurrentUser,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let page = requested_page(query.as_deref()).unwrap_or(0);
    Ok(match ops::sessions(&state, &viewer, parse_id(&id)?, page).await? {
        Some(rows) => Json(rows).into_response(),
        None => invalid_page(),
    })
}

/// `DELETE /auth/admin/users/{id}/sessions/`: ends every session of the user -> 204.
pub async fn end_sessions(
    State(state): State<AppState>,
    CurrentUser(actor): CurrentUser,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    ops::end_sessions(&state, &actor, parse_id(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /auth/admin/users/{id}/sessions/{session}/`: ends one session -> 204 (404 when it
/// is not one of the user's live sessions).
pub async fn end_session(
    State(state): State<AppState>,
    CurrentUser(actor): CurrentUser,
    Path((id, session)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    ops::end_session(&state, &actor, parse_id(&id)?, &session).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /auth/admin/audit/?user=&kind=&before=&limit=`: `{"next","results"}`, newest first;
/// `next` pages on with `before=` the last id, as a path relative to the host (staff and
/// superusers only).
pub async fn audit_log(
    State(state): State<AppState>,
    CurrentUser(viewer): CurrentUser,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    if !ops::may_change_users(&viewer) {
        return Err(ApiError::Forbidden);
    }
    let pairs = query_pairs(query.as_deref());
    let filter = read_audit_filter(&pairs)?;
    let rows = ops::audit_log(&state, &viewer, &filter).await?;
    let limit = if filter.limit <= 0 { 100 } else { filter.limit.min(1000) };
    let next = match rows.last() {
        Some(last) if rows.len() as i64 == limit => {
            let mut kept: Vec<(String, String)> = pairs.into_iter().filter(|(k, _)| k != "before").collect();
            kept.push(("before".into(), last.id.to_string()));
            let q = serde_urlencoded::to_string(&kept).unwrap_or_default();
            Some(format!("/auth/admin/audit/?{q}"))
        }
        _ => None,
    };
    Ok(Json(json!({"next": next, "results": rows})).into_response())
}
