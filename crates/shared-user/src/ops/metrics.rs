//! The process-wide Prometheus recorder (the `metrics` crate's facade, rendered by
//! `metrics-exporter-prometheus`), the `GET /metrics` route and the names of every Gatehouse
//! metric with its help text.
//!
//! Installing a recorder is process-wide: [`install`] does it once and returns the same handle
//! to every later caller (tests build many apps in one process). Until it runs, the `metrics`
//! macros of both services cost next to nothing and record nothing.
//!
//! Metrics recorded on every request use handles registered once ([`Registered`], and a
//! per-thread map for the HTTP metrics) instead of the macros, which look the key up in the
//! recorder's registry (hash, lock) on every call.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::Duration;

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use metrics::{Counter, Histogram, Label, SharedString, Unit, describe_counter, describe_gauge, describe_histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Content type of the Prometheus text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Histogram buckets of every `*_seconds` metric: 0.5 ms to 10 s.
const SECONDS_BUCKETS: [f64; 14] =
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// How often histogram samples are folded into their buckets when nobody scrapes.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the Prometheus recorder as the global `metrics` recorder, once per process, and
/// returns its render handle. When the host already installed another recorder, the handle
/// still renders (an empty page) and a warning is logged once.
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &SECONDS_BUCKETS)
                .map(PrometheusBuilder::build_recorder)
                .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("another metrics recorder is installed; GET /metrics will be empty");
            } else {
                describe();
                let upkeep = handle.clone();
                // Samples wait in per-histogram queues until a render or an upkeep drains them.
                let spawned = std::thread::Builder::new().name("metrics-upkeep".into()).spawn(move || {
                    loop {
                        std::thread::sleep(UPKEEP_EVERY);
                        upkeep.run_upkeep();
                    }
                });
                if let Err(e) = spawned {
                    tracing::warn!(error = %e, "cannot start the metrics upkeep thread");
                }
            }
            handle
        })
        .clone()
}

/// `GET /metrics`: the Prometheus text of this process (installs the recorder when needed).
/// Merge it into any router; it takes no state.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    let handle = install();
    Router::new().route(
        "/metrics",
        get(move || {
            let handle = handle.clone();
            async move { ([(header::CONTENT_TYPE, CONTENT_TYPE)], handle.render()).into_response() }
        }),
    )
}

/// Whether [`install`] has run in this process (whichever recorder won). The handles below are
/// registered only from then on: a handle registered while no recorder is installed stays a
/// no-op for good.
fn installed() -> bool {
    HANDLE.get().is_some()
}

/// Metric handles with labels known up front, registered once, on the first use after
/// [`install`], and reused: recording is then an atomic add, with no registry lookup.
///
/// ```
/// use metrics::Counter;
/// use shared_user::ops::metrics::Registered;
///
/// static CACHE: Registered<[Counter; 2]> = Registered::new(|| {
///     [metrics::counter!("cache_total", "result" => "hit"), metrics::counter!("cache_total", "result" => "miss")]
/// });
///
/// if let Some([hits, _]) = CACHE.get() {
///     hits.increment(1);
/// }
/// ```
pub struct Registered<T> {
    handles: OnceLock<T>,
    register: fn() -> T,
}

impl<T> Registered<T> {
    /// Handles that `register` creates (with the `metrics` macros) when first needed.
    pub const fn new(register: fn() -> T) -> Self {
        Self { handles: OnceLock::new(), register }
    }

    /// The handles, or `None` (one atomic load) while no recorder is installed.
    pub fn get(&self) -> Option<&T> {
        if !installed() {
            return None;
        }
        Some(self.handles.get_or_init(self.register))
    }
}

impl<T> std::fmt::Debug for Registered<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registered").field("registered", &self.handles.get().is_some()).finish()
    }
}

/// The request counter and latency histogram of one (method, route, status) label set.
struct HttpHandles {
    method: &'static str,
    status: u16,
    requests: Counter,
    duration: Histogram,
}

