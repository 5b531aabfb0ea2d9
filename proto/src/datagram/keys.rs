//! Turning the session grant into datagram keys.
//!
//! # From one shared secret to four values
//!
//! After login the server sends the client, inside the already-encrypted Noise control channel, a random connection
//! id and [`SESSION_SECRET_LEN`] bytes of random key material (the *session secret*). Both ends now hold the same
//! secret, and nobody else does. From it each end needs, for **each direction** of traffic:
//!
//! * a 32-byte AES-256-GCM key, and
//! * a 4-byte *nonce salt* (the fixed first part of every nonce, see [`PacketKey::nonce`]).
//!
//! Each direction gets its own key so that the client and the server, which both number their packets from zero,
//! never encrypt two different packets under the same key and nonce. Reusing one key for both directions would make
//! client packet 7 and server packet 7 share a nonce, which breaks AES-GCM completely (see `seal.rs`).
//!
//! # HKDF: extract, then expand
//!
//! HKDF (RFC 5869) is the standard tool for this job. It runs in two steps, both built on HMAC-SHA256:
//!
//! 1. **Extract** condenses the input key material into one uniformly random 32-byte pseudorandom key (PRK). Its
//!    `salt` is a fixed protocol label, [`HKDF_SALT`]: the session secret is already uniformly random, so the salt's
//!    job here is *domain separation* — a secret accidentally shared with another protocol still yields keys that
//!    are unrelated to that protocol's keys.
//! 2. **Expand** stretches the PRK into as many independent outputs as needed. Each output is named by an `info`
//!    label; different labels give unrelated outputs, and knowing one output reveals nothing about another.
//!
//! chatlab expands in two levels, the way QUIC (RFC 9001, section 5.1) and TLS 1.3 do:
//!
//! ```text
//! session secret (32 bytes, from the session grant)
//!   └─ Extract(salt = HKDF_SALT) ─► PRK
//!        ├─ Expand(CLIENT_TO_SERVER_LABEL) ─► client→server direction secret, generation 0
//!        └─ Expand(SERVER_TO_CLIENT_LABEL) ─► server→client direction secret, generation 0
//!
//! direction secret (any generation)
//!   ├─ Expand(KEY_LABEL)        ─► 32-byte AES-256-GCM key
//!   ├─ Expand(NONCE_SALT_LABEL) ─► 4-byte nonce salt
//!   └─ Expand(KEY_UPDATE_LABEL) ─► direction secret of the next generation (see `key_update.rs`)
//! ```
//!
//! The middle layer, the *direction secret*, exists for key updates: the next generation's secret is derived from
//! the current one, so both ends can step forward in lock-step without talking to each other.
//!
//! A production implementation would also wipe secrets from memory when they are dropped (the `zeroize` crate);
//! chatlab keeps its dependency list short and relies on the process boundary instead.

use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes256Gcm, Key, Nonce, Tag};
use hkdf::Hkdf;
use sha2::Sha256;

use super::key_update::{KEY_UPDATE_LABEL, KeyUpdateConfig};
use super::{Opener, Sealer};

/// Length of the session secret the server sends in the session grant, in bytes.
///
/// 32 bytes (256 bits) matches the strength of AES-256 and of SHA-256 inside HKDF: a shorter secret would be the
/// weakest link, a longer one adds nothing because HKDF-Extract condenses it to 32 bytes anyway.
pub const SESSION_SECRET_LEN: usize = 32;

/// Length of an AES-256-GCM key, in bytes. Fixed by the cipher: AES-256 takes a 256-bit key.
pub const KEY_LEN: usize = 32;

/// Length of the per-direction nonce salt, in bytes.
///
/// AES-GCM takes a 96-bit (12-byte) nonce. The last 8 bytes carry the packet number, which leaves 4 bytes for a
/// secret salt. The salt makes nonces unpredictable to an outsider, which hardens AES-GCM against precomputation
/// attacks that target many keys at once (the same reason TLS 1.3 and QUIC XOR a secret IV into their nonces).
pub const NONCE_SALT_LEN: usize = 4;

/// Length of the packet-number part of the nonce, in bytes: a full 64-bit packet number, so every packet number the
/// header can carry maps to a distinct nonce.
pub const NONCE_PACKET_NUMBER_LEN: usize = 8;

