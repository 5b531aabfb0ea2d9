//! The client's known-servers store: trust on first use, as SSH's `known_hosts`.
//!
//! # The problem it solves
//!
//! The NX handshake proves that the server holds the private key matching the public key it sent. It cannot prove
//! that this key belongs to *your teacher's* server rather than to someone sitting between you and it (on the same
//! Wi-Fi, say) who runs their own handshake with you and another with the server. Something outside the handshake
//! has to say which key is the right one.
//!
//! Big websites use certificates signed by authorities for this. A classroom server has none, so chatlab does what
//! SSH does: **trust on first use (TOFU)**. The first time the client connects to `HOST:PORT` it shows the server's
//! fingerprint, and if the user accepts, it *pins* the key: writes it into this store. On every later connection
//! the key must be the pinned one.
//!
//! # What TOFU protects against, and what it does not
//!
//! - It **protects every connection after the first**: an attacker who turns up later cannot present their own key
//!   without the client noticing ([`Trust::Changed`]) and refusing to send the login.
//! - It **does not protect the very first connection**. If the attacker is already in the middle then, the client
//!   pins the attacker's key. The defence is to compare the fingerprint once through another channel: the teacher
//!   reads the fingerprint the server printed at startup aloud or writes it on the board, and students check it
//!   against what their client shows.
//!
//! # When the key changes
//!
//! A changed key means one of two things: the server's key file was lost or replaced (a reinstall, a new machine),
//! or someone is impersonating the server. The client cannot tell which, so it must not connect. The user should
//! ask the server's operator whether the key was changed and compare the new fingerprint with theirs; only then
//! replace the pin ([`KnownServers::replace_pin`]), which is deliberately a separate, explicit step.
//!
//! # File format
//!
//! UTF-8 text, one pinned server per line: `HOST:PORT KEYHEX`, where KEYHEX is the 32-byte X25519 public key as 64
//! hex characters, and the two fields are separated by spaces or tabs. Lines whose first non-blank character is
//! `#`, and blank lines, are comments; they are kept as they are when the file is rewritten. A server may appear
//! only once. Example:
//!
//! ```text
//! # chatlab known servers
//! classroom.example.org:7878 8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a
//! [::1]:7878 de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f
//! ```

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use super::error::NoiseError;
use super::files;
use super::fingerprint::{Fingerprint, ServerKey};
use super::server_name;

/// Usual file name of the store inside the client's configuration directory.
pub const KNOWN_SERVERS_FILE_NAME: &str = "known_servers";

/// Largest known-servers file accepted, in bytes. One line is about 100 bytes, so 1 MiB holds some ten thousand
/// servers, far more than anyone pins; a larger file is the wrong file and is refused before it fills memory.
pub const KNOWN_SERVERS_MAX_BYTES: u64 = 1 << 20;

/// Unix permission bits of the file. It holds no secret, but it does list every server the user talks to, so it
/// stays private to its owner.
pub const KNOWN_SERVERS_FILE_MODE: u32 = 0o600;

/// Comment written at the top of a store that starts empty, so a person opening the file knows what it is.
const HEADER: &str =
    "# chatlab known servers: one `HOST:PORT KEYHEX` per line (see the chatlab docs on trust on first use)";

/// What the store says about a server's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trust {
    /// No key is pinned for this server yet: show the fingerprint and ask the user before pinning it.
    New,
    /// The key is the pinned one: safe to continue.
    Known,
    /// A different key is pinned: do not send anything; tell the user (see the module docs).
    Changed {
        /// Fingerprint of the key pinned earlier.
        pinned: Fingerprint,
    },
}

/// One line of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Line {
    /// A comment or blank line, kept verbatim.
    Comment(String),
    /// A pinned server (name in normal form).
    Pin { server: String, key: ServerKey },
}

/// The pinned server keys, with the comments of the file they came from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KnownServers {
    lines: Vec<Line>,
}

impl KnownServers {
    /// An empty store.
    pub fn new() -> KnownServers {
        KnownServers::default()
    }

