//! Access tokens already verified in local mode.
//!
//! A client re-sends the same access token on every request for its whole lifetime, so the
//! signature and claim checks of [`shared_user::Verifier::decode`] need to run once per token, not
//! once per request. An entry holds only what the check concluded (the user id) and until when it
//! holds (`exp`); the user itself still comes from the mirror on every request, so deactivation
//! and group changes are seen exactly as without the cache.
//!
//! Entries are keyed by the SHA-256 digest of the whole token: any other string (another
//! signature, one changed claim) is another key, as with the token itself, and an entry costs
//! about 110 bytes instead of the token's 200 or more, so a memory budget holds twice as many
//! users.

use aws_lc_rs::digest::{SHA256, digest};
use quick_cache::Weighter;
use quick_cache::sync::Cache;

/// The cache key of a token: SHA-256 of its bytes.
type Key = [u8; 32];

fn key_of(token: &str) -> Key {
    let mut key = [0u8; 32];
    key.copy_from_slice(digest(&SHA256, token.as_bytes()).as_ref());
    key
}

/// What a successful check of one token concluded.
#[derive(Debug, Clone, Copy)]
struct Verified {
    user_id: i64,
    /// `iat` of the token, epoch seconds (checked against revocation watermarks on every hit).
    iat: Option<i64>,
    /// `exp` of the token, epoch seconds.
    exp: i64,
    /// The key set it was checked against (see [`crate::keys::KeySet::generation`]; 0 for the shared secret).
    generation: u64,
}

/// Bytes an entry holds: key, value, the cache's bookkeeping and its table's slack.
const ENTRY_BYTES: u64 = (std::mem::size_of::<Key>() + std::mem::size_of::<Verified>() + 40) as u64;

/// Every entry weighs [`ENTRY_BYTES`].
#[derive(Debug, Clone, Copy)]
struct Bytes;

impl Weighter<Key, Verified> for Bytes {
    fn weight(&self, _: &Key, _: &Verified) -> u64 {
        ENTRY_BYTES
    }
}

/// Map from a verified token (the digest of the exact string) to its user id, bounded by memory.
pub(crate) struct VerifiedTokens {
    cache: Cache<Key, Verified, Bytes>,
    leeway: i64,
}

impl std::fmt::Debug for VerifiedTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifiedTokens").field("len", &self.cache.len()).finish_non_exhaustive()
    }
}

impl VerifiedTokens {
    /// A cache holding about `bytes` of tokens; `leeway` is the verifier's clock-skew allowance.
    pub(crate) fn new(bytes: u64, leeway: u64) -> Self {
        let estimated = usize::try_from(bytes / ENTRY_BYTES).unwrap_or(usize::MAX).max(16);
        Self {
            cache: Cache::with_weighter(estimated, bytes, Bytes),
            leeway: i64::try_from(leeway).unwrap_or(i64::MAX / 4),
        }
    }

    /// The user (and `iat`) of `token` when it was verified against key set `generation` and has
    /// not expired since (the same expiry rule as the verifier's).
    pub(crate) fn user_of(&self, token: &str, generation: u64) -> Option<(i64, Option<i64>)> {
        let key = key_of(token);
        let Some(entry) = self.cache.get(&key) else {
            crate::metrics::token_cache_miss();
            return None;
        };
        if entry.generation == generation && entry.exp > chrono::Utc::now().timestamp() - self.leeway {
            crate::metrics::token_cache_hit();
            return Some((entry.user_id, entry.iat));
        }
        crate::metrics::token_cache_miss();
        self.cache.remove(&key);
        None
    }

    /// Records that `token` was verified against key set `generation`.
    pub(crate) fn remember(&self, token: &str, user_id: i64, iat: Option<i64>, exp: i64, generation: u64) {
        self.cache.insert(key_of(token), Verified { user_id, iat, exp, generation });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hits_until_expiry_and_only_for_the_same_key_set() {
        let now = chrono::Utc::now().timestamp();
        let tokens = VerifiedTokens::new(10_000, 0);
        tokens.remember("a.b.c", 7, Some(now), now + 60, 1);
        assert_eq!(tokens.user_of("a.b.c", 1), Some((7, Some(now))));
        assert_eq!(tokens.user_of("a.b.x", 1), None);
        assert_eq!(tokens.user_of("a.b.c", 2), None, "a newer key set re-checks the token");
        assert_eq!(tokens.user_of("a.b.c", 1), None, "the stale entry was dropped");

        tokens.remember("old", 8, None, now, 1);
        assert_eq!(tokens.user_of("old", 1), None, "exp == now is expired, as in the verifier");
        let lenient = VerifiedTokens::new(10_000, 30);
        lenient.remember("old", 8, None, now - 10, 1);
        assert_eq!(lenient.user_of("old", 1), Some((8, None)), "leeway applies as in the verifier");
    }

    #[test]
    fn the_memory_budget_bounds_the_entries() {
        let now = chrono::Utc::now().timestamp();
        let budget = 100 * ENTRY_BYTES;
        let tokens = VerifiedTokens::new(budget, 0);
        for i in 0..1_000 {
            tokens.remember(&format!("{i:0200}"), i, Some(now), now + 60, 1);
        }
        let held = (0..1_000).filter(|i| tokens.user_of(&format!("{i:0200}"), 1).is_some()).count();
        assert!((50..=100).contains(&held), "about 100 tokens fit, {held} held");
    }
}
