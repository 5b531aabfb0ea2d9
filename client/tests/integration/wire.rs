//! What crosses the wire: no user name, password or message text may be readable in any TCP byte or UDP datagram.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use chatlab_client::{Client, ClientEvent, Password, Target, Transport};

use crate::fake_server::{FakeServer, Options};
use crate::support::{config, wait_for};

/// A TCP relay to `upstream` that records every byte in both directions.
async fn tap(upstream: SocketAddr) -> (SocketAddr, Arc<Mutex<Vec<u8>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&seen);
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = TcpStream::connect(upstream).await else { return };
            let (client_read, client_write) = client.into_split();
            let (server_read, server_write) = server.into_split();
            tokio::spawn(copy(client_read, server_write, Arc::clone(&record)));
            tokio::spawn(copy(server_read, client_write, Arc::clone(&record)));
        }
    });
    (addr, seen)
}

async fn copy(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    record: Arc<Mutex<Vec<u8>>>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    while let Ok(read) = from.read(&mut buf).await {
        let Some(bytes) = buf.get(..read).filter(|bytes| !bytes.is_empty()) else { return };
        record.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).extend_from_slice(bytes);
        if to.write_all(bytes).await.is_err() {
            return;
        }
    }
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|window| window == needle.as_bytes())
}

#[tokio::test]
async fn no_name_password_or_text_is_readable_on_the_wire() {
    let server = FakeServer::start(Options::default()).await;
    server.add_user("mallory-watch", "pw");
    let (addr, tcp_bytes) = tap(server.addr).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = config(&server, &dir);
    config.server = addr.to_string();
    let (handle, mut events) = Client::connect(config).await.expect("connect");
    let user = "wiretap-user";
    let password = "hunter2-very-secret";
    handle.register(user, Password::new(password)).await.expect("register");
    handle.login(user, Password::new(password)).await.expect("login");
    wait_for(&mut events, "UDP confirmed", |e| matches!(e, ClientEvent::TransportChanged { .. })).await;
    let udp_text = "the udp text nobody may read";
    assert_eq!(handle.send(Target::World, udp_text).await.expect("udp send").transport, Transport::Udp);
    handle.set_transport(Transport::Tcp).await.expect("tcp");
    let tcp_text = "the tcp text nobody may read";
    assert_eq!(handle.send(Target::World, tcp_text).await.expect("tcp send").transport, Transport::Tcp);
    let incoming = "incoming words nobody may read";
    server.inject("mallory-watch", Target::World, incoming);
    wait_for(&mut events, "the incoming message", |e| matches!(e, ClientEvent::Message { .. })).await;
    handle.shutdown().await;

    let tcp = tcp_bytes.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone();
    let datagrams = server.datagrams();
    assert!(tcp.len() > 500 && !datagrams.is_empty(), "the capture saw the session");
    for secret in [user, password, udp_text, tcp_text, incoming, "mallory-watch"] {
        assert!(!contains(&tcp, secret), "{secret:?} readable in the TCP stream");
        for datagram in &datagrams {
            assert!(!contains(datagram, secret), "{secret:?} readable in a datagram");
        }
    }
}
