//! The real `chatlab-server` binary: crash safety (SIGKILL), clean exit (SIGTERM), clear start-up failures.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;

use chatlab_proto::chat::Target;
use chatlab_proto::control::{ClientMessage, ErrorCode, ServerMessage};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::support::{Client, PASSWORD, PATIENCE, to_user};

const BINARY: &str = env!("CARGO_BIN_EXE_chatlab-server");

/// Options that make the binary fast to test; everything else is the production default.
fn command(data: &Path, listen: &str) -> Command {
    let mut command = Command::new(BINARY);
    command
        .args(["--listen", listen, "--data"])
        .arg(data)
        .args(["--password-memory-kib", "8", "--password-iterations", "1"])
        .args(["--flood-burst", "1000000", "--flood-rate", "1000000"])
        .env("RUST_LOG", "warn")
        .env_remove("CHATLAB_LISTEN")
        .env_remove("CHATLAB_DATA")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

/// Starts the binary on a free loopback port and reads the address from its banner.
async fn spawn(data: &Path) -> (Child, SocketAddr) {
    let mut child = command(data, "127.0.0.1:0").spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let addr = tokio::time::timeout(PATIENCE, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(rest) = line.strip_prefix("listening on ") {
                let addr = rest.split_whitespace().next().unwrap();
                return addr.parse::<SocketAddr>().unwrap();
            }
        }
        panic!("the server exited without a banner");
    })
    .await
    .expect("banner in time");
    // Keep draining stdout so the server never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, addr)
}

/// SIGKILL while messages are on their way: every message the server acknowledged is in the database after the
/// restart. The test proves that the kill really came while messages were in flight (some were never
/// acknowledged), so it cannot pass by killing an idle server.
#[tokio::test]
async fn sigkill_loses_no_acknowledged_message() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, addr) = spawn(dir.path()).await;
    let mut ann = Client::user(addr, "ann").await;
    /// Messages acknowledged before the kill, then messages fired without waiting, the kill right behind them.
    const SETTLED: usize = 100;
    const IN_FLIGHT: usize = 2_000;
    let mut texts = HashMap::new();
    let mut send = async |ann: &mut Client, n: usize| {
        let client_msg_id = ann.msg_id();
        let text = format!("durable {n}");
        texts.insert(client_msg_id, text.clone());
        ann.send(&ClientMessage::Chat { client_msg_id, to: Target::World, text }).await;
        client_msg_id
    };
    let mut settled = Vec::new();
    for n in 0..SETTLED {
        settled.push(send(&mut ann, n).await);
    }
    let mut accepted = HashMap::new();
    for client_msg_id in settled {
        accepted.insert(ann.chat_outcome(client_msg_id).await.unwrap(), client_msg_id);
    }
    for n in SETTLED..SETTLED + IN_FLIGHT {
        send(&mut ann, n).await;
    }
    // Kill while the rest are on their way to the disk.
    child.start_kill().unwrap();
    child.wait().await.unwrap();
    assert!(ann.closed_by_server().await);
    for message in ann.kept() {
        if let ServerMessage::ChatAccepted { client_msg_id, id, .. } = message {
            accepted.insert(*id, *client_msg_id);
        }
    }
    assert!(accepted.len() >= SETTLED);
    assert!(
        accepted.len() < SETTLED + IN_FLIGHT,
        "every message was acknowledged before the kill: nothing was in flight, so the test proved nothing"
    );

    let (mut child, addr) = spawn(dir.path()).await;
    let mut reader = Client::connect(addr).await;
    reader.login("ann", PASSWORD).await.unwrap();
    let (history, _) = reader.sync_all(0, 500).await;
    let stored: HashMap<u64, String> = history.into_iter().map(|m| (m.id, m.text)).collect();
    for (id, client_msg_id) in &accepted {
        assert_eq!(stored.get(id), texts.get(client_msg_id), "acknowledged message {id} lost or changed");
    }
    child.start_kill().unwrap();
    child.wait().await.unwrap();
}

