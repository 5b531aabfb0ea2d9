//! The server's long-lived identity: a static X25519 key pair and the file that keeps it.
//!
//! Everything a client knows about "this is my teacher's server" rests on one secret: the server's static private
//! key. Whoever holds it can answer the NX handshake as that server. So the key is created once, on the server's
//! first start, from the operating system's random number generator, and kept in a file only its owner can read.
//! Losing it is an inconvenience (clients see a changed key and must re-pin); leaking it is a compromise.
//!
//! # Key file format
//!
//! [`KEY_FILE_NAME`] in the server's data directory, UTF-8 text:
//!
//! ```text
//! # chatlab server private key (X25519). Anyone who can read this file can impersonate the server.
//! # public key fingerprint: SHA256:300c:9c96:03b9:2a4b:39ed:3958:bf92:4011
//! 77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a
//! ```
//!
//! Lines starting with `#` and blank lines are comments; exactly one other line holds the 32-byte private key as
//! 64 hex characters. Text rather than raw bytes so an operator can see at a glance what the file is and which
//! fingerprint clients should see. The public key is not stored: it is computed from the private key, so the two
//! can never disagree.
//!
//! The file is written atomically with mode 0600 (owner read/write only), and [`StaticKeypair::load`] refuses a
//! file that group or others may read, the way OpenSSH refuses a private key with loose permissions.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use snow::resolvers::{CryptoResolver, DefaultResolver};

use super::error::NoiseError;
use super::files;
use super::fingerprint::{SERVER_KEY_LEN, ServerKey};
use super::handshake::params;
use super::hex;

/// File name of the server's key inside its data directory.
pub const KEY_FILE_NAME: &str = "server.key";

/// Unix permission bits of a new key file: read and write for the owner, nothing for anyone else.
pub const KEY_FILE_MODE: u32 = 0o600;

/// Unix permission bits of a data directory this module creates: only the owner may list or enter it.
pub const KEY_DIR_MODE: u32 = 0o700;

/// Permission bits that must be clear on a key file: every bit for group and others.
const GROUP_OTHER_BITS: u32 = 0o077;

/// Largest key file accepted, in bytes. A real one is about 200 bytes; a larger file is the wrong file, and it is
/// refused before it is read into memory.
pub const KEY_FILE_MAX_BYTES: u64 = 4096;

/// Length of an X25519 private key in bytes.
pub const PRIVATE_KEY_LEN: usize = 32;

/// The server's static key pair.
///
/// The private half is not exposed outside this crate and is overwritten with zeros when the value is dropped
/// (best effort: the compiler may keep copies in registers, and snow keeps its own copy inside each handshake).
pub struct StaticKeypair {
    private: [u8; PRIVATE_KEY_LEN],
    public: ServerKey,
}

impl StaticKeypair {
    /// Creates a new key pair from the operating system's random number generator.
    pub fn generate() -> Result<StaticKeypair, NoiseError> {
        let mut private = [0u8; PRIVATE_KEY_LEN];
        getrandom::fill(&mut private).map_err(|_| NoiseError::Crypto(snow::Error::Rng))?;
        Self::from_private(private)
    }

    /// Rebuilds a key pair from its private key. Every 32-byte string is a valid X25519 private key (the algorithm
    /// clears and sets the bits it needs), so this only computes the public half.
    pub fn from_private(private: [u8; PRIVATE_KEY_LEN]) -> Result<StaticKeypair, NoiseError> {
        // Ask snow's own X25519 implementation, so the public key is exactly the one the handshake will present.
        let mut dh = DefaultResolver
            .resolve_dh(&params()?.dh)
            .ok_or(NoiseError::Crypto(snow::Error::Init(snow::error::InitStage::GetDhImpl)))?;
        dh.set(&private);
        let public = <[u8; SERVER_KEY_LEN]>::try_from(dh.pubkey())
            .map_err(|_| NoiseError::Crypto(snow::Error::Init(snow::error::InitStage::ValidateKeyLengths)))?;
        Ok(StaticKeypair { private, public: ServerKey::from_bytes(public) })
    }

