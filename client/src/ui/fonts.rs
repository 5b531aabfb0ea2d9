//! Chinese text on every machine: an embedded font, registered as a fallback of every egui font family.
//!
//! egui draws text itself, from font files it is given; it does not ask the operating system. Its built-in fonts
//! cover Latin, Greek, Cyrillic and some symbols, so Chinese would show as empty boxes ("tofu"). A lab computer may
//! have no Chinese font installed at all, so the app carries one: a subset of Noto Sans CJK SC with every
//! character of GB2312 (see `client/assets/fonts/README.md` for how it was made, and `OFL.txt` for its licence).
//!
//! **Fallback, not replacement.** egui looks a character up in each font of a family's list in turn and uses the
//! first that has it. Appending the CJK font to the end of every family keeps egui's own fonts for Latin text and
//! its monospace look, and sends only what they lack (Chinese, full-width punctuation) to the CJK font. Adding it
//! to *every* family, not only the proportional one, matters: a message shown in monospace or a custom family
//! would otherwise still show tofu.

use std::sync::Arc;

use egui::{FontData, FontDefinitions};

/// The name the font is registered under.
pub const CJK_FONT_NAME: &str = "noto-sans-sc-gb2312-subset";

/// The font file, compiled into the binary so the app needs no installation step.
pub static CJK_FONT: &[u8] = include_bytes!("../../assets/fonts/NotoSansSC-GB2312-subset.otf");

/// egui's default fonts with the CJK font appended to every family.
pub fn font_definitions() -> FontDefinitions {
    let mut fonts = FontDefinitions::default();
    fonts.font_data.insert(CJK_FONT_NAME.to_owned(), Arc::new(FontData::from_static(CJK_FONT)));
    for family in fonts.families.values_mut() {
        family.push(CJK_FONT_NAME.to_owned());
    }
    fonts
}

/// Installs [`font_definitions`] into `ctx`.
pub fn install(ctx: &egui::Context) {
    ctx.set_fonts(font_definitions());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_falls_back_to_the_cjk_font_last() {
        let fonts = font_definitions();
        assert!(!fonts.families.is_empty());
        for (family, names) in &fonts.families {
            assert_eq!(names.last().map(String::as_str), Some(CJK_FONT_NAME), "{family:?}");
            assert!(names.len() > 1, "egui's own fonts stay first in {family:?}");
        }
    }

    #[test]
    fn embedded_font_is_an_opentype_cff_file() {
        // OpenType fonts with PostScript (CFF) outlines start with the tag "OTTO".
        assert_eq!(CJK_FONT.get(..4), Some(&b"OTTO"[..]));
    }
}
