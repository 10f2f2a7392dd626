//! The whole HTTP service: every front end's routes with the layers they share (request
//! metadata for the audit trail, trusted proxies, the `WWW-Authenticate` scheme, body limit,
//! timeout, request ids, access log and metrics).

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, header};
use axum::middleware::map_response;
use axum::response::Response;
use tower_http::timeout::TimeoutLayer;

use crate::state::AppState;
use crate::{audit, client_ip, error, openapi, routes};

/// The whole HTTP service.
pub fn app(state: AppState) -> Router {
    let timeout = state.settings.request_timeout;
    // 401 answers name the first accepted scheme (SimpleJWT's `AUTH_HEADER_TYPES[0]`).
    let scheme = state.settings.auth_header_types.first().map_or("Bearer", String::as_str);
    let challenge = HeaderValue::from_str(&format!("{scheme} realm=\"api\"")).ok();
    // Checked when the state was built.
    let trusted = client_ip::TrustedProxies(state.settings.trusted_proxies().unwrap_or_default().into());
    let metrics = state.settings.metrics;
    let mut router = routes::router(state).layer(audit::CaptureRequestMeta).merge(openapi::router());
    if metrics {
        router = router.merge(shared_user::ops::metrics::router());
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