/// Length of an AES-GCM nonce, in bytes: the 96 bits the GCM specification (NIST SP 800-38D) recommends, made of
/// the salt followed by the packet number.
pub const NONCE_LEN: usize = NONCE_SALT_LEN + NONCE_PACKET_NUMBER_LEN;

/// Length of a direction secret, in bytes: one SHA-256 output, the natural size of an HKDF pseudorandom key.
pub const DIRECTION_SECRET_LEN: usize = 32;

/// HKDF-Extract salt: a fixed label naming this protocol and this use, for domain separation.
/// The version in the label changes whenever the derivation changes, so old and new peers never share keys.
pub const HKDF_SALT: &[u8] = b"chatlab v1 datagram keys";

/// HKDF-Expand `info` label for the client-to-server direction secret.
pub const CLIENT_TO_SERVER_LABEL: &[u8] = b"chatlab v1 client to server";

/// HKDF-Expand `info` label for the server-to-client direction secret. It must differ from
/// [`CLIENT_TO_SERVER_LABEL`]: that difference alone is what gives the two directions unrelated keys.
pub const SERVER_TO_CLIENT_LABEL: &[u8] = b"chatlab v1 server to client";

/// HKDF-Expand `info` label for the AES-256-GCM key of one direction and generation.
pub const KEY_LABEL: &[u8] = b"chatlab v1 key";

/// HKDF-Expand `info` label for the nonce salt of one direction and generation.
pub const NONCE_SALT_LABEL: &[u8] = b"chatlab v1 nonce salt";

/// Which end of the connection this is. The role decides which direction secret seals and which one opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// The chat client: seals client→server, opens server→client.
    Client,
    /// The chat server: seals server→client, opens client→server.
    Server,
}

/// One direction of datagram traffic. Each direction has its own keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Datagrams the client sends and the server receives.
    ClientToServer,
    /// Datagrams the server sends and the client receives.
    ServerToClient,
}

impl Role {
    /// The direction this role sends in.
    pub fn sending(self) -> Direction {
        match self {
            Role::Client => Direction::ClientToServer,
            Role::Server => Direction::ServerToClient,
        }
    }

    /// The direction this role receives in.
    pub fn receiving(self) -> Direction {
        match self {
            Role::Client => Direction::ServerToClient,
            Role::Server => Direction::ClientToServer,
        }
    }
}

impl Direction {
    /// The HKDF-Expand `info` label of this direction's first secret.
    pub fn label(self) -> &'static [u8] {
        match self {
            Direction::ClientToServer => CLIENT_TO_SERVER_LABEL,
            Direction::ServerToClient => SERVER_TO_CLIENT_LABEL,
        }
    }
}

/// HKDF-Expand with a fixed output length.
///
/// HKDF-SHA256 can produce up to 255 × 32 = 8160 bytes per expansion, and every caller asks for at most 32, so the
/// expansion cannot fail; the compile-time assertion turns that argument into something the compiler checks.
fn expand<const N: usize>(prk: &Hkdf<Sha256>, info: &[u8]) -> [u8; N] {
    const { assert!(N <= 255 * 32, "HKDF-SHA256 output is limited to 8160 bytes") };
    let mut okm = [0u8; N];
    prk.expand(info, &mut okm).expect("HKDF-SHA256 expands up to 8160 bytes and N is checked at compile time");
    okm
}

/// The secret of one direction at one key generation.
///
/// It never encrypts anything itself; it is the root from which that generation's [`PacketKey`] and the next
/// generation's secret are derived. `Debug` prints no key material, so secrets cannot leak into logs.
#[derive(Clone, PartialEq, Eq)]
pub struct DirectionSecret {
    secret: [u8; DIRECTION_SECRET_LEN],
}

impl std::fmt::Debug for DirectionSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DirectionSecret(..)")
    }
}

impl DirectionSecret {
    /// Derives the generation-0 secret of `direction` from the session secret (Extract, then Expand with the
    /// direction's label).
    pub fn derive(session_secret: &[u8; SESSION_SECRET_LEN], direction: Direction) -> Self {
        let prk = Hkdf::<Sha256>::new(Some(HKDF_SALT), session_secret);
        Self { secret: expand(&prk, direction.label()) }
    }

