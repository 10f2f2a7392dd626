//! Brute-force protection on every password check and sign-up, and the caller's address it
//! keys on.
//!
//! Attempts are counted in the database (shared by all replicas) *before* the password is
//! hashed, so parallel guesses cannot pass a limit (see [`crate::store::throttle`]). Three
//! counters per login: the client address, the account from that address, and the account
//! alone. An address that signed in to the account successfully within
//! [`KNOWN_ADDRESS_TTL_DAYS`] is judged by its own per-account counter only, so guessing from
//! many addresses cannot lock the owner out, while strangers stay locked: the owner's success
//! clears only that address's counter, never the account's, so it hands strangers no new
//! guesses.
//!
//! The caller's address is the socket peer, or, when the peer is one of `TRUSTED_PROXIES`, the
//! right-most `X-Forwarded-For` hop that is not a trusted proxy (hops left of it were written
//! by the caller and prove nothing). Counters (and known addresses) of an IPv6 caller are kept
//! for its /64 network ([`counted_address`]).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{Extensions, HeaderMap};
use ipnet::IpNet;
use shared_user::user::now_utc;

use crate::service::ServiceError;
use crate::store::Store;
use crate::store::throttle::{Limit, ThrottleSettlement};

/// How long a successful sign-in makes an address "known" to that account.
pub const KNOWN_ADDRESS_TTL_DAYS: i64 = 30;

/// The client's address: the socket peer, or the right-most untrusted `X-Forwarded-For` hop
/// when the peer is a trusted proxy. `None` when the service runs without peer addresses.
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub Option<IpAddr>);

/// The proxies whose `X-Forwarded-For` is believed (request extension set by [`crate::app`]).
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(pub Arc<[IpNet]>);

/// Whether the request came straight from a trusted proxy, whose forwarding headers
/// (`X-Forwarded-For`, `X-Forwarded-Proto`) may then be believed.
pub fn from_trusted_proxy(parts: &Parts) -> bool {
    let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    match (parts.extensions.get::<TrustedProxies>(), peer) {
        (Some(trusted), Some(peer)) => trusted.trusts(peer),
        _ => false,
    }
}

impl TrustedProxies {
    fn trusts(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The caller behind `peer`: `peer` itself unless it is trusted; then the right-most hop of
    /// `X-Forwarded-For` (all its lines, in order) that is not trusted. A hop that is not an
    /// address stops the walk at the last trusted hop, so garbage cannot stand for a caller.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let mut client = canonical(peer);
        if !self.trusts(client) {
            return client;
        }
        let hops: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect();
        for hop in hops.iter().rev() {
            let Some(ip) = parse_hop(hop) else { break };
            client = ip;
            if !self.trusts(ip) {
                break;
            }
        }
        client
    }
}

/// IPv4-mapped IPv6 addresses as IPv4, so `::ffff:10.0.0.1` matches `10.0.0.0/8`.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// One `X-Forwarded-For` hop: an address, possibly with a port (`1.2.3.4:5`, `[::1]:5`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    hop.parse::<SocketAddr>().ok().map(|s| canonical(s.ip()))
}

/// Parses `TRUSTED_PROXIES` entries: addresses or CIDR networks (`10.0.0.5`, `10.0.0.0/8`,
/// `::1`, `fd00::/8`); empty entries are skipped.
pub fn parse_trusted_proxies(entries: &[String]) -> Result<Vec<IpNet>, String> {
    entries
        .iter()
        .map(|e| e.trim())
        .filter(|e| !e.is_empty())
        .map(|e| {
            e.parse::<IpNet>()
                .or_else(|_| e.parse::<IpAddr>().map(IpNet::from))
                .map(|net| match net {
                    IpNet::V6(v6) if v6.prefix_len() == 128 && v6.addr().to_ipv4_mapped().is_some() => {
                        IpNet::from(canonical(IpAddr::V6(v6.addr())))
                    }
                    other => other,
                })
                .map_err(|_| format!("TRUSTED_PROXIES: {e:?} is not an address or a CIDR network"))
        })
        .collect()
}

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientIp::of(&parts.extensions, &parts.headers))
    }
}

impl ClientIp {
    /// The client address of a request with these extensions and headers.
    pub fn of(extensions: &Extensions, headers: &HeaderMap) -> Self {
        let Some(peer) = extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip()) else {
            return ClientIp(None);
        };
        ClientIp(Some(match extensions.get::<TrustedProxies>() {
            Some(trusted) => trusted.client(peer, headers),
            None => canonical(peer),
        }))
    }
}

