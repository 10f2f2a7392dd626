//! Calls to the auth-service, bounded by timeouts; transport failures become 503s. One
//! `reqwest` client (one connection pool, one TLS configuration) serves every call: the proxy,
//! user fetches, remote verification, the JWKS and the revocation feed.

use axum::http::{HeaderMap, HeaderName, Method, StatusCode, header};
use bytes::Bytes;
use shared_user::User;
use shared_user::wire::ErrorDetail;

use crate::config::ClientConfig;
use crate::error::{CONNECTION_ERROR, ClientError, TIMED_OUT};
use crate::metrics::upstream_call;
use crate::settings::ConfigError;
use crate::tls;

/// A cacheable document from the auth-service (the JWKS).
#[derive(Debug)]
pub(crate) enum Cacheable {
    /// 200: the document, its entity tag and how long it may be cached.
    Fresh { body: Bytes, etag: Option<String>, max_age: Option<std::time::Duration> },
    /// 304: the cached copy is still the document; cache it this much longer.
    NotModified { max_age: Option<std::time::Duration> },
}

/// How long a `Cache-Control` value lets the answer be cached: `max-age=N` seconds; zero for
/// `no-cache` or `no-store` (whatever age is given with them); `None` when it does not say.
pub(crate) fn max_age(cache_control: &str) -> Option<std::time::Duration> {
    let mut age = None;
    for directive in cache_control.split(',').map(str::trim) {
        let (name, value) = directive.split_once('=').unwrap_or((directive, ""));
        match name.trim().to_ascii_lowercase().as_str() {
            "no-cache" | "no-store" => return Some(std::time::Duration::ZERO),
            "max-age" => age = value.trim().trim_matches('"').parse::<u64>().ok().map(std::time::Duration::from_secs),
            _ => {}
        }
    }
    age
}

/// An answer of the auth-service, as received.
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    /// Status code.
    pub(crate) status: StatusCode,
    /// The headers worth passing on (content type, WWW-Authenticate, Retry-After, and the
    /// cache headers that keep answers carrying tokens out of caches).
    pub(crate) headers: HeaderMap,
    /// Raw body.
    pub(crate) body: Bytes,
}

impl Reply {
    /// The `detail` of an error body, if it has one.
    pub(crate) fn detail(&self) -> Option<ErrorDetail> {
        serde_json::from_slice::<ErrorDetail>(&self.body).ok()
    }
}

/// HTTP client for the auth-service.
#[derive(Debug, Clone)]
pub(crate) struct Upstream {
    http: reqwest::Client,
    /// `REMOTE_AUTH_REQUEST_TIMEOUT`, the client's timeout of every call.
    timeout: std::time::Duration,
    base: String,
    user_path: String,
    scheme: String,
}

const PASSED_ON: [HeaderName; 5] =
    [header::CONTENT_TYPE, header::WWW_AUTHENTICATE, header::RETRY_AFTER, header::CACHE_CONTROL, header::PRAGMA];

fn transport(e: &reqwest::Error) -> ClientError {
    if e.is_timeout() { ClientError::Unavailable(TIMED_OUT) } else { ClientError::Unavailable(CONNECTION_ERROR) }
}

/// A call that got no answer: its metrics outcome (`tls`, `timeout` or `connection`), one log
/// line naming the cause (a refused certificate is named as such), and the caller's 503.
fn unanswered(e: &reqwest::Error, started: std::time::Instant, path: &str) -> ClientError {
    if let Some(failure) = tls::failure_of(e) {
        upstream_call(started, "tls");
        tracing::error!(path, cause = failure.label(), "{failure}");
        return ClientError::Unavailable(CONNECTION_ERROR);
    }
    upstream_call(started, if e.is_timeout() { "timeout" } else { "connection" });
    tracing::warn!(error = %e, path, "auth-service call failed");
    transport(e)
}

/// The metrics outcome of an answer.
fn answered(status: StatusCode) -> &'static str {
    if status.is_server_error() { "server_error" } else { "ok" }
}

impl Upstream {
    /// A client for `config.remote_url`.
    pub(crate) fn new(config: &ClientConfig) -> Result<Self, ConfigError> {
        let builder = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .connect_timeout(config.connect_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .pool_idle_timeout(std::time::Duration::from_secs(60))
            .user_agent(concat!("gatehouse-client/", env!("CARGO_PKG_VERSION")));
        let http = config.tls.apply(builder).build().map_err(|e| ConfigError::HttpClient(e.to_string()))?;
        if config.tls.unchecked() {
            tracing::warn!(
                "REMOTE_AUTH_SSL_VERIFY=false (development mode): the auth-service's certificate is not checked"
            );
        }
        Ok(Self {
            http,
            timeout: config.request_timeout,
            base: config.remote_url.clone(),
            user_path: config.user_path.clone(),
            scheme: config.auth_header_types.first().cloned().unwrap_or_else(|| "Bearer".into()),
        })
    }

    /// Sends `method path` with the given headers and body; any answer is returned as is.
    pub(crate) async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &HeaderMap,
        body: Bytes,
    ) -> Result<Reply, ClientError> {
        self.send_within(method, path, headers, body, None).await
    }

