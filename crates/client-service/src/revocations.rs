//! Revocation in local mode: the poller of the auth-service's feed
//! `GET /auth/revocations/?after=CURSOR`, whose wire contract (header, query, page) is
//! [`shared_user::wire::revocations`], raising the [`Watermarks`] that local verification reads.
//!
//! The poller (one background task per [`crate::ClientState`], stopped when the state is
//! dropped) holds only its own parts: an [`Upstream`] client, the feed token, the watermarks and
//! a weak handle on the mirrored [`Users`], so it never keeps the state alive. For each revoked
//! user it drops their in-memory mirror entry and marks their mirror row stale, so the next
//! request with a newer token fetches the user again. Access tokens with `iat < not_before` are
//! refused as bad tokens; verified-token cache hits are checked too (the cache keeps each
//! token's `iat`).
//!
//! A client that cannot reach the feed keeps its last map, logs one warning per outage (and one
//! line when the feed is back) and reports it in [`RevocationStatus`]. After every poll, failed
//! or not, it sets `gatehouse_revocation_feed_lag_seconds` to the time since the feed was last
//! read successfully (since the poller started, before the first success): about zero while
//! the feed answers, growing during an outage.

use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use bytes::Bytes;
use shared_user::wire::revocations::{FEED_TOKEN_HEADER, MAX_ENTRIES, Page, long_poll_after, page_after};

use crate::error::ClientError;
use crate::keys::JwksCache;
use crate::upstream::Upstream;
use crate::users::Users;
use crate::watermarks::{RevocationStatus, Watermarks};

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

/// An answer held at least this long came from an auth-service that long-polls.
const LONG_POLL_HELD: Duration = Duration::from_millis(500);

/// When to read the feed again after a poll.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    /// At once: the feed is long-polled.
    Now,
    /// After the poll interval: plain polling, or the poll failed.
    AfterInterval,
}

/// The revocation poller's parts: what it reads the feed with and what it writes.
pub(crate) struct Poller {
    /// The auth-service client (a clone of the state's).
    upstream: Upstream,
    /// `REVOCATION_FEED_TOKEN`, sent in [`FEED_TOKEN_HEADER`].
    token: String,
    /// Shared with the state, which reads them on every request.
    watermarks: Arc<Watermarks>,
    /// The state's mirrored users, to forget the revoked ones; weak, so the poller does not
    /// keep them (and their database) alive once the state is dropped.
    users: Weak<Users>,
    /// The JWKS cache of a client verifying with published keys, which drops revoked keys.
    jwks: Option<Arc<JwksCache>>,
}

impl Poller {
    /// A poller reading the feed through `upstream` with `token`, raising `watermarks`,
    /// forgetting revoked users in `users` and dropping revoked keys from `jwks`.
    pub(crate) fn new(
        upstream: Upstream,
        token: String,
        watermarks: Arc<Watermarks>,
        users: Weak<Users>,
        jwks: Option<Arc<JwksCache>>,
    ) -> Self {
        Self { upstream, token, watermarks, users, jwks }
    }

