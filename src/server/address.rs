//! Client addresses as the per-address limits count them (the listener's
//! `max_connections_per_address`, and failed authentications).
//!
//! An IPv4 address is one client. An IPv6 client usually holds a whole /64
//! (the unit a network hands out to one LAN or one host), so the /64 is the
//! unit: otherwise one machine could take as many slots as it has
//! addresses. An IPv4 address mapped into IPv6 (`::ffff:192.0.2.1`, as a
//! dual-stack listener reports it) counts as the IPv4 address.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::capped_counts::CappedCounts;

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
    fn a_group_is_counted_as_one_address() {
        let counts = CappedCounts::new(2);
        let take = |text| counts.take(AddressGroup::of(ip(text)));
        let first = take("2001:db8::1").expect("a slot");
        let second = take("2001:db8::2").expect("the second of its /64");
        assert!(take("2001:db8::3").is_none(), "a third from one /64");
        let mapped = take("::ffff:192.0.2.1").expect("a slot");
        let same = take("192.0.2.1").expect("the second of one IPv4 address");
        assert!(take("192.0.2.1").is_none(), "a third from one address");
        drop((first, second, mapped, same));
        assert!(counts.is_empty());
    }
}
