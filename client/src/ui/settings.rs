//! What the app remembers between runs: the last server and user name, the language, whether the statistics
//! panel was open, and the largest message id each account has seen (so messages that arrived while the app was
//! closed can be counted as unread).
//!
//! The file is small JSON in the user's configuration directory: `$XDG_CONFIG_HOME/chatlab/settings.json`, or
//! `~/.config/chatlab/settings.json` when that variable is unset (the XDG Base Directory rule). It never holds a
//! password.
//!
//! **Written atomically.** Saving writes a temporary file beside the real one and renames it over it. A rename
//! within one directory is atomic on POSIX file systems, so a crash or a full disk mid-write leaves either the old
//! settings or the new ones, never half a file. A file that cannot be read or parsed (edited by hand, from a
//! future version) is not an error the user must fix: the app starts with defaults and says nothing.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::i18n::Lang;

/// The folder under the configuration directory.
pub const APP_DIR: &str = "chatlab";

/// The file name.
pub const FILE_NAME: &str = "settings.json";

/// Largest settings file read, in bytes. The real file is a few hundred bytes; the limit keeps a wrong file (a log,
/// a disk image) from being read into memory whole.
pub const MAX_SETTINGS_BYTES: u64 = 1 << 20;

/// Most accounts whose last seen message id is remembered; the oldest entries are forgotten first so the file
/// stays small on a shared lab computer where a whole class signs in.
pub const MAX_REMEMBERED_ACCOUNTS: usize = 64;

/// The remembered settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// The server address last signed in to.
    pub server: String,
    /// The user name last signed in with.
    pub user: String,
    /// The chosen language; `None` follows the system locale.
    pub lang: Option<Lang>,
    /// Whether the statistics panel was open.
    pub show_stats: bool,
    /// Per `user@server`: the largest message id seen, with a use counter for forgetting the oldest.
    pub last_seen: BTreeMap<String, SeenMark>,
    /// Counter that orders [`SeenMark::used`].
    pub uses: u64,
}

/// The largest message id an account has seen, and when it was last updated (in [`Settings::uses`] order).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeenMark {
    /// Largest message id seen.
    pub id: u64,
    /// Value of [`Settings::uses`] at the update.
    pub used: u64,
}

/// Why the settings could not be saved.
#[derive(Debug, Error)]
pub enum SettingsError {
    /// Neither `XDG_CONFIG_HOME` nor `HOME` is set.
    #[error("no configuration directory: neither XDG_CONFIG_HOME nor HOME is set")]
    NoConfigDir,
    /// Creating the folder, writing or renaming failed.
    #[error("cannot write {path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// The settings did not serialise (cannot happen with these types; kept so no `unwrap` is needed).
    #[error("cannot encode the settings: {0}")]
    Encode(#[from] serde_json::Error),
}

/// The settings file's path from the environment, by the XDG rule (see the module docs).
pub fn default_path(get: impl Fn(&str) -> Option<String>) -> Option<PathBuf> {
    let base = match get("XDG_CONFIG_HOME").filter(|v| Path::new(v).is_absolute()) {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(get("HOME").filter(|v| !v.is_empty())?).join(".config"),
    };
    Some(base.join(APP_DIR).join(FILE_NAME))
}

/// The settings file's path for this process.
pub fn path_from_env() -> Option<PathBuf> {
    default_path(|name| std::env::var(name).ok())
}

fn account_key(user: &str, server: &str) -> String {
    format!("{user}@{server}")
}

impl Settings {
    /// Reads the settings at `path`; defaults when the file is missing, too large or unreadable.
    pub fn load(path: &Path) -> Settings {
        let Ok(metadata) = std::fs::metadata(path) else { return Settings::default() };
        if metadata.len() > MAX_SETTINGS_BYTES {
            return Settings::default();
        }
        std::fs::read(path).ok().and_then(|bytes| serde_json::from_slice(&bytes).ok()).unwrap_or_default()
    }

