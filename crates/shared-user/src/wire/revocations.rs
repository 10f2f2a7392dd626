//! The revocation feed's wire contract, written once for both sides: the auth-service answers
//! `GET /auth/revocations/?after=CURSOR` with a [`Page`] to callers presenting its
//! `REVOCATION_FEED_TOKEN` in [`FEED_TOKEN_HEADER`]; a local-mode client polls it and reads the
//! same [`Page`].
//!
//! On the wire a page is `{"cursor":12,"revocations":[{"user_id":7,"not_before":1764606908}]}`:
//! the fields in that order, none optional. A client ignores fields it does not know, so the
//! auth-service may add some later.

use serde::{Deserialize, Serialize};

/// The feed's path (served without the trailing slash too).
pub const PATH: &str = "/auth/revocations/";

/// The query parameter carrying the cursor of the last entry already seen (`0`, or absent: from
/// the start). It must be a non-negative integer.
pub const AFTER_PARAM: &str = "after";

/// The query parameter asking for a long poll: how long the auth-service may hold the request
/// while the feed has nothing after the cursor (`25s`, `500ms`, or whole seconds; at most 60 s,
/// and less than the auth-service's `REQUEST_TIMEOUT`). The answer comes as soon as there is
/// an entry, or empty at the deadline. An auth-service that predates it ignores it and answers
/// at once.
pub const WAIT_PARAM: &str = "wait";

/// Reads a [`WAIT_PARAM`] value: a duration with a unit (`25s`, `500ms`, `1m`) or whole seconds.
pub fn parse_wait(value: &str) -> Option<std::time::Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        return value.parse::<u64>().ok().map(std::time::Duration::from_secs);
    }
    humantime::parse_duration(value).ok()
}

/// The path and query of a long poll after `cursor`, waiting up to `wait` (whole seconds, at
/// least one): `/auth/revocations/?after=CURSOR&wait=25s`.
pub fn long_poll_after(cursor: i64, wait: std::time::Duration) -> String {
    format!("{PATH}?{AFTER_PARAM}={cursor}&{WAIT_PARAM}={}s", wait.as_secs().max(1))
}

/// The header carrying the feed token, `X-Revocation-Feed-Token`; written in lower case, the
/// form `http::HeaderName::from_static` takes (header names are case-insensitive).
pub const FEED_TOKEN_HEADER: &str = "x-revocation-feed-token";

/// Most entries in one page: a page this full means "ask again at once".
pub const MAX_ENTRIES: usize = 1000;

/// The path and query of the page after `cursor`: `/auth/revocations/?after=CURSOR`.
pub fn page_after(cursor: i64) -> String {
    format!("{PATH}?{AFTER_PARAM}={cursor}")
}

/// A page of the revocation feed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = RevocationFeed, example = json!({"cursor": 12, "revocations": [{"user_id": 7, "not_before": 1764606908}]})))]
pub struct Page {
    /// Id of the last entry returned: ask again with `after=<cursor>`.
    pub cursor: i64,
    /// Entries after the requested cursor, oldest first (at most 1000).
    pub revocations: Vec<Entry>,
}

/// One revocation watermark: tokens of `user_id` with `iat < not_before` are dead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = RevocationDoc))]
pub struct Entry {
    /// The user.
    pub user_id: i64,
    /// Epoch seconds.
    pub not_before: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_is_the_auth_service_json_byte_for_byte_and_round_trips() {
        let page = Page { cursor: 12, revocations: vec![Entry { user_id: 7, not_before: 1764606908 }] };
        let json = serde_json::to_string(&page).unwrap();
        assert_eq!(
            json, r#"{"cursor":12,"revocations":[{"user_id":7,"not_before":1764606908}]}"#,
            "field names and order"
        );
        assert_eq!(serde_json::from_str::<Page>(&json).unwrap(), page, "round trip");
    }

    #[test]
    fn an_empty_page_keeps_its_empty_list() {
        let page = Page { cursor: 0, revocations: Vec::new() };
        assert_eq!(serde_json::to_string(&page).unwrap(), r#"{"cursor":0,"revocations":[]}"#);
        assert_eq!(serde_json::from_str::<Page>(r#"{"cursor":0,"revocations":[]}"#).unwrap(), page);
    }

    #[test]
    fn a_reader_ignores_fields_it_does_not_know() {
        let page: Page =
            serde_json::from_str(r#"{"cursor":3,"revocations":[{"user_id":1,"not_before":2,"why":"x"}],"more":true}"#)
                .unwrap();
        assert_eq!(page, Page { cursor: 3, revocations: vec![Entry { user_id: 1, not_before: 2 }] });
    }

    #[test]
    fn the_page_path_carries_the_cursor() {
        assert_eq!(page_after(42), "/auth/revocations/?after=42");
        assert!(FEED_TOKEN_HEADER.eq_ignore_ascii_case("X-Revocation-Feed-Token"));
        assert_eq!(FEED_TOKEN_HEADER, FEED_TOKEN_HEADER.to_ascii_lowercase(), "lower case for HeaderName");
    }
}
