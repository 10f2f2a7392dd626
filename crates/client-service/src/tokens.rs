//! Access tokens already verified in local mode.
//!
//! A client re-sends the same access token on every request for its whole lifetime, so the
//! signature and claim checks of [`shared_user::Verifier::decode`] need to run once per token, not
//! once per request. An entry holds only what the check concluded (the user id) and until when it
//! holds (`exp`); the user itself still comes from the mirror on every request, so deactivation
//! and group changes are seen exactly as without the cache.

use quick_cache::sync::Cache;

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

/// Bounded map from a verified token (the exact string) to its user id.
pub(crate) struct VerifiedTokens {
    cache: Cache<Box<str>, Verified>,
    leeway: i64,
}

impl std::fmt::Debug for VerifiedTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifiedTokens").field("len", &self.cache.len()).finish_non_exhaustive()
    }
}

impl VerifiedTokens {
    /// A cache of at most `capacity` tokens; `leeway` is the verifier's clock-skew allowance.
    pub(crate) fn new(capacity: usize, leeway: u64) -> Self {
        Self { cache: Cache::new(capacity), leeway: i64::try_from(leeway).unwrap_or(i64::MAX / 4) }
    }

    /// The user (and `iat`) of `token` when it was verified against key set `generation` and has
    /// not expired since (the same expiry rule as the verifier's).
    pub(crate) fn user_of(&self, token: &str, generation: u64) -> Option<(i64, Option<i64>)> {
        let Some(entry) = self.cache.get(token) else {
            crate::metrics::token_cache_miss();
            return None;
        };
        if entry.generation == generation && entry.exp > chrono::Utc::now().timestamp() - self.leeway {
            crate::metrics::token_cache_hit();
            return Some((entry.user_id, entry.iat));
        }
        crate::metrics::token_cache_miss();
        self.cache.remove(token);
        None
    }

    /// Records that `token` was verified against key set `generation`.
    pub(crate) fn remember(&self, token: &str, user_id: i64, iat: Option<i64>, exp: i64, generation: u64) {
        self.cache.insert(token.into(), Verified { user_id, iat, exp, generation });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hits_until_expiry_and_only_for_the_same_key_set() {
        let now = chrono::Utc::now().timestamp();
        let tokens = VerifiedTokens::new(10, 0);
        tokens.remember("a.b.c", 7, Some(now), now + 60, 1);
        assert_eq!(tokens.user_of("a.b.c", 1), Some((7, Some(now))));
        assert_eq!(tokens.user_of("a.b.x", 1), None);
        assert_eq!(tokens.user_of("a.b.c", 2), None, "a newer key set re-checks the token");
        assert_eq!(tokens.user_of("a.b.c", 1), None, "the stale entry was dropped");

        tokens.remember("old", 8, None, now, 1);
        assert_eq!(tokens.user_of("old", 1), None, "exp == now is expired, as in the verifier");
        let lenient = VerifiedTokens::new(10, 30);
        lenient.remember("old", 8, None, now - 10, 1);
        assert_eq!(lenient.user_of("old", 1), Some((8, None)), "leeway applies as in the verifier");
    }
}
