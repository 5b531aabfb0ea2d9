//! What `chatlab-cli` prints: one JSON object per line with `--json`, readable lines otherwise.
//!
//! The JSON form is for scripts and graders, so its fields are fixed: every message has `id`, `from`, `to` (`world`
//! or a user name), `text` and `sent_at` (RFC 3339, UTC, milliseconds), plus `sent_at_ms` as the server sent it.
//! One object per line ("JSON Lines") lets a script read messages as they arrive without waiting for a closing
//! bracket.
//!
//! The readable form is for people at a terminal: `[2026-11-27 10:04:05] ann → world: hello`. Text from the network
//! is untrusted even after the server checked it: a control character could move the cursor or recolour the
//! terminal, and a bidirectional override (U+202E) or an invisible format character could reverse the rest of the
//! line or make it pose as a line from someone else. Every such character (the one rule in
//! `chatlab_proto::chat::invisible`, shared with the desktop app) is printed as a visible escape, `\u{202e}`, and the
//! lines of a multi-line message are indented under the first.
//!
//! **JSON keeps the real text.** A script must get exactly what was sent, so `text` is not rewritten; but a JSON line
//! is also read by people in a terminal, where a raw U+202E would reverse it just the same. The line therefore
//! writes each dangerous character as a JSON escape (`"hi\u202eolleh"`, a surrogate pair beyond the first plane):
//! valid JSON that every parser decodes back to the very character, while the terminal shows only ASCII. (JSON
//! encoders escape only `"`, `\` and U+0000..U+001F by themselves; U+202E would otherwise go out as it is.)

use std::fmt::Write as _;
use std::io::Write;

use serde_json::{Value, json};

use chatlab_client::timefmt::{readable_utc, rfc3339_utc};
use chatlab_client::{Accepted, ChatMessage, MessageSource, Transport, Username};
use chatlab_proto::chat::{Piece, escape_dangerous, invisible};

/// Indentation of the continuation lines of a multi-line message in readable output.
const CONTINUATION_INDENT: &str = "    ";

/// Writes lines to standard output; stops quietly once the reader has gone (`chatlab-cli listen | head -1`).
pub struct Output {
    json: bool,
    closed: bool,
}

impl Output {
    pub fn new(json: bool) -> Output {
        Output { json, closed: false }
    }

    pub fn json(&self) -> bool {
        self.json
    }

    /// Prints one line; false once standard output is closed.
    pub fn line(&mut self, line: &str) -> bool {
        if self.closed {
            return false;
        }
        let mut stdout = std::io::stdout().lock();
        if writeln!(stdout, "{line}").and_then(|()| stdout.flush()).is_err() {
            self.closed = true;
        }
        !self.closed
    }

    pub fn message(&mut self, message: &ChatMessage, source: Option<MessageSource>) -> bool {
        let line = match self.json {
            true => json_line(&message_json(message, source)),
            false => message_line(message),
        };
        self.line(&line)
    }

    pub fn accepted(&mut self, accepted: &Accepted) -> bool {
        let line = match self.json {
            true => accepted_json(accepted).to_string(),
            false => accepted_line(accepted),
        };
        self.line(&line)
    }

    pub fn user(&mut self, user: &Username) -> bool {
        let line = match self.json {
            true => json!({ "user": user.as_str() }).to_string(),
            false => user.to_string(),
        };
        self.line(&line)
    }

    pub fn registered(&mut self, user: &Username) -> bool {
        let line = match self.json {
            true => json!({ "registered": user.as_str() }).to_string(),
            false => format!("registered {user}"),
        };
        self.line(&line)
    }
}

/// A message as one JSON object.
pub fn message_json(message: &ChatMessage, source: Option<MessageSource>) -> Value {
    let mut value = json!({
        "id": message.id,
        "from": message.from.as_str(),
        "to": message.to.to_string(),
        "text": message.text,
        "sent_at": rfc3339_utc(message.sent_at_ms),
        "sent_at_ms": message.sent_at_ms,
    });
    if let (Some(source), Some(object)) = (source, value.as_object_mut()) {
        let source = match source {
            MessageSource::Live => "live",
            MessageSource::Sync => "sync",
        };
        object.insert("source".to_string(), Value::from(source));
    }
    value
}

/// A message as a readable line (more lines for a multi-line text).
pub fn message_line(message: &ChatMessage) -> String {
    let text = sanitize(&message.text).replace('\n', &format!("\n{CONTINUATION_INDENT}"));
    format!("[{}] {} → {}: {}", readable_utc(message.sent_at_ms), message.from, message.to, text)
}

/// The server's acceptance of a sent message as one JSON object.
pub fn accepted_json(accepted: &Accepted) -> Value {
    json!({
        "id": accepted.id,
        "client_msg_id": accepted.client_msg_id,
        "to": accepted.to.to_string(),
        "sent_at": rfc3339_utc(accepted.sent_at_ms),
        "sent_at_ms": accepted.sent_at_ms,
        "transport": transport_name(accepted.transport),
    })
}

/// The acceptance as a readable line.
pub fn accepted_line(accepted: &Accepted) -> String {
    format!(
        "[{}] sent to {} as message {} (over {})",
        readable_utc(accepted.sent_at_ms),
        accepted.to,
        accepted.id,
        transport_name(accepted.transport)
    )
}

