//! The revocation watermarks ("tokens of this user issued before T are dead") and what the
//! client knows about the feed that brings them ([`RevocationStatus`]). The poller in
//! `revocations` writes them; local verification reads them on every request.
//!
//! The hot path reads an immutable map behind an [`ArcSwap`]: a lookup, no lock, no network.
//! Only the poller replaces the map, when the feed brings something new, which is rare.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;
use shared_user::wire::revocations::Entry;

/// What the client knows about the revocation feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RevocationStatus {
    /// No `REVOCATION_FEED_TOKEN` configured (or not local mode): revocations reach this client
    /// only when tokens expire.
    Off,
    /// Configured, no answer yet.
    Starting,
    /// The last poll succeeded.
    Live {
        /// Feed cursor reached.
        cursor: i64,
        /// Users with a watermark.
        users: usize,
        /// When the last poll succeeded.
        at: SystemTime,
    },
    /// The last poll failed; the last known watermarks are still applied.
    Unreachable {
        /// Why (`feed off on the auth-service (404)`, a transport error, ...).
        reason: String,
        /// When the outage started.
        since: SystemTime,
        /// Feed cursor reached before the outage.
        cursor: i64,
    },
}

/// The watermarks and the poller's progress.
#[derive(Debug)]
pub(crate) struct Watermarks {
    map: ArcSwap<HashMap<i64, i64>>,
    cursor: Mutex<i64>,
    status: Mutex<RevocationStatus>,
    /// When the feed was last read successfully (at first: when polling was set up).
    last_read: Mutex<Instant>,
}

impl Watermarks {
    /// Empty, with `status` (`Off` or `Starting`).
    pub(crate) fn new(enabled: bool) -> Self {
        let status = if enabled { RevocationStatus::Starting } else { RevocationStatus::Off };
        Self {
            map: ArcSwap::from_pointee(HashMap::new()),
            cursor: Mutex::new(0),
            status: Mutex::new(status),
            last_read: Mutex::new(Instant::now()),
        }
    }

    /// Whether a token of `user_id` issued at `iat` is dead (a token without `iat` is, once the
    /// user has a watermark). The hot path: one atomic load and one lookup.
    pub(crate) fn refuses(&self, user_id: i64, iat: Option<i64>) -> bool {
        let map = self.map.load();
        if map.is_empty() {
            return false;
        }
        map.get(&user_id).is_some_and(|not_before| iat.is_none_or(|iat| iat < *not_before))
    }

    /// Raises watermarks (never lowers one); returns the users whose watermark moved.
    pub(crate) fn raise(&self, entries: &[Entry]) -> Vec<i64> {
        let current = self.map.load_full();
        let mut changed = Vec::new();
        let mut next: Option<HashMap<i64, i64>> = None;
        // Key entries (with a `kid`) are the keys' business, not a user's.
        for e in entries.iter().filter(|e| e.kid.is_none()) {
            let known = next.as_ref().unwrap_or(&current).get(&e.user_id).copied();
            if known.is_none_or(|nb| nb < e.not_before) {
                next.get_or_insert_with(|| (*current).clone()).insert(e.user_id, e.not_before);
                changed.push(e.user_id);
            }
        }
        if let Some(next) = next {
            // Only the poller writes, so nothing is lost between load and store.
            self.map.store(Arc::new(next));
        }
        changed
    }

    /// What the client knows about the feed.
    pub(crate) fn status(&self) -> RevocationStatus {
        self.status.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Replaces the status (the poller reporting an outage).
    pub(crate) fn set_status(&self, status: RevocationStatus) {
        *self.status.lock().unwrap_or_else(|p| p.into_inner()) = status;
    }

    /// The feed cursor reached.
    pub(crate) fn cursor(&self) -> i64 {
        *self.cursor.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A page of the feed was read up to `cursor`: the cursor moves there (the auth-service
    /// only moves a cursor back when its feed restarted, with a new database) and the status
    /// becomes `Live`.
    pub(crate) fn reached(&self, cursor: i64) {
        let cursor = cursor.max(0);
        *self.cursor.lock().unwrap_or_else(|p| p.into_inner()) = cursor;
        let users = self.map.load().len();
        self.set_status(RevocationStatus::Live { cursor, users, at: SystemTime::now() });
    }

    /// Notes that the feed was read successfully just now.
    pub(crate) fn mark_read(&self) {
        *self.last_read.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
    }

    /// How old the newest revocation state held is: the time since the feed was last read.
    pub(crate) fn lag(&self) -> Duration {
        self.last_read.lock().unwrap_or_else(|p| p.into_inner()).elapsed()
    }
}

#[cfg(feature = "testing")]
impl Watermarks {
    /// `testing` hook: tokens of `user_id` issued before `not_before` are refused from now on,
    /// as if the feed had announced it (a test state has no poller to race with).
    pub(crate) fn revoke_for_tests(&self, user_id: i64, not_before: i64) {
        self.raise(&[Entry::watermark(user_id, not_before)]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(user_id: i64, not_before: i64) -> Entry {
        Entry::watermark(user_id, not_before)
    }

    #[test]
    fn tokens_issued_before_the_watermark_are_refused() {
        let marks = Watermarks::new(true);
        assert!(!marks.refuses(7, Some(100)), "no watermark, nothing refused");
        assert_eq!(marks.raise(&[entry(7, 100)]), [7]);
        assert!(marks.refuses(7, Some(99)), "iat before not_before");
        assert!(!marks.refuses(7, Some(100)), "iat == not_before is accepted");
        assert!(marks.refuses(7, None), "no iat, refused once the user has a watermark");
        assert!(!marks.refuses(8, Some(1)), "other users are untouched");
    }

    #[test]
    fn key_entries_raise_no_watermark() {
        let marks = Watermarks::new(true);
        assert!(marks.raise(&[Entry::key("k1")]).is_empty());
        assert!(!marks.refuses(0, None), "no watermark for user 0");
    }

    #[test]
    fn watermarks_only_move_forward() {
        let marks = Watermarks::new(true);
        marks.raise(&[entry(7, 100), entry(8, 50)]);
        assert_eq!(marks.raise(&[entry(7, 90), entry(8, 60)]), [8], "an older entry never lowers a watermark");
        assert!(marks.refuses(7, Some(95)));
        assert!(marks.refuses(8, Some(55)));
        assert_eq!(marks.raise(&[]), Vec::<i64>::new());
    }
}
