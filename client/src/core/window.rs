//! Room in the send window, and the outcome of every chat message.
//!
//! # Waiting instead of refusing
//!
//! The UDP engine keeps at most `send_window` messages in flight (sent, not yet acknowledged): that bound is its
//! back-pressure, what keeps a fast sender from burying a slow path in retransmissions. A client that answered
//! "busy" whenever the window was full would push the problem onto every program using it, which would have to
//! notice, wait and retry by hand, and one that does not would lose messages. So a message that finds the window
//! full *waits* here, in [`SendState::Waiting`], and the UDP task reports [`UdpReport::Room`] whenever
//! acknowledgements free some; [`Actor::fill_window`] then moves the waiting messages in, oldest first.
//!
//! **Order.** A message never overtakes one that waits: once anything waits, every later message of the session
//! waits behind it, even when the window happens to have room at that instant. Messages therefore enter the engine
//! in the order the caller queued them, and the engine delivers each conversation in order.
//!
//! **Bounds.** How many messages can wait is bounded by the send budget the handle takes a place in before a
//! message reaches the core ([`ClientConfig::send_queue_messages`](crate::ClientConfig::send_queue_messages));
//! how long one waits
//! by its deadline, one request timeout after it was handed over, after which it fails with
//! [`ClientError::NoRoom`] without having been sent. A message that leaves the window's queue gets a full request
//! timeout for its acceptance from then. If UDP goes away meanwhile (a fall-back or a switch to TCP), the waiting
//! messages go out over TCP in the same order.
//!
//! # Every message has an outcome
//!
//! A chat message the core took over ends in exactly one of three ways: accepted (its caller gets the acceptance
//! and [`ClientEvent::Accepted`] is emitted), failed ([`Actor::fail_send`]: the caller gets the error and
//! [`ClientEvent::SendFailed`] is emitted), or cancelled by its caller before it left the client (dropped without
//! being sent, and nothing to report). A caller that stopped waiting after its message went out still finds the
//! outcome on the event stream: nothing is lost without a word.
//!
//! [`UdpReport::Room`]: crate::udp::UdpReport::Room

use chatlab_proto::chat::ChatPayload;
use chatlab_proto::engine::SendError;
use tokio::time::Instant;

use super::Actor;
use super::pending::{PendingSend, SendState};
use crate::error::ClientError;
use crate::event::ClientEvent;

/// What became of a message offered to the engine.
enum Offer {
    /// In the engine, on its way.
    Sent,
    /// The window is full (or UDP is gone): it waits.
    NoRoom,
    /// The engine can never carry it.
    Failed(ClientError),
}

impl Actor {
    /// Sends message `client_msg_id` over UDP now if the window has room and no older message waits; otherwise it
    /// waits for room. The caller checked that a UDP task runs.
    pub(super) async fn send_or_wait(&mut self, client_msg_id: u64) {
        let older_waits = self.pending.first_waiting().is_some_and(|first| first < client_msg_id);
        let offer = match older_waits {
            true => Offer::NoRoom,
            false => self.offer_to_engine(client_msg_id),
        };
        match offer {
            Offer::Sent => {}
            Offer::NoRoom => self.pending.mark_waiting(client_msg_id),
            Offer::Failed(err) => {
                if let Some(send) = self.pending.sends.remove(&client_msg_id) {
                    self.fail_send(client_msg_id, send, err).await;
                }
            }
        }
    }

    /// The UDP task reported room in the window: moves waiting messages in, oldest first, until it is full again.
    pub(super) async fn fill_window(&mut self) {
        while let Some(client_msg_id) = self.pending.first_waiting() {
            if self.pending.sends.get(&client_msg_id).is_some_and(PendingSend::cancelled) {
                // Its caller gave up before it could leave: it is not sent, and its room goes to the next.
                self.pending.sends.remove(&client_msg_id);
                continue;
            }
            match self.offer_to_engine(client_msg_id) {
                Offer::Sent => {}
                Offer::NoRoom => break,
                Offer::Failed(err) => {
                    if let Some(send) = self.pending.sends.remove(&client_msg_id) {
                        self.fail_send(client_msg_id, send, err).await;
                    }
                }
            }
        }
    }

    /// Queues message `client_msg_id` in the session's engine if its window has room, and wakes the UDP task to
    /// send it.
    fn offer_to_engine(&mut self, client_msg_id: u64) -> Offer {
        let Some(session) = &self.session else { return Offer::NoRoom };
        let (Some(endpoint), Some(udp)) = (&session.endpoint, &session.udp) else { return Offer::NoRoom };
        let Some(send) = self.pending.sends.get_mut(&client_msg_id) else { return Offer::Sent };
        // Only the core adds messages to the engine, so room seen here is still there for the `send` below.
        if !endpoint.has_room() {
            return Offer::NoRoom;
        }
        let payload = ChatPayload::Send { client_msg_id, to: send.to.clone(), text: send.text.clone() };
        let bytes = match payload.encode() {
            Ok(bytes) => bytes,
            Err(err) => return Offer::Failed(ClientError::Protocol(format!("cannot encode a chat message: {err}"))),
        };
        let stream = self.streams.stream_for(&send.to);
        match endpoint.send(stream, bytes) {
            Ok(()) => {
                if send.state == SendState::Waiting {
                    // The wait for room is over; the wait for the acceptance starts now.
                    send.deadline = Instant::now() + self.config.request_timeout;
                }
                send.state = SendState::Sent(chatlab_proto::control::Transport::Udp);
                send.sent = true;
                udp.wake();
                Offer::Sent
            }
            // A failed engine takes nothing more; its failure report, right behind, moves chat to TCP, and the
            // messages waiting here go out over TCP in their order.
            Err(SendError::WindowFull { .. } | SendError::Closed(_)) => Offer::NoRoom,
            // The text passed the length check, so only a server announcing a limit above the engine's gets here.
            Err(SendError::TooLarge { len, max }) => Offer::Failed(ClientError::TextTooLong { len, max }),
        }
    }

    /// Chat message `client_msg_id` failed for good with `err`: its caller hears it, and so does the event stream
    /// ([`ClientEvent::SendFailed`]), unless the caller cancelled it before it ever went out.
    pub(super) async fn fail_send(&self, client_msg_id: u64, send: PendingSend, err: ClientError) {
        if send.cancelled() {
            return;
        }
        self.emit(ClientEvent::SendFailed { client_msg_id, to: send.to.clone(), error: err.clone() }).await;
        let _ = send.reply.send(Err(err));
    }

    /// Fails every chat message in the core with `err`, oldest first.
    pub(super) async fn fail_all_sends(&mut self, err: &ClientError) {
        while let Some((client_msg_id, send)) = self.pending.sends.pop_first() {
            self.fail_send(client_msg_id, send, err.clone()).await;
        }
    }
}
