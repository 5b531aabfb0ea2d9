//! The addresses students should type.
//!
//! A server listening on `0.0.0.0` accepts connections on every IPv4 address of the machine, but "0.0.0.0" is not
//! an address anyone can connect to. Students need the machine's LAN address (such as `192.168.1.20`). Asking the
//! operating system for its interface addresses portably needs `getifaddrs` and unsafe code or an extra crate; on
//! Linux, the kernel already publishes them as text in `/proc/net/fib_trie`, the dump of its IPv4 routing tables.
//! Each local address appears there as a leaf followed by a `/32 host LOCAL` line:
//!
//! ```text
//!            |-- 192.168.1.20
//!               /32 host LOCAL
//! ```
//!
//! [`lan_addresses`] reads that file and returns every such address except loopback. Elsewhere it returns nothing
//! and the server just prints its port, asking the operator to look the address up (`ipconfig`, `ifconfig`).

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

/// Where Linux publishes its IPv4 routing tables, local addresses included.
const FIB_TRIE_PATH: &str = "/proc/net/fib_trie";

/// The marker that follows a leaf holding one of the machine's own addresses.
const LOCAL_HOST_MARKER: &str = "/32 host LOCAL";

/// The machine's non-loopback IPv4 addresses, sorted; empty when they cannot be read.
pub fn lan_addresses() -> Vec<Ipv4Addr> {
    match std::fs::read_to_string(FIB_TRIE_PATH) {
        Ok(text) => parse_fib_trie(&text),
        Err(_) => Vec::new(),
    }
}

/// Extracts the local, non-loopback addresses from the text of `/proc/net/fib_trie`. Lines that do not fit the
/// format are skipped, so a changed kernel format yields fewer addresses, never a panic.
fn parse_fib_trie(text: &str) -> Vec<Ipv4Addr> {
    let mut found = BTreeSet::new();
    let mut leaf: Option<Ipv4Addr> = None;
    for line in text.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("|-- ") {
            leaf = rest.trim().parse().ok();
        } else if line.starts_with(LOCAL_HOST_MARKER) {
            if let Some(addr) = leaf.filter(|addr| !addr.is_loopback() && !addr.is_unspecified()) {
                found.insert(addr);
            }
        } else if line.starts_with("+-- ") {
            leaf = None;
        }
    }
    found.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real dump (one interface plus loopback), as Linux 6 prints it.
    const SAMPLE: &str = "\
Main:
  +-- 0.0.0.0/0 3 0 5
     |-- 0.0.0.0
        /0 universe UNICAST
     +-- 127.0.0.0/8 2 0 2
        +-- 127.0.0.0/31 1 0 0
           |-- 127.0.0.0
              /8 host LOCAL
           |-- 127.0.0.1
              /32 host LOCAL
        |-- 127.255.255.255
           /32 link BROADCAST
     +-- 192.168.1.0/24 2 0 2
        +-- 192.168.1.0/30 2 0 2
           |-- 192.168.1.0
              /24 link UNICAST
           |-- 192.168.1.20
              /32 host LOCAL
        |-- 192.168.1.255
           /32 link BROADCAST
Local:
  +-- 0.0.0.0/0 3 0 5
     +-- 10.0.0.0/8 2 0 2
           |-- 10.1.2.3
              /32 host LOCAL
           |-- 192.168.1.20
              /32 host LOCAL
";

    #[test]
    fn finds_local_addresses_without_loopback_or_duplicates() {
        assert_eq!(parse_fib_trie(SAMPLE), vec![Ipv4Addr::new(10, 1, 2, 3), Ipv4Addr::new(192, 168, 1, 20)]);
    }

    #[test]
    fn garbage_yields_nothing() {
        assert!(parse_fib_trie("").is_empty());
        assert!(parse_fib_trie("|-- not-an-address\n/32 host LOCAL\n/32 host LOCAL").is_empty());
        assert!(parse_fib_trie("/32 host LOCAL\n").is_empty());
    }

    #[test]
    fn reading_the_real_table_never_fails() {
        for addr in lan_addresses() {
            assert!(!addr.is_loopback());
        }
    }
}
