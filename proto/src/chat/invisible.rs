//! Characters that change how text looks without being seen: which ones a face must never show as they are.
//!
//! # The attack
//!
//! Unicode has a category of *format* characters (General Category `Cf`) that print nothing themselves but steer
//! how the characters around them are drawn. The best known is U+202E RIGHT-TO-LEFT OVERRIDE: everything after it
//! is drawn right to left, so a message `ann: hi\u{202E}olleh :bob` can end, on screen, in what looks like a second
//! line of chat from someone else, and a file name `photo\u{202E}gpj.exe` reads as `photoexe.jpg`. Its relatives
//! U+202A..U+202D (embeddings and the other override) and U+2066..U+2069 (the isolates, added in Unicode 6.3) do
//! the same more politely. Others are simply invisible: U+200B ZERO WIDTH SPACE, U+2060 WORD JOINER, U+FEFF, the
//! soft hyphen U+00AD, the tag characters U+E0020..U+E007F. Invisible characters let two different strings look the
//! same (`ann` and `a\u{200B}nn`) and smuggle text past a reader. The "Trojan Source" paper (Boucher and Anderson,
//! 2021) used exactly these to make source code read differently from what a compiler sees.
//!
//! # What chatlab does with them
//!
//! - **User names** cannot contain any: [`Username`](super::Username) allows only `[a-z0-9._-]`, and folds only
//!   ASCII upper case, so no format character can get in by folding or normalisation either.
//! - **Message text** keeps them. They are legitimate in real writing (a zero-width joiner builds 👩‍💻 from 👩 and
//!   💻; Persian needs U+200C ZERO WIDTH NON-JOINER), and a server that silently altered text would break the
//!   promise that what was sent is what is stored. Instead every *face* shows a dangerous character as a visible
//!   escape, `\u{202e}`, never as itself: the command-line client in its output, the desktop app in its chat view.
//!
//! This module is the one place that decides which characters are dangerous ([`is_dangerous`] for one character
//! without context, [`pieces`] for a whole text), so the command-line client and the desktop app always agree.
//!
//! # The rule
//!
//! A character is *dangerous* when it is
//!
//! 1. a control character (`Cc`) other than `\n`: the server refuses those in new messages, but a face must not
//!    trust that (an old database, a modified server), and a control character can drive a terminal; or
//! 2. a format character (`Cf`), unless it is part of an emoji sequence (UTS #51):
//!    - U+200D ZERO WIDTH JOINER between two emoji (optionally after the emoji's U+FE0F presentation selector),
//!      as in 👩‍💻 or 🏳️‍🌈: the joiner asks the font for one combined picture;
//!    - tag characters U+E0020..U+E007E right after an emoji and closed by U+E007F CANCEL TAG, as in the flag of
//!      Scotland 🏴󠁧󠁢󠁳󠁣󠁴󠁿.
//!
//!    Outside those sequences the same characters are as invisible as any other.
//!
//! The classification comes from the Unicode Character Database through the `unicode-properties` crate, so it
//! covers every `Cf` character of the Unicode version that crate carries, not a hand-kept list.
//!
//! **A known cost.** The zero-width non-joiner and joiner also shape Persian and several Indic scripts; there the
//! faces show an escape inside a word. Telling a legitimate joiner from a spoofing one needs the script of both
//! neighbours and still guesses; in a chat lab where anyone may pose as anyone, a visible escape in a rare word is
//! the cheaper mistake.
//!
//! Look-alike letters (a Cyrillic `а` for a Latin `a`) are a different problem, *confusables*, which this module
//! does not try to solve: user names avoid it with their ASCII alphabet, and message text is the sender's own words.

use std::borrow::Cow;
use std::fmt::Write;

use unicode_properties::{GeneralCategory, UnicodeEmoji, UnicodeGeneralCategory};

/// U+200D ZERO WIDTH JOINER.
const ZWJ: char = '\u{200D}';

/// U+FE0F VARIATION SELECTOR-16: "draw the character before me as an emoji". It may stand between an emoji and a
/// joiner (🏳️‍🌈 is U+1F3F3 U+FE0F U+200D U+1F308).
const EMOJI_PRESENTATION: char = '\u{FE0F}';

/// U+E007F CANCEL TAG, the end of an emoji tag sequence.
const CANCEL_TAG: char = '\u{E007F}';

/// Whether `ch` is dangerous wherever it stands: a control character other than `\n`, or a format character.
/// [`pieces`] refines this for the format characters that legitimately build emoji.
pub fn is_dangerous(ch: char) -> bool {
    (ch.is_control() && ch != '\n') || is_format(ch)
}