    /// [`send`](Self::send), with `longer` added to the request timeout (a long poll, which the
    /// auth-service holds that long by design).
    pub(crate) async fn send_within(
        &self,
        method: Method,
        path: &str,
        headers: &HeaderMap,
        body: Bytes,
        longer: Option<std::time::Duration>,
    ) -> Result<Reply, ClientError> {
        let url = format!("{}{}", self.base, path);
        let mut req = self.http.request(method, url);
        if let Some(longer) = longer {
            req = req.timeout(self.timeout + longer);
        }
        for (name, value) in headers {
            req = req.header(name, value);
        }
        req = with_request_id(req, headers);
        let started = std::time::Instant::now();
        let resp = req.body(body).send().await.map_err(|e| unanswered(&e, started, path))?;
        let status = resp.status();
        let mut out = HeaderMap::new();
        for name in PASSED_ON {
            if let Some(v) = resp.headers().get(&name) {
                out.insert(name, v.clone());
            }
        }
        let body = resp.bytes().await.map_err(|e| unanswered(&e, started, path))?;
        upstream_call(started, answered(status));
        Ok(Reply { status, headers: out, body })
    }

    /// `POST path` with a JSON body.
    pub(crate) async fn post_json(&self, path: &str, body: &serde_json::Value) -> Result<Reply, ClientError> {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, "application/json".parse().expect("static header"));
        self.send(Method::POST, path, &headers, Bytes::from(body.to_string())).await
    }

    /// `GET url` (absolute, or a path on the auth-service) expecting 200, or 304 when `etag`
    /// (from an earlier answer) still names the document; with the answer's cache lifetime.
    pub(crate) async fn get_cacheable(&self, url: &str, etag: Option<&str>) -> Result<Cacheable, ClientError> {
        let full = if url.starts_with("http://") || url.starts_with("https://") {
            url.to_owned()
        } else {
            format!("{}{}", self.base, url)
        };
        let started = std::time::Instant::now();
        let mut req = with_request_id(self.http.get(full), &HeaderMap::new());
        if let Some(etag) = etag {
            req = req.header(header::IF_NONE_MATCH, etag);
        }
        let resp = req.send().await.map_err(|e| unanswered(&e, started, url))?;
        upstream_call(started, answered(resp.status()));
        let max_age = resp.headers().get(header::CACHE_CONTROL).and_then(|v| v.to_str().ok()).and_then(max_age);
        if etag.is_some() && resp.status() == StatusCode::NOT_MODIFIED {
            return Ok(Cacheable::NotModified { max_age });
        }
        if !resp.status().is_success() {
            return Err(if resp.status().is_server_error() {
                ClientError::Unavailable(CONNECTION_ERROR)
            } else {
                ClientError::BadUpstream(format!("GET {url}: status {}", resp.status()))
            });
        }
        let etag = resp.headers().get(header::ETAG).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let body = resp.bytes().await.map_err(|e| transport(&e))?;
        Ok(Cacheable::Fresh { body, etag, max_age })
    }

    /// Fetches the token's user from the current-user endpoint.
    pub(crate) async fn fetch_user(&self, token: &str, user_id: i64) -> Result<Result<User, ErrorDetail>, ClientError> {
        let path = self.user_path.replace("{id}", &user_id.to_string());
        let mut headers = HeaderMap::new();
        let auth = format!("{} {token}", self.scheme);
        headers.insert(
            header::AUTHORIZATION,
            auth.parse().map_err(|_| ClientError::Unauthenticated(ErrorDetail::new("Invalid token header.")))?,
        );
        let reply = self.send(Method::GET, &path, &headers, Bytes::new()).await?;
        if reply.status == StatusCode::OK {
            return serde_json::from_slice::<User>(&reply.body)
                .map(Ok)
                .map_err(|e| ClientError::BadUpstream(format!("user JSON: {e}")));
        }
        if reply.status.is_server_error() {
            return Err(ClientError::Unavailable(CONNECTION_ERROR));
        }
        Ok(Err(reply.detail().unwrap_or_else(|| ErrorDetail::new("Authentication service returned an error."))))
    }
}

/// Carries the id of the request being served (see [`shared_user::ops::request_id`]) to the
/// auth-service, unless the call's headers already hold one, so one id follows a login
/// through both services' logs.
fn with_request_id(req: reqwest::RequestBuilder, headers: &HeaderMap) -> reqwest::RequestBuilder {
    use shared_user::ops::request_id::{X_REQUEST_ID, current};
    match current() {
        Some(id) if !headers.contains_key(X_REQUEST_ID) => req.header(X_REQUEST_ID, id),
        _ => req,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::max_age;

    #[test]
    fn cache_control_max_age_is_read_as_caches_read_it() {
        assert_eq!(max_age("public, max-age=300"), Some(Duration::from_secs(300)));
        assert_eq!(max_age("Max-Age=\"60\", public"), Some(Duration::from_secs(60)));
        assert_eq!(max_age("no-cache"), Some(Duration::ZERO));
        assert_eq!(max_age("max-age=300, no-store"), Some(Duration::ZERO));
        assert_eq!(max_age("public"), None);
        assert_eq!(max_age("max-age=soon"), None);
    }
}