thread_local! {
    /// Route template -> handles of the (method, status) pairs seen with it. One map per worker
    /// thread, so recording takes no lock; it is bounded because every label is (route
    /// templates, the `unmatched` fallback, nine method labels, the statuses the app answers).
    static HTTP_HANDLES: RefCell<HashMap<Box<str>, Vec<HttpHandles>>> = RefCell::new(HashMap::new());
}

/// Records one answered HTTP request (nothing until [`install`] has run).
pub(crate) fn http_request(method: &'static str, route: &str, status: u16, latency: Duration) {
    if !installed() {
        return;
    }
    // `try_with`: a thread being torn down records nothing rather than panicking.
    let _ = HTTP_HANDLES.try_with(|routes| {
        let mut routes = routes.borrow_mut();
        let sets = match routes.get_mut(route) {
            Some(sets) => sets,
            None => routes.entry(route.into()).or_default(),
        };
        let index = match sets.iter().position(|h| h.status == status && h.method == method) {
            Some(index) => index,
            None => {
                sets.push(register_http(method, route, status));
                sets.len() - 1
            }
        };
        let handles = &sets[index];
        handles.duration.record(latency.as_secs_f64());
        handles.requests.increment(1);
    });
}

/// Registers the HTTP metrics of one label set.
fn register_http(method: &'static str, route: &str, status: u16) -> HttpHandles {
    let labels = [
        Label::from_static_parts("method", method),
        Label::new("route", route.to_owned()),
        Label::new("status", status_label(status)),
    ];
    HttpHandles {
        method,
        status,
        requests: metrics::counter!(HTTP_REQUESTS, labels.iter()),
        duration: metrics::histogram!(HTTP_DURATION, labels.iter()),
    }
}

/// The status as a label value, without an allocation for the usual codes.
fn status_label(status: u16) -> SharedString {
    const COMMON: [(u16, &str); 16] = [
        (200, "200"),
        (201, "201"),
        (204, "204"),
        (301, "301"),
        (304, "304"),
        (400, "400"),
        (401, "401"),
        (403, "403"),
        (404, "404"),
        (405, "405"),
        (408, "408"),
        (413, "413"),
        (429, "429"),
        (500, "500"),
        (502, "502"),
        (503, "503"),
    ];
    match COMMON.iter().find(|(code, _)| *code == status) {
        Some((_, text)) => SharedString::const_str(text),
        None => SharedString::from(status.to_string()),
    }
}

