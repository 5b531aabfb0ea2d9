//! The UDP path of one session: which address datagrams go to, and whether that address has proved it is the
//! client's.
//!
//! # Why the address can change
//!
//! A session's datagrams are authenticated by their keys, not by their source address, so the client may keep its
//! session while its address changes: a laptop moves from Wi-Fi to a phone's hotspot, a NAT forgets a mapping and
//! picks a new port. The server learns the new address from the datagrams themselves and follows it (QUIC calls
//! this *connection migration*, RFC 9000 section 9).
//!
//! # Two ways following an address goes wrong
//!
//! 1. **An old datagram.** The network delays and reorders packets, so a datagram sent from the client's *old*
//!    address may arrive after several from the new one. It is authentic and new to the replay window, but it
//!    speaks for the past. Rule: only a datagram with the highest packet number seen so far may move the path
//!    ([`Received::highest`]). An older one is still read (its messages and acknowledgements count), but it moves
//!    nothing.
//! 2. **A copied datagram.** An attacker who sees the client's traffic can copy a datagram and send it from an
//!    address of its choosing before the original arrives: the copy then *is* the highest. The replay window stops
//!    the copy from being read twice, but not from arriving first. The address it names is untested: it may be the
//!    attacker's, or a victim's that the attacker wants the server to flood (a reflection attack).
//!
//! # Path validation
//!
//! The defence against the second is to make a new address prove that it *receives*: the server sends a ping to
//! it and waits for the acknowledgement of that packet, arriving from the same address. Only someone who received
//! the ping can acknowledge it, because the acknowledgement must itself be sealed with the session's key. Until
//! then the address is *unvalidated* and the server sends it at most [`AMPLIFICATION_FACTOR`] times the bytes it
//! received from it, so a forged move can never turn the server into an amplifier. Meanwhile the real client keeps
//! sending from its real address with ever higher packet numbers, and the next of those moves the path back.
//!
//! A ping needs no new frame type: a packet number the server sends after the move goes to the new address only,
//! so an acknowledgement of any packet number at or above the first one sent after the move (the *challenge*)
//! proves receipt there. The address the path last validated stays remembered: moving back to it needs no new
//! challenge.

use std::net::SocketAddr;

use chatlab_proto::endpoint::Received;

/// How many bytes the server may send to an unvalidated address for each byte it received from there.
///
/// The value of QUIC's anti-amplification limit (RFC 9000, section 8): enough for the acknowledgements and the
/// first pushes that answer a client's datagrams, while an attacker who spoofs a victim's address can make the
/// server send the victim at most three times what the attacker sent, which is no gain over sending directly.
pub const AMPLIFICATION_FACTOR: usize = 3;

/// Where the session's datagrams go, and whether that address is proved.
#[derive(Debug, Default)]
pub struct UdpPath {
    /// The current address, once a datagram authenticated.
    current: Option<SocketAddr>,
    /// The address that most recently answered a challenge, if any.
    validated: Option<SocketAddr>,
    /// While `current` is not validated: the challenge and the byte counts of the amplification limit.
    pending: Option<Challenge>,
}

/// A validation in progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Challenge {
    /// The first packet number sent after the move; an acknowledgement of it or a later one proves receipt.
    first_packet_number: u64,
    /// Bytes received from the unvalidated address.
    received: usize,
    /// Bytes sent to it.
    sent: usize,
}

/// What an authenticated datagram did to the path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathEvent {
    /// It came from the current address (and perhaps completed its validation).
    Same,
    /// It moved the path to its address. `challenge` says whether the new address must now be validated: the caller
    /// then asks the endpoint for a ping, the challenge.
    Moved { previous: Option<SocketAddr>, challenge: bool },
    /// It came from another address but was not the highest packet number: the path stays where it is.
    Ignored,
}

impl UdpPath {
    /// The current address, validated or not.
    pub fn current(&self) -> Option<SocketAddr> {
        self.current
    }

    /// Whether the current address has proved that it receives.
    #[cfg(test)]
    pub fn is_validated(&self) -> bool {
        self.current.is_some() && self.pending.is_none()
    }

    /// Records an authenticated datagram of `len` bytes from `from`. `next_packet_number` is the endpoint's next
    /// packet number to send and `largest_acked` the largest of ours the client acknowledged, both read *after* the
    /// datagram was handled (so its acknowledgements count).
    pub fn on_datagram(
        &mut self,
        from: SocketAddr,
        received: Received,
        len: usize,
        next_packet_number: u64,
        largest_acked: Option<u64>,
    ) -> PathEvent {
        if self.current == Some(from) {
            if let Some(challenge) = &mut self.pending {
                challenge.received = challenge.received.saturating_add(len);
                if largest_acked.is_some_and(|acked| acked >= challenge.first_packet_number) {
                    self.pending = None;
                    self.validated = Some(from);
                }
            }
            return PathEvent::Same;
        }
        if !received.highest {
            return PathEvent::Ignored;
        }
        let previous = self.current.replace(from);
        let challenge = self.validated != Some(from);
        // Everything this datagram acknowledged was sent before the move, so its acknowledgements cannot answer the
        // challenge: only packet numbers from `next_packet_number` on go to the new address.
        self.pending =
            challenge.then_some(Challenge { first_packet_number: next_packet_number, received: len, sent: 0 });
        PathEvent::Moved { previous, challenge }
    }

