//! The UDP side: a task that drives one [`Endpoint`] over a connected UDP socket.
//!
//! The proto crate's [`Endpoint`] is *sans-IO*: it never reads a clock or a socket. This task is its I/O loop, the
//! same four steps every sans-IO protocol needs:
//!
//! 1. send every datagram the endpoint has ready ([`Endpoint::poll_datagram`]),
//! 2. hand its events (delivered messages, a silent peer) to the client core,
//! 3. wait for whichever comes first: a command from the core, a datagram from the server, or the endpoint's next
//!    timer ([`Endpoint::poll_timeout`]: a retransmission, a delayed ack, a keepalive),
//! 4. feed that in and go back to 1.
//!
//! The socket is *connected* to the server's address. For UDP that only sets the default destination and makes the
//! kernel drop datagrams from any other source, which is exactly the filter a client wants. It also lets the kernel
//! report an ICMP "port unreachable" as an error on the next call, which the loop treats like loss.
//!
//! The first datagram from the server that opens with the session keys proves that UDP works in both directions:
//! the server only sends once our ping has told it our address. The task reports that once as
//! [`UdpReport::Confirmed`]; the core's UDP probe waits for it.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use chatlab_proto::chat::ChatPayload;
use chatlab_proto::datagram::Role;
use chatlab_proto::endpoint::Endpoint;
use chatlab_proto::engine::{EngineConfig, Event, SendError};
use chatlab_proto::limits::MAX_DATAGRAM_BYTES;
use chatlab_proto::stats::{RttSample, StatsSnapshot};

use crate::error::ClientError;

/// Receive buffer size: larger than any chatlab datagram, so an oversized datagram from a misbehaving peer is seen
/// whole (and rejected by the endpoint) instead of silently cut to a valid-looking length.
const RECV_BUFFER_BYTES: usize = 2 * MAX_DATAGRAM_BYTES;

/// Commands queued from the core to the UDP task. Sends beyond the engine's window are refused by the engine
/// itself, so this only needs to absorb a burst between two turns of the loop.
const COMMAND_QUEUE: usize = 1024;

/// What the core asks of the UDP task.
#[derive(Debug)]
pub(crate) enum UdpCommand {
    /// Queue a chat payload on `stream`; failures come back as [`UdpReport::SendFailed`].
    Send { client_msg_id: u64, stream: u32, bytes: Vec<u8> },
    /// Send a ping (keeps the probe going when an earlier ping was lost).
    Ping,
    /// Start a probe: send a ping and report [`UdpReport::Confirmed`] on the next authenticated datagram, even if
    /// an earlier probe was already confirmed (a switch back to UDP must prove the path again).
    Probe,
    /// A statistics snapshot and the recent RTT samples.
    Stats(oneshot::Sender<(StatsSnapshot, Vec<RttSample>)>),
}

/// What the UDP task tells the core.
#[derive(Debug)]
pub(crate) enum UdpReport {
    /// The first authenticated datagram from the server arrived.
    Confirmed,
    /// A chat payload arrived.
    Payload(ChatPayload),
    /// A delivered message did not decode as a chat payload.
    Undecodable(String),
    /// Nothing arrived for the engine's idle timeout.
    PeerIdle,
    /// The engine refused a message.
    SendFailed { client_msg_id: u64, error: SendError },
}

/// A running UDP task. Dropping it stops the task.
#[derive(Debug)]
pub(crate) struct UdpLink {
    commands: mpsc::Sender<UdpCommand>,
    task: JoinHandle<()>,
}

impl Drop for UdpLink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl UdpLink {
    /// Binds a socket, connects it to `server`, and starts the task with a client endpoint for the session.
    pub(crate) async fn start(
        server: SocketAddr,
        key_material: &[u8; 32],
        connection_id: u64,
        engine: EngineConfig,
        generation: u64,
        reports: mpsc::Sender<(u64, UdpReport)>,
    ) -> Result<UdpLink, ClientError> {
        let local: SocketAddr = match server {
            SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
            SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
        };
        let failed =
            |err: std::io::Error| ClientError::Unreachable { server: server.to_string(), reason: err.to_string() };
        let socket = UdpSocket::bind(local).await.map_err(failed)?;
        socket.connect(server).await.map_err(failed)?;
        let origin = Instant::now();
        let endpoint = Endpoint::new(key_material, connection_id, Role::Client, engine, Duration::ZERO)
            .map_err(|err| ClientError::Protocol(format!("engine configuration: {err}")))?;
        let (commands, inbox) = mpsc::channel(COMMAND_QUEUE);
        let task = tokio::spawn(run(socket, endpoint, origin, inbox, generation, reports));
        Ok(UdpLink { commands, task })
    }

