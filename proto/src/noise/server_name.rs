//! Server names as the known-servers store keys them: `HOST:PORT`.
//!
//! A pin belongs to a host *and* a port, as in SSH: two chatlab servers on one machine have two keys. Names are
//! normalised before they are stored or looked up, so one server is never pinned twice under two spellings: the
//! host is lowercased (DNS names are case-insensitive) and the port is written without leading zeros. IPv6
//! addresses go in brackets, as in URLs (`[::1]:7878`), because their colons would otherwise swallow the port.

use super::error::NoiseError;

/// Longest host part, in characters. 253 is the longest DNS name (RFC 1035 allows 255 bytes on the wire, which is
/// 253 characters of text); IPv6 literals are far shorter.
pub const MAX_HOST_CHARS: usize = 253;

/// Checks `name` and returns its normal form (see the module docs).
pub(crate) fn normalize(name: &str) -> Result<String, NoiseError> {
    let bad = |reason| NoiseError::BadServerName { name: name.to_string(), reason };
    let (host, port) = name.rsplit_once(':').ok_or_else(|| bad("expected HOST:PORT, found no port"))?;
    let port = parse_port(port).ok_or_else(|| bad("port must be a number from 1 to 65535"))?;
    let host = if let Some(inner) = host.strip_prefix('[') {
        let inner = inner.strip_suffix(']').ok_or_else(|| bad("an IPv6 address needs a closing bracket"))?;
        if inner.is_empty() || !inner.chars().all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.') {
            return Err(bad("brackets must hold an IPv6 address"));
        }
        format!("[{}]", inner.to_ascii_lowercase())
    } else {
        if host.contains(':') {
            return Err(bad("an IPv6 address must be written in brackets, like [::1]:7878"));
        }
        if host.is_empty() {
            return Err(bad("the host is empty"));
        }
        if !host.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')) {
            return Err(bad("a host may only use letters, digits, '.', '-' and '_'"));
        }
        host.to_ascii_lowercase()
    };
    if host.chars().count() > MAX_HOST_CHARS {
        return Err(bad("the host is longer than 253 characters"));
    }
    Ok(format!("{host}:{port}"))
}

/// A TCP port from 1 to 65535, digits only (Rust's integer parser would also take a leading `+`).
fn parse_port(text: &str) -> Option<u16> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Leading zeros are allowed and dropped; the value must still fit a port.
    let trimmed = text.trim_start_matches('0');
    let port: u16 = trimmed.parse().ok()?;
    (port != 0).then_some(port)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn reason(name: &str) -> &'static str {
        match normalize(name) {
            Err(NoiseError::BadServerName { reason, .. }) => reason,
            other => panic!("expected an error for {name:?}, got {other:?}"),
        }
    }

    #[test]
    fn normal_forms() {
        assert_eq!(normalize("Chat.Example.ORG:7878").ok().as_deref(), Some("chat.example.org:7878"));
        assert_eq!(normalize("localhost:007878").ok().as_deref(), Some("localhost:7878"));
        assert_eq!(normalize("192.168.1.20:1").ok().as_deref(), Some("192.168.1.20:1"));
        assert_eq!(normalize("[::1]:65535").ok().as_deref(), Some("[::1]:65535"));
        assert_eq!(normalize("[FE80::1]:7878").ok().as_deref(), Some("[fe80::1]:7878"));
    }

    #[test]
    fn bad_ports() {
        for name in ["host", "host:", "host:0", "host:000", "host:65536", "host:+1", "host:-1", "host:12a"] {
            assert!(reason(name).contains("port") || reason(name).contains("HOST:PORT"), "{name}");
        }
    }

    #[test]
    fn bad_hosts() {
        assert!(reason(":7878").contains("empty"));
        assert!(reason("::1:7878").contains("brackets"));
        assert!(reason("[::1:7878").contains("closing bracket"));
        assert!(reason("[]:7878").contains("IPv6"));
        assert!(reason("[zz]:7878").contains("IPv6"));
        assert!(reason("my host:7878").contains("letters"));
        assert!(reason("host#1:7878").contains("letters"));
        assert!(reason("hôst:7878").contains("letters"));
        let long = format!("{}:1", "a".repeat(MAX_HOST_CHARS + 1));
        assert!(reason(&long).contains("253"));
        let longest = format!("{}:1", "a".repeat(MAX_HOST_CHARS));
        assert!(normalize(&longest).is_ok());
    }

    proptest! {
        #[test]
        fn normalizing_is_idempotent(host in "[a-zA-Z0-9._-]{1,40}", port in 1u16..) {
            let once = normalize(&format!("{host}:{port}")).expect("valid");
            prop_assert_eq!(normalize(&once).expect("still valid"), once.clone());
        }

        #[test]
        fn arbitrary_text_never_panics(text in ".{0,300}") {
            let _ = normalize(&text);
        }
    }
}
