//! The impairment relay: a man in the middle that the class controls.
//!
//! A relay listens on one port for TCP and UDP, like the server, and forwards everything to the real server. On the
//! way, datagrams go through the seeded impairment model (loss, bursts, delay, jitter, reordering, duplication,
//! corruption), one [`Link`] per direction, so a whole room of clients can be put behind the same bad network
//! without root rights or kernel support. Optionally it records every byte that crosses it, which is how the tests
//! check that no user name, password or message text is ever readable on the wire.
//!
//! ```text
//!   client ──TCP──▶ relay:R ──TCP──▶ server:S          (bytes copied, optionally recorded)
//!   client ──UDP──▶ relay:R ──UDP──▶ server:S          (through the client→server Link)
//!   client ◀─UDP─── relay:R ◀─UDP─── server:S          (through the server→client Link)
//! ```
//!
//! The server tells clients which UDP port to use in its session grant, so a server behind a relay is started with
//! the relay's port as its advertised UDP port.
//!
//! Each client address gets its own upstream UDP socket, like a NAT mapping, so the server sees one address per
//! client and replies reach the right one, and its own pair of links, so clients do not share one random stream.
//! Mappings are bounded ([`MAX_UDP_CLIENTS`]).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use chatlab_proto::impair::{ImpairmentConfig, ImpairmentError, Link};
#[cfg(test)]
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Distinct client UDP addresses the relay maps at most. A classroom has a few dozen; the bound keeps a spoofing
/// flood from opening thousands of sockets.
pub const MAX_UDP_CLIENTS: usize = 1024;

/// Largest datagram the relay reads: above chatlab's 1200-byte maximum, so an oversized datagram reaches the server
/// (and is refused there) instead of being silently cut here.
const MAX_DATAGRAM: usize = 2048;

/// Bytes of one TCP read while copying.
const TCP_CHUNK: usize = 16 * 1024;

/// Packets waiting between the sockets and the impairment task before new ones are dropped (as a router's queue
/// would); far above what a class sends.
const QUEUE_PACKETS: usize = 4096;

/// Everything that crossed the relay, when recording.
#[derive(Debug, Default, Clone)]
pub struct Capture {
    /// TCP bytes, client to server and server to client, each connection's chunks in order.
    pub tcp: Vec<Vec<u8>>,
    /// UDP payloads in both directions, as they arrived at the relay (before impairment).
    pub udp: Vec<Vec<u8>>,
}

impl Capture {
    /// Whether `needle` occurs in any recorded TCP chunk or datagram (chunks are searched whole and also joined per
    /// direction, so a string split across two reads is still found).
    pub fn contains(&self, needle: &[u8]) -> bool {
        let joined: Vec<u8> = self.tcp.concat();
        let found = |hay: &[u8]| !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle);
        found(&joined) || self.udp.iter().any(|d| found(d))
    }

    /// Total bytes recorded.
    pub fn bytes(&self) -> usize {
        self.tcp.iter().map(Vec::len).sum::<usize>() + self.udp.iter().map(Vec::len).sum::<usize>()
    }
}

/// What the relay does to datagrams.
#[derive(Debug, Clone, Default)]
pub struct RelayConfig {
    /// Impairment of datagrams from clients to the server.
    pub upstream: ImpairmentConfig,
    /// Impairment of datagrams from the server to clients.
    pub downstream: ImpairmentConfig,
    /// Record every byte in [`Relay::capture`].
    pub record: bool,
}

/// A running relay.
#[derive(Debug, Clone)]
pub struct Relay {
    capture: Arc<Mutex<Capture>>,
}

impl Relay {
    /// A copy of what was recorded so far.
    pub fn capture(&self) -> Capture {
        self.capture.lock().map(|c| c.clone()).unwrap_or_default()
    }
}

fn record(capture: &Option<Arc<Mutex<Capture>>>, udp: bool, bytes: &[u8]) {
    if let Some(c) = capture {
        if let Ok(mut c) = c.lock() {
            if udp { c.udp.push(bytes.to_vec()) } else { c.tcp.push(bytes.to_vec()) }
        }
    }
}