/// The address a counter is kept for: an IPv4 address as it is, an IPv6 address as its /64
/// network (`2001:db8:1:2::`). One subscriber or host gets a whole /64 and can pick any address
/// in it (privacy addresses rotate within it), so counting single IPv6 addresses would give an
/// attacker 2^64 fresh counters. The same applies to the addresses known to an account.
pub fn counted_address(ip: IpAddr) -> IpAddr {
    match canonical(ip) {
        IpAddr::V6(v6) => {
            let network = u128::from(v6) & !(u128::MAX >> 64);
            IpAddr::V6(std::net::Ipv6Addr::from(network))
        }
        v4 => v4,
    }
}

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

/// A counted login attempt, to be settled with [`Throttle::settlement`] when the password was right.
#[derive(Debug, Clone)]
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

fn throttled(until: chrono::NaiveDateTime, now: chrono::NaiveDateTime) -> ServiceError {
    let secs = ((until - now).num_milliseconds().max(0) + 999) / 1000;
    metrics::counter!("gatehouse_throttled_total").increment(1);
    ServiceError::Throttled(u64::try_from(secs.max(1)).unwrap_or(1))
}

impl Throttle {
    /// Counts a login attempt before its password is checked; `Err(429)` with the seconds to
    /// wait when a counter of this attempt is locked. A locked caller costs one read and
    /// writes nothing, whatever email it sends. The caller has already refused emails longer
    /// than any account's.
    pub async fn reserve(&self, store: &Store, email: &str, ip: Option<IpAddr>) -> Result<Attempt, ServiceError> {
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
    pub async fn succeeded(&self, store: &Store, attempt: &Attempt) -> Result<(), ServiceError> {
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
    pub async fn reserve_signup(&self, store: &Store, ip: Option<IpAddr>) -> Result<(), ServiceError> {
        let (true, Some(limit), Some(ip)) = (self.enabled, self.signup, ip.map(counted_address)) else { return Ok(()) };
        let now = now_utc();
        let key = format!("signup:{ip}");
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

#[cfg(test)]
mod tests {
    use super::*;

    fn xff(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append("x-forwarded-for", v.parse().unwrap());
        }
        h
    }

    fn trusted(list: &[&str]) -> TrustedProxies {
        let list: Vec<String> = list.iter().map(|s| s.to_string()).collect();
        TrustedProxies(parse_trusted_proxies(&list).unwrap().into())
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
        let t = trusted(&["10.0.0.0/8"]);
        assert_eq!(t.client(ip("203.0.113.9"), &xff(&["6.6.6.6"])), ip("203.0.113.9"));
        assert_eq!(TrustedProxies::default().client(ip("10.0.0.1"), &xff(&["6.6.6.6"])), ip("10.0.0.1"));
    }

    #[test]
    fn the_right_most_untrusted_hop_is_the_client() {
        let t = trusted(&["10.0.0.0/8", "192.0.2.1"]);
        let h = xff(&["6.6.6.6, 198.51.100.7", "10.0.0.99"]);
        assert_eq!(t.client(ip("192.0.2.1"), &h), ip("198.51.100.7"), "spoofed left-most hop ignored");
        assert_eq!(t.client(ip("10.0.0.3"), &xff(&["6.6.6.6, 10.0.0.99"])), ip("6.6.6.6"));
        assert_eq!(t.client(ip("10.0.0.3"), &xff(&[])), ip("10.0.0.3"), "no header: the proxy itself");
        assert_eq!(t.client(ip("10.0.0.3"), &xff(&["garbage, 10.0.0.7"])), ip("10.0.0.7"));
        assert_eq!(t.client(ip("10.0.0.3"), &xff(&["[2001:db8::1]:443"])), ip("2001:db8::1"));
    }

    #[test]
    fn mapped_addresses_match_ipv4_networks() {
        let t = trusted(&["127.0.0.0/8"]);
        assert_eq!(t.client(ip("::ffff:127.0.0.1"), &xff(&["192.0.2.5"])), ip("192.0.2.5"));
    }

    #[test]
    fn ipv6_callers_are_counted_by_their_64() {
        assert_eq!(counted_address(ip("2001:db8:1:2:aaaa:bbbb:cccc:dddd")), ip("2001:db8:1:2::"));
        assert_eq!(counted_address(ip("2001:db8:1:2::1")), counted_address(ip("2001:db8:1:2:ffff::9")));
        assert_ne!(counted_address(ip("2001:db8:1:2::1")), counted_address(ip("2001:db8:1:3::1")));
        assert_eq!(counted_address(ip("192.0.2.7")), ip("192.0.2.7"), "IPv4 as it is");
        assert_eq!(counted_address(ip("::ffff:192.0.2.7")), ip("192.0.2.7"), "mapped IPv4 as IPv4");
    }

    #[test]
    fn bad_entries_are_named() {
        let err = parse_trusted_proxies(&["10.0.0.0/8".into(), "proxy.local".into()]).unwrap_err();
        assert!(err.contains("proxy.local"), "{err}");
        assert_eq!(parse_trusted_proxies(&["".into(), " 10.1.2.3 ".into()]).unwrap().len(), 1);
    }
}
