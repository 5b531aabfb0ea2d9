//! Secrets that travel in control messages: the password at login and the key material of a session grant.
//!
//! Both are ordinary bytes to the encoder, but they must never reach a log file. Control messages derive `Debug`, and
//! a `tracing::debug!("{msg:?}")` somewhere in the server or client would otherwise print a user's password or the
//! seed of their datagram keys. Wrapping each secret in a type whose `Debug` prints `***` makes the safe behaviour
//! the default one; reading the secret needs an explicit, greppable call ([`Password::expose`],
//! [`KeyMaterial::expose`]).

use std::fmt;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use thiserror::Error;

/// Longest password accepted, in bytes of UTF-8.
///
/// Argon2id reads the whole password; a limit keeps the cost of one login attempt bounded however long the input.
/// 1024 bytes is far beyond any passphrase a person types or a password manager generates.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// Bytes of session key material in a session grant: the input keying material from which HKDF-SHA256 derives the
/// per-direction AES-256-GCM keys. 32 bytes is 256 bits, as much entropy as one AES-256 key can use.
pub const KEY_MATERIAL_BYTES: usize = 32;

/// Why a password is not acceptable at all (the server may add a stricter policy for new accounts).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PasswordError {
    /// The password has no characters.
    #[error("password is empty")]
    Empty,
    /// The password is longer than [`MAX_PASSWORD_BYTES`].
    #[error("password is {len} bytes, at most {max} are allowed")]
    TooLong {
        /// Bytes in the offered password.
        len: usize,
        /// The limit, [`MAX_PASSWORD_BYTES`].
        max: usize,
    },
}

/// A password as typed, hidden from `Debug`.
///
/// Decoding does not check the length: the server calls [`Password::check`] and answers with the precise
/// `PasswordInvalid` error instead of a generic decode failure. The frame limit before login bounds what can arrive
/// in any case.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    /// Wraps a password without checking it (see [`Password::check`]).
    pub fn new(password: impl Into<String>) -> Password {
        Password(password.into())
    }

    /// Checks the rules every password must meet: not empty, at most [`MAX_PASSWORD_BYTES`].
    pub fn check(&self) -> Result<(), PasswordError> {
        if self.0.is_empty() {
            return Err(PasswordError::Empty);
        }
        if self.0.len() > MAX_PASSWORD_BYTES {
            return Err(PasswordError::TooLong { len: self.0.len(), max: MAX_PASSWORD_BYTES });
        }
        Ok(())
    }

    /// The password itself, for hashing. Named `expose` so every use stands out in review.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl Serialize for Password {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Password {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Password)
    }
}

/// The 32 bytes of session key material the server grants after login, hidden from `Debug`.
///
/// Serialized as MessagePack `bin` (2 bytes of header plus the 32 bytes), not as serde's default array of 32
/// integers, which would cost up to 65 bytes and decode one number at a time.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyMaterial([u8; KEY_MATERIAL_BYTES]);

impl KeyMaterial {
    /// Wraps key material (the server fills it from the operating system's random generator).
    pub fn new(bytes: [u8; KEY_MATERIAL_BYTES]) -> KeyMaterial {
        KeyMaterial(bytes)
    }

    /// The bytes, for key derivation. Named `expose` so every use stands out in review.
    pub fn expose(&self) -> &[u8; KEY_MATERIAL_BYTES] {
        &self.0
    }
}

impl From<[u8; KEY_MATERIAL_BYTES]> for KeyMaterial {
    fn from(bytes: [u8; KEY_MATERIAL_BYTES]) -> Self {
        KeyMaterial(bytes)
    }
}

impl fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl Serialize for KeyMaterial {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for KeyMaterial {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_bytes(KeyMaterialVisitor)
    }
}

/// Accepts exactly [`KEY_MATERIAL_BYTES`] bytes of MessagePack `bin`.
struct KeyMaterialVisitor;

impl Visitor<'_> for KeyMaterialVisitor {
    type Value = KeyMaterial;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{KEY_MATERIAL_BYTES} bytes of key material")
    }

    fn visit_bytes<E: de::Error>(self, bytes: &[u8]) -> Result<KeyMaterial, E> {
        <[u8; KEY_MATERIAL_BYTES]>::try_from(bytes).map(KeyMaterial).map_err(|_| E::invalid_length(bytes.len(), &self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_debug_hides_the_secret() {
        let password = Password::new("hunter2");
        assert_eq!(format!("{password:?}"), "***");
        assert_eq!(password.expose(), "hunter2");
    }

    #[test]
    fn password_check_accepts_up_to_the_limit() {
        assert_eq!(Password::new("x").check(), Ok(()));
        assert_eq!(Password::new("x".repeat(MAX_PASSWORD_BYTES)).check(), Ok(()));
    }

    #[test]
    fn password_check_rejects_empty() {
        assert_eq!(Password::new("").check(), Err(PasswordError::Empty));
    }

    #[test]
    fn password_check_rejects_too_long() {
        assert_eq!(
            Password::new("x".repeat(MAX_PASSWORD_BYTES + 1)).check(),
            Err(PasswordError::TooLong { len: MAX_PASSWORD_BYTES + 1, max: MAX_PASSWORD_BYTES })
        );
    }

    #[test]
    fn password_serializes_as_a_string() {
        let bytes = rmp_serde::to_vec(&Password::new("pw")).expect("encode");
        assert_eq!(bytes, b"\xa2pw");
        let back: Password = rmp_serde::from_slice(&bytes).expect("decode");
        assert_eq!(back, Password::new("pw"));
    }

    #[test]
    fn key_material_debug_hides_the_secret() {
        let key = KeyMaterial::from([0xab; KEY_MATERIAL_BYTES]);
        assert_eq!(format!("{key:?}"), "***");
        assert_eq!(key.expose(), &[0xab; KEY_MATERIAL_BYTES]);
    }

    #[test]
    fn key_material_serializes_as_bin() {
        let key = KeyMaterial::new([7; KEY_MATERIAL_BYTES]);
        let bytes = rmp_serde::to_vec(&key).expect("encode");
        let mut expected = vec![0xc4, 32];
        expected.extend([7u8; KEY_MATERIAL_BYTES]);
        assert_eq!(bytes, expected);
        let back: KeyMaterial = rmp_serde::from_slice(&bytes).expect("decode");
        assert_eq!(back, key);
    }

    #[test]
    fn key_material_of_wrong_length_is_rejected() {
        let short = rmp_serde::to_vec(&serde_bytes_like(&[1; 31])).expect("encode");
        let err = rmp_serde::from_slice::<KeyMaterial>(&short).expect_err("31 bytes");
        assert!(err.to_string().contains("32 bytes of key material"), "{err}");
    }

    #[test]
    fn key_material_as_integer_array_is_rejected() {
        let array = rmp_serde::to_vec(&[1u8; KEY_MATERIAL_BYTES]).expect("encode");
        assert!(rmp_serde::from_slice::<KeyMaterial>(&array).is_err());
    }

    /// Serializes a byte slice as MessagePack `bin`, the way `KeyMaterial` does.
    fn serde_bytes_like(bytes: &[u8]) -> impl Serialize + '_ {
        struct Bin<'a>(&'a [u8]);
        impl Serialize for Bin<'_> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_bytes(self.0)
            }
        }
        Bin(bytes)
    }
}
