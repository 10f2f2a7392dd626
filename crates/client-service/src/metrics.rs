//! Prometheus metrics of the client crate: the `GET /metrics` route a host mounts, and the
//! client-side measurements (token cache, mirror fetches, auth-service calls, JWKS fetches,
//! revocation feed lag). Names and meaning: `shared_user::ops::metrics` and the README.
//!
//! Nothing is recorded until a recorder is installed: [`router`] installs the Prometheus one
//! (once per process), as does the auth-service in the same process.

use std::time::{Duration, Instant};

use axum::Router;
use metrics::Counter;
use shared_user::ops::metrics::{REVOCATION_FEED_LAG, Registered, TOKEN_CACHE};

use crate::error::ClientError;

/// `GET /metrics`: this process's Prometheus text, ready to merge into the host's router
/// (it takes no state). Building it installs the process-wide recorder.
///
/// ```no_run
/// let app: axum::Router = axum::Router::new().merge(client_service::metrics::router());
/// ```
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    shared_user::ops::metrics::router()
}

/// Sets `gatehouse_revocation_feed_lag_seconds`: how old the newest revocation state this
/// client holds is (time since the feed was last read successfully). The revocation poller
/// calls it after every poll; one process has one such gauge.
pub(crate) fn set_revocation_feed_lag(lag: Duration) {
    metrics::gauge!(REVOCATION_FEED_LAG).set(lag.as_secs_f64());
}

/// `gatehouse_token_cache_total{result="hit"}` and `{result="miss"}`, registered once (a
/// lookup happens on every request in local mode).
static TOKEN_CACHE_RESULTS: Registered<[Counter; 2]> = Registered::new(|| {
    [metrics::counter!(TOKEN_CACHE, "result" => "hit"), metrics::counter!(TOKEN_CACHE, "result" => "miss")]
});

/// A verified-token cache lookup that found a valid entry.
pub(crate) fn token_cache_hit() {
    if let Some([hits, _]) = TOKEN_CACHE_RESULTS.get() {
        hits.increment(1);
    }
}

/// A verified-token cache lookup that found nothing usable (absent, expired, older key set).
pub(crate) fn token_cache_miss() {
    if let Some([_, misses]) = TOKEN_CACHE_RESULTS.get() {
        misses.increment(1);
    }
}

/// One call to the auth-service: `gatehouse_upstream_requests_total` by outcome and its latency.
pub(crate) fn upstream_call(started: Instant, outcome: &'static str) {
    metrics::counter!("gatehouse_upstream_requests_total", "outcome" => outcome).increment(1);
    metrics::histogram!("gatehouse_upstream_request_duration_seconds").record(started.elapsed().as_secs_f64());
}

/// One group-committed mirror write of `users` users that took since `started`.
pub(crate) fn mirror_write(started: Instant, users: usize) {
    use shared_user::ops::metrics::{MIRROR_WRITE_DURATION, MIRROR_WRITE_USERS};
    metrics::histogram!(MIRROR_WRITE_DURATION).record(started.elapsed().as_secs_f64());
    metrics::histogram!(MIRROR_WRITE_USERS).record(users as f64);
}

/// A user that could not be written to the mirror (`gatehouse_mirror_write_failures_total`).
pub(crate) fn mirror_write_failed() {
    metrics::counter!(shared_user::ops::metrics::MIRROR_WRITE_FAILURES).increment(1);
}

/// One user fetch into the mirror: `gatehouse_mirror_fetches_total` by outcome.
pub(crate) fn mirror_fetch<T>(result: &Result<T, ClientError>) {
    let outcome = match result {
        Ok(_) => "success",
        Err(ClientError::Unauthenticated(_)) => "refused",
        Err(ClientError::Unavailable(_)) => "unavailable",
        Err(_) => "error",
    };
    metrics::counter!("gatehouse_mirror_fetches_total", "outcome" => outcome).increment(1);
}
