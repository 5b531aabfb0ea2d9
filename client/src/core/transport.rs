//! Which transport chat uses: the UDP probe, the fall-back to TCP, and switching on request.
//!
//! UDP is the preferred transport, but many networks (school firewalls, some guest Wi-Fi) drop it. The client finds
//! out the way QUIC clients do: it tries. Right after login it sends a ping over UDP; the server answers only once
//! the ping authenticated, so an answer proves the path works both ways. While the probe runs, chat messages are
//! *held* rather than sent, so none is sent on a transport that then turns out to be dead. If no answer comes within
//! the probe timeout, the client tells the server `UseTransport{Tcp}`, says why, and sends everything over TCP.
//!
//! A UDP path can also die later (the laptop moved to another network). The engine reports a silent peer after its
//! idle timeout; the client then falls back the same way and resends over TCP whatever UDP had not got accepted,
//! under the same `client_msg_id`, so the server can recognise a message it already stored.

use tokio::time::Instant;

use chatlab_proto::control::{ClientMessage, Transport};

use super::pending::{SendState, SyncOrigin};
use super::{Actor, PROBE_PING_INTERVAL, Probe};
use crate::error::ClientError;
use crate::event::{ClientEvent, TransportReason};
use crate::udp::{SessionEndpoint, UdpCommand, UdpLink};

impl Actor {
    /// After a grant: start chat on the preferred transport.
    pub(super) async fn begin_transport(&mut self) {
        match self.preference {
            Transport::Udp => self.start_probe().await,
            Transport::Tcp => {
                if let Some(session) = self.session.as_mut() {
                    session.transport = Transport::Tcp;
                }
                let _ = self.send_control(&ClientMessage::UseTransport { transport: Transport::Tcp }).await;
            }
        }
    }

    /// Starts (or restarts) the UDP task if needed and sends a probe ping.
    async fn start_probe(&mut self) {
        let Some(session) = self.session.as_mut() else { return };
        if session.udp.is_none() {
            self.udp_generation = self.udp_generation.wrapping_add(1);
            // Built once per session and reused by every later task: a fresh endpoint would start its packet
            // numbers at 0 again under the same keys (AES-GCM nonce reuse, and refused by the server's replay window).
            let endpoint = match &session.endpoint {
                Some(endpoint) => Ok(endpoint.clone()),
                None => SessionEndpoint::new(&session.key_material, session.connection_id, self.config.engine.clone())
                    .inspect(|endpoint| session.endpoint = Some(endpoint.clone())),
            };
            let started = match endpoint {
                Ok(endpoint) => {
                    UdpLink::start(
                        session.udp_server,
                        &endpoint,
                        self.impairment.subscribe(),
                        self.udp_generation,
                        self.udp_tx.clone(),
                    )
                    .await
                }
                Err(err) => Err(err),
            };
            match started {
                Ok(link) => session.udp = Some(link),
                Err(err) => {
                    tracing::warn!("cannot start UDP: {err}");
                    let reason = TransportReason::UdpBlocked {
                        server: session.udp_server.to_string(),
                        waited: Default::default(),
                    };
                    return self.fall_back_to_tcp(reason).await;
                }
            }
        }
        let now = Instant::now();
        session.probe = Some(Probe {
            started: now,
            deadline: now + self.config.udp_probe_timeout,
            next_ping: now + PROBE_PING_INTERVAL,
        });
        if let Some(udp) = &session.udp {
            udp.command(UdpCommand::Probe);
        }
    }

    /// The probe's timers: repeat the ping, give up at the deadline.
    pub(super) async fn tick_probe(&mut self, now: Instant) {
        let Some(session) = self.session.as_mut() else { return };
        let Some(probe) = session.probe.as_mut() else { return };
        if now >= probe.deadline {
            let reason =
                TransportReason::UdpBlocked { server: session.udp_server.to_string(), waited: now - probe.started };
            self.fall_back_to_tcp(reason).await;
        } else if now >= probe.next_ping {
            probe.next_ping = now + PROBE_PING_INTERVAL;
            if let Some(udp) = &session.udp {
                udp.command(UdpCommand::Ping);
            }
        }
    }