/// Whether `ch` is a format character (General Category `Cf`).
pub fn is_format(ch: char) -> bool {
    ch.general_category() == GeneralCategory::Format
}

/// One piece of a text, as a face should show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Piece<'a> {
    /// Characters to show as they are.
    Shown(&'a str),
    /// One dangerous character, to show as a visible escape ([`escape`]).
    Hidden(char),
}

/// Splits `text` into runs of characters to show as they are and the dangerous characters between them, in order.
/// Concatenating the pieces (each [`Piece::Hidden`] as its character) gives `text` back.
pub fn pieces(text: &str) -> Vec<Piece<'_>> {
    let mut out = Vec::new();
    let mut shown_from = 0;
    let mut allowed_until = 0;
    for (at, ch) in text.char_indices() {
        if at < allowed_until || !is_dangerous(ch) {
            continue;
        }
        let (inside_emoji, end) = emoji_format_run(text, at, ch);
        if inside_emoji {
            allowed_until = end;
            continue;
        }
        if shown_from < at {
            out.push(Piece::Shown(&text[shown_from..at]));
        }
        out.push(Piece::Hidden(ch));
        shown_from = at + ch.len_utf8();
    }
    if shown_from < text.len() {
        out.push(Piece::Shown(&text[shown_from..]));
    }
    out
}

/// Whether the dangerous character `ch` at byte `at` belongs to an emoji sequence, and where the part of the
/// sequence that is allowed ends (a tag sequence is judged as a whole).
fn emoji_format_run(text: &str, at: usize, ch: char) -> (bool, usize) {
    let after = at + ch.len_utf8();
    match ch {
        ZWJ => {
            let mut before = text[..at].chars().rev();
            let previous = match before.next() {
                Some(EMOJI_PRESENTATION) => before.next(),
                other => other,
            };
            let next = text[after..].chars().next();
            (previous.is_some_and(is_pictograph) && next.is_some_and(is_pictograph), after)
        }
        '\u{E0020}'..='\u{E007E}' => {
            let base = text[..at].chars().next_back();
            if !base.is_some_and(is_pictograph) {
                return (false, after);
            }
            // The whole run of tags must be closed by CANCEL TAG; an unclosed run is hidden text.
            let mut end = at;
            for tag in text[at..].chars() {
                end += tag.len_utf8();
                match tag {
                    '\u{E0020}'..='\u{E007E}' => {}
                    CANCEL_TAG => return (true, end),
                    _ => break,
                }
            }
            (false, after)
        }
        _ => (false, after),
    }
}

/// Whether `ch` is an emoji that a joiner or a tag sequence may build on. ASCII digits, `#` and `*` have the Emoji
/// property too (for keycaps such as 1️⃣), but a joiner between two digits builds nothing and hides between them.
fn is_pictograph(ch: char) -> bool {
    !ch.is_ascii() && ch.is_emoji_char()
}

/// The visible escape of one character, as Rust writes it: `\u{202e}`.
pub fn escape(ch: char) -> String {
    format!("\\u{{{:x}}}", u32::from(ch))
}

