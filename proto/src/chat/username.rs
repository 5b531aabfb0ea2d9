//! User names: who a message is from and who it is for.
//!
//! A user name is an identifier first and a display label second, so it follows the rules of identifiers: a small
//! alphabet (`a`–`z`, `0`–`9`, `.`, `_`, `-`), 1 to [`MAX_USERNAME_CHARS`] characters, and *case-folded*: `Alice`
//! and `alice` are the same account. Folding at the edge means every comparison, database key and hash-map lookup
//! further in can compare bytes; the original Python chat room compared raw strings and let `Alice` and `alice`
//! register twice and impersonate each other.
//!
//! Why so strict an alphabet? Names appear in terminals, file names, log lines and the command line of
//! `chatlab-cli send TARGET TEXT`. No spaces, no quotes, no look-alike Unicode letters (a Cyrillic `а` looks exactly
//! like a Latin `a`) means a name printed anywhere is the name stored.
//!
//! One name is reserved: [`WORLD_NAME`], the word the CLI and the desktop app use for the world room. Refusing it as
//! an account name keeps `send world hello` unambiguous.
//!
//! Deserializing a [`Username`] runs the same checks as [`Username::parse`], so a name that arrived over the wire is
//! as trustworthy as one typed into the client.

use std::borrow::Borrow;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use thiserror::Error;

use crate::limits::MAX_USERNAME_CHARS;

/// The word that names the world room wherever a person types a conversation target, and therefore the one name no
/// account may take.
pub const WORLD_NAME: &str = "world";

/// Why a string is not a valid user name.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NameError {
    /// The name has no characters.
    #[error("user name is empty")]
    Empty,
    /// The name has more characters than [`MAX_USERNAME_CHARS`].
    #[error("user name has {chars} characters, at most {max} are allowed")]
    TooLong {
        /// Characters in the offered name.
        chars: usize,
        /// The limit, [`MAX_USERNAME_CHARS`].
        max: usize,
    },
    /// The name contains a character outside `[a-z0-9._-]` (after ASCII upper case was folded to lower case).
    #[error("user name contains {ch:?} at position {position}; allowed are a-z, 0-9, '.', '_' and '-'")]
    BadChar {
        /// The offending character, as it was offered.
        ch: char,
        /// Zero-based index of that character, counted in characters, not bytes.
        position: usize,
    },
    /// The name is reserved for the world room.
    #[error("user name {WORLD_NAME:?} is reserved for the world room")]
    Reserved,
}

/// A validated, case-folded user name.
///
/// The only ways to get one are [`Username::parse`] (and the `FromStr`/`TryFrom` impls and deserialization that call
/// it), so holding a `Username` proves the checks ran.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Username(String);

impl Username {
    /// Validates `raw` and returns it case-folded.
    ///
    /// ASCII upper-case letters become lower case; everything else must already be in `[a-z0-9._-]`. Non-ASCII
    /// letters are refused rather than folded: Unicode case folding depends on the locale (Turkish dotless i) and
    /// would make two different byte strings the same account.
    pub fn parse(raw: &str) -> Result<Username, NameError> {
        if raw.is_empty() {
            return Err(NameError::Empty);
        }
        let chars = raw.chars().count();
        if chars > MAX_USERNAME_CHARS {
            return Err(NameError::TooLong { chars, max: MAX_USERNAME_CHARS });
        }
        let mut folded = String::with_capacity(raw.len());
        for (position, ch) in raw.chars().enumerate() {
            let lower = ch.to_ascii_lowercase();
            if !is_name_char(lower) {
                return Err(NameError::BadChar { ch, position });
            }
            folded.push(lower);
        }
        if folded == WORLD_NAME {
            return Err(NameError::Reserved);
        }
        Ok(Username(folded))
    }

    /// The canonical (folded) name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Gives back the canonical name as an owned string.
    pub fn into_string(self) -> String {
        self.0
    }
}

