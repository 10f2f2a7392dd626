//! The `/auth/*` routes a client-service mounts: 1:1 proxies to the auth-service (status, body
//! and the relevant headers passed through), plus logout. Bearer authentication never runs
//! here, so a stale `Authorization` header cannot break a login. Every call that ends a login
//! with tokens (password, then a second factor when the user has one) mirrors the user and, in
//! cookie mode, checks CSRF and moves the refresh token into its cookie; the auth-service's
//! refusals pass through as they are (a 401 `mfa_required` keeps its `mfa_token` and `methods`).

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use shared_user::http::{Body, both_slashes};

use shared_user::wire::ErrorDetail;

use crate::config::CookieConfig;
use crate::cookies::{self, check_csrf, clear_refresh_cookie, read_cookie, refresh_cookie};
use crate::error::{ClientError, WWW_AUTHENTICATE};
use crate::state::ClientState;
use crate::upstream::Reply;

/// Routes under `/auth/`, to be merged into the service's router.
pub(crate) fn routes<S: Clone + Send + Sync + 'static>(state: ClientState) -> Router<S> {
    let mut r = Router::<ClientState>::new();
    r = both_slashes(r, "/auth/token/", post(obtain_token));
    // The second step of a login with a second factor (DESIGN.md, "Second factor").
    r = both_slashes(r, "/auth/token/mfa/", post(obtain_token_mfa));
    r = both_slashes(r, "/auth/token/webauthn/start/", post(forward));
    r = both_slashes(r, "/auth/token/webauthn/finish/", post(obtain_token_webauthn));
    r = both_slashes(r, "/auth/token/refresh/", post(refresh_token));
    r = both_slashes(r, "/auth/token/verify/", post(forward));
    r = both_slashes(r, "/auth/token/blacklist/", post(forward));
    r = both_slashes(r, "/auth/token/logout/", post(logout));
    r = both_slashes(r, "/auth/password-change/", post(forward));
    r = both_slashes(r, "/auth/user/", get(forward));
    r = both_slashes(r, "/auth/users/{id}/", get(forward));
    // Sessions and logout-all (see the auth-service's `sessions`): 1:1, 204 passed on bodiless.
    r = both_slashes(r, "/auth/sessions/", get(forward));
    r = both_slashes(r, "/auth/sessions/{id}/", axum::routing::delete(forward));
    r = both_slashes(r, "/auth/logout-all/", post(forward));
    if state.config().cookie.is_some() {
        r = both_slashes(r, "/auth/csrf/", get(issue_csrf));
    }
    r.with_state(state)
}

/// The caller's socket address, when the service is served with peer addresses
/// (`shared_user::server::serve`, or axum's `into_make_service_with_connect_info`).
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub Option<SocketAddr>);

impl<S: Send + Sync> FromRequestParts<S> for Peer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Peer(parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0)))
    }
}

/// The headers passed to the auth-service: content negotiation, credentials, and the caller's
/// address appended to `X-Forwarded-For` (the auth-service believes it only from its
/// `TRUSTED_PROXIES`, and only the hops those proxies appended). Without a peer address the
/// caller's own `X-Forwarded-For` is dropped rather than passed on unchecked.
fn request_headers(headers: &HeaderMap, peer: Peer) -> HeaderMap {
    let mut out = HeaderMap::new();
    // The user agent too, so the auth-service records the real client on the session.
    for name in [header::CONTENT_TYPE, header::AUTHORIZATION, header::ACCEPT, header::USER_AGENT] {
        if let Some(v) = headers.get(&name) {
            out.insert(name, v.clone());
        }
    }
    if let Some(peer) = peer.0 {
        let mut hops: Vec<&str> = headers.get_all(X_FORWARDED_FOR).iter().filter_map(|v| v.to_str().ok()).collect();
        let ip = peer.ip().to_string();
        hops.push(&ip);
        if let Ok(value) = HeaderValue::from_str(&hops.join(", ")) {
            out.insert(X_FORWARDED_FOR, value);
        }
    }
    out
}

const X_FORWARDED_FOR: &str = "x-forwarded-for";

