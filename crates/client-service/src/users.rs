//! The user lookup behind every authenticated request: a memory cache sized by a memory
//! budget, the mirror database under it, and single-flight fetching from the auth-service (one
//! fetch per user however many first requests arrive at once). When the auth-service is down a
//! stale mirror entry is served.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::NaiveDateTime;
use shared_user::User;
use shared_user::user::now_utc;

use crate::compact::{CompactUser, GroupSets};
use crate::error::ClientError;
use crate::metrics;
use crate::mirror::Mirror;
use crate::upstream::Upstream;

/// Weighs mirror-cache entries by their memory, so the cache follows a memory budget.
#[derive(Clone, Copy)]
struct CompactBytes;

impl quick_cache::Weighter<i64, CompactUser> for CompactBytes {
    fn weight(&self, _: &i64, entry: &CompactUser) -> u64 {
        u64::from(entry.bytes())
    }
}

/// A typical mirrored user's entry (a shared group set), to size the cache's table up front.
const TYPICAL_USER_BYTES: u64 = 160;

/// Mirrored users: the memory cache, the mirror database and the fetches in flight.
pub(crate) struct Users {
    mirror: Mirror,
    /// Fresh mirror entries in memory: the common request reads no database. Writes still go
    /// to the mirror first; this only saves the read.
    cache: Option<quick_cache::sync::Cache<i64, CompactUser, CompactBytes>>,
    /// The access-group sets of cached users, each kept once.
    group_sets: GroupSets,
    /// How long a mirrored user is trusted before it is fetched again.
    ttl: Duration,
    /// One lock per user id being fetched, so concurrent first requests make one fetch.
    flights: Mutex<HashMap<i64, Arc<tokio::sync::Mutex<()>>>>,
}

impl Users {
    /// Users mirrored in `mirror`, with a memory cache of `cache_memory` bytes (0: none),
    /// trusted for `ttl`.
    pub(crate) fn new(mirror: Mirror, cache_memory: u64, ttl: Duration) -> Self {
        let cache = (cache_memory > 0).then(|| {
            let estimated = usize::try_from(cache_memory / TYPICAL_USER_BYTES).unwrap_or(usize::MAX).max(16);
            quick_cache::sync::Cache::with_weighter(estimated, cache_memory, CompactBytes)
        });
        Self { mirror, cache, group_sets: GroupSets::default(), ttl, flights: Mutex::new(HashMap::new()) }
    }

    /// The mirror database.
    pub(crate) fn mirror(&self) -> &Mirror {
        &self.mirror
    }

    /// Drops `user_id` from memory, so the next request reads it again.
    pub(crate) fn forget(&self, user_id: i64) {
        if let Some(cache) = &self.cache {
            cache.remove(&user_id);
        }
    }

    /// Puts `user` in the mirror and in memory as fetched just now, as a fetch from the
    /// auth-service does.
    pub(crate) async fn store(&self, user: Arc<User>) {
        self.remember(&user, Some(now_utc()));
        self.mirror.upsert(user).await;
    }

    fn is_fresh(&self, synced_at: Option<NaiveDateTime>) -> bool {
        let ttl = chrono::Duration::from_std(self.ttl).unwrap_or_default();
        synced_at.is_some_and(|t| now_utc() - t < ttl)
    }

    fn remember(&self, user: &User, synced_at: Option<NaiveDateTime>) {
        if let Some(cache) = &self.cache {
            cache.insert(user.id, CompactUser::new(user, synced_at, &self.group_sets));
        }
    }

    fn flight(&self, user_id: i64) -> Arc<tokio::sync::Mutex<()>> {
        let mut flights = self.flights.lock().unwrap_or_else(|p| p.into_inner());
        flights.entry(user_id).or_default().clone()
    }

    fn land(&self, user_id: i64) {
        let mut flights = self.flights.lock().unwrap_or_else(|p| p.into_inner());
        flights.remove(&user_id);
    }

    /// The user `user_id` (whose valid access token is `token`): from memory or the mirror
    /// when fresh, else fetched once from the auth-service and mirrored. When the auth-service
    /// is down a stale mirror entry is used.
    pub(crate) async fn get(&self, upstream: &Upstream, user_id: i64, token: &str) -> Result<Arc<User>, ClientError> {
        if let Some(user) = self.fresh_in_memory(user_id) {
            return Ok(user);
        }
        if let Some(user) = self.fresh_in_mirror(user_id).await? {
            return Ok(user);
        }
        let flight = self.flight(user_id);
        let _guard = flight.lock().await;
        // Whoever held the flight before us may have fetched the user meanwhile.
        if let Some(user) = self.fresh_in_memory(user_id) {
            return Ok(user);
        }
        if let Some(user) = self.fresh_in_mirror(user_id).await? {
            return Ok(user);
        }
        let result = self.fetch_and_mirror(upstream, user_id, token).await;
        metrics::mirror_fetch(&result);
        self.land(user_id);
        match result {
            Ok(user) => Ok(user),
            Err(ClientError::Unavailable(why)) => match self.mirror.find(user_id).await? {
                // A stale copy (or one another process sharing this database wrote).
                Some(stale) => {
                    tracing::warn!(user_id, why, "auth-service unavailable; serving the mirrored user");
                    Ok(Arc::new(stale.user))
                }
                None => Err(ClientError::Unavailable(why)),
            },
            Err(e) => Err(e),
        }
    }

    /// Fetches and mirrors `user_id` now (after a login through the proxy), one fetch per user
    /// at a time.
    pub(crate) async fn refresh(
        &self,
        upstream: &Upstream,
        user_id: i64,
        access: &str,
    ) -> Result<Arc<User>, ClientError> {
        let flight = self.flight(user_id);
        let _guard = flight.lock().await;
        let result = self.fetch_and_mirror(upstream, user_id, access).await;
        metrics::mirror_fetch(&result);
        self.land(user_id);
        result
    }

    /// The user from the memory cache, when there and fresh.
    fn fresh_in_memory(&self, user_id: i64) -> Option<Arc<User>> {
        let m = self.cache.as_ref()?.get(&user_id)?;
        self.is_fresh(m.synced_at).then(|| Arc::new(m.user(user_id)))
    }

    /// The user from the mirror database, when there and fresh (remembered in memory); no read
    /// at all when the mirror surely has no row for it.
    async fn fresh_in_mirror(&self, user_id: i64) -> Result<Option<Arc<User>>, ClientError> {
        if !self.mirror.may_hold(user_id) {
            return Ok(None);
        }
        match self.mirror.find(user_id).await? {
            Some(m) if self.is_fresh(m.synced_at) => {
                self.remember(&m.user, m.synced_at);
                Ok(Some(Arc::new(m.user)))
            }
            _ => Ok(None),
        }
    }

    async fn fetch_and_mirror(&self, upstream: &Upstream, user_id: i64, token: &str) -> Result<Arc<User>, ClientError> {
        match upstream.fetch_user(token, user_id).await? {
            Ok(user) if user.id == user_id => {
                let user = Arc::new(user);
                self.store(user.clone()).await;
                Ok(user)
            }
            Ok(user) => Err(ClientError::BadUpstream(format!("asked for user {user_id}, got {}", user.id))),
            Err(refusal) => {
                // The auth-service says this user may not sign in any more: record it, so a
                // later outage cannot bring the stale, still-active mirror copy back.
                if matches!(refusal.code.as_deref(), Some("user_inactive" | "user_not_found")) {
                    self.mirror.deactivate(user_id).await;
                }
                self.forget(user_id);
                Err(ClientError::Unauthenticated(refusal))
            }
        }
    }
}
