//! Limits shared by more than one part of the protocol.
//!
//! Every number that bounds memory, bytes on the wire or work per packet lives in a named constant with the reason
//! for its value. Limits that only one module uses live in that module, next to the code they protect.

/// Largest UDP payload chatlab ever sends, in bytes.
///
/// 1200 bytes is the figure QUIC (RFC 9000, section 14) chose: IPv6 guarantees a 1280-byte MTU, and 1280 minus the
/// 40-byte IPv6 header and the 8-byte UDP header leaves room for 1200 bytes with some slack for tunnels. A datagram
/// of this size is never fragmented by IP on any path that carries IPv6, so one lost fragment can never take a whole
/// datagram with it.
pub const MAX_DATAGRAM_BYTES: usize = 1200;

/// Largest chat text in bytes of UTF-8, as DESIGN.md sets it. Longer texts are rejected, never truncated.
///
/// 4096 bytes is a long paragraph (about 1 300 Chinese characters). The limit keeps one message to a handful of
/// datagram fragments and makes the worst-case memory of a reassembly buffer small and known.
pub const MAX_TEXT_BYTES: usize = 4096;

/// Longest user name, in characters of `[a-z0-9._-]`.
pub const MAX_USERNAME_CHARS: usize = 32;

/// Version of the wire protocol. A peer speaking another version is refused with a clear error instead of being
/// misunderstood. Bump it on every incompatible change of a message or datagram layout.
pub const PROTOCOL_VERSION: u8 = 1;