/// The regression: the server de-duplicated resends only in memory, so a message committed just before a crash,
/// whose `ChatAccepted` the sender never read, was stored a second time when the sender's outbox resent it to the
/// restarted server. Now the `client_msg_id` is stored with the message and read back at startup: the resend is
/// answered with the original id and stored once; the same id with another text is a new message.
#[tokio::test]
async fn duplicate_storage_after_crash_resend_to_restarted_server_gets_the_original_id() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, addr) = spawn(dir.path()).await;
    let mut ann = Client::user(addr, "ann").await;
    let mut bob = Client::user(addr, "bob").await;
    let (world_cid, private_cid) = (0xC0FFEE, 0xC0FFEF);
    let (world_text, private_text) = ("committed, then the server died", "for bob, just before the crash");
    ann.send(&ClientMessage::Chat { client_msg_id: world_cid, to: Target::World, text: world_text.into() }).await;
    ann.send(&ClientMessage::Chat { client_msg_id: private_cid, to: to_user("bob"), text: private_text.into() }).await;
    // bob's pushes prove both are committed (nothing is fanned out before its commit); ann reads no answer.
    let world_id = bob.pushed().await.id;
    let private_id = bob.pushed().await.id;
    child.start_kill().unwrap();
    child.wait().await.unwrap();
    drop(ann);

    let (mut child, addr) = spawn(dir.path()).await;
    let mut ann = Client::connect(addr).await;
    ann.login("ann", PASSWORD).await.unwrap();
    // What the client's outbox does after the reconnect: the same ids, the same texts.
    ann.send(&ClientMessage::Chat { client_msg_id: world_cid, to: Target::World, text: world_text.into() }).await;
    assert_eq!(ann.chat_outcome(world_cid).await, Ok(world_id), "the resend gets the original id");
    ann.send(&ClientMessage::Chat { client_msg_id: private_cid, to: to_user("bob"), text: private_text.into() }).await;
    assert_eq!(ann.chat_outcome(private_cid).await, Ok(private_id), "a private resend too");
    // A client that reuses an id for another message is not silenced.
    let other = "same id, another message";
    ann.send(&ClientMessage::Chat { client_msg_id: world_cid, to: Target::World, text: other.into() }).await;
    let other_id = ann.chat_outcome(world_cid).await.unwrap();
    assert!(other_id > private_id, "stored as a new message");

    let (history, _) = ann.sync_all(0, 100).await;
    let count = |text: &str| history.iter().filter(|m| m.text == text).count();
    assert_eq!((count(world_text), count(private_text), count(other)), (1, 1, 1), "{history:#?}");
    assert_eq!(history.iter().map(|m| m.id).collect::<Vec<_>>(), vec![world_id, private_id, other_id]);
    child.start_kill().unwrap();
    child.wait().await.unwrap();
}

#[tokio::test]
async fn sigterm_tells_clients_and_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, addr) = spawn(dir.path()).await;
    let mut ann = Client::user(addr, "ann").await;
    let id = ann.chat(Target::World, "last words").await.unwrap();
    let mut anonymous = Client::connect(addr).await;
    let pid = child.id().unwrap().to_string();
    let status = std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(status.success());
    ann.expect_error(ErrorCode::ServerShuttingDown).await;
    assert!(ann.closed_by_server().await);
    anonymous.expect_error(ErrorCode::ServerShuttingDown).await;
    let exit = tokio::time::timeout(PATIENCE, child.wait()).await.expect("exits in time").unwrap();
    assert!(exit.success(), "{exit:?}");

    // And the message is still there.
    let (mut child, addr) = spawn(dir.path()).await;
    let mut reader = Client::connect(addr).await;
    reader.login("ann", PASSWORD).await.unwrap();
    let (history, _) = reader.sync_all(0, 10).await;
    assert_eq!(history.iter().map(|m| m.id).collect::<Vec<_>>(), vec![id]);
    child.start_kill().unwrap();
    child.wait().await.unwrap();
}

#[tokio::test]
async fn a_taken_port_and_an_unusable_data_dir_fail_with_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let squatter = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = squatter.local_addr().unwrap().to_string();
    let output = command(dir.path(), &taken).output().await.unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("cannot listen on"), "{stderr}");

    let file = dir.path().join("a-file");
    std::fs::write(&file, b"not a directory").unwrap();
    let output = command(&file, "127.0.0.1:0").output().await.unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("cannot use data directory"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
}

#[tokio::test]
async fn banner_names_fingerprint_and_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = command(dir.path(), "127.0.0.1:0").spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut banner = Vec::new();
    tokio::time::timeout(PATIENCE, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            let done = line.starts_with("students connect to");
            banner.push(line);
            if done {
                break;
            }
        }
    })
    .await
    .unwrap();
    let text = banner.join("\n");
    assert!(text.contains("server key fingerprint: SHA256:"), "{text}");
    assert!(text.contains(&format!("data directory: {}", dir.path().display())), "{text}");
    assert!(text.contains("students connect to: 127.0.0.1:"), "{text}");
    child.start_kill().unwrap();
    child.wait().await.unwrap();
}
