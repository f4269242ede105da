//! Client addresses as the per-address limits count them, and the count of
//! open connections per address behind `max_connections_per_address`.
//!
//! An IPv4 address is one client. An IPv6 client usually holds a whole /64
//! (the unit a network hands out to one LAN or one host), so the /64 is the
//! unit: otherwise one machine could take as many slots as it has
//! addresses. An IPv4 address mapped into IPv6 (`::ffff:192.0.2.1`, as a
//! dual-stack listener reports it) counts as the IPv4 address.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// The unit per-address limits count by: an IPv4 address, or the /64
/// network of an IPv6 address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AddressGroup(IpAddr);

impl AddressGroup {
    /// The group `address` belongs to.
    pub fn of(address: IpAddr) -> Self {
        match address {
            IpAddr::V4(v4) => Self(IpAddr::V4(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Self(IpAddr::V4(v4)),
                None => {
                    let network = u128::from(v6) & !u128::from(u64::MAX);
                    Self(IpAddr::V6(Ipv6Addr::from(network)))
                }
            },
        }
    }
}

impl fmt::Display for AddressGroup {
    /// `192.0.2.1`, or `2001:db8:1:2::/64`: also the group's key in a
    /// shared rate limiter.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            IpAddr::V4(v4) => write!(f, "{v4}"),
            IpAddr::V6(v6) => write!(f, "{v6}/64"),
        }
    }
}

/// Open connections per address group, at most `cap` each (0: no cap).
#[derive(Debug)]
pub(super) struct AddressCounts {
    cap: usize,
    open: Mutex<HashMap<AddressGroup, usize>>,
}

impl AddressCounts {
    /// Counts for a cap of `cap` connections per group; 0 counts nothing.
    pub fn new(cap: usize) -> Arc<Self> {
        Arc::new(Self {
            cap,
            open: Mutex::new(HashMap::new()),
        })
    }

    fn open(&self) -> MutexGuard<'_, HashMap<AddressGroup, usize>> {
        // Plain counts, consistent after every update.
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A slot for one more connection from `address`; `None` when its
    /// group already has `cap` open.
    pub fn take(self: &Arc<Self>, address: IpAddr) -> Option<AddressSlot> {
        if self.cap == 0 {
            return Some(AddressSlot(None));
        }
        let group = AddressGroup::of(address);
        let mut open = self.open();
        let count = open.entry(group).or_insert(0);
        if *count >= self.cap {
            return None;
        }
        *count += 1;
        Some(AddressSlot(Some((Arc::clone(self), group))))
    }

    #[cfg(test)]
    fn count(&self, address: IpAddr) -> usize {
        self.open()
            .get(&AddressGroup::of(address))
            .copied()
            .unwrap_or(0)
    }
}

/// One open connection's place in its group's count, given back on drop.
#[derive(Debug)]
pub(super) struct AddressSlot(Option<(Arc<AddressCounts>, AddressGroup)>);

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let Some((counts, group)) = self.0.take() else {
            return;
        };
        let mut open = counts.open();
        if let Some(count) = open.get_mut(&group) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&group);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("an address")
    }

    #[test]
    fn ipv6_counts_by_its_64_and_mapped_ipv4_as_ipv4() {
        let group = |text| AddressGroup::of(ip(text));
        assert_eq!(group("192.0.2.1").to_string(), "192.0.2.1");
        assert_ne!(group("192.0.2.1"), group("192.0.2.2"));
        assert_eq!(group("::ffff:192.0.2.1"), group("192.0.2.1"));
        assert_eq!(
            group("2001:db8:1:2:aaaa:bbbb:cccc:dddd"),
            group("2001:db8:1:2::1")
        );
        assert_ne!(group("2001:db8:1:2::1"), group("2001:db8:1:3::1"));
        assert_eq!(group("2001:db8:1:2::1").to_string(), "2001:db8:1:2::/64");
        assert_eq!(group("::1").to_string(), "::/64");
    }

    #[test]
    fn a_group_gets_its_cap_and_slots_come_back_on_drop() {
        let counts = AddressCounts::new(2);
        let (a, b) = (ip("192.0.2.1"), ip("2001:db8::1"));
        let first = counts.take(a).expect("a slot");
        let second = counts.take(a).expect("a slot");
        assert!(
            counts.take(a).is_none(),
            "a third connection from one address"
        );
        let other = counts.take(b).expect("another address has its own cap");
        let same_network = counts
            .take(ip("2001:db8::2"))
            .expect("the second of its /64");
        assert!(
            counts.take(ip("2001:db8::3")).is_none(),
            "a third connection from one /64"
        );
        drop(first);
        assert_eq!(counts.count(a), 1);
        let again = counts.take(a).expect("a slot given back");
        drop((second, again, other, same_network));
        assert_eq!(counts.count(a), 0);
        assert!(counts.open().is_empty(), "empty groups are forgotten");
    }

    #[test]
    fn a_zero_cap_counts_nothing() {
        let counts = AddressCounts::new(0);
        let slots: Vec<AddressSlot> = (0..1000)
            .map(|_| counts.take(ip("192.0.2.1")).expect("no cap"))
            .collect();
        assert!(counts.open().is_empty());
        drop(slots);
    }
}
