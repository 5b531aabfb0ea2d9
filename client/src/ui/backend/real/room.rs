//! "Host a room here": the chatlab server library running inside the desktop app.
//!
//! A class without a server machine still wants to chat: one student presses "host a room here" and the others type
//! that laptop's address. The app then runs the same server as `chatlab-server` (the library's
//! [`ServerHandle`]) on the app's tokio runtime, listening on every IPv4 interface (`0.0.0.0`) on the chosen port
//! for both TCP and UDP. Its data (the server's Noise key and the SQLite history) lives in the user's data
//! directory, so the room keeps its key, its accounts and its history from one class to the next, and students who
//! pinned its key on first contact are not warned of a changed key next week.
//!
//! "0.0.0.0" is not an address anyone can type, so the app shows the machine's LAN addresses
//! ([`chatlab_server::lan_addresses`]) with the port.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use chatlab_server::{ServerConfig, ServerHandle, lan_addresses};

use super::super::Problem;

/// Folder of the app's own data inside the user's data directory.
const APP_DATA_DIR: &str = "chatlab";

/// Folder of the hosted room's data (key and history) inside [`APP_DATA_DIR`].
const ROOM_DIR: &str = "room";

/// Where the hosted room keeps its data by default: `$XDG_DATA_HOME/chatlab/room`, else
/// `$HOME/.local/share/chatlab/room` (the XDG base-directory rule; a relative `XDG_DATA_HOME` is invalid and
/// ignored). `None` when neither variable helps.
pub fn default_room_dir(get: impl Fn(&str) -> Option<String>) -> Option<PathBuf> {
    let base = match get("XDG_DATA_HOME").filter(|v| Path::new(v).is_absolute()) {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(get("HOME").filter(|v| !v.is_empty())?).join(".local").join("share"),
    };
    Some(base.join(APP_DATA_DIR).join(ROOM_DIR))
}

/// The addresses to show for a room on `port`: each LAN address of this machine with the port.
pub fn share_addresses(addresses: &[Ipv4Addr], port: u16) -> Vec<String> {
    addresses.iter().map(|ip| SocketAddr::from((*ip, port)).to_string()).collect()
}

/// Starts a room on every interface on `port` (0: any free port) with its data in `dir`. Must run on a tokio
/// runtime, which then serves the room until the handle is shut down.
pub async fn host(port: u16, dir: Option<&Path>) -> Result<(ServerHandle, Vec<String>), Problem> {
    let dir = dir.ok_or_else(|| {
        Problem::Other(String::from("no data directory for the room: neither XDG_DATA_HOME nor HOME is set"))
    })?;
    let addr = SocketAddr::from((Ipv4Addr::UNSPECIFIED, port));
    let server = ServerHandle::start(addr, ServerConfig::with_data_dir(dir))
        .await
        .map_err(|err| Problem::Other(format!("the room could not start on port {port}: {err}")))?;
    let port = server.local_addr().port();
    Ok((server, share_addresses(&lan_addresses(), port)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| (*v).to_owned())
    }

    #[test]
    fn xdg_data_home_wins_over_home() {
        let dir = default_room_dir(env(&[("XDG_DATA_HOME", "/d"), ("HOME", "/home/ann")]));
        assert_eq!(dir, Some(PathBuf::from("/d/chatlab/room")));
    }

    #[test]
    fn home_is_the_fallback_and_relative_xdg_is_ignored() {
        let dir = default_room_dir(env(&[("XDG_DATA_HOME", "rel"), ("HOME", "/home/ann")]));
        assert_eq!(dir, Some(PathBuf::from("/home/ann/.local/share/chatlab/room")));
    }

    #[test]
    fn no_environment_no_room_dir() {
        assert_eq!(default_room_dir(env(&[])), None);
        assert_eq!(default_room_dir(env(&[("HOME", "")])), None);
    }

    #[test]
    fn addresses_carry_the_port() {
        let shown = share_addresses(&[Ipv4Addr::new(192, 168, 1, 20), Ipv4Addr::new(10, 0, 0, 5)], 7000);
        assert_eq!(shown, ["192.168.1.20:7000", "10.0.0.5:7000"]);
    }

    #[tokio::test]
    async fn without_a_data_directory_the_room_does_not_start() {
        assert!(matches!(host(0, None).await, Err(Problem::Other(text)) if text.contains("HOME")));
    }

    #[tokio::test]
    async fn a_room_starts_and_a_taken_port_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let (server, _addresses) = host(0, Some(dir.path())).await.unwrap();
        let port = server.local_addr().port();
        assert_ne!(port, 0);
        let second = tempfile::tempdir().unwrap();
        let taken = host(port, Some(second.path())).await;
        assert!(matches!(taken, Err(Problem::Other(text)) if text.contains(&port.to_string())));
        server.shutdown().await.unwrap();
    }
}