    /// Reads the text format described in the module docs. Errors name the 1-based line.
    pub fn parse(text: &str) -> Result<KnownServers, NoiseError> {
        let mut lines = Vec::new();
        let mut seen: HashMap<String, usize> = HashMap::new();
        for (index, line) in text.lines().enumerate() {
            let number = index.saturating_add(1);
            let error = |reason: String| NoiseError::KnownServersParse { path: None, line: number, reason };
            let trimmed = line.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                lines.push(Line::Comment(line.to_string()));
                continue;
            }
            let mut fields = trimmed.split_whitespace();
            let (Some(name), Some(key), None) = (fields.next(), fields.next(), fields.next()) else {
                return Err(error("expected two fields, `HOST:PORT KEYHEX`".into()));
            };
            let server = server_name::normalize(name).map_err(|err| error(err.to_string()))?;
            let key = ServerKey::from_hex(key).map_err(|err| error(err.to_string()))?;
            if let Some(first) = seen.insert(server.clone(), number) {
                return Err(error(format!("{server} is already listed on line {first}")));
            }
            lines.push(Line::Pin { server, key });
        }
        Ok(KnownServers { lines })
    }

    /// The store in the text format, ready to be written to a file.
    pub fn to_text(&self) -> String {
        let mut text = String::new();
        for line in &self.lines {
            match line {
                Line::Comment(comment) => text.push_str(comment),
                Line::Pin { server, key } => {
                    text.push_str(server);
                    text.push(' ');
                    text.push_str(&key.to_hex());
                }
            }
            text.push('\n');
        }
        text
    }

    /// Compares the key a server presented with the pinned one. `server` is `HOST:PORT` in any spelling the
    /// store normalises; a name that is not valid can never have been pinned, so it is [`Trust::New`] (and
    /// [`pin`](Self::pin) will refuse it).
    pub fn check(&self, server: &str, key: &ServerKey) -> Trust {
        let Ok(server) = server_name::normalize(server) else {
            return Trust::New;
        };
        match self.pinned(&server) {
            None => Trust::New,
            Some(pinned) if pinned == key => Trust::Known,
            Some(pinned) => Trust::Changed { pinned: pinned.fingerprint() },
        }
    }

    /// Pins `key` for `server` after the user accepted it on first use. Pinning the key that is already pinned
    /// does nothing; pinning a *different* key fails with [`NoiseError::PinConflict`], because replacing a pin must
    /// be a deliberate act ([`replace_pin`](Self::replace_pin)).
    pub fn pin(&mut self, server: &str, key: &ServerKey) -> Result<(), NoiseError> {
        let server = server_name::normalize(server)?;
        match self.pinned(&server) {
            Some(pinned) if pinned == key => Ok(()),
            Some(pinned) => {
                Err(NoiseError::PinConflict { server, pinned: pinned.fingerprint(), offered: key.fingerprint() })
            }
            None => {
                self.push(server, *key);
                Ok(())
            }
        }
    }

    /// Pins `key` for `server`, replacing any earlier pin, and returns the fingerprint it replaced. Call this only
    /// after the user confirmed the new fingerprint with the server's operator (see the module docs).
    pub fn replace_pin(&mut self, server: &str, key: &ServerKey) -> Result<Option<Fingerprint>, NoiseError> {
        let server = server_name::normalize(server)?;
        for line in &mut self.lines {
            if let Line::Pin { server: pinned_server, key: pinned } = line {
                if *pinned_server == server {
                    let previous = pinned.fingerprint();
                    *pinned = *key;
                    return Ok(Some(previous));
                }
            }
        }
        self.push(server, *key);
        Ok(None)
    }

    /// Forgets the pin of `server`; returns whether there was one.
    pub fn remove(&mut self, server: &str) -> bool {
        let Ok(server) = server_name::normalize(server) else {
            return false;
        };
        let before = self.lines.len();
        self.lines.retain(|line| !matches!(line, Line::Pin { server: pinned, .. } if *pinned == server));
        self.lines.len() != before
    }

    /// The pinned servers in file order, names in normal form.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &ServerKey)> {
        self.lines.iter().filter_map(|line| match line {
            Line::Pin { server, key } => Some((server.as_str(), key)),
            Line::Comment(_) => None,
        })
    }

    /// Reads the store from `path`. A missing file is an empty store: that is simply a client that has not met
    /// any server yet.
    pub fn load(path: &Path) -> Result<KnownServers, NoiseError> {
        let file = match File::open(path) {
            Ok(file) => file,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(KnownServers::new()),
            Err(source) => return Err(store_io(path, source)),
        };
        let bytes = files::read_capped(file, KNOWN_SERVERS_MAX_BYTES).map_err(|source| store_io(path, source))?;
        if u64::try_from(bytes.len()).map_or(true, |len| len > KNOWN_SERVERS_MAX_BYTES) {
            let message = format!("file is larger than {KNOWN_SERVERS_MAX_BYTES} bytes; not a known-servers file");
            return Err(store_io(path, io::Error::new(io::ErrorKind::InvalidData, message)));
        }
        let text = std::str::from_utf8(&bytes).map_err(|err| {
            let valid = bytes.get(..err.valid_up_to()).unwrap_or_default();
            let line = valid.iter().filter(|&&b| b == b'\n').count().saturating_add(1);
            NoiseError::KnownServersParse { path: Some(path.to_path_buf()), line, reason: "not UTF-8 text".into() }
        })?;
        KnownServers::parse(text).map_err(|err| match err {
            NoiseError::KnownServersParse { line, reason, .. } => {
                NoiseError::KnownServersParse { path: Some(path.to_path_buf()), line, reason }
            }
            other => other,
        })
    }

    /// Writes the store to `path` atomically (mode 0600 on Unix), creating missing parent directories.
    pub fn save(&self, path: &Path) -> Result<(), NoiseError> {
        if let Some(parent) = path.parent().filter(|parent| !parent.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|source| store_io(parent, source))?;
        }
        files::write_atomically(path, self.to_text().as_bytes(), KNOWN_SERVERS_FILE_MODE)
            .map_err(|source| store_io(path, source))
    }

    /// The key pinned for a server name in normal form.
    fn pinned(&self, server: &str) -> Option<&ServerKey> {
        self.iter().find(|(pinned, _)| *pinned == server).map(|(_, key)| key)
    }

    /// Appends a pin, starting a fresh store with an explanatory header.
    fn push(&mut self, server: String, key: ServerKey) {
        if self.lines.is_empty() {
            self.lines.push(Line::Comment(HEADER.to_string()));
        }
        self.lines.push(Line::Pin { server, key });
    }
}

