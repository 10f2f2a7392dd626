//! Revocation in local mode: the per-user watermarks ("tokens of this user issued before T are
//! dead") polled from the auth-service's feed `GET /auth/revocations/?after=CURSOR`, whose wire
//! contract (header, query, page) is [`shared_user::wire::revocations`].
//!
//! The hot path reads an immutable map behind an [`ArcSwap`]: a lookup, no lock, no network.
//! The poller (one background task per [`crate::ClientState`], stopped when the state is
//! dropped) replaces the map when the feed brings something new, which is rare. For each
//! revoked user it also drops their in-memory mirror entry and marks their mirror row stale, so
//! the next request with a newer token fetches the user again. Access tokens with
//! `iat < not_before` are refused as bad tokens; verified-token cache hits are checked too (the
//! cache keeps each token's `iat`).
//!
//! A client that cannot reach the feed keeps its last map, logs one warning per outage (and one
//! line when the feed is back) and reports it in [`RevocationStatus`]. After every poll, failed
//! or not, it sets `gatehouse_revocation_feed_lag_seconds` to the time since the feed was last
//! read successfully (since the poller started, before the first success): about zero while
//! the feed answers, growing during an outage.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use bytes::Bytes;
use shared_user::wire::revocations::{Entry, FEED_TOKEN_HEADER, MAX_ENTRIES, Page, page_after};

