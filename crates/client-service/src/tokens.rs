//! Access tokens already verified in local mode.
//!
//! A client re-sends the same access token on every request for its whole lifetime, so the
//! signature and claim checks of [`shared_user::Verifier::decode`] need to run once per token, not
//! once per request. An entry holds only what the check concluded (the user id, `iat` and the
//! `amr` methods) and until when it holds (`exp`); the user itself still comes from the mirror on
//! every request, so deactivation and group changes are seen exactly as without the cache.
//!
//! Entries are keyed by the SHA-256 digest of the whole token: any other string (another
//! signature, one changed claim) is another key, as with the token itself, and an entry costs
//! about 130 bytes (and the `amr` values, when the token has them) instead of the token's 200 or
//! more.

use aws_lc_rs::digest::{SHA256, digest};
use quick_cache::Weighter;
use quick_cache::sync::Cache;

use crate::verify::Checked;

/// The cache key of a token: SHA-256 of its bytes.
type Key = [u8; 32];

fn key_of(token: &str) -> Key {
    let mut key = [0u8; 32];
    key.copy_from_slice(digest(&SHA256, token.as_bytes()).as_ref());
    key
}

/// What a successful check of one token concluded.
#[derive(Debug, Clone)]
struct Verified {
    /// The user, `iat` (checked against revocation watermarks on every hit) and `amr`.
    checked: Checked,
    /// `exp` of the token, epoch seconds.
    exp: i64,
    /// The key set it was checked against (see [`crate::keys::KeySet::generation`]; 0 for the shared secret).
    generation: u64,
}

/// Bytes an entry holds: key, value, the cache's bookkeeping and its table's slack.
const ENTRY_BYTES: u64 = (std::mem::size_of::<Key>() + std::mem::size_of::<Verified>() + 40) as u64;

/// Every entry weighs [`ENTRY_BYTES`] and the `amr` values it keeps alive.
#[derive(Debug, Clone, Copy)]
struct Bytes;

impl Weighter<Key, Verified> for Bytes {
    fn weight(&self, _: &Key, entry: &Verified) -> u64 {
        ENTRY_BYTES + entry.checked.methods.heap_bytes() as u64
    }
}

/// Map from a verified token (the digest of the exact string) to what its check concluded,
/// bounded by memory.
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

    /// What the check of `token` concluded, when it was verified against key set `generation`
    /// and has not expired since (the same expiry rule as the verifier's).
    pub(crate) fn user_of(&self, token: &str, generation: u64) -> Option<Checked> {
        let key = key_of(token);
        let Some(entry) = self.cache.get(&key) else {
            crate::metrics::token_cache_miss();
            return None;
        };
        if entry.generation == generation && entry.exp > chrono::Utc::now().timestamp() - self.leeway {
            crate::metrics::token_cache_hit();
            return Some(entry.checked);
        }
        crate::metrics::token_cache_miss();
        self.cache.remove(&key);
        None
    }

    /// Records that `token` (valid until `exp`) was verified against key set `generation`.
    pub(crate) fn remember(&self, token: &str, checked: &Checked, exp: i64, generation: u64) {
        self.cache.insert(key_of(token), Verified { checked: checked.clone(), exp, generation });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mfa::AuthMethods;

    fn checked(user_id: i64, iat: Option<i64>) -> Checked {
        Checked { user_id, iat, methods: AuthMethods::default() }
    }

    /// The user and `iat` a lookup gives.
    fn user_of(tokens: &VerifiedTokens, token: &str, generation: u64) -> Option<(i64, Option<i64>)> {
        tokens.user_of(token, generation).map(|c| (c.user_id, c.iat))
    }

    #[test]
    fn hits_until_expiry_and_only_for_the_same_key_set() {
        let now = chrono::Utc::now().timestamp();
        let tokens = VerifiedTokens::new(10_000, 0);
        tokens.remember("a.b.c", &checked(7, Some(now)), now + 60, 1);
        assert_eq!(user_of(&tokens, "a.b.c", 1), Some((7, Some(now))));
        assert_eq!(user_of(&tokens, "a.b.x", 1), None);
        assert_eq!(user_of(&tokens, "a.b.c", 2), None, "a newer key set re-checks the token");
        assert_eq!(user_of(&tokens, "a.b.c", 1), None, "the stale entry was dropped");

        tokens.remember("old", &checked(8, None), now, 1);
        assert_eq!(user_of(&tokens, "old", 1), None, "exp == now is expired, as in the verifier");
        let lenient = VerifiedTokens::new(10_000, 30);
        lenient.remember("old", &checked(8, None), now - 10, 1);
        assert_eq!(user_of(&lenient, "old", 1), Some((8, None)), "leeway applies as in the verifier");
    }

    #[test]
    fn a_hit_gives_the_amr_the_check_found() {
        let now = chrono::Utc::now().timestamp();
        let tokens = VerifiedTokens::new(10_000, 0);
        let mfa =
            Checked { methods: AuthMethods::new(vec!["pwd".into(), "otp".into(), "mfa".into()]), ..checked(7, None) };
        tokens.remember("mfa", &mfa, now + 60, 1);
        tokens.remember("pwd", &checked(7, None), now + 60, 1);
        assert_eq!(tokens.user_of("mfa", 1), Some(mfa), "the methods come back with the user");
        assert_eq!(tokens.user_of("pwd", 1), Some(checked(7, None)), "a password-only token stays one");
    }

    #[test]
    fn the_memory_budget_bounds_the_entries() {
        let now = chrono::Utc::now().timestamp();
        let budget = 100 * ENTRY_BYTES;
        let tokens = VerifiedTokens::new(budget, 0);
        for i in 0..1_000 {
            tokens.remember(&format!("{i:0200}"), &checked(i, Some(now)), now + 60, 1);
        }
        let held = (0..1_000).filter(|i| tokens.user_of(&format!("{i:0200}"), 1).is_some()).count();
        assert!((50..=100).contains(&held), "about 100 tokens fit, {held} held");
    }
}