    /// Starts reading the feed (a no-op outside a tokio runtime, with a warning) until `stop`
    /// is dropped with the state (or the users are gone): with a `wait`, one long poll after
    /// another, each answered as soon as a revocation arrives; without one, or when the
    /// auth-service answers at once (it does not long-poll) or fails, again after `interval`.
    pub(crate) fn spawn(self, interval: Duration, wait: Duration, mut stop: tokio::sync::oneshot::Receiver<()>) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!("no tokio runtime: the revocation feed is not polled");
            return;
        };
        runtime.spawn(async move {
            loop {
                let Some(users) = self.users.upgrade() else { return };
                let next = tokio::select! {
                    _ = &mut stop => return,
                    next = self.poll(&users, wait) => next,
                };
                drop(users);
                if next == Next::Now {
                    continue;
                }
                tokio::select! {
                    _ = &mut stop => return,
                    () = tokio::time::sleep(interval) => {}
                }
            }
        });
    }

    /// One poll: reads the feed until it has nothing more, applying what it brings (on failure
    /// the status says why and the known watermarks stay in force), then sets the feed lag
    /// metric.
    async fn poll(&self, users: &Users, wait: Duration) -> Next {
        let next = self.read_feed(users, wait).await;
        crate::metrics::set_revocation_feed_lag(self.watermarks.lag());
        next
    }

    async fn read_feed(&self, users: &Users, wait: Duration) -> Next {
        loop {
            let started = std::time::Instant::now();
            // The first read (and the first after an outage) does not wait: the current state
            // is wanted at once; long polls follow.
            let live = matches!(self.watermarks.status(), RevocationStatus::Live { .. });
            match self.fetch_page(if live { wait } else { Duration::ZERO }).await {
                Ok(page) => {
                    // A full page means "ask again now".
                    let full = page.revocations.len() >= MAX_ENTRIES;
                    self.apply(users, &page).await;
                    if !full {
                        // Long polling works when the answer brought something or was held;
                        // an empty answer at once is an auth-service that does not long-poll.
                        let held = !live || !page.revocations.is_empty() || started.elapsed() >= LONG_POLL_HELD;
                        return if !wait.is_zero() && held { Next::Now } else { Next::AfterInterval };
                    }
                }
                Err(e) => {
                    let reason = e.to_string();
                    let cursor = self.watermarks.cursor();
                    let status = self.watermarks.status();
                    if !matches!(status, RevocationStatus::Unreachable { .. }) {
                        tracing::warn!(
                            reason,
                            cursor,
                            "revocation feed unreachable: keeping the last known revocations until it answers"
                        );
                        let since = SystemTime::now();
                        self.watermarks.set_status(RevocationStatus::Unreachable { reason, since, cursor });
                    }
                    return Next::AfterInterval;
                }
            }
        }
    }

    async fn fetch_page(&self, wait: Duration) -> Result<Page, FeedError> {
        let mut headers = HeaderMap::new();
        let value = HeaderValue::from_str(&self.token).map_err(|_| FeedError::BadToken)?;
        headers.insert(FEED_TOKEN_HEADER, value);
        let cursor = self.watermarks.cursor();
        let reply = if wait.is_zero() {
            self.upstream.send(Method::GET, &page_after(cursor), &headers, Bytes::new()).await?
        } else {
            let path = long_poll_after(cursor, wait);
            self.upstream.send_within(Method::GET, &path, &headers, Bytes::new(), Some(wait)).await?
        };
        match reply.status {
            StatusCode::OK => serde_json::from_slice::<Page>(&reply.body).map_err(FeedError::Unreadable),
            StatusCode::NOT_FOUND => Err(FeedError::Off),
            StatusCode::FORBIDDEN => Err(FeedError::Refused),
            other => Err(FeedError::Status(other)),
        }
    }

    async fn apply(&self, users: &Users, page: &Page) {
        let marks = &self.watermarks;
        marks.mark_read();
        let changed = marks.raise(&page.revocations);
        for user_id in &changed {
            users.forget(*user_id);
            // Queued behind any write of this user already waiting, so it cannot be overwritten
            // by an older fetch.
            users.mirror().mark_stale(*user_id).await;
        }
        if !changed.is_empty() {
            tracing::info!(users = changed.len(), cursor = page.cursor, "revocations applied");
        }
        for kid in page.revocations.iter().filter_map(|e| e.kid.as_deref()) {
            if let Some(jwks) = &self.jwks {
                let held = jwks.revoke_kid(kid);
                tracing::info!(kid, held, "signing key revoked: its tokens are refused from now on");
            }
        }
        if let RevocationStatus::Unreachable { since, .. } = marks.status() {
            let outage = since.elapsed().unwrap_or_default();
            tracing::info!(outage_secs = outage.as_secs(), "revocation feed reachable again");
        }
        marks.reached(page.cursor);
    }
}