use crate::error::ClientError;
use crate::state::{ClientState, Inner};

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
    fn raise(&self, entries: &[Entry]) -> Vec<i64> {
        let current = self.map.load_full();
        let mut changed = Vec::new();
        let mut next: Option<HashMap<i64, i64>> = None;
        for e in entries {
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

    fn status(&self) -> RevocationStatus {
        self.status.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn set_status(&self, status: RevocationStatus) {
        *self.status.lock().unwrap_or_else(|p| p.into_inner()) = status;
    }

    fn cursor(&self) -> i64 {
        *self.cursor.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn mark_read(&self) {
        *self.last_read.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
    }

    /// How old the newest revocation state held is: the time since the feed was last read.
    fn lag(&self) -> Duration {
        self.last_read.lock().unwrap_or_else(|p| p.into_inner()).elapsed()
    }
}

/// Why a poll of the feed failed (the words [`RevocationStatus::Unreachable`] reports).
#[derive(Debug, thiserror::Error)]
enum FeedError {
    /// The configured token cannot travel in a header.
    #[error("REVOCATION_FEED_TOKEN is not a header value")]
    BadToken,
    /// Transport failure or timeout.
    #[error("{0}")]
    Upstream(#[from] ClientError),
    /// A 200 whose body is not a page.
    #[error("unreadable feed answer: {0}")]
    Unreadable(serde_json::Error),
    /// The auth-service has no `REVOCATION_FEED_TOKEN`.
    #[error("the feed is off on the auth-service (404): set REVOCATION_FEED_TOKEN there")]
    Off,
    /// The auth-service has another `REVOCATION_FEED_TOKEN`.
    #[error("the auth-service refused REVOCATION_FEED_TOKEN (403)")]
    Refused,
    /// Any other answer.
    #[error("status {0}")]
    Status(StatusCode),
}

impl ClientState {
    /// What this client knows about the revocation feed (for health checks and metrics).
    pub fn revocation_status(&self) -> RevocationStatus {
        self.inner.watermarks.status()
    }

    /// Whether local verification refuses a token of `user_id` issued at `iat` because of a
    /// revocation the feed announced.
    pub(crate) fn is_revoked(&self, user_id: i64, iat: Option<i64>) -> bool {
        self.inner.watermarks.refuses(user_id, iat)
    }

    /// One poll: reads the feed until it has nothing more, applying what it brings (on failure
    /// the status says why and the known watermarks stay in force), then sets the feed lag
    /// metric.
    pub(crate) async fn poll_revocations(&self) {
        self.read_feed().await;
        crate::metrics::set_revocation_feed_lag(self.inner.watermarks.lag());
    }

    async fn read_feed(&self) {
        loop {
            match self.fetch_page().await {
                Ok(page) => {
                    // A full page means "ask again now".
                    let full = page.revocations.len() >= MAX_ENTRIES;
                    self.apply(&page).await;
                    if !full {
                        return;
                    }
                }
                Err(e) => {
                    let reason = e.to_string();
                    let cursor = self.inner.watermarks.cursor();
                    let status = self.inner.watermarks.status();
                    if !matches!(status, RevocationStatus::Unreachable { .. }) {
                        tracing::warn!(
                            reason,
                            cursor,
                            "revocation feed unreachable: keeping the last known revocations until it answers"
                        );
                        let since = SystemTime::now();
                        self.inner.watermarks.set_status(RevocationStatus::Unreachable { reason, since, cursor });
                    }
                    return;
                }
            }
        }
    }

    async fn fetch_page(&self) -> Result<Page, FeedError> {
        let token = self.config().revocation_feed_token.as_deref().unwrap_or_default();
        let mut headers = HeaderMap::new();
        let value = HeaderValue::from_str(token).map_err(|_| FeedError::BadToken)?;
        headers.insert(FEED_TOKEN_HEADER, value);
        let path = page_after(self.inner.watermarks.cursor());
        let reply = self.upstream().send(Method::GET, &path, &headers, Bytes::new()).await?;
        match reply.status {
            StatusCode::OK => serde_json::from_slice::<Page>(&reply.body).map_err(FeedError::Unreadable),
            StatusCode::NOT_FOUND => Err(FeedError::Off),
            StatusCode::FORBIDDEN => Err(FeedError::Refused),
            other => Err(FeedError::Status(other)),
        }
    }

    async fn apply(&self, page: &Page) {
        let marks = &self.inner.watermarks;
        marks.mark_read();
        let changed = marks.raise(&page.revocations);
        for user_id in &changed {
            self.inner.users.forget(*user_id);
            // Queued behind any write of this user already waiting, so it cannot be overwritten
            // by an older fetch.
            self.mirror().mark_stale(*user_id).await;
        }
        if !changed.is_empty() {
            tracing::info!(users = changed.len(), cursor = page.cursor, "revocations applied");
        }
        if let RevocationStatus::Unreachable { since, .. } = marks.status() {
            let outage = since.elapsed().unwrap_or_default();
            tracing::info!(outage_secs = outage.as_secs(), "revocation feed reachable again");
        }
        // The auth-service only moves a cursor back when its feed restarted (a new database).
        *marks.cursor.lock().unwrap_or_else(|p| p.into_inner()) = page.cursor.max(0);
        let users = marks.map.load().len();
        marks.set_status(RevocationStatus::Live { cursor: marks.cursor(), users, at: SystemTime::now() });
    }
}

/// Starts the poller of `inner` (a no-op outside a tokio runtime, with a warning). It polls at
/// once, then every `interval`, and ends when `stop` is dropped with the state.
pub(crate) fn spawn_poller(inner: Weak<Inner>, interval: Duration, mut stop: tokio::sync::oneshot::Receiver<()>) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        tracing::warn!("no tokio runtime: the revocation feed is not polled");
        return;
    };
    runtime.spawn(async move {
        loop {
            let Some(inner) = inner.upgrade() else { return };
            ClientState { inner }.poll_revocations().await;
            tokio::select! {
                _ = &mut stop => return,
                () = tokio::time::sleep(interval) => {}
            }
        }
    });
}

#[cfg(feature = "testing")]
impl Watermarks {
    /// `testing` hook: tokens of `user_id` issued before `not_before` are refused from now on,
    /// as if the feed had announced it (a test state has no poller to race with).
    pub(crate) fn revoke_for_tests(&self, user_id: i64, not_before: i64) {
        self.raise(&[Entry { user_id, not_before }]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(user_id: i64, not_before: i64) -> Entry {
        Entry { user_id, not_before }
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

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_poller_reports_an_outage_and_lets_the_state_go() {
        let Some(db) = shared_user::testing::TestDb::new(
            shared_user::testing::Backend::Sqlite,
            "poller",
            crate::schema::MIGRATIONS,
        )
        .await
        else {
            panic!("SQLite is always available");
        };
        // Nothing listens on port 9 of 127.0.0.1: every poll fails at once.
        let mut config = crate::config::ClientConfig::builder("http://127.0.0.1:9")
            .local_hmac(b"q2VzZ9eTlB0+T1rX8mD6u4kLx7aN3pYc0wHf5sJgRQE=".to_vec())
            .revocation_feed("feed-token-0123456789")
            .build()
            .unwrap();
        // Faster than the builder allows, to keep the test short.
        config.revocation_poll_interval = Duration::from_millis(50);
        let state = ClientState::new(config, db.db.clone()).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !matches!(state.revocation_status(), RevocationStatus::Unreachable { .. }) {
            assert!(std::time::Instant::now() < deadline, "{:?}", state.revocation_status());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let weak = Arc::downgrade(&state.inner);
        drop(state);
        // The poller holds the state only while a poll runs; then the state is freed.
        while weak.upgrade().is_some() {
            assert!(std::time::Instant::now() < deadline, "the poller keeps the state alive");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
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
