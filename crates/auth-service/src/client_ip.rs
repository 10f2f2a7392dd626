//! The caller's address, as every front end and the throttle see it.
//!
//! The caller is the socket peer, or, when the peer is one of `TRUSTED_PROXIES`, the right-most
//! `X-Forwarded-For` hop that is not a trusted proxy (hops left of it were written by the caller
//! and prove nothing). Counters of an IPv6 caller are kept for its /64 network
//! ([`counted_address`]).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{Extensions, HeaderMap};
use ipnet::IpNet;
use shared_user::settings::SettingError;

/// The client's address: the socket peer, or the right-most untrusted `X-Forwarded-For` hop
/// when the peer is a trusted proxy. `None` when the service runs without peer addresses.
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub Option<IpAddr>);

/// The proxies whose `X-Forwarded-For` is believed (a request extension `crate::app::app` sets).
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
pub fn parse_trusted_proxies(entries: &[String]) -> Result<Vec<IpNet>, SettingError> {
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
                .map_err(|_| SettingError(format!("TRUSTED_PROXIES: {e:?} is not an address or a CIDR network")))
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
        assert!(err.to_string().contains("proxy.local"), "{err}");
        assert_eq!(parse_trusted_proxies(&["".into(), " 10.1.2.3 ".into()]).unwrap().len(), 1);
    }
}
