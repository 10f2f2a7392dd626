//! The revocation feed's wire contract, written once for both sides: the auth-service answers
//! `GET /auth/revocations/?after=CURSOR` with a [`Page`] to callers presenting its
//! `REVOCATION_FEED_TOKEN` in [`FEED_TOKEN_HEADER`]; a local-mode client polls it and reads the
//! same [`Page`].
//!
//! On the wire a page is `{"cursor":12,"revocations":[{"user_id":7,"not_before":1764606908}]}`:
//! the fields in that order, none optional. A client ignores fields it does not know, so the
//! auth-service may add some later.
//!
//! A revoked signing key travels in the same sequence, as an entry with a `kid`:
//! `{"user_id":0,"not_before":0,"kid":"5c1f2d7e9a8b4c3d"}`. Its `user_id` and `not_before` are
//! zero, so a reader that predates key entries takes it for a watermark that refuses nothing;
//! a reader that knows them drops the key at once instead of at its next JWKS fetch.

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

/// One revocation: a watermark (tokens of `user_id` with `iat < not_before` are dead), or, with
/// a `kid`, a revoked signing key (every token it signed is dead; `user_id` and `not_before`
/// are then 0).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = RevocationDoc))]
pub struct Entry {
    /// The user (0 for a key).
    pub user_id: i64,
    /// Epoch seconds (0 for a key).
    pub not_before: i64,
    /// The revoked signing key; absent for a watermark.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
}

impl Entry {
    /// A watermark: tokens of `user_id` issued before `not_before` are dead.
    pub fn watermark(user_id: i64, not_before: i64) -> Self {
        Self { user_id, not_before, kid: None }
    }

    /// A revoked signing key.
    pub fn key(kid: impl Into<String>) -> Self {
        Self { user_id: 0, not_before: 0, kid: Some(kid.into()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_is_the_auth_service_json_byte_for_byte_and_round_trips() {
        let page = Page { cursor: 12, revocations: vec![Entry::watermark(7, 1764606908)] };
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
        assert_eq!(page, Page { cursor: 3, revocations: vec![Entry::watermark(1, 2)] });
    }

    #[test]
    fn a_key_entry_reads_as_a_harmless_watermark_to_an_older_reader() {
        let page = Page { cursor: 4, revocations: vec![Entry::key("k1")] };
        let json = serde_json::to_string(&page).unwrap();
        assert_eq!(json, r#"{"cursor":4,"revocations":[{"user_id":0,"not_before":0,"kid":"k1"}]}"#);
        assert_eq!(serde_json::from_str::<Page>(&json).unwrap(), page, "round trip");
        #[derive(Deserialize)]
        struct OldEntry {
            user_id: i64,
            not_before: i64,
        }
        #[derive(Deserialize)]
        struct OldPage {
            revocations: Vec<OldEntry>,
        }
        let old: OldPage = serde_json::from_str(&json).unwrap();
        assert_eq!((old.revocations[0].user_id, old.revocations[0].not_before), (0, 0));
    }

    #[test]
    fn the_page_path_carries_the_cursor() {
        assert_eq!(page_after(42), "/auth/revocations/?after=42");
        assert!(FEED_TOKEN_HEADER.eq_ignore_ascii_case("X-Revocation-Feed-Token"));
        assert_eq!(FEED_TOKEN_HEADER, FEED_TOKEN_HEADER.to_ascii_lowercase(), "lower case for HeaderName");
    }
}
