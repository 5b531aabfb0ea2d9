//! Chat vocabulary shared by both transports: user names, conversation targets, message text and the message
//! itself.
//!
//! These types know nothing about TCP, UDP, frames or encryption. The control channel ([`crate::control`]) and the
//! datagram engine both carry them, so a message looks the same whichever way it travelled, and the rules that make
//! a name or a text acceptable live in exactly one place:
//!
//! - [`username`]: [`Username`], case-folded `[a-z0-9._-]{1,32}`, validated even when deserialized.
//! - [`text`]: [`validate_text`], the byte limit and the ban on control characters, plus [`normalize_text`] for
//!   clients.
//! - [`invisible`]: which characters (bidirectional overrides, invisible format characters) a face must show as a
//!   visible escape rather than as themselves, so no message can reverse a line or pose as another user.
//! - [`message`]: [`ChatMessage`] with its server-assigned id and timestamp, and [`Target`], which names both where
//!   a message goes and which conversation it belongs to.
//! - [`payload`]: [`ChatPayload`], what a reliable datagram message means, and [`streams`], which engine stream
//!   each conversation uses.

pub mod invisible;
pub mod message;
pub mod payload;
pub mod streams;
pub mod text;
pub mod username;

pub use invisible::{Piece, escape_dangerous, is_dangerous};
pub use message::{ChatMessage, Target};
pub use payload::ChatPayload;
pub use streams::{StreamMap, WORLD_STREAM};
pub use text::{TAB_SPACES, TextError, normalize_text, validate_text, validate_text_with_limit};
pub use username::{NameError, Username, WORLD_NAME};