    /// Hands a command to the task; false when the task is gone or its queue is full.
    pub(crate) fn command(&self, command: UdpCommand) -> bool {
        self.commands.try_send(command).is_ok()
    }
}

/// The I/O loop described in the module docs.
async fn run(
    socket: UdpSocket,
    mut endpoint: Endpoint,
    origin: Instant,
    mut inbox: mpsc::Receiver<UdpCommand>,
    generation: u64,
    reports: mpsc::Sender<(u64, UdpReport)>,
) {
    let mut out = Vec::with_capacity(MAX_DATAGRAM_BYTES);
    let mut buf = vec![0u8; RECV_BUFFER_BYTES];
    let mut confirmed = false;
    let report = |r: UdpReport| {
        let reports = reports.clone();
        async move { reports.send((generation, r)).await.is_ok() }
    };
    loop {
        let now = origin.elapsed();
        loop {
            match endpoint.poll_datagram(now, &mut out) {
                Ok(true) => {
                    // A failed send (ICMP unreachable reported back, no route) is loss, which the engine repairs.
                    if let Err(err) = socket.send(&out).await {
                        tracing::debug!("UDP send failed: {err}");
                    }
                }
                Ok(false) => break,
                Err(err) => {
                    tracing::warn!("could not seal a datagram: {err}");
                    break;
                }
            }
        }
        while let Some(event) = endpoint.poll_event() {
            let r = match event {
                Event::Delivered(delivery) => match ChatPayload::decode(&delivery.data) {
                    Ok(payload) => UdpReport::Payload(payload),
                    Err(err) => UdpReport::Undecodable(err.to_string()),
                },
                Event::PeerIdle => UdpReport::PeerIdle,
                Event::Acked(_) => continue,
            };
            if !report(r).await {
                return;
            }
        }
        let deadline = endpoint.poll_timeout().map(|t| origin + t);
        tokio::select! {
            command = inbox.recv() => match command {
                None => return,
                Some(UdpCommand::Send { client_msg_id, stream, bytes }) => {
                    if let Err(error) = endpoint.send(stream, bytes, origin.elapsed()) {
                        if !report(UdpReport::SendFailed { client_msg_id, error }).await {
                            return;
                        }
                    }
                }
                Some(UdpCommand::Ping) => endpoint.ping(),
                Some(UdpCommand::Probe) => {
                    confirmed = false;
                    endpoint.ping();
                }
                Some(UdpCommand::Stats(reply)) => {
                    let history = endpoint.stats().rtt_history().copied().collect();
                    let _ = reply.send((endpoint.snapshot(), history));
                }
            },
            received = socket.recv(&mut buf) => match received {
                Ok(len) => {
                    let datagram = buf.get(..len).unwrap_or_default();
                    match endpoint.handle_datagram(datagram, origin.elapsed()) {
                        Ok(()) if !confirmed => {
                            confirmed = true;
                            if !report(UdpReport::Confirmed).await {
                                return;
                            }
                        }
                        Ok(()) => {}
                        // Counted in the endpoint's statistics; a forged or stale datagram changes nothing else.
                        Err(err) => tracing::debug!("datagram rejected: {err}"),
                    }
                }
                // Typically ECONNREFUSED after an ICMP port-unreachable: the error is consumed by this call, and the
                // engine's timers decide what happens next.
                Err(err) => tracing::debug!("UDP receive failed: {err}"),
            },
            () = sleep_until(deadline) => endpoint.handle_timeout(origin.elapsed()),
        }
    }
}

