//! Careful file handling for the key file and the known-servers file.
//!
//! Two habits protect files that matter:
//!
//! - **Replace, never rewrite in place.** Writing straight into the real file means a crash or a full disk halfway
//!   through leaves half a key or half a list. Instead we write a temporary file next to it, flush it to the disk
//!   (`fsync`), and `rename` it over the real name. On POSIX systems a rename within one directory is atomic: a
//!   reader sees the old file or the new one, never a mixture. Finally we flush the directory too, because the
//!   rename itself is a change to the directory that could otherwise be lost in a power cut.
//! - **Read with a ceiling.** Pointing a program at the wrong path (a log, a disk image) must not make it load
//!   gigabytes into memory, so reads stop a little past the largest size a valid file can have.
//!
//! The temporary file is created with its final permissions already set (`mode` at creation, on Unix), so a secret
//! is never readable by others, not even for the moment between creating and restricting it.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use super::hex;

/// Random bytes in a temporary file's name. 8 bytes make a collision with another writer's file practically
/// impossible, and the file is created with `create_new`, so even a collision fails safely instead of sharing it.
const TEMP_NAME_RANDOM_BYTES: usize = 8;

/// Replaces `path` with `contents` atomically, creating it with Unix permission bits `mode` (ignored elsewhere).
pub(crate) fn write_atomically(path: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
    let dir = parent_dir(path);
    let temp = temp_path(path)?;
    let result = write_new_file(&temp, contents, mode).and_then(|()| fs::rename(&temp, path));
    if result.is_err() {
        // Best effort: the temporary file may not even exist if creating it was what failed.
        let _ = fs::remove_file(&temp);
        return result;
    }
    sync_dir(&dir)
}

/// Reads at most `cap + 1` bytes of `file`, so the caller can tell a file longer than `cap` from one that fits.
pub(crate) fn read_capped(file: File, cap: u64) -> io::Result<Vec<u8>> {
    let mut contents = Vec::new();
    file.take(cap.saturating_add(1)).read_to_end(&mut contents)?;
    Ok(contents)
}

/// Creates `path` (which must not exist), writes `contents` and flushes them to the disk.
fn write_new_file(path: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options.open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

/// The directory that holds `path`; "." for a bare file name.
fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// A fresh hidden name next to `path`: `.NAME.tmp-RANDOM`.
fn temp_path(path: &Path) -> io::Result<PathBuf> {
    let name =
        path.file_name().ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path does not name a file"))?;
    let mut random = [0u8; TEMP_NAME_RANDOM_BYTES];
    getrandom::fill(&mut random).map_err(|err| io::Error::other(err.to_string()))?;
    let mut temp_name = std::ffi::OsString::from(".");
    temp_name.push(name);
    temp_name.push(".tmp-");
    temp_name.push(hex::encode(&random));
    Ok(parent_dir(path).join(temp_name))
}

/// Flushes a directory's entries to the disk, so a completed rename survives a power cut.
#[cfg(unix)]
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Directories cannot be opened for syncing on every platform; there the rename is as durable as the OS makes it.
#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_creates_and_replaces_without_leaving_temp_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("data.txt");
        write_atomically(&path, b"first", 0o600).expect("write");
        write_atomically(&path, b"second", 0o600).expect("replace");
        assert_eq!(fs::read(&path).expect("read"), b"second");
        let names: Vec<_> = fs::read_dir(dir.path()).expect("list").filter_map(|e| e.ok()).collect();
        assert_eq!(names.len(), 1, "temporary file left behind");
    }

    #[cfg(unix)]
    #[test]
    fn file_gets_the_requested_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("secret");
        write_atomically(&path, b"x", 0o600).expect("write");
        let mode = fs::metadata(&path).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn write_into_missing_directory_fails_cleanly() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("no-such-dir").join("file");
        let err = write_atomically(&path, b"x", 0o600).expect_err("missing dir");
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn path_without_file_name_is_refused() {
        let err = write_atomically(Path::new("/"), b"x", 0o600).expect_err("no file name");
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn bare_file_name_lives_in_current_dir() {
        assert_eq!(parent_dir(Path::new("known_servers")), PathBuf::from("."));
        assert_eq!(parent_dir(Path::new("a/b")), PathBuf::from("a"));
    }

    #[test]
    fn read_capped_stops_one_byte_past_the_cap() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("big");
        fs::write(&path, vec![b'x'; 100]).expect("write");
        let read = read_capped(File::open(&path).expect("open"), 10).expect("read");
        assert_eq!(read.len(), 11);
        let read = read_capped(File::open(&path).expect("open"), 1000).expect("read");
        assert_eq!(read.len(), 100);
    }
}