fn store_io(path: &Path, source: io::Error) -> NoiseError {
    NoiseError::KnownServersIo { path: PathBuf::from(path), source }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::noise::{Initiator, Responder, StaticKeypair};
    use proptest::prelude::*;

    const KEY_A: &str = "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a";
    const KEY_B: &str = "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f";

    fn key(hex: &str) -> ServerKey {
        ServerKey::from_hex(hex).expect("hex")
    }

    fn parse_error(text: &str) -> (usize, String) {
        match KnownServers::parse(text) {
            Err(NoiseError::KnownServersParse { line, reason, path: None }) => (line, reason),
            other => panic!("expected a parse error, got {other:?}"),
        }
    }

    #[test]
    fn parses_comments_blanks_crlf_and_any_case() {
        let text = format!(
            "# my servers\r\n\r\n  classroom.example.org:7878\t{KEY_A}\r\n# lab\n[::1]:7878   {}\n",
            KEY_B.to_uppercase()
        );
        let store = KnownServers::parse(&text).expect("parse");
        assert_eq!(store.check("classroom.example.org:7878", &key(KEY_A)), Trust::Known);
        assert_eq!(store.check("[::1]:7878", &key(KEY_B)), Trust::Known);
        assert_eq!(store.iter().count(), 2);
    }

    #[test]
    fn check_new_known_changed() {
        let mut store = KnownServers::new();
        assert_eq!(store.check("host:7878", &key(KEY_A)), Trust::New);
        store.pin("host:7878", &key(KEY_A)).expect("pin");
        assert_eq!(store.check("host:7878", &key(KEY_A)), Trust::Known);
        assert_eq!(store.check("HOST:07878", &key(KEY_A)), Trust::Known, "names are normalised");
        assert_eq!(store.check("host:7878", &key(KEY_B)), Trust::Changed { pinned: key(KEY_A).fingerprint() });
        assert_eq!(store.check("host:7879", &key(KEY_A)), Trust::New, "another port is another server");
        assert_eq!(store.check("not a name", &key(KEY_A)), Trust::New);
    }

    #[test]
    fn pin_never_silently_replaces() {
        let mut store = KnownServers::new();
        store.pin("host:1", &key(KEY_A)).expect("pin");
        store.pin("host:1", &key(KEY_A)).expect("same key again is fine");
        let err = store.pin("host:1", &key(KEY_B)).expect_err("different key");
        assert!(matches!(&err, NoiseError::PinConflict { server, .. } if server == "host:1"), "{err}");
        assert_eq!(store.check("host:1", &key(KEY_A)), Trust::Known, "pin unchanged");
        assert_eq!(store.iter().count(), 1);
    }

    #[test]
    fn replace_pin_is_explicit_and_reports_the_old_fingerprint() {
        let mut store = KnownServers::new();
        assert_eq!(store.replace_pin("host:1", &key(KEY_A)).expect("add"), None);
        let previous = store.replace_pin("host:1", &key(KEY_B)).expect("replace");
        assert_eq!(previous, Some(key(KEY_A).fingerprint()));
        assert_eq!(store.check("host:1", &key(KEY_B)), Trust::Known);
        assert_eq!(store.iter().count(), 1);
    }

    #[test]
    fn pin_refuses_bad_names() {
        let mut store = KnownServers::new();
        assert!(matches!(store.pin("no-port", &key(KEY_A)), Err(NoiseError::BadServerName { .. })));
        assert!(matches!(store.replace_pin("h:0", &key(KEY_A)), Err(NoiseError::BadServerName { .. })));
    }

    #[test]
    fn remove_forgets_a_pin() {
        let mut store = KnownServers::new();
        store.pin("host:1", &key(KEY_A)).expect("pin");
        assert!(store.remove("HOST:1"));
        assert!(!store.remove("host:1"));
        assert!(!store.remove("bad name"));
        assert_eq!(store.check("host:1", &key(KEY_B)), Trust::New);
    }

    #[test]
    fn new_store_gets_a_header_and_round_trips() {
        let mut store = KnownServers::new();
        store.pin("Host:7878", &key(KEY_A)).expect("pin");
        let text = store.to_text();
        assert_eq!(text, format!("{HEADER}\nhost:7878 {KEY_A}\n"));
        assert_eq!(KnownServers::parse(&text).expect("parse"), store);
    }

    #[test]
    fn parse_errors_name_the_line() {
        let (line, reason) = parse_error(&format!("# ok\nhost:1 {KEY_A}\nhost:2\n"));
        assert_eq!(line, 3);
        assert!(reason.contains("two fields"), "{reason}");

        let (line, reason) = parse_error(&format!("host:1 {KEY_A} extra\n"));
        assert_eq!(line, 1);
        assert!(reason.contains("two fields"), "{reason}");

        let (line, reason) = parse_error("\n\nhost:1 abcd\n");
        assert_eq!(line, 3);
        assert!(reason.contains("expected 64 hex"), "{reason}");

        let (line, reason) = parse_error(&format!("\nhost {KEY_A}\n"));
        assert_eq!(line, 2);
        assert!(reason.contains("HOST:PORT"), "{reason}");

        let (line, reason) = parse_error(&format!("host:1 {KEY_A}\n# x\nHOST:01 {KEY_B}\n"));
        assert_eq!(line, 3);
        assert!(reason.contains("already listed on line 1"), "{reason}");
        assert_eq!(
            KnownServers::parse("x").expect_err("bad").to_string(),
            "line 1: expected two fields, `HOST:PORT KEYHEX`"
        );
    }

    #[test]
    fn missing_file_is_an_empty_store() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = KnownServers::load(&dir.path().join("known_servers")).expect("load");
        assert_eq!(store, KnownServers::new());
    }

    #[test]
    fn save_load_round_trip_keeps_comments() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("config").join(KNOWN_SERVERS_FILE_NAME);
        let mut store = KnownServers::parse(&format!("# mine\n\nhost:1 {KEY_A}\n")).expect("parse");
        store.pin("[::1]:7878", &key(KEY_B)).expect("pin");
        store.save(&path).expect("save creates the directory");
        let loaded = KnownServers::load(&path).expect("load");
        assert_eq!(loaded, store);
        assert!(loaded.to_text().starts_with("# mine\n\n"));
    }

    #[cfg(unix)]
    #[test]
    fn saved_file_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(KNOWN_SERVERS_FILE_NAME);
        KnownServers::new().save(&path).expect("save");
        let mode = std::fs::metadata(&path).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode, KNOWN_SERVERS_FILE_MODE);
    }

    #[test]
    fn file_errors_name_the_file_and_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(KNOWN_SERVERS_FILE_NAME);
        std::fs::write(&path, format!("host:1 {KEY_A}\nhost:2 zz\n")).expect("write");
        let err = KnownServers::load(&path).expect_err("bad line");
        assert!(matches!(&err, NoiseError::KnownServersParse { path: Some(p), line: 2, .. } if *p == path), "{err}");
        assert!(err.to_string().contains("known-servers file"), "{err}");

        std::fs::write(&path, b"# ok\n# ok\n\xff\n").expect("write");
        let err = KnownServers::load(&path).expect_err("not UTF-8");
        assert!(matches!(&err, NoiseError::KnownServersParse { line: 3, .. }), "{err}");

        let oversized = vec![b'#'; usize::try_from(KNOWN_SERVERS_MAX_BYTES).expect("small") + 1];
        std::fs::write(&path, oversized).expect("write");
        let err = KnownServers::load(&path).expect_err("oversized");
        assert!(
            matches!(&err, NoiseError::KnownServersIo { source, .. } if source.kind() == io::ErrorKind::InvalidData)
        );
    }

    #[test]
    fn unreadable_path_is_an_io_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        // A directory cannot be read as a file.
        let err = KnownServers::load(dir.path()).expect_err("directory");
        assert!(matches!(err, NoiseError::KnownServersIo { .. }), "{err}");
        let blocker = dir.path().join("file");
        std::fs::write(&blocker, b"x").expect("write");
        let err = KnownServers::new().save(&blocker.join("sub").join("known")).expect_err("parent is a file");
        assert!(matches!(err, NoiseError::KnownServersIo { .. }), "{err}");
    }

    /// Runs a real handshake against a server with `keypair` and returns the key the client learned.
    fn key_seen_by_client(keypair: &StaticKeypair) -> ServerKey {
        let mut initiator = Initiator::new().expect("initiator");
        let msg1 = initiator.start().expect("msg1");
        let (msg2, _) = Responder::new(keypair).expect("responder").respond(&msg1).expect("respond");
        let (_, key) = initiator.finish(&msg2).expect("finish");
        key
    }

    #[test]
    fn impostor_server_is_detected_as_changed() {
        let real = StaticKeypair::generate().expect("real");
        let impostor = StaticKeypair::generate().expect("impostor");
        let mut store = KnownServers::new();

        let first = key_seen_by_client(&real);
        assert_eq!(store.check("classroom:7878", &first), Trust::New);
        store.pin("classroom:7878", &first).expect("pin on first use");
        assert_eq!(store.check("classroom:7878", &key_seen_by_client(&real)), Trust::Known);

        let seen = key_seen_by_client(&impostor);
        assert_eq!(store.check("classroom:7878", &seen), Trust::Changed { pinned: real.public().fingerprint() });
    }

    /// Canonical known-servers text: unique normalised names, lowercase keys, comments.
    fn canonical_text() -> impl Strategy<Value = String> {
        let line = prop_oneof![
            "# [ -~]{0,30}".prop_map(|comment| (None, comment)),
            Just((None, String::new())),
            ("[a-z0-9][a-z0-9.-]{0,15}", 1u16.., proptest::array::uniform32(any::<u8>()))
                .prop_map(|(host, port, bytes)| (Some((host, port)), hex_of(bytes))),
        ];
        proptest::collection::vec(line, 0..12).prop_map(|lines| {
            let mut text = String::new();
            for (index, (pin, rest)) in lines.into_iter().enumerate() {
                match pin {
                    // The index makes every name unique.
                    Some((host, port)) => text.push_str(&format!("s{index}.{host}:{port} {rest}")),
                    None => text.push_str(&rest),
                }
                text.push('\n');
            }
            text
        })
    }

    fn hex_of(bytes: [u8; 32]) -> String {
        ServerKey::from_bytes(bytes).to_hex()
    }

    proptest! {
        #[test]
        fn text_round_trip(text in canonical_text()) {
            let store = KnownServers::parse(&text).expect("canonical text parses");
            prop_assert_eq!(store.to_text(), text);
            prop_assert_eq!(KnownServers::parse(&store.to_text()).expect("reparse"), store);
        }

        #[test]
        fn pins_round_trip(pins in proptest::collection::vec(
            ("[a-zA-Z0-9][a-zA-Z0-9._-]{0,20}", 1u16.., proptest::array::uniform32(any::<u8>())), 0..10)
        ) {
            let mut store = KnownServers::new();
            for (host, port, bytes) in &pins {
                store.replace_pin(&format!("{host}:{port}"), &ServerKey::from_bytes(*bytes)).expect("valid name");
            }
            let reparsed = KnownServers::parse(&store.to_text()).expect("reparse");
            prop_assert_eq!(&reparsed, &store);
            for (host, port, bytes) in &pins {
                let trust = reparsed.check(&format!("{host}:{port}"), &ServerKey::from_bytes(*bytes));
                // A later pin of the same name may have replaced this one.
                let pinned = matches!(trust, Trust::Known | Trust::Changed { .. });
                prop_assert!(pinned, "{}:{} is not pinned", host, port);
            }
        }

        #[test]
        fn arbitrary_text_never_panics(text in "(.{0,80}\n){0,8}") {
            let _ = KnownServers::parse(&text);
        }
    }
}