    /// The address to send a datagram of `len` bytes to, counting it against the amplification limit while the
    /// address is unvalidated; `None` when there is no address yet or the limit is reached (the datagram is then
    /// dropped and the engine resends its content later, as after any loss).
    pub fn destination(&mut self, len: usize) -> Option<SocketAddr> {
        let current = self.current?;
        let Some(challenge) = &mut self.pending else { return Some(current) };
        let sent = challenge.sent.saturating_add(len);
        if sent > challenge.received.saturating_mul(AMPLIFICATION_FACTOR) {
            return None;
        }
        challenge.sent = sent;
        Some(current)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(std::net::Ipv4Addr::LOCALHOST, 1000));
    const B: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(std::net::Ipv4Addr::LOCALHOST, 2000));

    fn highest(packet_number: u64) -> Received {
        Received { packet_number, highest: true }
    }

    fn older(packet_number: u64) -> Received {
        Received { packet_number, highest: false }
    }

    /// A path on `A`, validated: the client acknowledged packet 0, the challenge sent after the first datagram.
    fn validated_on_a() -> UdpPath {
        let mut path = UdpPath::default();
        assert_eq!(path.on_datagram(A, highest(0), 50, 0, None), PathEvent::Moved { previous: None, challenge: true });
        assert_eq!(path.on_datagram(A, highest(1), 50, 1, Some(0)), PathEvent::Same);
        assert!(path.is_validated());
        path
    }

    #[test]
    fn a_delayed_datagram_from_an_old_address_does_not_move_the_path() {
        let mut path = validated_on_a();
        assert!(matches!(path.on_datagram(B, highest(5), 50, 3, Some(0)), PathEvent::Moved { .. }));
        assert_eq!(path.on_datagram(A, older(4), 50, 3, Some(0)), PathEvent::Ignored);
        assert_eq!(path.current(), Some(B));
    }

    #[test]
    fn a_lower_packet_number_from_a_second_socket_does_not_move_the_path() {
        let mut path = validated_on_a();
        assert_eq!(path.on_datagram(B, older(0), 50, 2, Some(0)), PathEvent::Ignored);
        assert_eq!((path.current(), path.is_validated()), (Some(A), true));
    }

    #[test]
    fn the_highest_packet_number_from_a_new_address_moves_the_path_unvalidated() {
        let mut path = validated_on_a();
        assert_eq!(
            path.on_datagram(B, highest(2), 50, 7, Some(1)),
            PathEvent::Moved { previous: Some(A), challenge: true }
        );
        assert_eq!((path.current(), path.is_validated()), (Some(B), false));
    }

    #[test]
    fn an_unvalidated_address_gets_at_most_three_times_what_it_sent() {
        let mut path = validated_on_a();
        path.on_datagram(B, highest(2), 100, 7, Some(1));
        assert_eq!(path.destination(250), Some(B));
        assert_eq!(path.destination(51), None, "301 bytes would exceed 3 x 100");
        assert_eq!(path.destination(50), Some(B), "exactly 300 bytes is allowed");
        assert_eq!(path.destination(1), None);
        // More bytes from the address raise the allowance.
        path.on_datagram(B, highest(3), 10, 9, Some(1));
        assert_eq!(path.destination(30), Some(B));
        assert_eq!(path.destination(1), None);
    }

    #[test]
    fn acknowledging_only_packets_sent_before_the_move_does_not_validate() {
        let mut path = validated_on_a();
        path.on_datagram(B, highest(2), 50, 7, Some(6));
        assert_eq!(path.on_datagram(B, highest(3), 50, 8, Some(6)), PathEvent::Same);
        assert!(!path.is_validated());
    }

    #[test]
    fn the_acknowledged_challenge_from_the_new_address_validates_it() {
        let mut path = validated_on_a();
        path.on_datagram(B, highest(2), 50, 7, Some(1));
        assert_eq!(path.on_datagram(B, highest(3), 50, 8, Some(7)), PathEvent::Same);
        assert!(path.is_validated());
        assert_eq!(path.destination(10_000), Some(B), "a validated address has no limit");
    }

    #[test]
    fn a_challenge_acknowledged_from_another_address_does_not_validate_the_new_one() {
        let mut path = validated_on_a();
        path.on_datagram(B, highest(2), 50, 7, Some(1));
        // The acknowledgement of the challenge arrives from a third address, but with an older packet number.
        let c = SocketAddr::from(([127, 0, 0, 1], 3000));
        assert_eq!(path.on_datagram(c, older(1), 50, 8, Some(7)), PathEvent::Ignored);
        assert_eq!((path.current(), path.is_validated()), (Some(B), false));
    }

    #[test]
    fn moving_back_to_the_validated_address_needs_no_challenge() {
        let mut path = validated_on_a();
        path.on_datagram(B, highest(2), 50, 7, Some(1));
        assert_eq!(
            path.on_datagram(A, highest(3), 50, 8, Some(1)),
            PathEvent::Moved { previous: Some(B), challenge: false }
        );
        assert!(path.is_validated());
        assert_eq!(path.destination(10_000), Some(A));
    }

    #[test]
    fn no_address_before_the_first_datagram() {
        let mut path = UdpPath::default();
        assert_eq!((path.current(), path.is_validated(), path.destination(1)), (None, false, None));
    }
}
