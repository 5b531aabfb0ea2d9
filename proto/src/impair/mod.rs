//! A seeded, deterministic model of a bad network.
//!
//! chatlab's reliability engine exists because networks lose, delay, reorder, duplicate and damage packets. To
//! test it, and to let a class *watch* it work, we need a network that does those things on demand and does them
//! the same way every time. This module is that network, as a sans-IO state machine: a [`Link`] takes packets and
//! the current time in and gives packets out when they are due. It never reads a clock, never sleeps and never
//! asks the operating system for randomness, so:
//!
//! * the deterministic simulation tests run two protocol engines through a [`Duplex`] in simulated time and get
//!   the same run from the same seed on every machine;
//! * the `soak` example pushes 100 000 messages through two links in simulated time, and each packet costs only
//!   `O(log n)` here for `n` packets in flight;
//! * the desktop app puts a [`Link`] in front of its own UDP socket and moves its config with sliders;
//! * the labs' UDP relay puts one in each direction between a client and the server.
//!
//! Where things live: [`ImpairmentConfig`] and the order the impairments apply in [`config`]; the loss models and
//! the Gilbert-Elliott theory in [`loss`]; the link itself in [`link`]; counters in [`stats`]; the two-way path in
//! [`duplex`]; and how randomness is drawn, which decides what stays fixed when a setting changes, in `rng`.
//!
//! # What each impairment does to a network and to a protocol
//!
//! **Loss.** Routers drop packets when their queues overflow (congestion), radios lose them to noise and
//! collisions, and firewalls drop what they dislike. The sender learns of a loss only by silence: no
//! acknowledgement arrives. It must then guess, either by a timer (the retransmission timeout, RTO, computed from
//! the measured round-trip time as RFC 6298 and RFC 9002 describe) or because later packets were acknowledged
//! while this one was not (fast retransmit). Every loss therefore costs at least one extra round trip for the
//! affected message, and a loss that only a timer detects costs a whole RTO: this is why a 200 ms minimum RTO, as
//! in TCP, wrecks tail latency and why chatlab's floor is a few milliseconds. Real losses come in bursts; the
//! [`GilbertElliott`] model reproduces that (see [`loss`]).
//!
//! **Delay.** Light in fibre covers about 200 km per millisecond, and every hop adds processing and queueing
//! time. Delay alone loses nothing, but it sets the round-trip time, and with it how long a sender waits before
//! it may conclude a packet is lost and how many messages must be in flight to keep the path busy.
//!
//! **Jitter.** The delay varies from packet to packet as queues fill and drain. A protocol's RTO must sit above the
//! usual variation (RFC 6298 adds four times the RTT variance to the smoothed RTT) or it retransmits packets that
//! were merely slow. In this model jitter is drawn independently for each packet, so large jitter also reorders.
//!
//! **Reordering.** Packets of one flow can take different paths (load balancing over parallel links, multipath
//! routing) or be retried by a link layer, and arrive out of order. Reordering can fake loss: a receiver that sees
//! packet 7 before packet 6 reports a gap, and a sender that retransmits at the first sign of a gap resends a
//! packet that was only late. That is why TCP waits for three duplicate acknowledgements and QUIC declares a packet
//! lost only when a packet three numbers later has been acknowledged (RFC 9002's `kPacketThreshold`), and why
//! chatlab counts spurious retransmissions. An in-order receiver must also hold later messages back until the gap
//! fills (head-of-line blocking), which chatlab measures.
//!
//! **Duplication.** Rarer, but real: a link layer that retransmits a frame whose acknowledgement was lost, a
//! routing loop, a misconfigured mirror port. A protocol must not act twice on one message. In chatlab two layers
//! catch it: a duplicated datagram carries the same packet number as the original, so the replay window rejects
//! it; a message retransmitted in a new packet has a new packet number but the same message id, so the receiver's
//! de-duplication drops the second copy and only re-acknowledges it.
//!
//! **Corruption.** Bits flip on noisy links and in faulty memory. Ethernet's CRC-32 and the UDP checksum catch
//! most damage, so on a real path a corrupted packet is usually dropped before any application sees it, while the
//! 16-bit UDP checksum misses some errors and is optional over IPv4. This model hands the damaged bytes to the
//! receiver so the last line of defence is exercised: AES-GCM's 128-bit authentication tag, which fails for any
//! change to the header or ciphertext except with negligible probability. To the protocol a corrupted datagram is
//! then a lost one, plus one count of failed authentication.
//!
//! **MTU.** Every link has a largest packet it carries. An IPv4 router may fragment a larger packet unless the
//! sender set "don't fragment"; IPv6 routers never fragment and drop it, sending back an ICMPv6 "Packet Too Big"
//! that firewalls often block. So chatlab keeps every datagram within 1200 bytes
//! ([`MAX_DATAGRAM_BYTES`](crate::limits::MAX_DATAGRAM_BYTES)) and fragments messages itself. This model drops
//! oversized packets silently, like a path whose ICMP errors never come back.
//!
//! **Rate limit.** A link sends a fixed number of bits per second, so a packet of `n` bytes occupies it for
//! `n / rate` (its serialisation delay) and packets that arrive faster wait in a queue. A big queue turns a burst
//! into delay (bufferbloat); a full queue drops new arrivals (tail drop). Both teach a protocol that sending faster
//! than the bottleneck only adds delay and loss, which is why a send window gives back-pressure.
//!
//! # Compared with Linux netem
//!
//! netem (`tc qdisc add dev DEV root netem ...`) applies the same impairments to a real interface's outgoing
//! traffic: `delay TIME JITTER`, `loss random P`, `loss gemodel p r 1-h 1-k`, `duplicate P`, `corrupt P`,
//! `reorder P`, `rate RATE` and a queue `limit` of 1000 packets by default. The differences that matter here:
//! this model is clocked by the caller, so it runs in simulated time and is reproducible from a seed; its
//! `reorder` holds chosen packets *back* where netem sends chosen packets *ahead* of the delay the others get (see
//! [`ImpairmentConfig::reorder`]); and its MTU limit has no netem counterpart (a smaller interface MTU does that
//! on a real host).

pub mod config;
pub mod duplex;
mod error;
pub mod link;
pub mod loss;
mod rng;
pub mod stats;

pub use config::{DEFAULT_QUEUE_LIMIT_BYTES, DEFAULT_REORDER_DELAY, DEFAULT_SEED, ImpairmentConfig, MAX_DELAY};
pub use duplex::{Direction, Duplex};
pub use error::ImpairmentError;
pub use link::Link;
pub use loss::{GilbertElliott, LossModel};
pub use stats::LinkStats;
