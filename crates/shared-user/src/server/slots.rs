//! The connection slots of a listener: at most `total` connections open at once, and at most
//! `per_peer` of them from one peer (an IPv4 address, or an IPv6 /64 network: one host or site
//! usually holds a whole /64, so counting single IPv6 addresses would cap nobody).
//!
//! A slot is taken when a connection is accepted and given back when its [`Slot`] is dropped.
//! The counts live under one mutex: it is taken once per accept and once per close, never while
//! a request is served.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

/// Why a connection got no slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Its peer already holds `per_peer` connections.
    PerPeer,
    /// `total` connections are open.
    Total,
}

impl Refusal {
    /// The `reason` label of the refused-connections metric.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::PerPeer => "per_ip",
            Self::Total => "total",
        }
    }
}

/// What connections are counted by: an IPv4 address (IPv4-mapped IPv6 addresses included, as a
/// dual-stack listener reports them) or the first 64 bits of an IPv6 address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Peer {
    V4(u32),
    V6(u64),
}

impl Peer {
    pub(crate) fn of(ip: IpAddr) -> Self {
        match ip.to_canonical() {
            IpAddr::V4(v4) => Self::V4(v4.to_bits()),
            IpAddr::V6(v6) => Self::V6((v6.to_bits() >> 64) as u64),
        }
    }
}

#[derive(Debug, Default)]
struct Open {
    total: usize,
    by_peer: HashMap<Peer, usize>,
}

/// The slots of one listener.
#[derive(Debug)]
pub(crate) struct Slots {
    total: usize,
    per_peer: usize,
    open: Mutex<Open>,
}

/// One open connection's slot; given back when dropped.
#[derive(Debug)]
pub(crate) struct Slot {
    slots: Arc<Slots>,
    peer: Peer,
}

impl Slots {
    pub(crate) fn new(total: usize, per_peer: usize) -> Arc<Self> {
        Arc::new(Self { total, per_peer, open: Mutex::new(Open::default()) })
    }

    fn open(&self) -> std::sync::MutexGuard<'_, Open> {
        // The counts are consistent after every statement; a panic elsewhere cannot tear them.
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A slot for a connection from `ip`, or why there is none.
    pub(crate) fn take(self: &Arc<Self>, ip: IpAddr) -> Result<Slot, Refusal> {
        let peer = Peer::of(ip);
        let mut open = self.open();
        // The peer's own limit first: it names the cause when both are reached.
        let held = open.by_peer.get(&peer).copied().unwrap_or(0);
        if held >= self.per_peer {
            return Err(Refusal::PerPeer);
        }
        if open.total >= self.total {
            return Err(Refusal::Total);
        }
        open.total += 1;
        *open.by_peer.entry(peer).or_insert(0) += 1;
        Ok(Slot { slots: Arc::clone(self), peer })
    }

    /// Connections open now, in total and from `ip`'s peer.
    #[cfg(test)]
    fn counts(&self, ip: IpAddr) -> (usize, usize) {
        let open = self.open();
        (open.total, open.by_peer.get(&Peer::of(ip)).copied().unwrap_or(0))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.slots.open();
        open.total = open.total.saturating_sub(1);
        // Peers without connections leave the map, so it never holds more than `total` entries.
        if let Entry::Occupied(mut held) = open.by_peer.entry(self.peer) {
            if *held.get() <= 1 {
                held.remove();
            } else {
                *held.get_mut() -= 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn a_peer_gets_at_most_its_share_and_others_still_get_slots() {
        let slots = Slots::new(10, 2);
        let a = [slots.take(ip("127.0.0.2")).unwrap(), slots.take(ip("127.0.0.2")).unwrap()];
        assert_eq!(slots.take(ip("127.0.0.2")).unwrap_err(), Refusal::PerPeer);
        let _b = slots.take(ip("127.0.0.3")).expect("another address is not limited by the first one's share");
        drop(a);
        assert_eq!(slots.counts(ip("127.0.0.2")), (1, 0), "slots are given back and empty peers forgotten");
        assert!(slots.take(ip("127.0.0.2")).is_ok());
    }

    #[test]
    fn the_total_is_shared_by_every_peer() {
        let slots = Slots::new(2, 5);
        let _a = slots.take(ip("10.0.0.1")).unwrap();
        let b = slots.take(ip("10.0.0.2")).unwrap();
        assert_eq!(slots.take(ip("10.0.0.3")).unwrap_err(), Refusal::Total);
        drop(b);
        assert!(slots.take(ip("10.0.0.3")).is_ok());
    }

    #[test]
    fn ipv6_peers_are_counted_by_their_64_bit_network_and_mapped_ipv4_as_ipv4() {
        let slots = Slots::new(10, 1);
        let _a = slots.take(ip("2001:db8:1:2::1")).unwrap();
        assert_eq!(slots.take(ip("2001:db8:1:2:ffff::9")).unwrap_err(), Refusal::PerPeer, "same /64");
        assert!(slots.take(ip("2001:db8:1:3::1")).is_ok(), "another /64");
        let _v4 = slots.take(ip("192.0.2.7")).unwrap();
        assert_eq!(slots.take(ip("::ffff:192.0.2.7")).unwrap_err(), Refusal::PerPeer, "mapped is the same peer");
    }
}