    /// Treats this secret as an HKDF pseudorandom key, ready for Expand.
    fn as_prk(&self) -> Hkdf<Sha256> {
        // `from_prk` only rejects keys shorter than one SHA-256 output; ours is exactly one output long.
        Hkdf::<Sha256>::from_prk(&self.secret).expect("a direction secret is exactly one SHA-256 output long")
    }

    /// Derives the AES-256-GCM key and nonce salt of this generation.
    pub fn packet_key(&self) -> PacketKey {
        let prk = self.as_prk();
        let key: [u8; KEY_LEN] = expand(&prk, KEY_LABEL);
        PacketKey { cipher: Aes256Gcm::new(&Key::<Aes256Gcm>::from(key)), nonce_salt: expand(&prk, NONCE_SALT_LABEL) }
    }

    /// Derives the next generation's secret (a key update). The step is one-way: an attacker who steals a later
    /// secret cannot walk back to earlier ones and decrypt recorded traffic.
    pub fn next(&self) -> Self {
        Self { secret: expand(&self.as_prk(), KEY_UPDATE_LABEL) }
    }

    /// The raw secret bytes, for known-answer tests.
    #[cfg(test)]
    pub(crate) fn bytes(&self) -> &[u8; DIRECTION_SECRET_LEN] {
        &self.secret
    }
}

/// Error from the AEAD primitive: the tag did not verify (when opening) or the input exceeded AES-GCM's length
/// limits (when sealing; unreachable for datagram-sized input).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AeadFailure;

/// The AES-256-GCM key and nonce salt of one direction and generation: everything needed to seal or open a packet.
pub struct PacketKey {
    cipher: Aes256Gcm,
    nonce_salt: [u8; NONCE_SALT_LEN],
}

impl std::fmt::Debug for PacketKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PacketKey(..)")
    }
}

impl PacketKey {
    /// The nonce of packet `packet_number`: the 4-byte salt followed by the 8-byte big-endian packet number.
    ///
    /// Because the packet number fills the rest of the nonce, two different packet numbers always give two different
    /// nonces; the sender never reuses a packet number, so it never reuses a nonce under this key.
    pub fn nonce(&self, packet_number: u64) -> [u8; NONCE_LEN] {
        let mut nonce = [0u8; NONCE_LEN];
        let (salt, number) = nonce.split_at_mut(NONCE_SALT_LEN);
        salt.copy_from_slice(&self.nonce_salt);
        number.copy_from_slice(&packet_number.to_be_bytes());
        nonce
    }

    /// Encrypts `buffer` in place and returns the 16-byte tag over `associated_data` and the ciphertext.
    pub(crate) fn seal_in_place(
        &self,
        packet_number: u64,
        associated_data: &[u8],
        buffer: &mut [u8],
    ) -> Result<[u8; super::TAG_LEN], AeadFailure> {
        let nonce = Nonce::from(self.nonce(packet_number));
        let tag = self.cipher.encrypt_in_place_detached(&nonce, associated_data, buffer).map_err(|_| AeadFailure)?;
        Ok(tag.into())
    }

    /// Verifies `tag` over `associated_data` and `buffer`, and only if it verifies decrypts `buffer` in place.
    pub(crate) fn open_in_place(
        &self,
        packet_number: u64,
        associated_data: &[u8],
        buffer: &mut [u8],
        tag: [u8; super::TAG_LEN],
    ) -> Result<(), AeadFailure> {
        let nonce = Nonce::from(self.nonce(packet_number));
        self.cipher.decrypt_in_place_detached(&nonce, associated_data, buffer, &Tag::from(tag)).map_err(|_| AeadFailure)
    }
}

/// Both direction secrets of one session, as seen from one end.
#[derive(Debug, Clone)]
pub struct SessionKeys {
    /// Secret of the direction this end sends in.
    pub send: DirectionSecret,
    /// Secret of the direction this end receives in.
    pub receive: DirectionSecret,
}

impl SessionKeys {
    /// Derives this end's sending and receiving secrets from the session secret of the session grant.
    ///
    /// The client's `send` equals the server's `receive` and vice versa, which is what lets them talk.
    pub fn derive(session_secret: &[u8; SESSION_SECRET_LEN], role: Role) -> Self {
        Self {
            send: DirectionSecret::derive(session_secret, role.sending()),
            receive: DirectionSecret::derive(session_secret, role.receiving()),
        }
    }

