//! What `chatlab-cli` prints: one JSON object per line with `--json`, readable lines otherwise.
//!
//! The JSON form is for scripts and graders, so its fields are fixed: every message has `id`, `from`, `to` (`world`
//! or a user name), `text` and `sent_at` (RFC 3339, UTC, milliseconds), plus `sent_at_ms` as the server sent it.
//! One object per line ("JSON Lines") lets a script read messages as they arrive without waiting for a closing
//! bracket.
//!
//! The readable form is for people at a terminal: `[2026-11-27 10:04:05] ann → world: hello`. Text from the network
//! is untrusted even after the server checked it: a control character could move the cursor or recolour the
//! terminal, so any that slipped through is shown as `\u{..}`, and the lines of a multi-line message are indented
//! under the first.

use std::io::Write;

use serde_json::{Value, json};

use chatlab_client::timefmt::{readable_utc, rfc3339_utc};
use chatlab_client::{Accepted, ChatMessage, MessageSource, Transport, Username};

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
            true => message_json(message, source).to_string(),
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

/// The text with every control character except newline written as a visible escape.
pub fn sanitize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        if ch.is_control() && ch != '\n' {
            out.push_str(&format!("\\u{{{:x}}}", u32::from(ch)));
        } else {
            out.push(ch);
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