/// `text` with every dangerous character replaced by its [`escape`]; borrowed when there is none.
pub fn escape_dangerous(text: &str) -> Cow<'_, str> {
    let pieces = pieces(text);
    if !pieces.iter().any(|piece| matches!(piece, Piece::Hidden(_))) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8 * pieces.len());
    for piece in pieces {
        match piece {
            Piece::Shown(shown) => out.push_str(shown),
            // Writing to a String cannot fail.
            Piece::Hidden(ch) => drop(write!(out, "\\u{{{:x}}}", u32::from(ch))),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const WOMAN_TECHNOLOGIST: &str = "\u{1F469}\u{200D}\u{1F4BB}";
    const RAINBOW_FLAG: &str = "\u{1F3F3}\u{FE0F}\u{200D}\u{1F308}";
    const SCOTLAND: &str = "\u{1F3F4}\u{E0067}\u{E0062}\u{E0073}\u{E0063}\u{E0074}\u{E007F}";

    #[test]
    fn bidirectional_overrides_and_isolates_are_dangerous() {
        for ch in ['\u{202A}', '\u{202B}', '\u{202C}', '\u{202D}', '\u{202E}', '\u{2066}', '\u{2067}', '\u{2068}'] {
            assert!(is_dangerous(ch), "U+{:04X}", u32::from(ch));
        }
        assert!(is_dangerous('\u{2069}'));
        assert!(is_dangerous('\u{200E}') && is_dangerous('\u{200F}'), "the directional marks");
    }

    #[test]
    fn invisible_format_characters_are_dangerous() {
        for ch in ['\u{200B}', '\u{200C}', '\u{200D}', '\u{2060}', '\u{FEFF}', '\u{AD}', '\u{E0001}', '\u{E0041}'] {
            assert!(is_dangerous(ch), "U+{:04X}", u32::from(ch));
        }
    }

    #[test]
    fn controls_other_than_newline_are_dangerous() {
        assert!(is_dangerous('\u{1b}') && is_dangerous('\u{7f}') && is_dangerous('\u{85}') && is_dangerous('\t'));
        assert!(!is_dangerous('\n'));
    }

    #[test]
    fn ordinary_writing_is_not_dangerous() {
        for text in ["hello", "你好，世界", "שלום", "مرحبا", "café", "1️⃣", "e\u{301}"] {
            assert_eq!(pieces(text), [Piece::Shown(text)], "{text}");
        }
    }

    #[test]
    fn a_right_to_left_override_is_cut_out_and_escaped() {
        let text = "hi\u{202E}olleh :bob";
        assert_eq!(pieces(text), [Piece::Shown("hi"), Piece::Hidden('\u{202E}'), Piece::Shown("olleh :bob")]);
        assert_eq!(escape_dangerous(text), "hi\\u{202e}olleh :bob");
        assert_eq!(escape('\u{2066}'), "\\u{2066}");
    }

    #[test]
    fn dangerous_characters_at_the_edges_and_in_a_row() {
        assert_eq!(
            pieces("\u{2067}\u{2069}x\u{200B}"),
            [Piece::Hidden('\u{2067}'), Piece::Hidden('\u{2069}'), Piece::Shown("x"), Piece::Hidden('\u{200B}')]
        );
        assert_eq!(pieces(""), []);
    }

    #[test]
    fn joiners_inside_emoji_sequences_stay() {
        for emoji in [WOMAN_TECHNOLOGIST, RAINBOW_FLAG, SCOTLAND, "\u{1F468}\u{1F3FD}\u{200D}\u{1F680}"] {
            let text = format!("look {emoji}!");
            assert_eq!(pieces(&text), [Piece::Shown(&text)], "{emoji}");
            assert!(matches!(escape_dangerous(&text), Cow::Borrowed(_)));
        }
    }

    #[test]
    fn joiners_outside_emoji_are_escaped() {
        // Between letters, at either end, after an emoji but before a letter, between two digits.
        for text in ["a\u{200D}b", "\u{200D}\u{1F4BB}", "\u{1F469}\u{200D}", "\u{1F469}\u{200D}x", "1\u{200D}2"] {
            assert!(pieces(text).contains(&Piece::Hidden(ZWJ)), "{text:?}");
        }
    }

    #[test]
    fn tag_characters_outside_a_closed_emoji_tag_sequence_are_escaped() {
        // Tags hiding text after a letter; a tag run after an emoji that is never closed; a lone cancel tag.
        let hidden_text = "ok\u{E0068}\u{E0069}";
        assert_eq!(pieces(hidden_text), [Piece::Shown("ok"), Piece::Hidden('\u{E0068}'), Piece::Hidden('\u{E0069}')]);
        let unclosed = "\u{1F3F4}\u{E0067}\u{E0062}";
        assert_eq!(pieces(unclosed).iter().filter(|piece| matches!(piece, Piece::Hidden(_))).count(), 2);
        assert_eq!(pieces("x\u{E007F}"), [Piece::Shown("x"), Piece::Hidden(CANCEL_TAG)]);
    }

    proptest! {
        #[test]
        fn the_pieces_give_the_text_back(text in any::<String>()) {
            let mut joined = String::new();
            for piece in pieces(&text) {
                match piece {
                    Piece::Shown(shown) => {
                        prop_assert!(!shown.is_empty());
                        joined.push_str(shown);
                    }
                    Piece::Hidden(ch) => {
                        prop_assert!(is_dangerous(ch));
                        joined.push(ch);
                    }
                }
            }
            prop_assert_eq!(joined, text);
        }

        #[test]
        fn escaped_text_holds_no_bidirectional_control(text in any::<String>()) {
            let escaped = escape_dangerous(&text);
            let bidi = escaped.chars().any(|ch| matches!(ch, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'));
            let control = escaped.chars().any(|ch| ch.is_control() && ch != '\n');
            prop_assert!(!bidi && !control, "{:?}", escaped);
        }
    }
}
