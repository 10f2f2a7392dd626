//! Reading REST requests the same way on every route that shares a rule: query strings, ids,
//! page numbers (DRF's), the audit filter and the signup fields of a body. The admin API, the
//! console and the session lists use these; none of them borrows another's.

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Map, json};
use shared_user::http::{Body, FieldErrors, detail};

use crate::error::ApiError;
use crate::service::Registration;
use crate::store::audit::AuditFilter;

/// DRF's answer to a page number past the end or not a number.
pub const INVALID_PAGE: &str = "Invalid page.";
/// Query string pairs, decoded (undecodable: none).
pub fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    query.and_then(|q| serde_urlencoded::from_str(q).ok()).unwrap_or_default()
}

/// The first value of `key` among `pairs`.
pub fn query_value<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// Django's `<int:id>`: digits only, else 404.
pub fn parse_id(id: &str) -> Result<i64, ApiError> {
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::NotFound);
    }
    id.parse().map_err(|_| ApiError::NotFound)
}

/// `?page=` as DRF reads it: absent is 1, anything but a positive number is `None`.
pub fn parse_page(raw: Option<&str>) -> Option<i64> {
    match raw {
        None | Some("") => Some(1),
        Some(p) => p.parse::<i64>().ok().filter(|p| *p >= 1),
    }
}

/// The `?page=` of a session list, read as the admin user list reads it (absent: 1; `None`:
/// not a positive number).
pub fn requested_page(query: Option<&str>) -> Option<i64> {
    parse_page(query_value(&query_pairs(query), "page"))
}

/// DRF's 404 for a page that is not there.
pub fn invalid_page() -> Response {
    detail(StatusCode::NOT_FOUND, INVALID_PAGE)
}

/// The signup fields of a REST body (`email`, `password`, `first_name`, `last_name`), with the
/// problems of reading them: `/auth/create-user/` and the admin API's user creation.
pub fn registration(body: &Body) -> Registration {
    let mut fields = body.fields();
    let email = fields.required("email");
    let password = fields.required("password");
    let first_name = fields.optional("first_name").unwrap_or_default();
    let last_name = fields.optional("last_name").unwrap_or_default();
    Registration { email, password, first_name, last_name, read_errors: fields.finish().err() }
}

/// Reads the audit filter of a query (`user`, `kind`, `before`, `limit`), as field errors.
pub fn read_audit_filter(pairs: &[(String, String)]) -> Result<AuditFilter, FieldErrors> {
    let mut errors = Map::new();
    let mut number = |key: &str| -> Option<i64> {
        let raw = query_value(pairs, key).filter(|v| !v.trim().is_empty())?;
        match raw.trim().parse::<i64>() {
            Ok(n) if n >= 0 => Some(n),
            _ => {
                errors.insert(key.into(), json!(["A valid integer is required."]));
                None
            }
        }
    };
    let user_id = number("user");
    let before_id = number("before");
    let limit = number("limit").unwrap_or(0);
    let kind = query_value(pairs, "kind").map(str::trim).filter(|k| !k.is_empty()).map(str::to_owned);
    if let Some(k) = &kind
        && let Err(e) = k.parse::<crate::audit::AuditKind>()
    {
        errors.insert("kind".into(), json!([e]));
    }
    if errors.is_empty() {
        Ok(AuditFilter { user_id, kind, since: None, before_id, limit })
    } else {
        Err(FieldErrors(errors))
    }
}