/// Whether `ch` belongs to the user-name alphabet `[a-z0-9._-]`.
fn is_name_char(ch: char) -> bool {
    ch.is_ascii_lowercase() || ch.is_ascii_digit() || matches!(ch, '.' | '_' | '-')
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for Username {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// Lets a `HashMap<Username, _>` be looked up with a `&str`. Sound because `Username` derives `Hash`, `Eq` and
/// `Ord` from its inner `String`, exactly as `str` does.
impl Borrow<str> for Username {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl FromStr for Username {
    type Err = NameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Username::parse(s)
    }
}

impl TryFrom<&str> for Username {
    type Error = NameError;

    fn try_from(value: &str) -> Result<Self, Self::Error> {
        Username::parse(value)
    }
}

impl TryFrom<String> for Username {
    type Error = NameError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Username::parse(&value)
    }
}

impl Serialize for Username {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Username {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        Username::parse(&raw).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_the_whole_alphabet() {
        let name = Username::parse("a.b_c-9").expect("valid name");
        assert_eq!(name.as_str(), "a.b_c-9");
    }

    #[test]
    fn folds_ascii_upper_case() {
        let name = Username::parse("Alice_01").expect("valid name");
        assert_eq!(name.as_str(), "alice_01");
        assert_eq!(name, Username::parse("ALICE_01").expect("valid name"));
    }

    #[test]
    fn rejects_empty() {
        assert_eq!(Username::parse(""), Err(NameError::Empty));
    }

    #[test]
    fn accepts_exactly_the_maximum_length() {
        let name = "a".repeat(MAX_USERNAME_CHARS);
        assert!(Username::parse(&name).is_ok());
    }

    #[test]
    fn rejects_one_character_too_many() {
        let name = "a".repeat(MAX_USERNAME_CHARS + 1);
        assert_eq!(
            Username::parse(&name),
            Err(NameError::TooLong { chars: MAX_USERNAME_CHARS + 1, max: MAX_USERNAME_CHARS })
        );
    }

    #[test]
    fn length_counts_characters_not_bytes() {
        // 20 two-byte characters are 40 bytes but only 20 characters: the length check passes and the alphabet
        // check names the first one.
        let name = "é".repeat(20);
        assert_eq!(Username::parse(&name), Err(NameError::BadChar { ch: 'é', position: 0 }));
    }

    #[test]
    fn bad_char_reports_character_and_position() {
        assert_eq!(Username::parse("bob smith"), Err(NameError::BadChar { ch: ' ', position: 3 }));
        // The position counts characters: the Cyrillic 'а' is two bytes but one character.
        assert_eq!(Username::parse("xа"), Err(NameError::BadChar { ch: 'а', position: 1 }));
    }

    #[test]
    fn world_is_reserved_in_any_case() {
        assert_eq!(Username::parse("world"), Err(NameError::Reserved));
        assert_eq!(Username::parse("World"), Err(NameError::Reserved));
        assert!(Username::parse("world2").is_ok());
    }

    #[test]
    fn error_messages_are_readable() {
        let err = Username::parse("a b").expect_err("space is not allowed");
        assert_eq!(err.to_string(), "user name contains ' ' at position 1; allowed are a-z, 0-9, '.', '_' and '-'");
    }

    #[test]
    fn conversions_agree_with_parse() {
        assert_eq!("Bob".parse::<Username>(), Username::parse("bob"));
        assert_eq!(Username::try_from("bob"), Username::parse("bob"));
        assert_eq!(Username::try_from(String::from("")), Err(NameError::Empty));
        let name = Username::parse("bob").expect("valid name");
        assert_eq!(name.to_string(), "bob");
        assert_eq!(AsRef::<str>::as_ref(&name), "bob");
        assert_eq!(name.into_string(), "bob");
    }

    #[test]
    fn serializes_as_a_plain_string() {
        let name = Username::parse("bob").expect("valid name");
        let bytes = rmp_serde::to_vec(&name).expect("encode");
        assert_eq!(bytes, [0xa3, b'b', b'o', b'b']);
        let back: Username = rmp_serde::from_slice(&bytes).expect("decode");
        assert_eq!(back, name);
    }

    #[test]
    fn deserializing_an_invalid_name_fails() {
        let bytes = rmp_serde::to_vec("no spaces").expect("encode");
        assert!(rmp_serde::from_slice::<Username>(&bytes).is_err());
        let bytes = rmp_serde::to_vec("").expect("encode");
        assert!(rmp_serde::from_slice::<Username>(&bytes).is_err());
    }

    /// Regression guard for the spoofing attack of issue 9: a right-to-left override or an invisible character in a
    /// name would let `ann\u{202E}` or `a\u{200B}nn` pose as `ann` in every face. The alphabet is ASCII only and
    /// folding touches ASCII only, so no format character gets in, not even through a character whose Unicode lower
    /// case is ASCII (the Kelvin sign U+212A folds to `k` under Unicode rules, not under ASCII rules).
    #[test]
    fn a_user_name_cannot_hide_a_bidirectional_override_or_an_invisible_character() {
        for hidden in ['\u{202E}', '\u{202D}', '\u{2066}', '\u{2067}', '\u{2068}', '\u{2069}', '\u{200B}', '\u{200D}'] {
            for raw in [format!("ann{hidden}"), format!("{hidden}ann"), format!("a{hidden}nn")] {
                let err = Username::parse(&raw).expect_err("a format character is refused");
                assert!(matches!(err, NameError::BadChar { ch, .. } if ch == hidden), "{raw:?}: {err}");
                let bytes = rmp_serde::to_vec(&raw).expect("encode");
                assert!(rmp_serde::from_slice::<Username>(&bytes).is_err(), "{raw:?} arrived over the wire");
            }
        }
        for raw in ["\u{FEFF}ann", "an\u{AD}n", "ann\u{E0041}", "\u{212A}ate", "ann\u{0130}"] {
            assert!(Username::parse(raw).is_err(), "{raw:?}");
        }
    }

    /// Every format character (General Category Cf) of the Unicode version the classifier knows.
    fn every_format_character() -> Vec<char> {
        (0..=0x10FFFF).filter_map(char::from_u32).filter(|ch| crate::chat::invisible::is_format(*ch)).collect()
    }

    proptest! {
        #[test]
        fn valid_names_round_trip(raw in "[a-zA-Z0-9._-]{1,32}") {
            prop_assume!(!raw.eq_ignore_ascii_case(WORLD_NAME));
            let name = Username::parse(&raw).expect("generated from the alphabet");
            prop_assert_eq!(name.as_str(), raw.to_ascii_lowercase());
            let bytes = rmp_serde::to_vec(&name).expect("encode");
            let back: Username = rmp_serde::from_slice(&bytes).expect("decode");
            prop_assert_eq!(back, name);
        }

        #[test]
        fn a_format_character_anywhere_in_a_name_is_refused(
            before in "[a-z0-9]{0,15}",
            after in "[a-z0-9]{0,15}",
            hidden in prop::sample::select(every_format_character()),
        ) {
            let raw = format!("{before}{hidden}{after}");
            prop_assert!(Username::parse(&raw).is_err(), "{:?} was accepted", raw);
        }

        #[test]
        fn arbitrary_strings_never_panic(raw in any::<String>()) {
            if let Ok(name) = Username::parse(&raw) {
                prop_assert!(!name.as_str().chars().any(crate::chat::invisible::is_dangerous));
                // Whatever was accepted is canonical: parsing it again changes nothing.
                prop_assert_eq!(Username::parse(name.as_str()), Ok(name.clone()));
            }
        }
    }
}
