//! `X-Request-Id`: which incoming ids are kept, and the id of the request being served, so the
//! calls a service makes on its behalf can carry it on.

use std::future::Future;

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderName, HeaderValue};

/// The header: accepted from the caller when sane, else generated; returned on every answer.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Longest id kept from a caller (longer ones are replaced by a generated one).
pub const MAX_LEN: usize = 128;

tokio::task_local! {
    static CURRENT: Option<HeaderValue>;
}

/// Whether a caller's id is kept: 1 to [`MAX_LEN`] characters out of ASCII letters, digits and
/// `-_.:+/=@` (UUIDs, ULIDs, base64 and the usual tracer ids), so it is safe to log and forward.
pub fn is_valid(id: &[u8]) -> bool {
    !id.is_empty()
        && id.len() <= MAX_LEN
        && id
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':' | b'+' | b'/' | b'=' | b'@'))
}

/// The request's id: its one `X-Request-Id` when [`is_valid`], else a new UUID v4 (also when
/// the header is repeated), which then replaces the header so inner handlers see the same id.
pub(crate) fn accept_or_generate(headers: &mut HeaderMap) -> HeaderValue {
    let mut values = headers.get_all(X_REQUEST_ID).iter();
    if let (Some(id), None) = (values.next(), values.next())
        && is_valid(id.as_bytes())
    {
        // A copy: a clone would share the connection's read buffer for as long as the request
        // lasts (a long poll waits up to a minute), beside the buffer hyper reads into next.
        if let Ok(copy) = HeaderValue::from_bytes(id.as_bytes()) {
            return copy;
        }
    }
    let id = generate();
    headers.insert(X_REQUEST_ID, id.clone());
    id
}

/// A new UUID v4 (uuid's thread-local fast RNG) as a header value. The text is written into a
/// fixed buffer that the value then owns: one allocation, and the clones (request header,
/// response header, task-local) only count references.
fn generate() -> HeaderValue {
    let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
    uuid::Uuid::new_v4().hyphenated().encode_lower(&mut text);
    HeaderValue::from_maybe_shared(Bytes::from_owner(text)).unwrap_or_else(|_| HeaderValue::from_static("-"))
}

/// Runs `fut` as the request `id`, which [`current`] then returns.
pub(crate) async fn scope<F: Future>(id: Option<HeaderValue>, fut: F) -> F::Output {
    CURRENT.scope(id, fut).await
}

/// The id of the request being served by this task, when it runs under
/// [`instrument`](super::instrument).
pub fn current() -> Option<HeaderValue> {
    CURRENT.try_with(Clone::clone).ok().flatten()
}

/// Adds the current request id to an outgoing call's headers, unless they already carry one.
pub fn forward(headers: &mut HeaderMap) {
    if !headers.contains_key(X_REQUEST_ID)
        && let Some(id) = current()
    {
        headers.insert(X_REQUEST_ID, id);
    }
}

#[cfg(test)]
mod tests {
    use super::{generate, is_valid};

    #[test]
    fn usual_ids_are_kept() {
        for id in ["3f2b8c1e-8a4b-4f0e-9a55-1d2f3c4b5a69", "01HZX3J5Q6", "abc+/=", "trace:span.1@host"] {
            assert!(is_valid(id.as_bytes()), "{id} should be kept");
        }
    }

    #[test]
    fn generated_ids_are_lowercase_uuids_and_kept() {
        let id = generate();
        let text = id.to_str().expect("ASCII");
        assert!(uuid::Uuid::parse_str(text).is_ok_and(|u| u.get_version_num() == 4), "{text}");
        assert_eq!(text, text.to_lowercase());
        assert!(is_valid(id.as_bytes()), "a generated id passes the caller-id check");
        assert_ne!(generate(), id, "each request gets a new id");
    }

    #[test]
    fn unsafe_or_oversized_ids_are_replaced() {
        for id in ["", "has space", "line\nbreak", "quote\"", "tab\t", "é", &"a".repeat(129)] {
            assert!(!is_valid(id.as_bytes()), "{id:?} should be replaced");
        }
    }
}