/// Starts a relay on the given sockets towards `server` and returns at once; the relay runs on the current tokio
/// runtime until the sockets fail or the runtime stops.
pub fn start(
    tcp: TcpListener,
    udp: UdpSocket,
    server: SocketAddr,
    config: RelayConfig,
) -> Result<Relay, ImpairmentError> {
    config.upstream.validate()?;
    config.downstream.validate()?;
    let capture = Arc::new(Mutex::new(Capture::default()));
    let recorder = config.record.then(|| capture.clone());
    tokio::spawn(tcp_accept_loop(tcp, server, recorder.clone()));
    tokio::spawn(udp_loop(Arc::new(udp), server, config, recorder));
    Ok(Relay { capture })
}

async fn tcp_accept_loop(listener: TcpListener, server: SocketAddr, capture: Option<Arc<Mutex<Capture>>>) {
    while let Ok((client, _)) = listener.accept().await {
        let capture = capture.clone();
        tokio::spawn(async move {
            let Ok(upstream) = TcpStream::connect(server).await else { return };
            let (cr, cw) = client.into_split();
            let (ur, uw) = upstream.into_split();
            let a = tokio::spawn(copy(cr, uw, capture.clone()));
            let b = tokio::spawn(copy(ur, cw, capture));
            let _ = tokio::join!(a, b);
        });
    }
}

async fn copy(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    capture: Option<Arc<Mutex<Capture>>>,
) {
    let mut buf = vec![0u8; TCP_CHUNK];
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                record(&capture, false, &buf[..n]);
                if to.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown().await;
}

/// A datagram the server sent to one client's mapping.
struct FromServer {
    client: SocketAddr,
    packet: Vec<u8>,
}

/// One client's path through the relay: its upstream socket (the NAT mapping) and a link per direction.
struct ClientPath {
    upstream: Arc<UdpSocket>,
    up: Link,
    down: Link,
}

/// The impairment of one client's path: the configured one, with the seed mixed with the client's index so every
/// client gets its own random stream (the first client gets exactly the configured seed).
fn seeded(config: &ImpairmentConfig, index: u64) -> ImpairmentConfig {
    ImpairmentConfig { seed: config.seed.wrapping_add(index.wrapping_mul(0x9E37_79B9_7F4A_7C15)), ..config.clone() }
}