    /// Writes the settings to `path` atomically (temporary file, then rename), creating the folder if needed.
    pub fn save(&self, path: &Path) -> Result<(), SettingsError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| SettingsError::Io { path, source }
        };
        let dir = path.parent().ok_or(SettingsError::NoConfigDir)?;
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let json = serde_json::to_vec_pretty(self)?;
        let tmp = path.with_extension(format!("json.tmp{}", std::process::id()));
        let write = || -> std::io::Result<()> {
            let mut file = std::fs::File::create(&tmp)?;
            file.write_all(&json)?;
            // Data on disk before the rename makes the new name visible; otherwise a crash could leave the new
            // name pointing at an empty file.
            file.sync_all()
        };
        if let Err(source) = write() {
            let _ = std::fs::remove_file(&tmp);
            return Err(SettingsError::Io { path: tmp, source });
        }
        std::fs::rename(&tmp, path).map_err(|source| {
            let _ = std::fs::remove_file(&tmp);
            SettingsError::Io { path: path.to_path_buf(), source }
        })
    }

    /// The largest message id `user` saw on `server`, if remembered.
    pub fn last_seen(&self, user: &str, server: &str) -> Option<u64> {
        self.last_seen.get(&account_key(user, server)).map(|mark| mark.id)
    }

    /// Remembers that `user` on `server` has seen messages up to `id` (never moving backwards), forgetting the
    /// least recently updated accounts beyond [`MAX_REMEMBERED_ACCOUNTS`].
    pub fn mark_seen(&mut self, user: &str, server: &str, id: u64) {
        self.uses = self.uses.saturating_add(1);
        let used = self.uses;
        let mark = self.last_seen.entry(account_key(user, server)).or_default();
        mark.id = mark.id.max(id);
        mark.used = used;
        while self.last_seen.len() > MAX_REMEMBERED_ACCOUNTS {
            let oldest = self.last_seen.iter().min_by_key(|(_, mark)| mark.used).map(|(key, _)| key.clone());
            match oldest {
                Some(key) => self.last_seen.remove(&key),
                None => break,
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| (*v).to_owned())
    }

    #[test]
    fn path_follows_xdg_then_home() {
        assert_eq!(
            default_path(env(&[("XDG_CONFIG_HOME", "/cfg"), ("HOME", "/home/ann")])),
            Some(PathBuf::from("/cfg/chatlab/settings.json"))
        );
        assert_eq!(
            default_path(env(&[("HOME", "/home/ann")])),
            Some(PathBuf::from("/home/ann/.config/chatlab/settings.json"))
        );
        // The XDG spec says relative values are invalid and must be ignored.
        assert_eq!(
            default_path(env(&[("XDG_CONFIG_HOME", "rel"), ("HOME", "/h")])),
            Some(PathBuf::from("/h/.config/chatlab/settings.json"))
        );
        assert_eq!(default_path(env(&[])), None);
    }

    #[test]
    fn save_then_load_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested").join(FILE_NAME);
        let mut settings = Settings {
            server: String::from("10.0.0.5:7878"),
            user: String::from("ann"),
            lang: Some(Lang::Zh),
            show_stats: true,
            ..Settings::default()
        };
        settings.mark_seen("ann", "10.0.0.5:7878", 41);
        settings.save(&path).unwrap();
        assert_eq!(Settings::load(&path), settings);
        assert_eq!(Settings::load(&path).last_seen("ann", "10.0.0.5:7878"), Some(41));
        let leftovers: Vec<_> = std::fs::read_dir(path.parent().unwrap()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temporary file stays behind");
    }

    #[test]
    fn missing_garbage_or_huge_files_give_defaults() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Settings::load(&dir.path().join("absent.json")), Settings::default());
        let garbage = dir.path().join("garbage.json");
        std::fs::write(&garbage, b"{not json").unwrap();
        assert_eq!(Settings::load(&garbage), Settings::default());
        let huge = dir.path().join("huge.json");
        std::fs::write(&huge, vec![b' '; MAX_SETTINGS_BYTES as usize + 1]).unwrap();
        assert_eq!(Settings::load(&huge), Settings::default());
    }

    #[test]
    fn unknown_and_missing_fields_are_tolerated() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        std::fs::write(&path, br#"{"server":"h:1","from_the_future":true}"#).unwrap();
        let settings = Settings::load(&path);
        assert_eq!(settings.server, "h:1");
        assert_eq!(settings.user, "");
    }

    #[test]
    fn saving_into_a_file_where_a_folder_should_be_fails_with_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("blocker");
        std::fs::write(&blocker, b"").unwrap();
        let err = Settings::default().save(&blocker.join(FILE_NAME)).unwrap_err();
        assert!(matches!(err, SettingsError::Io { .. }));
        assert!(err.to_string().contains("blocker"));
    }

    #[test]
    fn seen_marks_never_go_back_and_old_accounts_are_forgotten() {
        let mut settings = Settings::default();
        settings.mark_seen("ann", "s", 10);
        settings.mark_seen("ann", "s", 3);
        assert_eq!(settings.last_seen("ann", "s"), Some(10));
        for i in 0..MAX_REMEMBERED_ACCOUNTS {
            settings.mark_seen(&format!("u{i}"), "s", 1);
        }
        assert_eq!(settings.last_seen.len(), MAX_REMEMBERED_ACCOUNTS);
        assert_eq!(settings.last_seen("ann", "s"), None, "the least recently used account went first");
    }
}