/// Requests answered, by `method`, `route` (template, or `unmatched`) and `status`.
pub const HTTP_REQUESTS: &str = "gatehouse_http_requests_total";
/// Request latency, same labels.
pub const HTTP_DURATION: &str = "gatehouse_http_request_duration_seconds";
/// Auth-service: token obtains (REST, GraphQL, Hasura) by `outcome`.
pub const LOGINS: &str = "gatehouse_logins_total";
/// Auth-service: refreshes by `outcome`.
pub const REFRESHES: &str = "gatehouse_refreshes_total";
/// Auth-service: rotated refresh tokens presented again (family revoked).
pub const REUSE_DETECTED: &str = "gatehouse_refresh_reuse_detected_total";
/// Auth-service: login attempts refused by the throttle.
pub const THROTTLED: &str = "gatehouse_throttled_total";
/// Auth-service: logins stopped after the password for a second factor.
pub const MFA_CHALLENGES: &str = "gatehouse_mfa_challenges_total";
/// Auth-service: second factors that completed a login, by `method`.
pub const MFA_VERIFIED: &str = "gatehouse_mfa_verified_total";
/// Auth-service: wrong second factors, by `method`.
pub const MFA_FAILED: &str = "gatehouse_mfa_failed_total";
/// Auth-service: second factors enrolled, by `method`.
pub const MFA_ENROLLED: &str = "gatehouse_mfa_enrolled_total";
/// Auth-service: second factors removed by their owner, by `method`.
pub const MFA_REMOVED: &str = "gatehouse_mfa_removed_total";
/// Auth-service: resets of every factor of an account by a superuser.
pub const MFA_RESET: &str = "gatehouse_mfa_reset_total";
/// Auth-service: password hashes waiting for a hashing thread.
pub const HASH_QUEUE: &str = "gatehouse_hash_queue_depth";
/// Auth-service: time of one password hash or check on its thread.
pub const HASH_DURATION: &str = "gatehouse_hash_duration_seconds";
/// Auth-service: signing key reloads from the database by `outcome`.
pub const KEY_RELOADS: &str = "gatehouse_key_reloads_total";
/// Auth-service: rows deleted by housekeeping purges, by `table`.
pub const PURGE_ROWS: &str = "gatehouse_purge_rows_total";
/// Auth-service: purges running, by `table` (1 while the table is being purged).
pub const PURGE_RUNNING: &str = "gatehouse_purge_running";
/// Client: verified-token cache lookups by `result` (`hit`, `miss`).
pub const TOKEN_CACHE: &str = "gatehouse_token_cache_total";
/// Client: user fetches from the auth-service into the mirror by `outcome`.
pub const MIRROR_FETCHES: &str = "gatehouse_mirror_fetches_total";
/// Client: time of one group-committed mirror write (a batch of users in one transaction).
pub const MIRROR_WRITE_DURATION: &str = "gatehouse_mirror_write_duration_seconds";
/// Client: users that could not be written to the mirror (they are fetched again later).
pub const MIRROR_WRITE_FAILURES: &str = "gatehouse_mirror_write_failures_total";
/// Client: users per group-committed mirror write.
pub const MIRROR_WRITE_USERS: &str = "gatehouse_mirror_write_users";
/// Client: calls to the auth-service by `outcome` (`ok`, `server_error`, `timeout`,
/// `connection`, `tls`: a failed TLS handshake).
pub const UPSTREAM_REQUESTS: &str = "gatehouse_upstream_requests_total";
/// Client: latency of calls to the auth-service.
pub const UPSTREAM_DURATION: &str = "gatehouse_upstream_request_duration_seconds";
/// Client: JWKS fetches by `outcome`.
pub const JWKS_FETCHES: &str = "gatehouse_jwks_fetches_total";
/// Client: age of the newest revocation state the client holds.
pub const REVOCATION_FEED_LAG: &str = "gatehouse_revocation_feed_lag_seconds";
/// Both (listener, feature `server`): connections closed at accept by `reason` (`per_ip`, `total`).
#[cfg(feature = "server")]
pub use crate::server::CONNECTIONS_REFUSED;

