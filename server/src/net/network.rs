//! The "network identity" of a peer: the unit that per-address limits count.
//!
//! A limit "per IP address" is only a limit if a client cannot cheaply change its address. For IPv4 that holds:
//! an address is scarce, and a whole home or lab shares one behind NAT. IPv6 is different. The standard subnet
//! handed to a single host or LAN is a /64 (RFC 4291's interface identifiers are 64 bits, and SLAAC and the
//! privacy extensions of RFC 8981 have every machine invent new addresses inside it at will), so one machine can
//! pick any of 2^64 addresses without asking anyone. Counting per /128 would give that machine 2^64 budgets. So
//! an IPv6 peer is identified by its /64 prefix: everything one host or one LAN can use without help from its
//! provider counts once.
//!
//! The third case is the dual-stack socket: a server listening on `[::]` sees an IPv4 client as the IPv4-mapped
//! IPv6 address `::ffff:a.b.c.d`. That is the same client as `a.b.c.d` reaching an IPv4 socket, so it is identified
//! by its IPv4 address (and not by the /64 `::ffff:0:0/64`, which would lump every IPv4 client together).
//!
//! The price: all machines of one IPv6 LAN share one budget, just as all machines behind one IPv4 NAT do. A lab
//! that reaches the server over IPv6 from one subnet raises `--max-connections-per-ip` as a NAT-ed lab would.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};

/// Length of the prefix that identifies an IPv6 peer: the /64 that is the standard subnet of one host or LAN.
pub const IPV6_NETWORK_PREFIX_BITS: u32 = 64;

/// Bits of an IPv6 address.
const IPV6_ADDRESS_BITS: u32 = 128;

/// One peer's network, as per-address limits count it: an IPv4 address, or an IPv6 /64 prefix (with the host
/// bits zero). Build it with [`NetworkId::of`]. Ordered (as addresses are) so that indexes can hold it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NetworkId(IpAddr);

impl NetworkId {
    /// The network of `ip`: IPv4 as it is, IPv4-mapped IPv6 (`::ffff:a.b.c.d`) as the IPv4 address, any other
    /// IPv6 address as its /64 prefix (see the module documentation for why).
    pub fn of(ip: IpAddr) -> Self {
        match ip.to_canonical() {
            IpAddr::V4(v4) => Self(IpAddr::V4(v4)),
            IpAddr::V6(v6) => {
                let host_bits = IPV6_ADDRESS_BITS - IPV6_NETWORK_PREFIX_BITS;
                let mask = u128::MAX << host_bits;
                Self(IpAddr::V6(Ipv6Addr::from_bits(v6.to_bits() & mask)))
            }
        }
    }
}

impl fmt::Display for NetworkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            IpAddr::V4(v4) => write!(f, "{v4}"),
            IpAddr::V6(v6) => write!(f, "{v6}/{IPV6_NETWORK_PREFIX_BITS}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn v6(text: &str) -> IpAddr {
        IpAddr::V6(text.parse().unwrap())
    }

    #[test]
    fn ipv4_is_its_own_network() {
        let a = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
        let b = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
        assert_eq!(NetworkId::of(a), NetworkId(a));
        assert_ne!(NetworkId::of(a), NetworkId::of(b), "neighbouring IPv4 addresses are different clients");
        assert_eq!(NetworkId::of(a).to_string(), "10.0.0.1");
    }

    #[test]
    fn mapped_ipv4_is_the_ipv4_address() {
        let mapped = v6("::ffff:10.0.0.1");
        assert_eq!(NetworkId::of(mapped), NetworkId::of(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))));
        assert_ne!(NetworkId::of(mapped), NetworkId::of(v6("::ffff:10.0.0.2")), "not lumped into ::ffff:0:0/64");
    }

    #[test]
    fn ipv6_is_its_64_prefix() {
        let one = NetworkId::of(v6("2001:db8:1:2:aaaa:bbbb:cccc:dddd"));
        assert_eq!(one, NetworkId::of(v6("2001:db8:1:2::1")), "any address inside the /64 is the same network");
        assert_eq!(one, NetworkId(v6("2001:db8:1:2::")));
        assert_ne!(one, NetworkId::of(v6("2001:db8:1:3::1")), "the next /64 is another network");
        assert_eq!(one.to_string(), "2001:db8:1:2::/64");
        assert_eq!(NetworkId::of(v6("::1")), NetworkId(v6("::")));
    }
}