/// The upstream answer, passed on; upstream 5xx other than 503 becomes 502. A 401 carries this
/// client's own `WWW-Authenticate` (its first accepted scheme, no realm), as the EasyJWT 1.1
/// client's token routes answer, instead of the auth-service's `Bearer realm="api"`.
fn pass_on(state: &ClientState, reply: Reply) -> Response {
    if reply.status.is_server_error() && reply.status != StatusCode::SERVICE_UNAVAILABLE {
        return ClientError::BadUpstream(format!("status {}", reply.status)).into_response();
    }
    let mut resp = (reply.status, reply.body).into_response();
    resp.headers_mut().extend(reply.headers);
    if resp.status() == StatusCode::UNAUTHORIZED {
        resp.headers_mut().insert(header::WWW_AUTHENTICATE, www_authenticate(state));
    }
    resp
}

/// The client's own `WWW-Authenticate`: its first accepted scheme (`AUTH_HEADER_TYPES`, checked
/// as a header value when the configuration was built), without a realm.
fn www_authenticate(state: &ClientState) -> HeaderValue {
    let scheme = state.config().auth_header_types.first().map_or(WWW_AUTHENTICATE, String::as_str);
    HeaderValue::from_str(scheme).unwrap_or(HeaderValue::from_static(WWW_AUTHENTICATE))
}

/// The target towards the auth-service: always the canonical (trailing slash) form of the
/// path, and the query string unchanged (`GET /auth/sessions/?page=2` asks for page 2).
fn upstream_target(uri: &axum::http::Uri) -> String {
    let path = uri.path();
    let slash = if path.ends_with('/') { "" } else { "/" };
    match uri.query() {
        Some(query) => format!("{path}{slash}?{query}"),
        None => format!("{path}{slash}"),
    }
}

/// Any proxied call: same method, path, body and relevant headers.
pub(crate) async fn forward(
    State(state): State<ClientState>,
    peer: Peer,
    method: Method,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match state.upstream().send(method, &upstream_target(&uri), &request_headers(&headers, peer), body).await {
        Ok(reply) => pass_on(&state, reply),
        Err(e) => e.into_response(),
    }
}

/// `POST /auth/token/`: proxied; on success the user is fetched and mirrored before answering.
/// A user with a second factor gets the auth-service's 401 `mfa_required` as it is.
pub async fn obtain_token(State(state): State<ClientState>, peer: Peer, headers: HeaderMap, body: Bytes) -> Response {
    sign_in(&state, "/auth/token/", peer, &headers, body).await
}

/// `POST /auth/token/mfa/` (`{"mfa_token","code"}`): proxied as [`obtain_token`].
pub async fn obtain_token_mfa(
    State(state): State<ClientState>,
    peer: Peer,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    sign_in(&state, "/auth/token/mfa/", peer, &headers, body).await
}

/// `POST /auth/token/webauthn/finish/` (a passkey's assertion): proxied as [`obtain_token`].
pub async fn obtain_token_webauthn(
    State(state): State<ClientState>,
    peer: Peer,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    sign_in(&state, "/auth/token/webauthn/finish/", peer, &headers, body).await
}

/// A call to `path` that answers tokens on success: CSRF checked in cookie mode, the user
/// mirrored before answering, the refresh token moved into its cookie in cookie mode.
async fn sign_in(state: &ClientState, path: &str, peer: Peer, headers: &HeaderMap, body: Bytes) -> Response {
    if let Some(cookie) = &state.config().cookie
        && let Err(e) = check_csrf(cookie, headers)
    {
        return e.into_response();
    }
    let reply = match state.upstream().send(Method::POST, path, &request_headers(headers, peer), body).await {
        Ok(reply) => reply,
        Err(e) => return e.into_response(),
    };
    if reply.status == StatusCode::OK {
        if let Some(access) = serde_json::from_slice::<Value>(&reply.body)
            .ok()
            .and_then(|v| v.get("access").and_then(Value::as_str).map(str::to_owned))
        {
            // The tokens are good either way; a failed mirror fill is retried on first use.
            if let Err(e) = state.refresh_mirror(&access).await {
                tracing::warn!(error = %e, "could not mirror the user after login");
            }
        }
        if let Some(cookie) = &state.config().cookie {
            return refresh_into_cookie(state, cookie, reply);
        }
    }
    pass_on(state, reply)
}