fn describe() {
    describe_counter!(HTTP_REQUESTS, "HTTP requests answered, by method, route template and status");
    describe_histogram!(HTTP_DURATION, Unit::Seconds, "HTTP request latency, by method, route template and status");
    describe_counter!(LOGINS, "Token obtains by outcome (success, bad_credentials, throttled, invalid)");
    describe_counter!(REFRESHES, "Refresh token exchanges by outcome (success, rejected)");
    describe_counter!(REUSE_DETECTED, "Rotated refresh tokens presented again (the family is revoked)");
    describe_counter!(THROTTLED, "Login attempts refused by the brute-force throttle");
    describe_counter!(MFA_CHALLENGES, "Logins stopped after the password for a second factor");
    describe_counter!(MFA_VERIFIED, "Second factors that completed a login, by method (totp, recovery_code, webauthn)");
    describe_counter!(MFA_FAILED, "Wrong second factors (login, confirmation, removal), by method");
    describe_counter!(MFA_ENROLLED, "Second factors enrolled, by method (totp, webauthn)");
    describe_counter!(MFA_REMOVED, "Second factors removed by their owner, by method");
    describe_counter!(MFA_RESET, "Resets of every second factor of an account by a superuser");
    describe_gauge!(HASH_QUEUE, "Password hashes waiting for a hashing thread");
    describe_counter!(PURGE_ROWS, "Rows deleted by housekeeping purges, by table");
    describe_gauge!(PURGE_RUNNING, "Housekeeping purges running, by table (1 while one runs)");
    describe_histogram!(HASH_DURATION, Unit::Seconds, "Time of one password hash or check on its thread");
    describe_counter!(KEY_RELOADS, "Signing key reloads from the database by outcome (success, failure)");
    describe_counter!(TOKEN_CACHE, "Verified-token cache lookups by result (hit, miss)");
    describe_counter!(MIRROR_FETCHES, "User fetches into the mirror by outcome (success, refused, unavailable, error)");
    describe_histogram!(
        MIRROR_WRITE_DURATION,
        Unit::Seconds,
        "Time of one mirror write (a batch of users, one commit)"
    );
    describe_counter!(MIRROR_WRITE_FAILURES, "Users that could not be written to the mirror (fetched again later)");
    describe_histogram!(MIRROR_WRITE_USERS, Unit::Count, "Users per mirror write (batch size)");
    describe_counter!(
        UPSTREAM_REQUESTS,
        "Calls to the auth-service by outcome (ok, server_error, timeout, connection, tls)"
    );
    describe_histogram!(UPSTREAM_DURATION, Unit::Seconds, "Latency of calls to the auth-service");
    describe_counter!(JWKS_FETCHES, "JWKS fetches from the auth-service by outcome (success, failure)");
    describe_gauge!(REVOCATION_FEED_LAG, Unit::Seconds, "Seconds since the revocation feed was last read");
    #[cfg(feature = "server")]
    describe_counter!(
        CONNECTIONS_REFUSED,
        "Connections closed at accept by reason (per_ip: MAX_CONNECTIONS_PER_IP, total: MAX_CONNECTIONS)"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lines of `text` for metric `name` (samples only, no `# HELP`/`# TYPE`).
    fn samples<'a>(text: &'a str, name: &str) -> Vec<&'a str> {
        text.lines().filter(|l| l.starts_with(name)).collect()
    }

    #[test]
    fn handles_registered_after_install_record_and_requests_are_counted_per_label_set() {
        static EVENTS: Registered<Counter> = Registered::new(|| metrics::counter!("gatehouse_test_events_total"));
        let handle = install();
        let events = EVENTS.get().expect("the recorder is installed");
        events.increment(1);
        EVENTS.get().expect("same handles").increment(1);
        for _ in 0..3 {
            http_request("GET", "/things/{id}", 200, Duration::from_millis(2));
        }
        http_request("POST", "/things/{id}", 200, Duration::from_millis(2));
        http_request("GET", "/things/{id}", 404, Duration::from_millis(2));
        // Another thread has its own handles for the same label sets: same series.
        std::thread::spawn(|| http_request("GET", "/things/{id}", 200, Duration::from_millis(2)))
            .join()
            .expect("thread");

        let text = handle.render();
        assert_eq!(samples(&text, "gatehouse_test_events_total"), ["gatehouse_test_events_total 2"], "{text}");
        let requests = samples(&text, HTTP_REQUESTS);
        let count = |labels: &str| {
            requests
                .iter()
                .find(|l| l.contains(labels))
                .and_then(|l| l.rsplit(' ').next())
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or_else(|| panic!("no {labels} in {requests:?}"))
        };
        assert_eq!(count(r#"method="GET",route="/things/{id}",status="200""#), 4);
        assert_eq!(count(r#"method="POST",route="/things/{id}",status="200""#), 1);
        assert_eq!(count(r#"method="GET",route="/things/{id}",status="404""#), 1);
        let durations = samples(&text, &format!("{HTTP_DURATION}_count"));
        assert!(durations.iter().any(|l| l.contains(r#"status="200""#) && l.ends_with(" 4")), "{durations:?}");
    }

    #[test]
    fn unusual_status_codes_get_their_own_label() {
        assert_eq!(status_label(200).as_ref(), "200");
        assert_eq!(status_label(418).as_ref(), "418");
    }
}
