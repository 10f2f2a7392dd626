//! The whole HTTP service: every front end's routes with the layers they share (request
//! metadata for the audit trail, trusted proxies, the `WWW-Authenticate` scheme, body limit,
//! timeout, request ids, access log and metrics), as one listener ([`app()`]) or split over the
//! public, management and console listeners ([`public_app`], [`management_app`],
//! [`console_app`]), each with the same layers.

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, header};
use axum::middleware::map_response;
use axum::response::Response;
use tower_http::timeout::TimeoutLayer;

use crate::state::AppState;
use crate::{audit, client_ip, error, openapi, routes};

/// The route groups one listener serves.
#[derive(Debug, Clone, Copy)]
struct Serves {
    /// The public API ([`routes::api`]).
    api: bool,
    /// The admin API and console ([`routes::admin`]).
    admin: bool,
    /// `/healthz` and `/readyz`.
    health: bool,
    /// `/metrics` (when `METRICS` is on) and `/openapi.json`.
    operations: bool,
}

/// The whole HTTP service on one listener: every route, whatever `MANAGEMENT_BIND` and
/// `CONSOLE_BIND` say (tests and embedding code serve this).
pub fn app(state: AppState) -> Router {
    build(state, Serves { api: true, admin: true, health: true, operations: true })
}

/// The public listener (`BIND`): every route but those a set `MANAGEMENT_BIND` (`/metrics`,
/// `/openapi.json`) or `CONSOLE_BIND` (`/admin/...`, `/auth/admin/...`) takes to its own
/// listener; those answer the JSON 404 of an unknown path here. `/healthz` and `/readyz` stay,
/// for the load balancers that probe this listener. With neither set, the same as [`app()`].
pub fn public_app(state: AppState) -> Router {
    let operations = state.settings.management_bind.is_none();
    let admin = state.settings.console_bind.is_none();
    build(state, Serves { api: true, admin, health: true, operations })
}

/// The management listener (`MANAGEMENT_BIND`): `/healthz`, `/readyz`, `/metrics` (when
/// `METRICS` is on) and `/openapi.json`.
pub fn management_app(state: AppState) -> Router {
    build(state, Serves { api: false, admin: false, health: true, operations: true })
}

/// The console listener (`CONSOLE_BIND`): the admin console (`/admin/...`) and the admin API
/// (`/auth/admin/...`).
pub fn console_app(state: AppState) -> Router {
    build(state, Serves { api: false, admin: true, health: false, operations: false })
}

/// The routes of `serves` under the layers every listener shares.
fn build(state: AppState, serves: Serves) -> Router {
    let timeout = state.settings.request_timeout;
    // 401 answers name the first accepted scheme (SimpleJWT's `AUTH_HEADER_TYPES[0]`).
    let scheme = state.settings.auth_header_types.first().map_or("Bearer", String::as_str);
    let challenge = HeaderValue::from_str(&format!("{scheme} realm=\"api\"")).ok();
    // Checked when the state was built.
    let trusted = client_ip::TrustedProxies(state.settings.trusted_proxies().unwrap_or_default().into());
    let metrics = state.settings.metrics;
    let mut routes = Router::new();
    if serves.api {
        routes = routes.merge(routes::api(&state));
    }
    if serves.admin {
        routes = routes.merge(routes::admin(&state));
    }
    if serves.health {
        routes = routes.merge(routes::health());
    }
    let mut router = routes::finish(routes, state).layer(audit::CaptureRequestMeta);
    if serves.operations {
        router = router.merge(openapi::router());
        if metrics {
            router = router.merge(shared_user::ops::metrics::router());
        }
    }
    if !trusted.0.is_empty() {
        router = router.layer(axum::Extension(trusted));
    }
    if let Some(challenge) = challenge.filter(|c| c != error::WWW_AUTHENTICATE) {
        router = router.layer(map_response(move |mut response: Response| {
            let challenge = challenge.clone();
            async move {
                if let Some(value) = response.headers_mut().get_mut(header::WWW_AUTHENTICATE) {
                    *value = challenge;
                }
                response
            }
        }));
    }
    let router = router
        .layer(DefaultBodyLimit::max(shared_user::http::MAX_BODY))
        .layer(TimeoutLayer::with_status_code(axum::http::StatusCode::REQUEST_TIMEOUT, timeout));
    shared_user::ops::instrument(router)
}