/// Cookie mode: moves `refresh` from a 200 body into the HttpOnly cookie.
fn refresh_into_cookie(state: &ClientState, cookie: &CookieConfig, reply: Reply) -> Response {
    let Ok(Value::Object(mut body)) = serde_json::from_slice::<Value>(&reply.body) else {
        return pass_on(state, reply);
    };
    let refresh = body.remove("refresh");
    let mut resp = (reply.status, Json(Value::Object(body))).into_response();
    // The auth-service's cache headers (no-store) stay: the answer still carries a token.
    for (name, value) in &reply.headers {
        if name != header::CONTENT_TYPE {
            resp.headers_mut().insert(name, value.clone());
        }
    }
    if let Some(Value::String(token)) = refresh {
        resp.headers_mut().append(header::SET_COOKIE, refresh_cookie(cookie, &token));
    }
    resp
}

/// `GET /auth/csrf/` (cookie mode): sets the CSRF cookie.
pub async fn issue_csrf(State(state): State<ClientState>) -> Response {
    match &state.config().cookie {
        Some(cookie) => cookies::issue_csrf(cookie),
        None => shared_user::http::not_found().await,
    }
}

/// `POST /auth/token/refresh/`: proxied; in cookie mode the token comes from (and a rotated one
/// goes back into) the cookie.
pub async fn refresh_token(State(state): State<ClientState>, peer: Peer, headers: HeaderMap, body: Bytes) -> Response {
    let Some(cookie) = &state.config().cookie else {
        let headers = request_headers(&headers, peer);
        return match state.upstream().send(Method::POST, "/auth/token/refresh/", &headers, body).await {
            Ok(reply) => pass_on(&state, reply),
            Err(e) => e.into_response(),
        };
    };
    if let Err(e) = check_csrf(cookie, &headers) {
        return e.into_response();
    }
    let Some(token) = read_cookie(&headers, &cookie.name) else {
        return ClientError::Unauthenticated(ErrorDetail::new("No refresh token provided.")).into_response();
    };
    match state.upstream().post_json("/auth/token/refresh/", &json!({"refresh": token})).await {
        Ok(reply) if reply.status == StatusCode::OK => refresh_into_cookie(&state, cookie, reply),
        Ok(reply) => pass_on(&state, reply),
        Err(e) => e.into_response(),
    }
}

/// `POST /auth/token/logout/`: best-effort blacklist of the refresh token; always 200.
pub async fn logout(State(state): State<ClientState>, headers: HeaderMap, body: Result<Body, Response>) -> Response {
    let refresh = match &state.config().cookie {
        Some(cookie) => {
            if let Err(e) = check_csrf(cookie, &headers) {
                return e.into_response();
            }
            read_cookie(&headers, &cookie.name)
        }
        None => body.ok().and_then(|b| b.0.get("refresh").and_then(Value::as_str).map(str::to_owned)),
    };
    if let (Some(refresh), true) = (refresh, state.config().blacklist_on_logout) {
        match state.upstream().post_json("/auth/token/blacklist/", &json!({"refresh": refresh})).await {
            Ok(reply) if reply.status == StatusCode::OK => {}
            Ok(reply) => tracing::info!(status = %reply.status, "logout: refresh token not blacklisted"),
            Err(e) => tracing::warn!(error = %e, "logout: auth-service unreachable, refresh token not blacklisted"),
        }
    }
    let mut resp = Json(json!({"detail": "Logged out."})).into_response();
    if let Some(cookie) = &state.config().cookie {
        resp.headers_mut().append(header::SET_COOKIE, clear_refresh_cookie(cookie));
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(uri: &'static str) -> String {
        upstream_target(&axum::http::Uri::from_static(uri))
    }

    #[test]
    fn the_upstream_target_keeps_the_query_and_adds_the_slash() {
        assert_eq!(target("/auth/sessions/"), "/auth/sessions/");
        assert_eq!(target("/auth/sessions"), "/auth/sessions/", "the canonical slash form");
        assert_eq!(target("/auth/sessions/?page=2"), "/auth/sessions/?page=2", "the query is forwarded");
        assert_eq!(
            target("/auth/sessions?page=x&a=%20b"),
            "/auth/sessions/?page=x&a=%20b",
            "unchanged, after the slash"
        );
        assert_eq!(target("/auth/sessions/?"), "/auth/sessions/?", "an empty query stays empty");
    }
}
