//! Operations glue both services share (feature `ops`): a request id, one access-log line and
//! the HTTP metrics of every request ([`instrument`]), and `GET /metrics` ([`metrics::router`]).

pub mod metrics;
#[cfg(feature = "openapi")]
pub mod openapi;
pub mod request_id;

use std::net::SocketAddr;
use std::time::Instant;

use axum::Router;
use axum::extract::{ConnectInfo, MatchedPath, Request};
use axum::http::Method;
use axum::middleware::{Next, from_fn};
use axum::response::Response;
use tracing::Instrument;

use self::request_id::X_REQUEST_ID;

/// Route label of a request that matched no route (404 fallback): unknown paths share one
/// label, so scanners cannot grow the metrics without bound.
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// Wraps every route (and the fallback) of `router`: an `X-Request-Id` accepted when sane or
/// generated (UUID v4), returned on every answer and carried by a `request` span, so each log
/// line of the request names it; one access-log line at `info` per request (target
/// `gatehouse::access`: method, route template, status, latency, request id, client address;
/// never the query string or a header); `gatehouse_http_requests_total` and
/// `gatehouse_http_request_duration_seconds` by method, route template and status.
///
/// Call it last, on the finished router, so it also sees the fallback and the answers of the
/// other layers (timeouts, body limits).
pub fn instrument<S: Clone + Send + Sync + 'static>(router: Router<S>) -> Router<S> {
    // One middleware rather than a stack of layers: each layer is cloned on every request.
    router.layer(from_fn(observe))
}

/// A bounded method label: the standard methods by name, anything else `OTHER`.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

async fn observe(mut request: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = method_label(request.method());
    let route = request.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned());
    let client = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    let id = request_id::accept_or_generate(request.headers_mut());
    // At ERROR level so the span, and with it the request id, is kept by any filter that keeps
    // a line of the request (an `info` span would vanish from the warnings under RUST_LOG=warn).
    let span = tracing::error_span!("request", request_id = %id.to_str().unwrap_or("-"));
    let mut response = request_id::scope(Some(id.clone()), next.run(request).instrument(span.clone())).await;
    response.headers_mut().insert(X_REQUEST_ID, id);
    let latency = start.elapsed();
    let route = route.unwrap_or_else(|| UNMATCHED_ROUTE.to_owned());
    let status = response.status().as_u16();
    span.in_scope(|| {
        tracing::info!(
            target: "gatehouse::access",
            method,
            route = %route,
            status,
            latency_ms = latency.as_secs_f64() * 1e3,
            client = %client.map_or_else(|| "-".to_owned(), |ip| ip.to_string()),
            "request"
        );
    });
    metrics::http_request(method, route, status, latency);
    response
}