/// Sleeps until `deadline`, or for ever when there is none.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chatlab_proto::chat::{ChatMessage, Target, Username};

    const SECRET: [u8; 32] = [5; 32];
    const CONNECTION: u64 = 9;
    const WAIT: Duration = Duration::from_secs(5);

    async fn next(reports: &mut mpsc::Receiver<(u64, UdpReport)>) -> UdpReport {
        let (generation, report) =
            tokio::time::timeout(WAIT, reports.recv()).await.expect("a report in time").expect("task alive");
        assert_eq!(generation, 7);
        report
    }

    /// Receives one datagram from the client into the server endpoint and sends back whatever it has to send.
    async fn serve_one(socket: &UdpSocket, server: &mut Endpoint, origin: Instant) -> SocketAddr {
        let mut buf = vec![0u8; RECV_BUFFER_BYTES];
        let (len, from) =
            tokio::time::timeout(WAIT, socket.recv_from(&mut buf)).await.expect("datagram").expect("recv");
        server.handle_datagram(buf.get(..len).unwrap_or_default(), origin.elapsed()).expect("authenticates");
        flush(socket, server, origin, from).await;
        from
    }

    async fn flush(socket: &UdpSocket, server: &mut Endpoint, origin: Instant, to: SocketAddr) {
        let mut out = Vec::new();
        while server.poll_datagram(origin.elapsed(), &mut out).expect("seal") {
            socket.send_to(&out, to).await.expect("send");
        }
    }

    #[tokio::test]
    async fn probe_payloads_refusals_and_statistics() {
        let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let (tx, mut reports) = mpsc::channel(16);
        let link =
            UdpLink::start(socket.local_addr().expect("addr"), &SECRET, CONNECTION, EngineConfig::default(), 7, tx)
                .await
                .expect("start");
        let origin = Instant::now();
        let mut server = Endpoint::new(&SECRET, CONNECTION, Role::Server, EngineConfig::default(), Duration::ZERO)
            .expect("server endpoint");

        assert!(link.command(UdpCommand::Probe));
        let client = serve_one(&socket, &mut server, origin).await;
        assert!(matches!(next(&mut reports).await, UdpReport::Confirmed));

        let message = ChatMessage {
            id: 1,
            from: Username::parse("bob").expect("valid"),
            to: Target::World,
            text: "hi".into(),
            sent_at_ms: 0,
        };
        let payload = ChatPayload::Message(message.clone()).encode().expect("encode");
        server.send(0, payload, origin.elapsed()).expect("queue");
        server.send(0, b"\xc1 not MessagePack".to_vec(), origin.elapsed()).expect("queue");
        flush(&socket, &mut server, origin, client).await;
        assert!(matches!(next(&mut reports).await, UdpReport::Payload(ChatPayload::Message(m)) if m == message));
        assert!(matches!(next(&mut reports).await, UdpReport::Undecodable(_)));

        let oversized = vec![0u8; EngineConfig::default().max_message_bytes + 1];
        assert!(link.command(UdpCommand::Send { client_msg_id: 3, stream: 0, bytes: oversized }));
        assert!(matches!(
            next(&mut reports).await,
            UdpReport::SendFailed { client_msg_id: 3, error: SendError::TooLarge { .. } }
        ));

        let (reply, answer) = oneshot::channel();
        assert!(link.command(UdpCommand::Stats(reply)));
        let (snapshot, _history) = tokio::time::timeout(WAIT, answer).await.expect("in time").expect("answered");
        assert!(snapshot.sent.pings >= 1 && snapshot.received.messages_delivered == 2, "{snapshot:?}");

        // A datagram sealed with another key is counted as rejected and changes nothing else. (Its packet number
        // was already seen, so the replay check, which runs before decryption, may be the one that refuses it.)
        let mut stranger = Endpoint::new(&[6; 32], CONNECTION, Role::Server, EngineConfig::default(), Duration::ZERO)
            .expect("endpoint");
        stranger.ping();
        flush(&socket, &mut stranger, origin, client).await;
        let deadline = Instant::now() + WAIT;
        loop {
            let (reply, answer) = oneshot::channel();
            assert!(link.command(UdpCommand::Stats(reply)));
            let (snapshot, _) = tokio::time::timeout(WAIT, answer).await.expect("in time").expect("answered");
            let rejected = snapshot.received.rejected_authentication + snapshot.received.rejected_replayed;
            if rejected == 1 {
                assert_eq!(snapshot.received.messages_delivered, 2);
                break;
            }
            assert!(Instant::now() < deadline, "{snapshot:?}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn silence_is_reported_as_an_idle_peer() {
        let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let (tx, mut reports) = mpsc::channel(16);
        let engine = EngineConfig {
            keepalive: Duration::from_millis(50),
            idle_timeout: Duration::from_millis(200),
            ..EngineConfig::default()
        };
        let link = UdpLink::start(socket.local_addr().expect("addr"), &SECRET, CONNECTION, engine, 7, tx)
            .await
            .expect("start");
        assert!(link.command(UdpCommand::Probe));
        assert!(matches!(next(&mut reports).await, UdpReport::PeerIdle));
    }

    #[tokio::test]
    async fn an_invalid_engine_configuration_is_refused() {
        let (tx, _reports) = mpsc::channel(1);
        let engine = EngineConfig { send_window: 0, ..EngineConfig::default() };
        let err = UdpLink::start("127.0.0.1:9".parse().expect("addr"), &SECRET, CONNECTION, engine, 1, tx)
            .await
            .expect_err("refused");
        assert!(matches!(err, ClientError::Protocol(_)), "{err}");
    }
}
