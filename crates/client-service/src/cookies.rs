//! Browser mode: the refresh token in an HttpOnly cookie, and the CSRF double-submit check
//! (`csrftoken` cookie + `X-CSRFToken` header, Django's names) that protects the endpoints
//! reading that cookie.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use cookie::{Cookie, SameSite};
use shared_user::http::detail;
use subtle::ConstantTimeEq;

use crate::config::CookieConfig;

/// Name of the CSRF cookie (Django's default).
pub(crate) const CSRF_COOKIE: &str = "csrftoken";
/// Header that must echo the CSRF cookie.
pub(crate) const CSRF_HEADER: &str = "x-csrftoken";

/// The value of cookie `name` in the request, if any.
pub(crate) fn read_cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .map(|c| c.value().to_owned())
        .filter(|v| !v.is_empty())
}

fn same_site(config: &CookieConfig) -> SameSite {
    match config.same_site {
        crate::settings::SameSite::Strict => SameSite::Strict,
        crate::settings::SameSite::None => SameSite::None,
        crate::settings::SameSite::Lax => SameSite::Lax,
    }
}

/// `Set-Cookie` carrying the refresh token.
pub(crate) fn refresh_cookie(config: &CookieConfig, token: &str) -> HeaderValue {
    let mut c = Cookie::build((config.name.clone(), token.to_owned()))
        .http_only(true)
        .secure(config.secure)
        .same_site(same_site(config))
        .path(config.path.clone());
    if let Some(domain) = &config.domain {
        c = c.domain(domain.clone());
    }
    if let Some(max_age) = config.max_age {
        c = c.max_age(cookie::time::Duration::seconds(i64::try_from(max_age).unwrap_or(i64::MAX)));
    }
    HeaderValue::from_str(&c.build().to_string()).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// `Set-Cookie` that deletes the refresh-token cookie.
pub(crate) fn clear_refresh_cookie(config: &CookieConfig) -> HeaderValue {
    let mut c = Cookie::build((config.name.clone(), ""))
        .http_only(true)
        .secure(config.secure)
        .same_site(same_site(config))
        .path(config.path.clone())
        .max_age(cookie::time::Duration::ZERO)
        .expires(cookie::time::OffsetDateTime::UNIX_EPOCH);
    if let Some(domain) = &config.domain {
        c = c.domain(domain.clone());
    }
    HeaderValue::from_str(&c.build().to_string()).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// `GET /auth/csrf/`: sets a fresh CSRF cookie readable by the page's script.
pub(crate) fn issue_csrf(config: &CookieConfig) -> Response {
    let token = format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
    let cookie = Cookie::build((CSRF_COOKIE, token))
        .secure(config.secure)
        .same_site(SameSite::Lax)
        .path("/")
        .max_age(cookie::time::Duration::seconds(31_449_600))
        .build();
    let mut resp = detail(StatusCode::OK, "CSRF cookie set.");
    if let Ok(v) = HeaderValue::from_str(&cookie.to_string()) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

/// Why a cookie-mode request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CsrfError {
    /// No `csrftoken` cookie.
    NoCookie,
    /// No `X-CSRFToken` header.
    Missing,
    /// Header and cookie differ.
    Incorrect,
    /// `Origin`/`Referer` not in `ALLOWED_AUTH_ORIGINS`.
    Origin,
}

impl IntoResponse for CsrfError {
    fn into_response(self) -> Response {
        let text = match self {
            CsrfError::NoCookie => "CSRF Failed: CSRF cookie not set.",
            CsrfError::Missing => "CSRF Failed: CSRF token missing.",
            CsrfError::Incorrect => "CSRF Failed: CSRF token incorrect.",
            CsrfError::Origin => "Disallowed origin.",
        };
        detail(StatusCode::FORBIDDEN, text)
    }
}

fn origin_of(headers: &HeaderMap) -> Option<String> {
    if let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        return Some(origin.trim_end_matches('/').to_owned());
    }
    let referer = headers.get(header::REFERER).and_then(|v| v.to_str().ok())?;
    let (scheme, rest) = referer.split_once("://")?;
    let host = rest.split(['/', '?', '#']).next()?;
    Some(format!("{scheme}://{host}"))
}

/// The CSRF double-submit check, plus the origin allow-list when one is configured.
pub(crate) fn check_csrf(config: &CookieConfig, headers: &HeaderMap) -> Result<(), CsrfError> {
    if let Some(origin) = origin_of(headers).filter(|_| !config.allowed_origins.is_empty())
        && !config.allowed_origins.iter().any(|o| o.trim_end_matches('/') == origin)
    {
        return Err(CsrfError::Origin);
    }
    let cookie = read_cookie(headers, CSRF_COOKIE).ok_or(CsrfError::NoCookie)?;
    let header = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()).ok_or(CsrfError::Missing)?;
    if bool::from(cookie.as_bytes().ct_eq(header.as_bytes())) { Ok(()) } else { Err(CsrfError::Incorrect) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
        }
        h
    }

    #[test]
    fn csrf_double_submit_and_origins() {
        let mut config = CookieConfig::default();
        assert_eq!(check_csrf(&config, &headers(&[])), Err(CsrfError::NoCookie));
        assert_eq!(check_csrf(&config, &headers(&[("cookie", "csrftoken=abc")])), Err(CsrfError::Missing));
        let wrong = headers(&[("cookie", "a=1; csrftoken=abc"), ("x-csrftoken", "abd")]);
        assert_eq!(check_csrf(&config, &wrong), Err(CsrfError::Incorrect));
        let good =
            headers(&[("cookie", "a=1; csrftoken=abc"), ("x-csrftoken", "abc"), ("origin", "https://app.example")]);
        assert_eq!(check_csrf(&config, &good), Ok(()));
        config.allowed_origins = vec!["https://other.example".into()];
        assert_eq!(check_csrf(&config, &good), Err(CsrfError::Origin));
        config.allowed_origins = vec!["https://app.example".into()];
        assert_eq!(check_csrf(&config, &good), Ok(()));
    }

    #[test]
    fn cookies_carry_the_attributes() {
        let config = CookieConfig::default();
        let set = refresh_cookie(&config, "tok");
        let set = set.to_str().unwrap();
        assert!(set.starts_with("refresh_token=tok"), "{set}");
        for attr in ["HttpOnly", "Secure", "SameSite=Lax", "Path=/"] {
            assert!(set.contains(attr), "{set} lacks {attr}");
        }
        let clear = clear_refresh_cookie(&config);
        assert!(clear.to_str().unwrap().contains("Max-Age=0"));
    }
}
