//! The server's public key and its human-readable fingerprint.
//!
//! A chatlab server proves who it is with a long-lived X25519 key pair. The public half, [`ServerKey`], is 32 bytes:
//! fine for a computer to compare, too long for a person to read out over the phone. A *fingerprint* is a short,
//! fixed-size digest of the key that people can compare instead: the client shows it on first contact, the server
//! prints it at startup, and the two should match.
//!
//! # Format
//!
//! chatlab's fingerprint is the SHA-256 digest of the 32 raw key bytes. It is displayed as `SHA256:` followed by the
//! first 16 bytes of the digest in lowercase hex, in eight groups of four characters separated by colons:
//!
//! ```text
//! SHA256:300c:9c96:03b9:2a4b:39ed:3958:bf92:4011
//! ```
//!
//! Why these choices:
//! - **A hash, not the key itself**: a fingerprint must not let anyone find a second key with the same display.
//!   SHA-256 makes that a second-preimage search, not a puzzle.
//! - **16 of the 32 bytes shown**: 128 bits still need about 2^128 attempts to forge a key with the same display,
//!   and 32 hex characters fit on one line and can be read aloud. The full digest is kept for comparisons in code.
//! - **Groups of four**: people compare short chunks far more reliably than one long run of characters.
//! - **The `SHA256:` prefix** says which hash made it, as OpenSSH does, so the format can change one day without
//!   being confused with this one.

use std::fmt;

use sha2::{Digest, Sha256};

use super::error::NoiseError;
use super::hex;

/// Length of an X25519 public key in bytes. Curve25519 points are sent as their 32-byte x-coordinate.
pub const SERVER_KEY_LEN: usize = 32;

/// How many bytes of the SHA-256 digest the displayed fingerprint shows. 16 bytes (128 bits) keep forging a
/// look-alike key out of reach while fitting on one line (see the module docs).
pub const FINGERPRINT_DISPLAY_BYTES: usize = 16;

/// How many hex characters go in one group of the displayed fingerprint, between colons.
pub const FINGERPRINT_GROUP_CHARS: usize = 4;

/// A server's static X25519 public key: the identity the client pins on first use.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ServerKey([u8; SERVER_KEY_LEN]);

impl ServerKey {
    /// Wraps 32 raw key bytes.
    pub const fn from_bytes(bytes: [u8; SERVER_KEY_LEN]) -> Self {
        ServerKey(bytes)
    }

    /// The raw key bytes.
    pub const fn as_bytes(&self) -> &[u8; SERVER_KEY_LEN] {
        &self.0
    }

    /// Reads the key from 64 hex characters (either case).
    pub fn from_hex(text: &str) -> Result<Self, NoiseError> {
        hex::decode::<SERVER_KEY_LEN>(text).map(ServerKey).map_err(|err| NoiseError::BadKey { reason: err.to_string() })
    }

    /// The key as 64 lowercase hex characters, the form used in the known-servers file.
    pub fn to_hex(&self) -> String {
        hex::encode(&self.0)
    }

    /// The SHA-256 fingerprint people compare (see the module docs for its format).
    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint(Sha256::digest(self.0).into())
    }
}

impl fmt::Debug for ServerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ServerKey({})", self.to_hex())
    }
}

/// The SHA-256 digest of a [`ServerKey`]. `Display` shows the readable form described in the module docs;
/// equality compares the full 32-byte digest.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    /// The full 32-byte SHA-256 digest.
    pub const fn digest(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = hex::encode(self.0.get(..FINGERPRINT_DISPLAY_BYTES).unwrap_or(&self.0));
        f.write_str("SHA256")?;
        // The hex text is ASCII, so splitting its bytes into groups never cuts a character.
        for group in shown.as_bytes().chunks(FINGERPRINT_GROUP_CHARS) {
            f.write_str(":")?;
            f.write_str(std::str::from_utf8(group).map_err(|_| fmt::Error)?)?;
        }
        Ok(())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The public key of Alice in RFC 7748, section 6.1.
    const RFC7748_ALICE_PUBLIC: &str = "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a";

    #[test]
    fn fingerprint_known_answer() {
        // SHA-256 of the key, computed independently with Python's hashlib:
        // 300c9c9603b92a4b39ed3958bf9240114804db4fd373012c0ca47432d63425ae
        let key = ServerKey::from_hex(RFC7748_ALICE_PUBLIC).expect("valid hex");
        assert_eq!(key.fingerprint().to_string(), "SHA256:300c:9c96:03b9:2a4b:39ed:3958:bf92:4011");
        assert_eq!(
            hex::encode(key.fingerprint().digest()),
            "300c9c9603b92a4b39ed3958bf9240114804db4fd373012c0ca47432d63425ae"
        );
    }

    #[test]
    fn fingerprint_of_all_zero_key_known_answer() {
        // `head -c 32 /dev/zero | sha256sum` = 66687aadf862bd776c8fc18b8e9f8e20089714856ee233b3902a591d0d5f2925
        let key = ServerKey::from_bytes([0; SERVER_KEY_LEN]);
        assert_eq!(key.fingerprint().to_string(), "SHA256:6668:7aad:f862:bd77:6c8f:c18b:8e9f:8e20");
    }

    #[test]
    fn bad_hex_key_is_rejected_with_reason() {
        let err = ServerKey::from_hex("abcd").expect_err("too short");
        assert!(matches!(&err, NoiseError::BadKey { reason } if reason.contains("expected 64")), "{err}");
        let mut text = RFC7748_ALICE_PUBLIC.to_string();
        text.replace_range(0..1, "x");
        let err = ServerKey::from_hex(&text).expect_err("not hex");
        assert!(matches!(&err, NoiseError::BadKey { reason } if reason.contains("character 1")), "{err}");
    }

    #[test]
    fn debug_shows_hex() {
        let key = ServerKey::from_bytes([0xab; SERVER_KEY_LEN]);
        assert_eq!(format!("{key:?}"), format!("ServerKey({})", "ab".repeat(32)));
        assert!(format!("{:?}", key.fingerprint()).starts_with("Fingerprint(SHA256:"));
    }

    proptest! {
        #[test]
        fn hex_round_trip(bytes in proptest::array::uniform32(any::<u8>())) {
            let key = ServerKey::from_bytes(bytes);
            prop_assert_eq!(ServerKey::from_hex(&key.to_hex()).ok(), Some(key));
            prop_assert_eq!(ServerKey::from_hex(&key.to_hex().to_uppercase()).ok(), Some(key));
        }

        #[test]
        fn display_shape_is_fixed(bytes in proptest::array::uniform32(any::<u8>())) {
            let shown = ServerKey::from_bytes(bytes).fingerprint().to_string();
            // "SHA256" + 8 × (":" + 4 hex) = 6 + 40 characters.
            prop_assert_eq!(shown.len(), 46);
            prop_assert_eq!(shown.matches(':').count(), 8);
        }
    }
}
