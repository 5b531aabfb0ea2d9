//! The server's read-idle limit against the real client's heartbeat.
//!
//! The server takes a logged-in client that sends nothing at all for its read-idle limit for gone (it may have
//! vanished without closing TCP); the client sends a `Ping` every heartbeat interval precisely so that a quiet
//! user is never mistaken for a vanished one.

use std::time::Duration;

use chatlab_client::config::HEARTBEAT_INTERVAL;
use chatlab_client::{ClientEvent, Target, Username};
use chatlab_server::ServerHandle;
use chatlab_server::limits::CONTROL_IDLE_TIMEOUT;

use crate::support::*;

/// Missed heartbeats the server tolerates at least before it ends a session: one late ping must never cost a user
/// their session.
const HEARTBEATS_PER_IDLE_LIMIT: u32 = 3;

#[test]
fn the_default_heartbeat_fits_the_servers_default_idle_limit() {
    assert!(
        HEARTBEAT_INTERVAL * HEARTBEATS_PER_IDLE_LIMIT <= CONTROL_IDLE_TIMEOUT,
        "a heartbeat every {HEARTBEAT_INTERVAL:?} against a server limit of {CONTROL_IDLE_TIMEOUT:?}"
    );
}

/// Two users who say nothing for several idle limits stay online and keep their sessions: their heartbeats count.
#[tokio::test]
async fn quiet_clients_are_kept_online_by_their_heartbeat() {
    const LIMIT: Duration = Duration::from_millis(600);
    let dir = tempfile::tempdir().unwrap();
    let mut server_config = server_config(dir.path());
    server_config.control_idle_timeout = LIMIT;
    let server = ServerHandle::start("127.0.0.1:0".parse().unwrap(), server_config).await.unwrap();
    let mut config = client_config(server.local_addr(), dir.path());
    config.heartbeat_interval = LIMIT / (HEARTBEATS_PER_IDLE_LIMIT + 1);
    let (ann, mut ann_events) = user(config.clone(), "ann").await;
    let (bob, _bob_events) = user(config, "bob").await;

    tokio::time::sleep(LIMIT * 4).await;
    // Nothing happened meanwhile: no lost connection, no reconnection, nobody went offline.
    while let Ok(event) = ann_events.try_recv() {
        assert!(
            !matches!(
                event,
                ClientEvent::Disconnected { .. }
                    | ClientEvent::Presence { online: false, .. }
                    | ClientEvent::Reconnected
            ),
            "{event:?}"
        );
    }
    let users = ann.users().await.unwrap();
    assert_eq!(users, [Username::parse("ann").unwrap(), Username::parse("bob").unwrap()]);
    bob.send(Target::World, "still here").await.unwrap();
    wait_message(&mut ann_events, "still here").await;
    server.shutdown().await.unwrap();
}
