//! Operations glue both services share (feature `ops`): a request id, one access-log line and
//! the HTTP metrics of every request ([`instrument`]), and `GET /metrics` ([`metrics::router`]).

pub mod metrics;
#[cfg(feature = "openapi")]
pub mod openapi;
pub mod request_id;

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::Router;
use axum::extract::{ConnectInfo, MatchedPath, Request};
use axum::http::Method;
use axum::response::Response;
use tower::{Layer, Service};
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
/// `gatehouse_http_request_duration_seconds` by method, route template and status (once a
/// recorder is installed, see [`metrics::install`]).
///
/// Call it last, on the finished router, so it also sees the fallback and the answers of the
/// other layers (timeouts, body limits).
pub fn instrument<S: Clone + Send + Sync + 'static>(router: Router<S>) -> Router<S> {
    // One hand-written layer rather than `from_fn` or a stack of layers: axum clones a route's
    // whole layer stack on every request, and `from_fn` clones its inner stack once more.
    router.layer(Observe)
}

/// The layer of [`instrument`].
#[derive(Debug, Clone, Copy)]
struct Observe;

impl<S> Layer<S> for Observe {
    type Service = Observed<S>;

    fn layer(&self, inner: S) -> Observed<S> {
        Observed { inner }
    }
}

/// One route (or the fallback) under [`instrument`].
#[derive(Debug, Clone)]
struct Observed<S> {
    inner: S,
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

impl<S> Service<Request> for Observed<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        let start = Instant::now();
        let method = method_label(request.method());
        // An `Arc<str>` clone, not a copy of the template.
        let route = request.extensions().get::<MatchedPath>().cloned();
        let client = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
        let id = request_id::accept_or_generate(request.headers_mut());
        // At ERROR level so the span, and with it the request id, is kept by any filter that keeps
        // a line of the request (an `info` span would vanish from the warnings under RUST_LOG=warn).
        let span = tracing::error_span!("request", request_id = %id.to_str().unwrap_or("-"));
        // The inner call only builds its future (the work happens when it is polled, inside
        // the span and the request-id scope below); entered anyway, as tower-http's `Trace` does.
        let answer = span.in_scope(|| self.inner.call(request));
        Box::pin(async move {
            let Ok(mut response) = request_id::scope(Some(id.clone()), answer.instrument(span.clone())).await;
            response.headers_mut().insert(X_REQUEST_ID, id);
            let latency = start.elapsed();
            let route = route.as_ref().map_or(UNMATCHED_ROUTE, MatchedPath::as_str);
            let status = response.status().as_u16();
            span.in_scope(|| {
                tracing::info!(
                    target: "gatehouse::access",
                    method,
                    route = %route,
                    status,
                    latency_ms = latency.as_secs_f64() * 1e3,
                    client = %ClientLabel(client),
                    "request"
                );
            });
            metrics::http_request(method, route, status, latency);
            Ok(response)
        })
    }
}

/// The client address of the access line, `-` when unknown (formatted only when the line is
/// written).
struct ClientLabel(Option<IpAddr>);

impl fmt::Display for ClientLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(ip) => ip.fmt(f),
            None => f.write_str("-"),
        }
    }
}