async fn udp_loop(
    socket: Arc<UdpSocket>,
    server: SocketAddr,
    config: RelayConfig,
    capture: Option<Arc<Mutex<Capture>>>,
) {
    let (tx, mut rx) = mpsc::channel::<FromServer>(QUEUE_PACKETS);
    let mut paths: HashMap<SocketAddr, ClientPath> = HashMap::new();
    let start = Instant::now();
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let next = paths.values().flat_map(|p| [p.up.next_delivery(), p.down.next_delivery()]).flatten().min();
        let sleep = async {
            match next {
                Some(at) => tokio::time::sleep_until(start + at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            received = socket.recv_from(&mut buf) => {
                let Ok((n, client)) = received else { return };
                let packet = &buf[..n];
                record(&capture, true, packet);
                if !paths.contains_key(&client) {
                    if paths.len() >= MAX_UDP_CLIENTS {
                        continue;
                    }
                    let index = paths.len() as u64;
                    let (Ok(up), Ok(down)) =
                        (Link::new(seeded(&config.upstream, index)), Link::new(seeded(&config.downstream, index)))
                    else {
                        continue;
                    };
                    let bind: SocketAddr = if server.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }.parse().expect("literal");
                    let Ok(upstream) = UdpSocket::bind(bind).await else { continue };
                    let upstream = Arc::new(upstream);
                    let reader = upstream.clone();
                    let tx = tx.clone();
                    tokio::spawn(async move {
                        let mut buf = vec![0u8; MAX_DATAGRAM];
                        while let Ok((n, _)) = reader.recv_from(&mut buf).await {
                            if tx.send(FromServer { client, packet: buf[..n].to_vec() }).await.is_err() {
                                return;
                            }
                        }
                    });
                    paths.insert(client, ClientPath { upstream, up, down });
                }
                if let Some(path) = paths.get_mut(&client) {
                    path.up.send(start.elapsed(), packet.to_vec());
                }
            }
            Some(FromServer { client, packet }) = rx.recv() => {
                record(&capture, true, &packet);
                if let Some(path) = paths.get_mut(&client) {
                    path.down.send(start.elapsed(), packet);
                }
            }
            _ = sleep => {}
        }
        let now = start.elapsed();
        for (client, path) in paths.iter_mut() {
            while let Some(packet) = path.up.poll(now) {
                let _ = path.upstream.send_to(&packet, server).await;
            }
            while let Some(packet) = path.down.poll(now) {
                let _ = socket.send_to(&packet, client).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chatlab_proto::impair::LossModel;

    async fn pair() -> (TcpListener, UdpSocket) {
        let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let udp = UdpSocket::bind(tcp.local_addr().unwrap()).await.unwrap();
        (tcp, udp)
    }

    #[tokio::test]
    async fn datagrams_and_tcp_bytes_cross_and_are_recorded() {
        let echo = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let server = echo.local_addr().unwrap();
        let tcp_server = TcpListener::bind(server).await.unwrap();
        tokio::spawn(async move {
            let mut buf = [0u8; 64];
            while let Ok((n, from)) = echo.recv_from(&mut buf).await {
                let _ = echo.send_to(&buf[..n], from).await;
            }
        });
        tokio::spawn(async move {
            while let Ok((mut s, _)) = tcp_server.accept().await {
                let _ = s.write_all(b"welcome").await;
            }
        });
        let (tcp, udp) = pair().await;
        let relay_addr = tcp.local_addr().unwrap();
        let relay = start(tcp, udp, server, RelayConfig { record: true, ..RelayConfig::default() }).unwrap();

        let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        client.send_to(b"ping-secret", relay_addr).await.unwrap();
        let mut buf = [0u8; 64];
        let (n, _) = tokio::time::timeout(Duration::from_secs(5), client.recv_from(&mut buf)).await.unwrap().unwrap();
        assert_eq!(&buf[..n], b"ping-secret");

        let mut stream = TcpStream::connect(relay_addr).await.unwrap();
        let mut got = vec![0u8; 7];
        tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut got)).await.unwrap().unwrap();
        assert_eq!(got, b"welcome");

        let capture = relay.capture();
        assert!(capture.contains(b"ping-secret"));
        assert!(capture.contains(b"welcome"));
        assert!(!capture.contains(b"absent"));
    }

    #[tokio::test]
    async fn a_fully_lossy_upstream_swallows_datagrams() {
        let sink = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let server = sink.local_addr().unwrap();
        let (tcp, udp) = pair().await;
        let relay_addr = tcp.local_addr().unwrap();
        let config = RelayConfig {
            upstream: ImpairmentConfig { loss: LossModel::Bernoulli { p: 1.0 }, ..ImpairmentConfig::default() },
            ..RelayConfig::default()
        };
        start(tcp, udp, server, config).unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        client.send_to(b"lost", relay_addr).await.unwrap();
        let mut buf = [0u8; 16];
        assert!(tokio::time::timeout(Duration::from_millis(300), sink.recv_from(&mut buf)).await.is_err());
    }

    #[tokio::test]
    async fn an_invalid_impairment_is_refused_before_starting() {
        let (tcp, udp) = pair().await;
        let config = RelayConfig {
            upstream: ImpairmentConfig { duplicate: 2.0, ..ImpairmentConfig::default() },
            ..RelayConfig::default()
        };
        assert!(start(tcp, udp, "127.0.0.1:9".parse().unwrap(), config).is_err());
    }
}
