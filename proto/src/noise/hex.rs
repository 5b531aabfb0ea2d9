//! Hexadecimal text for keys.
//!
//! Keys live in text files that people open, compare and paste into chat with a server's operator, so they are
//! written as hex: two characters per byte, `0-9a-f`. Hex is longer than base64 but has no look-alike characters
//! and no padding rules, and a half-read key is obviously the wrong length. We write lowercase and accept either
//! case, because people retype keys.

use std::fmt;

/// Why a piece of text is not the hex of an `N`-byte value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HexError {
    /// The text has the wrong number of characters.
    Length {
        /// Characters expected (two per byte).
        expected: usize,
        /// Characters found.
        got: usize,
    },
    /// A character is not a hex digit.
    Digit {
        /// 0-based character position.
        position: usize,
    },
}

impl fmt::Display for HexError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HexError::Length { expected, got } => {
                write!(f, "expected {expected} hex characters, found {got}")
            }
            HexError::Digit { position } => write!(f, "character {} is not a hex digit", position + 1),
        }
    }
}

/// Lowercase hex of `bytes`.
pub(crate) fn encode(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len().saturating_mul(2));
    for &byte in bytes {
        text.push(char::from(DIGITS[usize::from(byte >> 4)]));
        text.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    text
}

/// The `N` bytes whose hex is `text` (either case, no separators, no prefix).
pub(crate) fn decode<const N: usize>(text: &str) -> Result<[u8; N], HexError> {
    let expected = N.saturating_mul(2);
    // Count characters, not bytes, so a multi-byte character is reported sensibly.
    let got = text.chars().count();
    if got != expected || text.len() != expected {
        return Err(HexError::Length { expected, got });
    }
    let mut out = [0u8; N];
    let digits = text.as_bytes();
    for (index, (slot, pair)) in out.iter_mut().zip(digits.chunks_exact(2)).enumerate() {
        let position = index.saturating_mul(2);
        let (hi, lo) = match pair {
            [hi, lo] => (*hi, *lo),
            _ => return Err(HexError::Length { expected, got }),
        };
        let hi = digit(hi).ok_or(HexError::Digit { position })?;
        let lo = digit(lo).ok_or(HexError::Digit { position: position.saturating_add(1) })?;
        *slot = (hi << 4) | lo;
    }
    Ok(out)
}

/// Value of one hex digit, either case.
fn digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_answer() {
        assert_eq!(encode(&[0x00, 0x7f, 0xa5, 0xff]), "007fa5ff");
        assert_eq!(decode::<4>("007FA5ff"), Ok([0x00, 0x7f, 0xa5, 0xff]));
    }

    #[test]
    fn wrong_length_is_rejected() {
        assert_eq!(decode::<2>("abc"), Err(HexError::Length { expected: 4, got: 3 }));
        assert_eq!(decode::<2>("abcdef"), Err(HexError::Length { expected: 4, got: 6 }));
    }

    #[test]
    fn multibyte_characters_are_counted_as_characters() {
        // "é" is two bytes of UTF-8, so the byte length matches 4 while the character count does not.
        assert_eq!(decode::<2>("éab"), Err(HexError::Length { expected: 4, got: 3 }));
    }

    #[test]
    fn non_hex_digit_reports_its_position() {
        assert_eq!(decode::<2>("a0g1"), Err(HexError::Digit { position: 2 }));
        assert_eq!(decode::<2>("a01z"), Err(HexError::Digit { position: 3 }));
        assert_eq!(HexError::Digit { position: 2 }.to_string(), "character 3 is not a hex digit");
    }

    proptest! {
        #[test]
        fn round_trip(bytes in proptest::array::uniform32(any::<u8>())) {
            prop_assert_eq!(decode::<32>(&encode(&bytes)), Ok(bytes));
        }

        #[test]
        fn arbitrary_text_never_panics(text in ".{0,80}") {
            let _ = decode::<32>(&text);
        }
    }
}