    /// The server answered over UDP.
    pub(super) async fn udp_confirmed(&mut self) {
        let Some(session) = self.session.as_mut() else { return };
        if session.probe.take().is_none() {
            return;
        }
        session.transport = Transport::Udp;
        self.emit(ClientEvent::TransportChanged { transport: Transport::Udp, reason: TransportReason::UdpConfirmed })
            .await;
        for client_msg_id in self.pending.sends_in(SendState::Held) {
            self.dispatch(client_msg_id, Transport::Udp).await;
        }
    }

    /// The engine heard nothing for its idle timeout.
    pub(super) async fn udp_silent(&mut self) {
        let Some(session) = self.session.as_mut() else { return };
        if session.probe.is_some() {
            // The probe's deadline decides. A task restarted on an endpoint that was idle for a while may report
            // the old silence at once, before its first ping had a chance to be answered.
            return;
        }
        if session.transport == Transport::Udp {
            let reason = TransportReason::UdpSilent { silent_for: self.config.engine.idle_timeout };
            self.fall_back_to_tcp(reason).await;
        } else {
            // Chat is on TCP by request; a UDP task nobody hears from only costs keepalives.
            session.udp = None;
        }
    }

    /// The client's engine ended the UDP session because of what the server sent: chat moves to TCP for the rest
    /// of the session (the endpoint is spent; the next login gets a new one).
    pub(super) async fn udp_failed(&mut self, error: chatlab_proto::engine::ConnectionError) {
        tracing::warn!(%error, "the server's datagrams broke the protocol; moving chat to TCP");
        let Some(session) = self.session.as_mut() else { return };
        if session.transport == Transport::Udp || session.probe.is_some() {
            self.fall_back_to_tcp(TransportReason::UdpFailed { reason: error.to_string() }).await;
        } else {
            session.udp = None;
        }
    }

    /// Moves chat to TCP for `reason`: stops the UDP task (the session keeps its endpoint for a later switch back),
    /// tells the server, sends what waited or was lost with UDP.
    async fn fall_back_to_tcp(&mut self, reason: TransportReason) {
        let Some(session) = self.session.as_mut() else { return };
        session.probe = None;
        session.udp = None;
        session.transport = Transport::Tcp;
        if self.send_control(&ClientMessage::UseTransport { transport: Transport::Tcp }).await.is_err() {
            return;
        }
        self.emit(ClientEvent::TransportChanged { transport: Transport::Tcp, reason }).await;
        let mut resend = self.pending.sends_in(SendState::Held);
        resend.extend(self.pending.sends_in(SendState::Sent(Transport::Udp)));
        resend.extend(self.pending.sends_in(SendState::Waiting));
        resend.sort_unstable();
        for client_msg_id in resend {
            self.dispatch(client_msg_id, Transport::Tcp).await;
        }
        // Messages the server had queued for us over UDP may never arrive now; fetch what we may have missed.
        self.start_sync(SyncOrigin::Fallback).await;
    }

    /// Switches chat to `transport` at the caller's request.
    pub(super) async fn switch_transport(&mut self, transport: Transport) -> Result<(), ClientError> {
        self.session_check()?;
        let Some(session) = self.session.as_mut() else { return Err(ClientError::NotLoggedIn) };
        match transport {
            Transport::Tcp => {
                let was_probing = session.probe.take().is_some();
                let changed = session.transport != Transport::Tcp || was_probing;
                session.transport = Transport::Tcp;
                self.send_control(&ClientMessage::UseTransport { transport: Transport::Tcp }).await?;
                if changed {
                    self.emit(ClientEvent::TransportChanged { transport, reason: TransportReason::Requested }).await;
                }
                // Messages waiting for room in the UDP window go the new way too, behind the held ones' order.
                let mut waiting = self.pending.sends_in(SendState::Held);
                waiting.extend(self.pending.sends_in(SendState::Waiting));
                waiting.sort_unstable();
                for client_msg_id in waiting {
                    self.dispatch(client_msg_id, Transport::Tcp).await;
                }
            }
            Transport::Udp => {
                if session.transport == Transport::Udp && session.probe.is_none() {
                    return Ok(());
                }
                if session.probe.is_some() {
                    return Ok(());
                }
                self.send_control(&ClientMessage::UseTransport { transport: Transport::Udp }).await?;
                // The server keeps pushing over TCP until a datagram tells it where we are: the probe's ping does,
                // and its answer moves chat to UDP (TransportChanged with UdpConfirmed) or back to TCP.
                self.start_probe().await;
            }
        }
        Ok(())
    }
}
