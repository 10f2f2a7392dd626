//! Response headers that several front ends share: answers that carry a token (or a console
//! page) must never be stored by a browser or a proxy cache.

use axum::http::{HeaderValue, header};
use axum::response::Response;

/// Adds `Cache-Control: no-store` and `Pragma: no-cache` (HTTP/1.0 caches) to `response`: for
/// every answer that carries a token (obtain, refresh, GraphQL, the Hasura actions, the console).
/// A `Cache-Control` the handler set itself is kept.
pub async fn no_store(mut response: Response) -> Response {
    let h = response.headers_mut();
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    }
    response
}
