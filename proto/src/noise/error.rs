//! The one error type of the Noise layer.
//!
//! Security code has two audiences for its errors. The program needs to know *what kind* of failure happened so it
//! can react (drop the connection, ask the user, fix a file). The human needs a sentence that says what to do. Each
//! variant below serves both: its name is the kind, its message is the sentence.
//!
//! What the variants deliberately do **not** carry is detail about *why* a cryptographic check failed. A tag that
//! does not verify is reported as [`NoiseError::Tampered`] whatever the cause (a flipped bit, a replayed message, a
//! different key): telling an attacker which of those it was would help them, and it would not help the user.

use std::io;
use std::path::{Path, PathBuf};

use super::fingerprint::Fingerprint;

/// Everything that can go wrong in the Noise handshake, the transport, the server's key file or the known-servers
/// store.
#[derive(Debug, thiserror::Error)]
pub enum NoiseError {
    /// A handshake message had the wrong size. chatlab's handshake messages have fixed sizes (see
    /// [`HANDSHAKE_MSG1_LEN`](super::HANDSHAKE_MSG1_LEN) and [`HANDSHAKE_MSG2_LEN`](super::HANDSHAKE_MSG2_LEN)), so
    /// any other length means the peer is not a chatlab peer, or the bytes were cut short on the way.
    #[error(
        "handshake message {message} must be {expected} bytes but was {got}: the peer does not speak chatlab's \
         Noise handshake"
    )]
    HandshakeLength {
        /// Which message of the handshake: 1 (client to server) or 2 (server to client).
        message: u8,
        /// The only length chatlab accepts for that message.
        expected: usize,
        /// The length that arrived.
        got: usize,
    },

    /// The server's handshake reply did not authenticate. The peer speaks another protocol or another version of
    /// chatlab (the prologue differs), or someone changed the bytes on the way.
    #[error(
        "handshake failed: the server's reply did not authenticate (another protocol or chatlab version, or \
         the bytes were changed on the way)"
    )]
    BadHandshake,

    /// A handshake step was called in the wrong order, for example `finish` before `start`. This is a bug in the
    /// calling code, not something a peer can cause.
    #[error("handshake steps called out of order: {0}")]
    HandshakeOrder(&'static str),

    /// A message is larger than one Noise message may be.
    #[error("message of {len} bytes is larger than the {max} bytes one Noise message can carry")]
    TooLarge {
        /// Length that was offered.
        len: usize,
        /// Largest length allowed in this position.
        max: usize,
    },

    /// A transport message failed authentication: its tag did not verify. It was tampered with, corrupted, cut
    /// short, replayed, or encrypted under another session's key. The session is unusable afterwards.
    #[error("message failed authentication: it was changed, cut short, replayed or is not from this session")]
    Tampered,

    /// The session has used every nonce value its keys allow (2^64 - 1 messages in one direction). Noise forbids
    /// reusing a nonce, so the only way on is a new handshake.
    #[error("this session has used up its nonces; reconnect to start a new one")]
    NonceExhausted,

    /// An earlier message of this session failed, so the transport refuses any further work. On a TCP stream a
    /// failed message means the two sides no longer agree on the stream; continuing would only hide the attack.
    #[error("this session failed earlier and can not be used any more; close the connection")]
    SessionFailed,

    /// Text that should hold a 32-byte key in hex did not.
    #[error("invalid key: {reason}")]
    BadKey {
        /// What exactly is wrong with the text.
        reason: String,
    },

    /// Reading or writing the server's key file failed at the operating-system level.
    #[error("server key file {}: {source}", path.display())]
    KeyFileIo {
        /// The key file (or its directory).
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },

    /// The server's key file exists but does not hold a key in the expected format.
    #[error("server key file {}, line {line}: {reason}", path.display())]
    KeyFileFormat {
        /// The key file.
        path: PathBuf,
        /// 1-based line the problem was found on (the last line when the key is missing).
        line: usize,
        /// What exactly is wrong.
        reason: String,
    },

    /// The server's key file can be read by other users. Anyone who reads it can impersonate the server, so the
    /// server refuses to use it until the owner has fixed the permissions (and, if others may have copied it,
    /// replaced the key).
    #[error(
        "server key file {} has mode {mode:03o}, so other users may read it; run `chmod 600` on it (and replace \
         the key if someone else may have copied it)",
        path.display()
    )]
    KeyFilePermissions {
        /// The key file.
        path: PathBuf,
        /// The permission bits found (for example `0o644`).
        mode: u32,
    },

    /// Reading or writing the known-servers file failed at the operating-system level.
    #[error("known-servers file {}: {source}", path.display())]
    KnownServersIo {
        /// The known-servers file (or its directory).
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },

    /// A line of known-servers text could not be understood.
    #[error("{}line {line}: {reason}", origin_prefix(path.as_deref()))]
    KnownServersParse {
        /// The file the text came from, when it came from a file.
        path: Option<PathBuf>,
        /// 1-based line number.
        line: usize,
        /// What exactly is wrong with the line.
        reason: String,
    },

    /// A server name is not of the form `HOST:PORT`.
    #[error("invalid server name {name:?}: {reason}")]
    BadServerName {
        /// The name as given.
        name: String,
        /// What exactly is wrong.
        reason: &'static str,
    },

    /// Pinning a key for a server that is already pinned to another key. Replacing a pin is a separate, explicit
    /// step ([`KnownServers::replace_pin`](super::KnownServers::replace_pin)), because it is exactly what an attacker
    /// would like a program to do silently.
    #[error(
        "server {server} is pinned to key {pinned} but offered {offered}; replace the pin only after the server's \
         operator confirmed the new fingerprint"
    )]
    PinConflict {
        /// The server name.
        server: String,
        /// Fingerprint of the key already pinned.
        pinned: Fingerprint,
        /// Fingerprint of the key that was offered.
        offered: Fingerprint,
    },

    /// The Noise library reported a failure that none of the variants above describes, such as the operating
    /// system's random number generator failing.
    #[error("noise library error: {0}")]
    Crypto(snow::Error),
}

/// "FILE: " when the text came from a file, nothing when it came from a string.
fn origin_prefix(path: Option<&Path>) -> String {
    match path {
        Some(path) => format!("known-servers file {}, ", path.display()),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_error_names_the_file_only_when_there_is_one() {
        let from_text = NoiseError::KnownServersParse { path: None, line: 3, reason: "bad".into() };
        assert_eq!(from_text.to_string(), "line 3: bad");
        let from_file =
            NoiseError::KnownServersParse { path: Some(PathBuf::from("/k/known")), line: 3, reason: "bad".into() };
        assert_eq!(from_file.to_string(), "known-servers file /k/known, line 3: bad");
    }

    #[test]
    fn permission_error_shows_octal_mode_and_the_fix() {
        let err = NoiseError::KeyFilePermissions { path: PathBuf::from("server.key"), mode: 0o644 };
        let text = err.to_string();
        assert!(text.contains("mode 644"), "{text}");
        assert!(text.contains("chmod 600"), "{text}");
    }
}