    /// The public half: what clients pin and what [`ServerKey::fingerprint`] summarises.
    pub fn public(&self) -> ServerKey {
        self.public
    }

    /// The private half, for building a handshake.
    pub(crate) fn private_bytes(&self) -> &[u8; PRIVATE_KEY_LEN] {
        &self.private
    }

    /// Writes the key file (format in the module docs) atomically, created with mode 0600 on Unix.
    pub fn save(&self, path: &Path) -> Result<(), NoiseError> {
        let text = format!(
            "# chatlab server private key (X25519). Anyone who can read this file can impersonate the server.\n\
             # public key fingerprint: {}\n\
             {}\n",
            self.public.fingerprint(),
            hex::encode(&self.private)
        );
        files::write_atomically(path, text.as_bytes(), KEY_FILE_MODE).map_err(|source| key_io(path, source))
    }

    /// Reads a key file, refusing it when group or others may read it (Unix) or when it is not in the format
    /// described in the module docs.
    pub fn load(path: &Path) -> Result<StaticKeypair, NoiseError> {
        let file = File::open(path).map_err(|source| key_io(path, source))?;
        // Check the permissions of the file we opened, not of whatever the path names a moment later.
        check_private(&file, path)?;
        let bytes = files::read_capped(file, KEY_FILE_MAX_BYTES).map_err(|source| key_io(path, source))?;
        let format_error =
            |line: usize, reason: String| NoiseError::KeyFileFormat { path: path.to_path_buf(), line, reason };
        if u64::try_from(bytes.len()).map_or(true, |len| len > KEY_FILE_MAX_BYTES) {
            return Err(format_error(1, format!("file is larger than {KEY_FILE_MAX_BYTES} bytes; not a key file")));
        }
        let text = std::str::from_utf8(&bytes).map_err(|_| format_error(1, "file is not UTF-8 text".into()))?;
        let private = parse_key_text(text).map_err(|(line, reason)| format_error(line, reason))?;
        Self::from_private(private)
    }

    /// Loads `DIR/server.key`, or creates a new key there on first start. Creates `DIR` (mode 0700 on Unix) when it
    /// is missing. Returns the key pair and whether it was just created, so the server can announce a new
    /// fingerprint.
    ///
    /// Two servers must not share one data directory: if both started at the same moment, each could create a
    /// key and the later file would replace the earlier one under the first server's feet.
    pub fn load_or_generate(dir: &Path) -> Result<(StaticKeypair, bool), NoiseError> {
        create_dir(dir).map_err(|source| key_io(dir, source))?;
        let path = dir.join(KEY_FILE_NAME);
        match Self::load(&path) {
            Ok(keypair) => Ok((keypair, false)),
            Err(NoiseError::KeyFileIo { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                let keypair = Self::generate()?;
                keypair.save(&path)?;
                Ok((keypair, true))
            }
            Err(other) => Err(other),
        }
    }
}

impl Drop for StaticKeypair {
    fn drop(&mut self) {
        self.private.fill(0);
        // Keeps the compiler from proving the zeroing useless and removing it.
        std::hint::black_box(&self.private);
    }
}

impl std::fmt::Debug for StaticKeypair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaticKeypair")
            .field("public", &self.public.fingerprint())
            .field("private", &"<redacted>")
            .finish()
    }
}

/// Finds the one key line of a key file. Errors carry a 1-based line number and a reason.
fn parse_key_text(text: &str) -> Result<[u8; PRIVATE_KEY_LEN], (usize, String)> {
    let mut key = None;
    let mut last_line = 1;
    for (index, line) in text.lines().enumerate() {
        let number = index.saturating_add(1);
        last_line = number;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if key.is_some() {
            return Err((number, "unexpected second key line".into()));
        }
        key = Some(hex::decode::<PRIVATE_KEY_LEN>(line).map_err(|err| (number, format!("bad private key: {err}")))?);
    }
    key.ok_or((last_line, "no private key line found".into()))
}

