//! Brute-force protection on every password check and sign-up.
//!
//! Attempts are counted in the database (shared by all replicas) *before* the password is
//! hashed, so parallel guesses cannot pass a limit (see [`crate::store::throttle`]). Three
//! counters per login: the client address, the account from that address, and the account
//! alone. An address that signed in to the account successfully within
//! [`KNOWN_ADDRESS_TTL_DAYS`] is judged by its own per-account counter only, so guessing from
//! many addresses cannot lock the owner out, while strangers stay locked: the owner's success
//! clears only that address's counter, never the account's, so it hands strangers no new
//! guesses. Addresses are counted as [`counted_address`] keys them (an IPv6 caller by its /64).

use std::net::IpAddr;

use shared_user::DbError;
use shared_user::user::now_utc;

use crate::client_ip::counted_address;
use crate::store::Store;
use crate::store::throttle::{Limit, ThrottleSettlement};

/// How long a successful sign-in makes an address "known" to that account.
pub const KNOWN_ADDRESS_TTL_DAYS: i64 = 30;

/// Limits of the login counters and of sign-ups.
#[derive(Debug, Clone)]
pub struct Throttle {
    /// Off: nothing is counted.
    pub enabled: bool,
    /// Per client IP.
    pub ip: Limit,
    /// Per account from one IP.
    pub account_ip: Limit,
    /// Per account from anywhere.
    pub account: Limit,
    /// Sign-ups per client IP (`None`: not limited).
    pub signup: Option<Limit>,
    /// Shortest time a failed password check answers in (zero: no padding). Set above the
    /// slowest stored hash (imported Django `pbkdf2` accounts) so failures for those accounts
    /// cannot be told from unknown emails by timing.
    pub failure_floor: std::time::Duration,
}

impl Default for Throttle {
    fn default() -> Self {
        let minutes = chrono::Duration::minutes;
        let seconds = chrono::Duration::seconds;
        Self {
            enabled: true,
            ip: Limit { threshold: 20, base_lock: seconds(1), max_lock: minutes(15), window: minutes(15) },
            account_ip: Limit { threshold: 5, base_lock: seconds(1), max_lock: minutes(15), window: minutes(15) },
            account: Limit { threshold: 50, base_lock: seconds(1), max_lock: seconds(60), window: minutes(15) },
            signup: Some(signups_per_hour(10)),
            failure_floor: std::time::Duration::ZERO,
        }
    }
}

/// The sign-up limit: `n` per address per hour (the address then waits up to an hour).
pub fn signups_per_hour(n: u32) -> Limit {
    Limit {
        threshold: i32::try_from(n).unwrap_or(i32::MAX),
        base_lock: chrono::Duration::hours(1),
        max_lock: chrono::Duration::hours(1),
        window: chrono::Duration::hours(1),
    }
}

/// Passwordless passkey sign-ins started per client address: each one stores a challenge
/// before anyone is known, so an address gets 30 a minute (then waits from 30 s, doubling, up
/// to 15 minutes).
pub fn passkey_starts() -> Limit {
    Limit {
        threshold: 30,
        base_lock: chrono::Duration::seconds(30),
        max_lock: chrono::Duration::minutes(15),
        window: chrono::Duration::minutes(1),
    }
}

/// A counted login attempt, to be settled with [`Throttle::settlement`] when the password was right.
/// It is kept between the two steps of a login with a second factor (in the `mfa_token`'s
/// challenge), so it serializes.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Attempt {
    email: String,
    ip: Option<IpAddr>,
    counted_ip: bool,
    /// The address had signed in to the account before: only its per-account counter counted.
    known: bool,
}

fn account_ip_key(email: &str, ip: Option<IpAddr>) -> String {
    let ip_text = ip.map(|i| i.to_string()).unwrap_or_else(|| "-".into());
    format!("acct-ip:{ip_text}:{email}")
}

