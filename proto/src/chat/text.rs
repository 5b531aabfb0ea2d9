//! Rules for the text of a chat message.
//!
//! A chat text is UTF-8 (Rust's `String` already guarantees that, and the MessagePack decoder refuses invalid UTF-8
//! before a `String` exists). On top of that chatlab asks three things, checked by [`validate_text`]:
//!
//! 1. **Not empty.** An empty message is a client bug, not something to store and fan out.
//! 2. **At most [`MAX_TEXT_BYTES`] bytes.** The limit is in *bytes* because bytes are what cost memory, disk and
//!    datagram fragments; 4096 bytes are 4096 ASCII letters or about 1 365 Chinese characters (3 bytes each). A
//!    longer text is *rejected*, never silently cut: cutting could split a character or drop the end of a sentence
//!    the sender believes was delivered.
//! 3. **No control characters except `\n`.** Control characters (Unicode category Cc: U+0000–U+001F, U+007F and
//!    U+0080–U+009F) can move a terminal's cursor, ring bells, recolour or clear the screen of whoever runs
//!    `chatlab-cli listen`, and hide text in logs. Newline is the one a chat needs.
//!
//! **Line endings.** `\r` is a control character and is rejected, so `\r\n` is rejected too. Keeping a single line
//! ending on the wire means the same text always has the same bytes (history search, de-duplication and tests do not
//! need to care about the sender's operating system). Clients turn whatever the user typed or pasted into the wire
//! form with [`normalize_text`], which converts `\r\n` and lone `\r` to `\n` and expands tabs, before validating.

use thiserror::Error;

use crate::limits::MAX_TEXT_BYTES;

/// Spaces a tab becomes in [`normalize_text`]. Four is the width most editors and chat apps use; a tab itself is a
/// control character and cannot travel.
pub const TAB_SPACES: usize = 4;

/// Why a text cannot be sent as a chat message.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TextError {
    /// The text has no characters.
    #[error("message text is empty")]
    Empty,
    /// The text is longer than the limit, in bytes of UTF-8.
    #[error("message text is {len} bytes of UTF-8, at most {max} are allowed")]
    TooLong {
        /// Bytes in the offered text.
        len: usize,
        /// The limit that applied.
        max: usize,
    },
    /// The text contains a control character other than `\n`.
    #[error("message text contains control character U+{:04X} at position {position}", u32::from(*ch))]
    ControlChar {
        /// The offending character.
        ch: char,
        /// Zero-based index of that character, counted in characters, not bytes.
        position: usize,
    },
}

/// Checks `text` against the rules in the module docs with the protocol's limit, [`MAX_TEXT_BYTES`].
pub fn validate_text(text: &str) -> Result<(), TextError> {
    validate_text_with_limit(text, MAX_TEXT_BYTES)
}

/// Checks `text` with a byte limit of `max_bytes`.
///
/// A server may be configured with a lower limit than [`MAX_TEXT_BYTES`] and announces it in the session grant; the
/// client then validates against the announced figure with this function.
pub fn validate_text_with_limit(text: &str, max_bytes: usize) -> Result<(), TextError> {
    if text.is_empty() {
        return Err(TextError::Empty);
    }
    if text.len() > max_bytes {
        return Err(TextError::TooLong { len: text.len(), max: max_bytes });
    }
    match text.chars().enumerate().find(|&(_, ch)| ch.is_control() && ch != '\n') {
        Some((position, ch)) => Err(TextError::ControlChar { ch, position }),
        None => Ok(()),
    }
}

/// Brings typed or pasted text into wire form: `\r\n` and lone `\r` become `\n`, and each tab becomes
/// [`TAB_SPACES`] spaces. Other control characters are left in place so that [`validate_text`] can name them.
pub fn normalize_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(ch) = chars.next() {
        match ch {
            '\r' => {
                // A following '\n' belongs to the same line ending: consume it so "\r\n" yields one newline.
                chars.next_if_eq(&'\n');
                out.push('\n');
            }
            '\t' => out.extend(std::iter::repeat_n(' ', TAB_SPACES)),
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_ordinary_text_with_newlines() {
        assert_eq!(validate_text("hello\nworld"), Ok(()));
        assert_eq!(validate_text("你好，世界"), Ok(()));
    }

    #[test]
    fn rejects_empty() {
        assert_eq!(validate_text(""), Err(TextError::Empty));
    }

    #[test]
    fn limit_is_in_bytes_and_inclusive() {
        assert_eq!(validate_text(&"a".repeat(MAX_TEXT_BYTES)), Ok(()));
        assert_eq!(
            validate_text(&"a".repeat(MAX_TEXT_BYTES + 1)),
            Err(TextError::TooLong { len: MAX_TEXT_BYTES + 1, max: MAX_TEXT_BYTES })
        );
        // 1366 Chinese characters are 4098 bytes: too long although far fewer than 4096 characters.
        assert_eq!(validate_text(&"中".repeat(1366)), Err(TextError::TooLong { len: 4098, max: MAX_TEXT_BYTES }));
    }

    #[test]
    fn custom_limit_applies() {
        assert_eq!(validate_text_with_limit("abcd", 3), Err(TextError::TooLong { len: 4, max: 3 }));
        assert_eq!(validate_text_with_limit("abc", 3), Ok(()));
    }

    #[test]
    fn control_char_is_named_with_its_character_position() {
        assert_eq!(validate_text("中文\u{1b}[2J"), Err(TextError::ControlChar { ch: '\u{1b}', position: 2 }));
    }

    #[test]
    fn carriage_return_and_tab_are_rejected() {
        assert_eq!(validate_text("a\r\nb"), Err(TextError::ControlChar { ch: '\r', position: 1 }));
        assert_eq!(validate_text("\tx"), Err(TextError::ControlChar { ch: '\t', position: 0 }));
    }

    #[test]
    fn c1_controls_and_delete_are_rejected() {
        assert!(matches!(validate_text("a\u{7f}"), Err(TextError::ControlChar { ch: '\u{7f}', .. })));
        assert!(matches!(validate_text("a\u{85}"), Err(TextError::ControlChar { ch: '\u{85}', .. })));
    }

    #[test]
    fn error_message_shows_code_point() {
        let err = validate_text("a\u{7}").expect_err("bell is a control character");
        assert_eq!(err.to_string(), "message text contains control character U+0007 at position 1");
    }

    #[test]
    fn normalize_converts_line_endings_and_tabs() {
        assert_eq!(normalize_text("a\r\nb\rc\nd"), "a\nb\nc\nd");
        assert_eq!(normalize_text("\r\r\n"), "\n\n");
        assert_eq!(normalize_text("x\ty"), "x    y");
        assert_eq!(normalize_text("keep\u{1b}"), "keep\u{1b}");
    }

    proptest! {
        #[test]
        fn arbitrary_strings_never_panic(text in any::<String>()) {
            let _ = validate_text(&text);
            let _ = validate_text_with_limit(&text, 8);
        }

        #[test]
        fn normalized_text_has_no_cr_or_tab(text in any::<String>()) {
            let normal = normalize_text(&text);
            prop_assert!(!normal.contains('\r'));
            prop_assert!(!normal.contains('\t'));
        }
    }
}