    /// Builds the [`Sealer`] for outgoing and the [`Opener`] for incoming datagrams of connection `connection_id`.
    pub fn into_endpoints(self, connection_id: u64, config: KeyUpdateConfig) -> (Sealer, Opener) {
        (Sealer::new(connection_id, self.send, config), Opener::new(connection_id, self.receive))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Session secret of the known-answer tests: the bytes 0x00, 0x01, …, 0x1f.
    fn counting_secret() -> [u8; SESSION_SECRET_LEN] {
        std::array::from_fn(|i| i as u8)
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Pins the whole derivation tree. The values were computed once with this code and cross-checked with an
    /// independent HKDF implementation (Python's `cryptography` package); any change to a label, the salt or the
    /// order of the steps breaks interoperability and this test.
    #[test]
    fn derivation_known_answer() {
        let secret = counting_secret();
        let c2s = DirectionSecret::derive(&secret, Direction::ClientToServer);
        let s2c = DirectionSecret::derive(&secret, Direction::ServerToClient);
        assert_eq!(hex(c2s.bytes()), "4a7dc4fc1f9431c8de408bcd0a2fafafbc3e701f082f042bab046123f7d61c9a");
        assert_eq!(hex(s2c.bytes()), "45f4f7dabb3d602cc630ae44db8e69af9bd9c715f2f86d184309987243f138d5");
        assert_eq!(hex(&c2s.packet_key().nonce(0)), "a7f409d00000000000000000");
        assert_eq!(hex(&s2c.packet_key().nonce(0x0102_0304_0506_0708)), "6ed882910102030405060708");
        assert_eq!(hex(c2s.next().bytes()), "3568fccada9b77fd7a8a3bd577be90208fdbe51371a12c316c5a3f0b93c246fa");
    }

    #[test]
    fn roles_mirror_each_other() {
        let secret = counting_secret();
        let client = SessionKeys::derive(&secret, Role::Client);
        let server = SessionKeys::derive(&secret, Role::Server);
        assert_eq!(client.send, server.receive);
        assert_eq!(client.receive, server.send);
        assert_ne!(client.send, client.receive);
    }

    #[test]
    fn key_update_gives_a_different_secret_each_generation() {
        let first = DirectionSecret::derive(&counting_secret(), Direction::ClientToServer);
        let second = first.next();
        let third = second.next();
        assert_ne!(first, second);
        assert_ne!(second, third);
        assert_ne!(first, third);
    }

    #[test]
    fn nonce_is_salt_then_big_endian_packet_number() {
        let key = DirectionSecret::derive(&counting_secret(), Direction::ClientToServer).packet_key();
        let low = key.nonce(1);
        let high = key.nonce(u64::MAX);
        assert_eq!(low[..NONCE_SALT_LEN], high[..NONCE_SALT_LEN]);
        assert_eq!(low[NONCE_SALT_LEN..], [0, 0, 0, 0, 0, 0, 0, 1]);
        assert_eq!(high[NONCE_SALT_LEN..], [0xff; NONCE_PACKET_NUMBER_LEN]);
    }

    #[test]
    fn debug_output_hides_secrets() {
        let keys = SessionKeys::derive(&counting_secret(), Role::Client);
        let text = format!("{keys:?} {:?}", keys.send.packet_key());
        assert!(!text.contains(&hex(keys.send.bytes())));
        assert!(text.contains("DirectionSecret(..)"));
        assert!(text.contains("PacketKey(..)"));
    }

    #[test]
    fn tampered_tag_fails_and_the_right_one_verifies() {
        let key = DirectionSecret::derive(&counting_secret(), Direction::ServerToClient).packet_key();
        let mut buffer = *b"hello";
        let tag = key.seal_in_place(3, b"header", &mut buffer).expect("five bytes are sealable");
        let sealed = buffer;
        let mut bad_tag = tag;
        bad_tag[0] ^= 1;
        assert_eq!(key.open_in_place(3, b"header", &mut buffer, bad_tag), Err(AeadFailure));
        assert_eq!(buffer, sealed, "a failed open must not decrypt");
        assert_eq!(key.open_in_place(4, b"header", &mut buffer, tag), Err(AeadFailure));
        assert_eq!(key.open_in_place(3, b"other!", &mut buffer, tag), Err(AeadFailure));
        assert_eq!(key.open_in_place(3, b"header", &mut buffer, tag), Ok(()));
        assert_eq!(&buffer, b"hello");
    }
}
