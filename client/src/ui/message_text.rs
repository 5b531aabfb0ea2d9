//! A message's text as the window draws it: dangerous characters neutralised, emoji intact.
//!
//! A message may carry a bidirectional override (U+202E), an isolate (U+2066..U+2069) or an invisible format
//! character (U+200B, U+2060, U+FEFF...). The server keeps them, because they belong to the text that was sent
//! (`chatlab_proto::chat::invisible` explains why); a face must make sure none of them can reverse a line, hide part
//! of it, or make `a\u{200B}nn` look like `ann`.
//!
//! # Why a visible escape, not an isolate
//!
//! The textbook defence in a bidi-aware renderer is to wrap each message in U+2068 FIRST STRONG ISOLATE ..
//! U+2069 POP DIRECTIONAL ISOLATE, so that whatever a message does to direction ends with the message. That does
//! not fit here, for three reasons:
//!
//! - egui does not implement the Unicode Bidirectional Algorithm: it lays text out in logical order, left to right.
//!   An isolate would change nothing in this window, and an override does not reverse anything in it either.
//! - The real danger in this window is the *invisible* characters: an isolate does not make a zero-width space
//!   visible, so `a\u{200B}nn` would still pass for `ann`.
//! - Text leaves the window: the label is selectable, and a copied line pasted into a terminal or a bidi-aware
//!   editor would carry the raw override with it.
//!
//! So the window does what the command-line client does, with the same rule (one shared classifier): each dangerous
//! character is shown as its escape `\u{202e}`, drawn as code (monospace on a shaded background) so a reader sees
//! that something hidden was there and that it is not part of the words. Copying the message copies the escape.
//! Zero-width joiners and tag characters that build an emoji (👩‍💻, the flag of Scotland) are not dangerous and
//! stay as they are, so the emoji still shows as one picture.

use chatlab_proto::chat::Piece;
use chatlab_proto::chat::invisible::{escape, pieces};
use egui::text::LayoutJob;
use egui::{Align, FontSelection, RichText, Style};

/// The layout of `text` for a message label: shown pieces in the label's normal style, each dangerous character as
/// its escape in the code style.
pub(super) fn message_layout(text: &str, style: &Style) -> LayoutJob {
    let mut job = LayoutJob::default();
    for piece in pieces(text) {
        let rich = match piece {
            Piece::Shown(shown) => RichText::new(shown),
            Piece::Hidden(ch) => RichText::new(escape(ch)).code(),
        };
        rich.append_to(&mut job, style, FontSelection::Default, Align::Center);
    }
    job
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_override_becomes_a_visible_escape_in_its_own_section() {
        let job = message_layout("hi\u{202E}olleh", &Style::default());
        assert_eq!(job.text, "hi\\u{202e}olleh");
        assert_eq!(job.sections.len(), 3);
        assert_ne!(job.sections[1].format, job.sections[0].format, "the escape is drawn unlike the words around it");
        assert_eq!(job.sections[0].format, job.sections[2].format);
    }

    #[test]
    fn an_emoji_joined_by_a_zero_width_joiner_stays_one_piece() {
        let emoji = "\u{1F469}\u{200D}\u{1F4BB}";
        let job = message_layout(emoji, &Style::default());
        assert_eq!((job.text.as_str(), job.sections.len()), (emoji, 1));
    }
}