/// Why an attempt was not let through.
#[derive(Debug, thiserror::Error)]
pub enum ThrottleError {
    /// A counter of the attempt is locked: retry after this many seconds.
    #[error("throttled for {0} s")]
    Locked(u64),
    /// The counters could not be read or written.
    #[error(transparent)]
    Db(#[from] DbError),
}

fn throttled(until: chrono::NaiveDateTime, now: chrono::NaiveDateTime) -> ThrottleError {
    let secs = ((until - now).num_milliseconds().max(0) + 999) / 1000;
    metrics::counter!("gatehouse_throttled_total").increment(1);
    ThrottleError::Locked(u64::try_from(secs.max(1)).unwrap_or(1))
}

impl Throttle {
    /// Counts a login attempt before its password is checked; `Err(429)` with the seconds to
    /// wait when a counter of this attempt is locked. A locked caller costs one read and
    /// writes nothing, whatever email it sends. The caller has already refused emails longer
    /// than any account's.
    pub async fn reserve(&self, store: &Store, email: &str, ip: Option<IpAddr>) -> Result<Attempt, ThrottleError> {
        let ip = ip.map(counted_address);
        let email = email.trim().to_lowercase();
        let mut attempt = Attempt { email, ip, counted_ip: false, known: false };
        if !self.enabled {
            return Ok(attempt);
        }
        let now = now_utc();
        let account_ip = account_ip_key(&attempt.email, ip);
        let account = format!("acct:{}", attempt.email);
        let address = ip.map(|ip| format!("ip:{ip}"));
        let ip_text = ip.map(|ip| ip.to_string());
        let since = now - chrono::Duration::days(KNOWN_ADDRESS_TTL_DAYS);
        let strangers: Vec<String> = [Some(account.clone()), address.clone()].into_iter().flatten().collect();
        let check = store
            .throttle_check(
                std::slice::from_ref(&account_ip),
                &strangers,
                ip_text.as_deref().map(|ip| (attempt.email.as_str(), ip, since)),
                now,
            )
            .await?;
        if let Some(until) = check.locked_until {
            return Err(throttled(until, now));
        }
        attempt.known = check.known;
        let mut counters = vec![(account_ip, self.account_ip)];
        if !attempt.known {
            counters.push((account, self.account));
            if let Some(address) = address {
                counters.push((address, self.ip));
                attempt.counted_ip = true;
            }
        }
        // Checked again under the counters' row locks: a lock set since the read above wins.
        if let Some(until) = store.throttle_reserve(&counters, now).await? {
            return Err(throttled(until, now));
        }
        Ok(attempt)
    }

    /// What a successful `attempt` changes in the counters (`None` with the limiter off): its
    /// per-account-and-address counter is forgotten; from an address new to the account, the
    /// attempt is taken back from the account's and the address's counters (which strangers
    /// may be filling: a success never clears them) and the address becomes known. A known
    /// address touched only its own counter, so only that one is cleared.
    pub fn settlement(&self, attempt: &Attempt) -> Option<ThrottleSettlement> {
        if !self.enabled {
            return None;
        }
        let mut settlement =
            ThrottleSettlement { clear: vec![account_ip_key(&attempt.email, attempt.ip)], ..Default::default() };
        if !attempt.known {
            settlement.refund.push((format!("acct:{}", attempt.email), self.account.threshold));
        }
        if let Some(ip) = attempt.ip {
            if attempt.counted_ip {
                settlement.refund.push((format!("ip:{ip}"), self.ip.threshold));
            }
            settlement.known = Some((attempt.email.clone(), ip.to_string()));
        }
        Some(settlement)
    }

    /// Settles a successful attempt on its own ([`Throttle::settlement`] in one transaction),
    /// for a sign-in that opens no session; a login writes it with its session.
    pub async fn succeeded(&self, store: &Store, attempt: &Attempt) -> Result<(), ThrottleError> {
        if let Some(settlement) = self.settlement(attempt) {
            store.settle_throttle(&settlement, now_utc()).await?;
        }
        Ok(())
    }

    /// Waits until `started + failure_floor` (a failed check answers no sooner).
    pub async fn pad_failure(&self, started: tokio::time::Instant) {
        tokio::time::sleep_until(started + self.failure_floor).await;
    }

    /// Counts a sign-up from `ip` before its password is hashed; `Err(429)` once the address
    /// has used its allowance. Callers without an address (in-process tests) are not counted.
    pub async fn reserve_signup(&self, store: &Store, ip: Option<IpAddr>) -> Result<(), ThrottleError> {
        let Some(limit) = self.signup else { return Ok(()) };
        self.reserve_for_address(store, "signup", limit, ip).await
    }

    /// Counts a passwordless passkey sign-in started from `ip` ([`passkey_starts`]).
    pub async fn reserve_passkey_start(&self, store: &Store, ip: Option<IpAddr>) -> Result<(), ThrottleError> {
        self.reserve_for_address(store, "passkey-start", passkey_starts(), ip).await
    }

    /// Counts one use of `what` by `ip` against `limit`; `Err(429)` once it is used up.
    async fn reserve_for_address(
        &self,
        store: &Store,
        what: &str,
        limit: Limit,
        ip: Option<IpAddr>,
    ) -> Result<(), ThrottleError> {
        let (true, Some(ip)) = (self.enabled, ip.map(counted_address)) else { return Ok(()) };
        let now = now_utc();
        let key = format!("{what}:{ip}");
        // A locked address is refused by a read, without a write.
        if let Some(until) = store.throttle_check(std::slice::from_ref(&key), &[], None, now).await?.locked_until {
            return Err(throttled(until, now));
        }
        match store.throttle_reserve(&[(key, limit)], now).await? {
            Some(until) => Err(throttled(until, now)),
            None => Ok(()),
        }
    }
}