pub fn transport_name(transport: Transport) -> &'static str {
    match transport {
        Transport::Udp => "udp",
        Transport::Tcp => "tcp",
    }
}

/// The text with every dangerous character (a control character other than newline, a bidirectional override, an
/// invisible format character outside an emoji) written as a visible escape, `\u{202e}`.
pub fn sanitize(text: &str) -> String {
    escape_dangerous(text).into_owned()
}

/// `value` as one line of JSON in which every dangerous character is written as a JSON `\uXXXX` escape (see the
/// module docs): the decoded text is unchanged, the line on a terminal is harmless.
///
/// Dangerous characters can only stand inside JSON strings (the structure is ASCII), so escaping them in the
/// serialised line is escaping them inside their strings.
pub fn json_line(value: &Value) -> String {
    let line = value.to_string();
    let pieces = invisible::pieces(&line);
    if pieces.len() == 1 {
        return line;
    }
    let mut out = String::with_capacity(line.len() + 12 * pieces.len());
    for piece in pieces {
        match piece {
            Piece::Shown(shown) => out.push_str(shown),
            Piece::Hidden(ch) => {
                for unit in ch.encode_utf16(&mut [0; 2]) {
                    // Writing to a String cannot fail.
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chatlab_client::Target;

    fn name(raw: &str) -> Username {
        Username::parse(raw).expect("valid")
    }

    fn message(to: Target, text: &str) -> ChatMessage {
        ChatMessage { id: 42, from: name("ann"), to, text: text.to_string(), sent_at_ms: 1_795_773_845_123 }
    }

    #[test]
    fn json_has_the_fixed_fields() {
        let value = message_json(&message(Target::World, "hello"), None);
        assert_eq!(
            value,
            json!({
                "id": 42, "from": "ann", "to": "world", "text": "hello",
                "sent_at": "2026-11-27T10:04:05.123Z", "sent_at_ms": 1_795_773_845_123i64,
            })
        );
        let private = message_json(&message(Target::User(name("bob")), "hi\n\"bob\""), Some(MessageSource::Sync));
        assert_eq!(private["to"], "bob");
        assert_eq!(private["source"], "sync");
        let line = private.to_string();
        assert!(!line.contains('\n'), "one object per line: {line}");
        let back: Value = serde_json::from_str(&line).expect("valid JSON");
        assert_eq!(back["text"], "hi\n\"bob\"");
    }

    #[test]
    fn readable_lines() {
        assert_eq!(message_line(&message(Target::World, "hello")), "[2026-11-27 10:04:05] ann → world: hello");
        assert_eq!(
            message_line(&message(Target::User(name("bob")), "two\nlines")),
            "[2026-11-27 10:04:05] ann → bob: two\n    lines"
        );
    }

    #[test]
    fn a_right_to_left_override_is_shown_escaped_in_readable_output() {
        let line = message_line(&message(Target::World, "hi\u{202E}olleh :bob\u{2066}x\u{200B}"));
        assert!(line.ends_with("ann → world: hi\\u{202e}olleh :bob\\u{2066}x\\u{200b}"), "{line}");
        assert!(!line.contains('\u{202E}') && !line.contains('\u{2066}') && !line.contains('\u{200B}'), "{line}");
        let emoji = message_line(&message(Target::World, "\u{1F469}\u{200D}\u{1F4BB}"));
        assert!(emoji.ends_with(": \u{1F469}\u{200D}\u{1F4BB}"), "a joiner inside an emoji stays: {emoji}");
    }

    #[test]
    fn json_keeps_the_real_text_with_dangerous_characters_as_json_escapes() {
        let text = "hi\u{202E}olleh \u{1F469}\u{200D}\u{1F4BB} \u{E0041}\u{7f}";
        let line = json_line(&message_json(&message(Target::World, text), None));
        let expected = format!(r#""text":"hi\u202eolleh {} \udb40\udc41\u007f""#, "\u{1F469}\u{200D}\u{1F4BB}");
        assert!(line.contains(&expected), "{line}");
        assert!(!line.contains('\u{202E}') && !line.contains('\u{E0041}') && !line.contains('\u{7f}'), "{line}");
        let back: Value = serde_json::from_str(&line).expect("valid JSON");
        assert_eq!(back["text"], text, "a parser gets the very text that was sent");
        let plain = json!({ "text": "plain" });
        assert_eq!(json_line(&plain), plain.to_string());
    }

    #[test]
    fn control_characters_never_reach_the_terminal() {
        assert_eq!(sanitize("red \u{1b}[31m bell \u{7} ok\n"), "red \\u{1b}[31m bell \\u{7} ok\n");
        assert!(!message_line(&message(Target::World, "\u{1b}[2J")).contains('\u{1b}'));
    }

    #[test]
    fn acceptance_shapes() {
        let accepted = Accepted {
            client_msg_id: 9,
            id: 42,
            sent_at_ms: 1_795_773_845_123,
            to: Target::World,
            transport: Transport::Udp,
        };
        assert_eq!(
            accepted_json(&accepted),
            json!({
                "id": 42, "client_msg_id": 9, "to": "world", "sent_at": "2026-11-27T10:04:05.123Z",
                "sent_at_ms": 1_795_773_845_123i64, "transport": "udp",
            })
        );
        assert_eq!(accepted_line(&accepted), "[2026-11-27 10:04:05] sent to world as message 42 (over udp)");
        assert_eq!(transport_name(Transport::Tcp), "tcp");
    }
}
