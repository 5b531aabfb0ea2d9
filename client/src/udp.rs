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
//!
//! The endpoint itself belongs to the session, not to the task ([`session`]): a task stopped by a fall-back to TCP
//! and a new one started on a switch back use the same endpoint, so packet numbers (and with them the AES-GCM
//! nonces) never repeat under the session's keys.
//!
//! **Sending, and waiting for room.** The client core queues chat messages in the session's endpoint itself
//! ([`SessionEndpoint::send`]), so it learns at once, in order, whether the engine's send window took a message;
//! then it wakes this task ([`UdpLink::wake`]) to seal and send the datagrams. A message the window has no room for
//! waits in the core. Whenever acknowledgements free room in the window this task says so
//! ([`UdpReport::Room`]), and the core moves the waiting messages in, oldest first.
//!
//! Between the socket and the endpoint the task can put an impaired network of its own ([`impair`]): outgoing
//! datagrams then wait in a link before `send`, received ones in another before the endpoint sees them, and the
//! loop's third step also wakes for the next datagram the links have due. The settings arrive on a `watch` channel
//! from the core, which keeps the latest one for every later session.

mod impair;
mod session;

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use std::sync::Arc;
use tokio::net::UdpSocket;

use tokio::sync::{Notify, mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use chatlab_proto::chat::ChatPayload;
use chatlab_proto::engine::Event;
use chatlab_proto::limits::MAX_DATAGRAM_BYTES;
use chatlab_proto::stats::{RttSample, StatsSnapshot};

use crate::error::ClientError;
use crate::stats::ImpairmentStats;

pub(crate) use impair::Impairment;
use impair::{ImpairedPath, Way};
pub(crate) use session::SessionEndpoint;

/// Receive buffer size: larger than any chatlab datagram, so an oversized datagram from a misbehaving peer is seen
/// whole (and rejected by the endpoint) instead of silently cut to a valid-looking length.
const RECV_BUFFER_BYTES: usize = 2 * MAX_DATAGRAM_BYTES;

/// Commands queued from the core to the UDP task: pings, probes and statistics requests, a handful at a time (chat
/// messages do not travel here: the core queues them in the endpoint and calls [`UdpLink::wake`]).
const COMMAND_QUEUE: usize = 64;

/// What the core asks of the UDP task.
#[derive(Debug)]
pub(crate) enum UdpCommand {
    /// Send a ping (keeps the probe going when an earlier ping was lost).
    Ping,
    /// Start a probe: send a ping and report [`UdpReport::Confirmed`] on the next authenticated datagram, even if
    /// an earlier probe was already confirmed (a switch back to UDP must prove the path again).
    Probe,
    /// A statistics snapshot, the recent RTT samples and the impaired path's counters.
    Stats(oneshot::Sender<UdpStats>),
}

/// The UDP task's statistics, answer of [`UdpCommand::Stats`].
#[derive(Debug)]
pub(crate) struct UdpStats {
    pub snapshot: StatsSnapshot,
    pub rtt_history: Vec<RttSample>,
    pub impairment: Option<ImpairmentStats>,
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
    /// The engine ended the UDP session because of what the server sent.
    Failed(chatlab_proto::engine::ConnectionError),
    /// Acknowledgements freed room in the send window: messages waiting for it may go in now.
    Room,
}

/// A running UDP task. Dropping it stops the task.
#[derive(Debug)]
pub(crate) struct UdpLink {
    commands: mpsc::Sender<UdpCommand>,
    /// Wakes the task to send what the core queued in the endpoint. A `Notify` keeps one wake-up for a task that
    /// is busy, so a wake is never lost and a burst of them costs one turn of the loop.
    wake: Arc<Notify>,
    task: JoinHandle<()>,
}

impl Drop for UdpLink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl UdpLink {
    /// Binds a fresh socket, connects it to `server`, and starts the task driving the session's `endpoint` (shared:
    /// a task started later goes on where this one stopped). The task impairs its traffic as `impairment` says, now
    /// and whenever it changes.
    pub(crate) async fn start(
        server: SocketAddr,
        endpoint: &SessionEndpoint,
        mut impairment: watch::Receiver<Impairment>,
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
        let (commands, inbox) = mpsc::channel(COMMAND_QUEUE);
        let initial = impairment.borrow_and_update().clone();
        // The core validated the setting; were it refused anyway, an unimpaired path is the safe way to start.
        let path = ImpairedPath::new(&initial).unwrap_or_else(|err| {
            tracing::warn!("impairment not applied: {err}");
            ImpairedPath::default()
        });
        let origin = endpoint.origin();
        let io = Io { socket, endpoint: endpoint.clone(), path, origin, confirmed: false };
        let wake = Arc::new(Notify::new());
        let task = tokio::spawn(run(io, inbox, Arc::clone(&wake), impairment, generation, reports));
        Ok(UdpLink { commands, wake, task })
    }

    /// Tells the task that the core queued messages in the endpoint: it sends them on its next turn.
    pub(crate) fn wake(&self) {
        self.wake.notify_one();
    }

    /// Hands a command to the task; false when the task is gone or its queue is full.
    pub(crate) fn command(&self, command: UdpCommand) -> bool {
        self.commands.try_send(command).is_ok()
    }
}

/// What the loop drives: the socket, the endpoint and the (maybe impaired) path between them.
struct Io {
    socket: UdpSocket,
    endpoint: SessionEndpoint,
    path: ImpairedPath,
    /// Time zero of the endpoint and the links, which count time as a `Duration` since it.
    origin: Instant,
    /// Whether an authenticated datagram was reported since the last probe.
    confirmed: bool,
}

impl Io {
    /// Sends a datagram that has passed the outgoing link (or bypassed it).
    async fn transmit(&self, datagram: &[u8]) {
        // A failed send (ICMP unreachable reported back, no route) is loss, which the engine repairs.
        if let Err(err) = self.socket.send(datagram).await {
            tracing::debug!("UDP send failed: {err}");
        }
    }

    /// Hands a received datagram (after the incoming link, if any) to the endpoint; the first one that
    /// authenticates after a probe confirms the path.
    fn receive(&mut self, datagram: &[u8], now: Duration) -> Option<UdpReport> {
        let opened = self.endpoint.lock().handle_datagram(datagram, now);
        match opened {
            Ok(()) if !self.confirmed => {
                self.confirmed = true;
                Some(UdpReport::Confirmed)
            }
            Ok(()) => None,
            // Counted in the endpoint's statistics; a forged, stale or corrupted datagram changes nothing else.
            Err(err) => {
                tracing::debug!("datagram rejected: {err}");
                None
            }
        }
    }

    /// Moves datagrams until nothing is due at `now`: what the links deliver (out to the socket, in to the
    /// endpoint) and what the endpoint has to send (into the outgoing link, or straight out). Returns the reports
    /// for the core.
    async fn pump(&mut self, now: Duration, out: &mut Vec<u8>) -> Vec<UdpReport> {
        let mut reports = Vec::new();
        loop {
            let mut moved = false;
            while let Some((way, datagram)) = self.path.poll(now) {
                moved = true;
                match way {
                    Way::Outgoing => self.transmit(&datagram).await,
                    Way::Incoming => reports.extend(self.receive(&datagram, now)),
                }
            }
            loop {
                // The lock is released before the send's await (see the `session` module).
                let sealed = self.endpoint.lock().poll_datagram(now, out);
                match sealed {
                    Ok(true) if self.path.is_active() => {
                        // Due at once on an unimpaired link, so the next turn of the outer loop sends it.
                        self.path.offer(Way::Outgoing, now, out.clone());
                        moved = true;
                    }
                    Ok(true) => self.transmit(out).await,
                    Ok(false) => break,
                    Err(err) => {
                        tracing::warn!("could not seal a datagram: {err}");
                        break;
                    }
                }
            }
            if !moved {
                return reports;
            }
        }
    }

    /// The next instant the loop must wake without input: the endpoint's timer or the path's next delivery.
    fn deadline(&self) -> Option<Instant> {
        let timer = self.endpoint.lock().poll_timeout();
        let next = match (timer, self.path.next_delivery()) {
            (Some(timer), Some(delivery)) => Some(timer.min(delivery)),
            (timer, delivery) => timer.or(delivery),
        };
        next.map(|at| self.origin + at)
    }

    /// Applies new impairment settings; the core validated them, so a refusal here is only logged.
    fn impair(&mut self, settings: &Impairment) {
        if let Err(err) = self.path.apply(settings) {
            tracing::warn!("impairment not applied: {err}");
        }
    }

    fn stats(&self) -> UdpStats {
        let endpoint = self.endpoint.lock();
        UdpStats {
            snapshot: endpoint.snapshot(),
            rtt_history: endpoint.stats().rtt_history().copied().collect(),
            impairment: self.path.stats(),
        }
    }
}

/// The I/O loop described in the module docs.
async fn run(
    mut io: Io,
    mut inbox: mpsc::Receiver<UdpCommand>,
    wake: Arc<Notify>,
    mut impairment: watch::Receiver<Impairment>,
    generation: u64,
    reports: mpsc::Sender<(u64, UdpReport)>,
) {
    let mut out = Vec::with_capacity(MAX_DATAGRAM_BYTES);
    let mut buf = vec![0u8; RECV_BUFFER_BYTES];
    let report = |r: UdpReport| {
        let reports = reports.clone();
        async move { reports.send((generation, r)).await.is_ok() }
    };
    loop {
        let now = io.origin.elapsed();
        for r in io.pump(now, &mut out).await {
            if !report(r).await {
                return;
            }
        }
        // One `Room` per turn however many messages were acknowledged: the core fills the window as far as it goes.
        let mut room = false;
        loop {
            let Some(event) = io.endpoint.lock().poll_event() else { break };
            let r = match event {
                Event::Delivered(delivery) => match ChatPayload::decode(&delivery.data) {
                    Ok(payload) => UdpReport::Payload(payload),
                    Err(err) => UdpReport::Undecodable(err.to_string()),
                },
                Event::PeerIdle => UdpReport::PeerIdle,
                Event::Failed(error) => UdpReport::Failed(error),
                Event::Acked(_) => {
                    room = true;
                    continue;
                }
            };
            if !report(r).await {
                return;
            }
        }
        if room && !report(UdpReport::Room).await {
            return;
        }
        let deadline = io.deadline();
        tokio::select! {
            command = inbox.recv() => match command {
                None => return,
                Some(UdpCommand::Ping) => io.endpoint.lock().ping(),
                Some(UdpCommand::Probe) => {
                    io.confirmed = false;
                    io.endpoint.lock().ping();
                }
                Some(UdpCommand::Stats(reply)) => drop(reply.send(io.stats())),
            },
            // The core queued messages in the endpoint; the next turn's first step sends them.
            () = wake.notified() => {}
            settings = next_setting(&mut impairment) => io.impair(&settings),
            received = io.socket.recv(&mut buf) => match received {
                Ok(len) => {
                    let datagram = buf.get(..len).unwrap_or_default();
                    let now = io.origin.elapsed();
                    if io.path.is_active() {
                        io.path.offer(Way::Incoming, now, datagram.to_vec());
                    } else if let Some(r) = io.receive(datagram, now) {
                        if !report(r).await {
                            return;
                        }
                    }
                }
                // Typically ECONNREFUSED after an ICMP port-unreachable: the error is consumed by this call, and the
                // engine's timers decide what happens next.
                Err(err) => tracing::debug!("UDP receive failed: {err}"),
            },
            // The endpoint acts only on timers that are due, so waking for a delivery of the path is harmless here.
            () = sleep_until(deadline) => io.endpoint.lock().handle_timeout(io.origin.elapsed()),
        }
    }
}

/// The next impairment setting, or never when the core that sets them is gone.
async fn next_setting(settings: &mut watch::Receiver<Impairment>) -> Impairment {
    match settings.changed().await {
        Ok(()) => settings.borrow_and_update().clone(),
        Err(_) => std::future::pending().await,
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
    use chatlab_proto::datagram::Role;
    use chatlab_proto::endpoint::Endpoint;
    use chatlab_proto::engine::EngineConfig;

    const SECRET: [u8; 32] = [5; 32];
    const CONNECTION: u64 = 9;
    const WAIT: Duration = Duration::from_secs(5);

    fn session_endpoint(engine: EngineConfig) -> SessionEndpoint {
        SessionEndpoint::new(&SECRET, CONNECTION, engine).expect("valid engine configuration")
    }

    /// A setting channel that never changes (its sender is gone, which the task must tolerate).
    fn unimpaired() -> watch::Receiver<Impairment> {
        watch::channel(Impairment::default()).1
    }

    async fn stats(link: &UdpLink) -> UdpStats {
        let (reply, answer) = oneshot::channel();
        assert!(link.command(UdpCommand::Stats(reply)));
        tokio::time::timeout(WAIT, answer).await.expect("in time").expect("answered")
    }

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
        let link = UdpLink::start(
            socket.local_addr().expect("addr"),
            &session_endpoint(EngineConfig::default()),
            unimpaired(),
            7,
            tx,
        )
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

        let UdpStats { snapshot, impairment, .. } = stats(&link).await;
        assert!(snapshot.sent.pings >= 1 && snapshot.received.messages_delivered == 2, "{snapshot:?}");
        assert_eq!(impairment, None, "never impaired: no links, no figures");

        // A datagram sealed with another key is counted as rejected and changes nothing else. (Its packet number
        // was already seen, so the replay check, which runs before decryption, may be the one that refuses it.)
        let mut stranger = Endpoint::new(&[6; 32], CONNECTION, Role::Server, EngineConfig::default(), Duration::ZERO)
            .expect("endpoint");
        stranger.ping();
        flush(&socket, &mut stranger, origin, client).await;
        let deadline = Instant::now() + WAIT;
        loop {
            let snapshot = stats(&link).await.snapshot;
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
    async fn a_woken_task_sends_what_the_core_queued_and_reports_room_once_it_is_acknowledged() {
        let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let (tx, mut reports) = mpsc::channel(16);
        let endpoint = session_endpoint(EngineConfig { send_window: 1, ..EngineConfig::default() });
        let link =
            UdpLink::start(socket.local_addr().expect("addr"), &endpoint, unimpaired(), 7, tx).await.expect("start");
        endpoint.send(0, b"queued by the core".to_vec()).expect("room for one");
        assert!(!endpoint.has_room(), "a window of one is full");
        link.wake();

        let origin = Instant::now();
        let mut server = Endpoint::new(&SECRET, CONNECTION, Role::Server, EngineConfig::default(), Duration::ZERO)
            .expect("server endpoint");
        // The server's answer carries the acknowledgement of the message.
        serve_one(&socket, &mut server, origin).await;
        assert!(
            matches!(server.poll_event(), Some(Event::Delivered(d)) if d.data == b"queued by the core"),
            "the wake sent the message"
        );
        loop {
            match next(&mut reports).await {
                UdpReport::Room => break,
                UdpReport::Confirmed => {}
                other => panic!("unexpected report {other:?}"),
            }
        }
        assert!(endpoint.has_room(), "the acknowledgement made room");
    }

    /// Receives one datagram from the client, checks that the server endpoint accepts it, and returns its packet
    /// number.
    async fn accepted_packet_number(socket: &UdpSocket, server: &mut Endpoint, origin: Instant) -> u64 {
        let mut buf = vec![0u8; RECV_BUFFER_BYTES];
        let (len, _) = tokio::time::timeout(WAIT, socket.recv_from(&mut buf)).await.expect("datagram").expect("recv");
        let datagram = buf.get(..len).unwrap_or_default();
        let number = chatlab_proto::datagram::Header::parse(datagram).expect("header").packet_number;
        server.handle_datagram(datagram, origin.elapsed()).expect("authenticates and is not a replay");
        number
    }

    #[tokio::test]
    async fn a_task_restarted_after_a_fallback_continues_the_packet_numbers() {
        let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let origin = Instant::now();
        let mut server = Endpoint::new(&SECRET, CONNECTION, Role::Server, EngineConfig::default(), Duration::ZERO)
            .expect("server endpoint");
        let endpoint = session_endpoint(EngineConfig::default());
        let (tx, _reports) = mpsc::channel(16);
        let first = UdpLink::start(socket.local_addr().expect("addr"), &endpoint, unimpaired(), 1, tx.clone())
            .await
            .expect("start");
        assert!(first.command(UdpCommand::Probe));
        let before = accepted_packet_number(&socket, &mut server, origin).await;
        // The fall-back to TCP stops the task; a switch back to UDP starts another, on a fresh socket.
        drop(first);
        let second =
            UdpLink::start(socket.local_addr().expect("addr"), &endpoint, unimpaired(), 2, tx).await.expect("start");
        assert!(second.command(UdpCommand::Probe));
        let after = accepted_packet_number(&socket, &mut server, origin).await;
        assert!(after > before, "packet {after} after {before}: a repeated number reuses an AES-GCM nonce");
        assert_eq!(server.snapshot().received.rejected_replayed, 0);
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
        let link = UdpLink::start(socket.local_addr().expect("addr"), &session_endpoint(engine), unimpaired(), 7, tx)
            .await
            .expect("start");
        assert!(link.command(UdpCommand::Probe));
        assert!(matches!(next(&mut reports).await, UdpReport::PeerIdle));
    }

    fn lossy(p: f64) -> chatlab_proto::impair::ImpairmentConfig {
        chatlab_proto::impair::ImpairmentConfig {
            loss: chatlab_proto::impair::LossModel::Bernoulli { p },
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn outgoing_loss_drops_before_the_socket_until_it_is_switched_off() {
        let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let (tx, mut reports) = mpsc::channel(16);
        let (settings, settings_rx) = watch::channel(Impairment { outgoing: lossy(1.0), ..Impairment::default() });
        let link = UdpLink::start(
            socket.local_addr().expect("addr"),
            &session_endpoint(EngineConfig::default()),
            settings_rx,
            7,
            tx,
        )
        .await
        .expect("start");
        assert!(link.command(UdpCommand::Probe));
        let deadline = Instant::now() + WAIT;
        let dropped = loop {
            let UdpStats { snapshot, impairment, .. } = stats(&link).await;
            let outgoing = impairment.expect("impaired from the start").outgoing.link;
            if outgoing.dropped_loss >= 1 {
                assert!(snapshot.sent.pings >= 1, "the engine sent what the link dropped: {snapshot:?}");
                assert_eq!((outgoing.offered, outgoing.delivered), (outgoing.dropped_loss, 0), "{outgoing:?}");
                break outgoing.dropped_loss;
            }
            assert!(Instant::now() < deadline, "{outgoing:?}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        };

        settings.send_replace(Impairment::default());
        // The setting and the commands travel on different channels: wait until the task has applied it.
        while stats(&link).await.impairment.is_none_or(|i| i.outgoing.config != Default::default()) {
            assert!(Instant::now() < deadline, "the reset was never applied");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(link.command(UdpCommand::Probe));
        let origin = Instant::now();
        let mut server = Endpoint::new(&SECRET, CONNECTION, Role::Server, EngineConfig::default(), Duration::ZERO)
            .expect("server endpoint");
        serve_one(&socket, &mut server, origin).await;
        assert!(matches!(next(&mut reports).await, UdpReport::Confirmed));
        let impairment = stats(&link).await.impairment.expect("links kept after the reset");
        assert_eq!(impairment.outgoing.link.dropped_loss, dropped, "no drop after the reset");
        assert!(impairment.outgoing.link.delivered >= 1);
        assert_eq!(impairment.outgoing.config, Default::default());
    }

    #[tokio::test]
    async fn incoming_impairment_applies_before_the_endpoint() {
        let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let (tx, mut reports) = mpsc::channel(16);
        let (settings, settings_rx) = watch::channel(Impairment::default());
        let link = UdpLink::start(
            socket.local_addr().expect("addr"),
            &session_endpoint(EngineConfig::default()),
            settings_rx,
            7,
            tx,
        )
        .await
        .expect("start");
        // Every datagram from the server arrives twice, the second copy 20 ms later than the first.
        let doubled = chatlab_proto::impair::ImpairmentConfig {
            duplicate: 1.0,
            delay: Duration::from_millis(20),
            ..Default::default()
        };
        settings.send_replace(Impairment { incoming: doubled.clone(), ..Impairment::default() });
        let deadline = Instant::now() + WAIT;
        while stats(&link).await.impairment.is_none() {
            assert!(Instant::now() < deadline, "the setting was never applied");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let origin = Instant::now();
        let mut server = Endpoint::new(&SECRET, CONNECTION, Role::Server, EngineConfig::default(), Duration::ZERO)
            .expect("server endpoint");
        assert!(link.command(UdpCommand::Probe));
        let client = serve_one(&socket, &mut server, origin).await;
        assert!(matches!(next(&mut reports).await, UdpReport::Confirmed));
        let message = ChatMessage {
            id: 4,
            from: Username::parse("bob").expect("valid"),
            to: Target::World,
            text: "twice on the wire, once on screen".into(),
            sent_at_ms: 0,
        };
        server.send(0, ChatPayload::Message(message.clone()).encode().expect("encode"), origin.elapsed()).expect("q");
        flush(&socket, &mut server, origin, client).await;
        assert!(matches!(next(&mut reports).await, UdpReport::Payload(ChatPayload::Message(m)) if m == message));

        loop {
            let UdpStats { snapshot, impairment, .. } = stats(&link).await;
            let incoming = impairment.expect("impaired").incoming;
            assert_eq!(incoming.config, doubled);
            let refused = snapshot.received.rejected_replayed + snapshot.received.duplicate_packets;
            if incoming.link.duplicated >= 2 && incoming.link.delivered >= 4 && refused >= 2 {
                assert_eq!(snapshot.received.messages_delivered, 1, "the engine delivers each message once");
                break;
            }
            assert!(Instant::now() < deadline, "{incoming:?} {snapshot:?}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}