/// Refuses a key file that group or others may access.
#[cfg(unix)]
fn check_private(file: &File, path: &Path) -> Result<(), NoiseError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = file.metadata().map_err(|source| key_io(path, source))?.permissions().mode() & 0o777;
    if mode & GROUP_OTHER_BITS != 0 {
        return Err(NoiseError::KeyFilePermissions { path: path.to_path_buf(), mode });
    }
    Ok(())
}

/// Other platforms have no Unix permission bits to check.
#[cfg(not(unix))]
fn check_private(_file: &File, _path: &Path) -> Result<(), NoiseError> {
    let _ = GROUP_OTHER_BITS;
    Ok(())
}

/// Creates `dir` and its parents if missing, owner-only on Unix.
fn create_dir(dir: &Path) -> io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(KEY_DIR_MODE);
    }
    builder.create(dir)
}

fn key_io(path: &Path, source: io::Error) -> NoiseError {
    NoiseError::KeyFileIo { path: PathBuf::from(path), source }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7748, section 6.1: Alice's private key and the public key it yields.
    const ALICE_PRIVATE: &str = "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a";
    const ALICE_PUBLIC: &str = "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a";

    fn alice() -> StaticKeypair {
        StaticKeypair::from_private(hex::decode(ALICE_PRIVATE).expect("hex")).expect("keypair")
    }

    #[test]
    fn public_key_known_answer() {
        assert_eq!(alice().public().to_hex(), ALICE_PUBLIC);
    }

    #[test]
    fn generated_keys_differ() {
        let a = StaticKeypair::generate().expect("a");
        let b = StaticKeypair::generate().expect("b");
        assert_ne!(a.public(), b.public());
        assert_ne!(a.private_bytes(), b.private_bytes());
    }

    #[test]
    fn save_load_round_trip() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(KEY_FILE_NAME);
        let original = StaticKeypair::generate().expect("generate");
        original.save(&path).expect("save");
        let loaded = StaticKeypair::load(&path).expect("load");
        assert_eq!(loaded.public(), original.public());
        assert_eq!(loaded.private_bytes(), original.private_bytes());
    }

    #[test]
    fn saved_file_is_the_documented_text() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(KEY_FILE_NAME);
        alice().save(&path).expect("save");
        let text = std::fs::read_to_string(&path).expect("read");
        let expected = format!(
            "# chatlab server private key (X25519). Anyone who can read this file can impersonate the server.\n\
             # public key fingerprint: SHA256:300c:9c96:03b9:2a4b:39ed:3958:bf92:4011\n{ALICE_PRIVATE}\n"
        );
        assert_eq!(text, expected);
    }

    #[cfg(unix)]
    #[test]
    fn saved_file_has_mode_0600() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(KEY_FILE_NAME);
        alice().save(&path).expect("save");
        let mode = std::fs::metadata(&path).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode, KEY_FILE_MODE);
    }

    #[cfg(unix)]
    #[test]
    fn readable_by_others_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(KEY_FILE_NAME);
        alice().save(&path).expect("save");
        for mode in [0o644, 0o640, 0o604, 0o660] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
            let err = StaticKeypair::load(&path).expect_err("loose permissions");
            assert!(matches!(err, NoiseError::KeyFilePermissions { mode: found, .. } if found == mode), "{err}");
        }
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400)).expect("chmod");
        assert!(StaticKeypair::load(&path).is_ok(), "owner read-only is fine");
    }

    /// Writes `text` as a key file with safe permissions.
    fn key_file(dir: &Path, text: &[u8]) -> PathBuf {
        let path = dir.join(KEY_FILE_NAME);
        files::write_atomically(&path, text, KEY_FILE_MODE).expect("write");
        path
    }

    fn format_error(text: &[u8]) -> (usize, String) {
        let dir = tempfile::tempdir().expect("tempdir");
        match StaticKeypair::load(&key_file(dir.path(), text)) {
            Err(NoiseError::KeyFileFormat { line, reason, .. }) => (line, reason),
            other => panic!("expected a format error, got {other:?}"),
        }
    }

    #[test]
    fn corrupt_key_files_are_refused() {
        let (line, reason) = format_error(b"# comment\nnot hex at all\n");
        assert_eq!(line, 2);
        assert!(reason.contains("bad private key"), "{reason}");

        let (line, reason) = format_error(format!("{ALICE_PRIVATE}\n{ALICE_PRIVATE}\n").as_bytes());
        assert_eq!(line, 2);
        assert!(reason.contains("second key line"), "{reason}");

        let (line, reason) = format_error(b"# only a comment\n\n");
        assert_eq!(line, 2);
        assert!(reason.contains("no private key"), "{reason}");

        let (_, reason) = format_error(b"");
        assert!(reason.contains("no private key"), "{reason}");

        let (_, reason) = format_error(&ALICE_PRIVATE.as_bytes()[..63]);
        assert!(reason.contains("expected 64"), "{reason}");

        let (_, reason) = format_error(&[0xff, 0xfe, 0x00]);
        assert!(reason.contains("UTF-8"), "{reason}");

        let oversized = vec![b'#'; usize::try_from(KEY_FILE_MAX_BYTES).expect("small") + 1];
        let (_, reason) = format_error(&oversized);
        assert!(reason.contains("larger than"), "{reason}");
    }

    #[test]
    fn hand_written_file_with_uppercase_and_spaces_loads() {
        let dir = tempfile::tempdir().expect("tempdir");
        let text = format!("\n  # my server\n  {}  \n", ALICE_PRIVATE.to_uppercase());
        let loaded = StaticKeypair::load(&key_file(dir.path(), text.as_bytes())).expect("load");
        assert_eq!(loaded.public().to_hex(), ALICE_PUBLIC);
    }

    #[test]
    fn missing_file_is_an_io_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = StaticKeypair::load(&dir.path().join("absent.key")).expect_err("missing");
        assert!(matches!(err, NoiseError::KeyFileIo { ref source, .. } if source.kind() == io::ErrorKind::NotFound));
    }

    #[test]
    fn load_or_generate_creates_once_then_loads() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data").join("nested");
        let (first, created) = StaticKeypair::load_or_generate(&data).expect("first start");
        assert!(created);
        assert!(data.join(KEY_FILE_NAME).is_file());
        let (second, created) = StaticKeypair::load_or_generate(&data).expect("second start");
        assert!(!created);
        assert_eq!(first.public(), second.public());
    }

    #[cfg(unix)]
    #[test]
    fn load_or_generate_creates_owner_only_dir() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        StaticKeypair::load_or_generate(&data).expect("start");
        let mode = std::fs::metadata(&data).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode, KEY_DIR_MODE);
    }

    #[test]
    fn load_or_generate_does_not_overwrite_a_corrupt_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        key_file(dir.path(), b"garbage\n");
        let err = StaticKeypair::load_or_generate(dir.path()).expect_err("corrupt");
        assert!(matches!(err, NoiseError::KeyFileFormat { .. }));
        assert_eq!(std::fs::read(dir.path().join(KEY_FILE_NAME)).expect("read"), b"garbage\n");
    }

    #[test]
    fn load_or_generate_reports_a_dir_it_cannot_create() {
        let dir = tempfile::tempdir().expect("tempdir");
        let blocker = dir.path().join("file");
        std::fs::write(&blocker, b"x").expect("write");
        let err = StaticKeypair::load_or_generate(&blocker.join("sub")).expect_err("parent is a file");
        assert!(matches!(err, NoiseError::KeyFileIo { .. }));
    }

    #[test]
    fn debug_redacts_private_key() {
        let shown = format!("{:?}", alice());
        assert!(!shown.contains(ALICE_PRIVATE), "{shown}");
        assert!(shown.contains("<redacted>") && shown.contains("SHA256:300c"), "{shown}");
    }
}
