//! The control channel of one connection: the Noise handshake, then encrypted, length-prefixed frames.
//!
//! ```text
//!   client                                   server
//!     ── 32 bytes: Noise message 1 (e) ───────▶    read exactly HANDSHAKE_MSG1_LEN bytes
//!     ◀─ 96 bytes: Noise message 2 (e,ee,s,es) ─    Responder::respond
//!     ── u16 length ‖ Noise transport message ─▶    FrameDecoder → Transport::decrypt → decode_client
//!     ◀─ u16 length ‖ Noise transport message ──    encode → Transport::encrypt → encode_frame
//! ```
//!
//! The two handshake messages have fixed sizes and travel as they are, without a length prefix: the protocol
//! document describes "a Noise handshake, then frames", and a fixed size needs no prefix. Every later message is a
//! frame.
//!
//! Reading is split in two steps so that the connection task can wait for the socket *and* for other things at
//! once: [`ControlChannel::read_some`] waits for bytes and is safe to cancel (it only ever completes a `read`),
//! and [`ControlChannel::next_frame`] cuts complete frames out of what arrived, without waiting. Writing collects
//! any number of messages in one buffer ([`ControlChannel::queue`]) and sends them with one system call
//! ([`ControlChannel::flush`]): a burst of pushes costs one `write`, not one per message.

use std::io;
use std::time::Duration;

use chatlab_proto::control::{
    ClientMessage, CodecError, FrameDecoder, FrameError, ServerMessage, decode_client, encode, encode_frame,
};
use chatlab_proto::noise::{HANDSHAKE_MSG1_LEN, NoiseError, Responder, StaticKeypair, Transport};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::limits::{MAX_FRAME_BYTES_BEFORE_LOGIN, READ_CHUNK_BYTES, WRITE_STALL_TIMEOUT};

/// Why the channel failed.
#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    /// The socket failed.
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
    /// The peer did not complete the handshake in time.
    #[error("handshake not completed within {0:?}")]
    HandshakeTimeout(Duration),
    /// The handshake or the encryption failed.
    #[error("{0}")]
    Noise(#[from] NoiseError),
    /// A message could not be encoded or framed (a bug: every message the server builds fits a frame).
    #[error("could not encode a message: {0}")]
    Encode(String),
}

/// Why a received frame did not yield a message.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The frame did not decrypt: the stream is no longer trustworthy and no answer can be sent.
    #[error("frame failed authentication: {0}")]
    Noise(#[from] NoiseError),
    /// The frame decrypted but is not a valid control message; the channel still works.
    #[error("{0}")]
    Codec(#[from] CodecError),
}

/// An established control channel.
pub struct ControlChannel {
    stream: TcpStream,
    noise: Transport,
    decoder: FrameDecoder,
    write_buf: Vec<u8>,
}

impl std::fmt::Debug for ControlChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlChannel").field("pending_write", &self.write_buf.len()).finish_non_exhaustive()
    }
}

/// Capacity of the empty write buffer kept after a flush: enough for the few small frames of ordinary traffic
/// without a new allocation each time, small enough that an idle connection holds almost nothing.
const KEEP_WRITE_CAPACITY: usize = 4 * 1024;

/// Largest frame accepted before login, as the decoder's `u16` limit.
const PRE_LOGIN_FRAME_LIMIT: u16 =
    if MAX_FRAME_BYTES_BEFORE_LOGIN > u16::MAX as usize { u16::MAX } else { MAX_FRAME_BYTES_BEFORE_LOGIN as u16 };

impl ControlChannel {
    /// Runs the responder's side of the handshake on a fresh connection, within `timeout`.
    pub async fn accept(
        mut stream: TcpStream,
        keypair: &StaticKeypair,
        timeout: Duration,
    ) -> Result<Self, ChannelError> {
        let responder = Responder::new(keypair)?;
        let handshake = async {
            let mut msg1 = [0u8; HANDSHAKE_MSG1_LEN];
            stream.read_exact(&mut msg1).await?;
            let (msg2, noise) = responder.respond(&msg1)?;
            stream.write_all(&msg2).await?;
            Ok::<Transport, ChannelError>(noise)
        };
        let noise =
            tokio::time::timeout(timeout, handshake).await.map_err(|_| ChannelError::HandshakeTimeout(timeout))??;
        // Control messages are small and interactive: send each at once instead of waiting to fill a segment.
        stream.set_nodelay(true)?;
        Ok(Self {
            stream,
            noise,
            decoder: FrameDecoder::with_max_frame_bytes(PRE_LOGIN_FRAME_LIMIT),
            write_buf: Vec::new(),
        })
    }

    /// Accepts full-size frames (after login) or only small ones (before).
    pub fn set_logged_in(&mut self, logged_in: bool) {
        self.decoder.set_max_frame_bytes(if logged_in { u16::MAX } else { PRE_LOGIN_FRAME_LIMIT });
    }

    /// Waits for bytes from the peer and buffers them. `Ok(false)` when the peer closed the connection. Safe to
    /// cancel: waiting for readiness consumes nothing, and the read that follows it does not wait.
    ///
    /// A connection spends nearly all its life waiting, so it holds no read buffer of its own while it waits: it
    /// waits for the socket to become *readable*, and only then reads into a buffer on the stack
    /// ([`read_ready`](Self::read_ready)). A 16 KiB buffer per connection was most of what an idle session cost.
    pub async fn read_some(&mut self) -> io::Result<bool> {
        loop {
            self.stream.readable().await?;
            match self.read_ready() {
                Ok(n) => return Ok(n > 0),
                // Readiness can be spurious: wait again.
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => continue,
                Err(error) => return Err(error),
            }
        }
    }

    /// Reads what the socket holds now, without waiting, into the decoder; the number of bytes (0: closed). Not
    /// `async`, so the buffer lives on the stack only for the call and never in the connection's future.
    fn read_ready(&mut self) -> io::Result<usize> {
        let mut chunk = [0u8; READ_CHUNK_BYTES];
        let n = self.stream.try_read(&mut chunk)?;
        self.decoder.extend(chunk.get(..n).unwrap_or_default());
        Ok(n)
    }

    /// The next complete frame (still encrypted), if one has arrived.
    pub fn next_frame(&mut self) -> Result<Option<Vec<u8>>, FrameError> {
        self.decoder.next_frame()
    }

    /// Whether the peer left part of a frame behind.
    pub fn has_partial_frame(&self) -> bool {
        self.decoder.has_partial_frame()
    }

    /// Decrypts and decodes one frame.
    pub fn open(&mut self, frame: &[u8]) -> Result<ClientMessage, OpenError> {
        let plaintext = self.noise.decrypt(frame)?;
        Ok(decode_client(&plaintext)?)
    }

    /// Encodes, encrypts and frames `message` into the write buffer.
    pub fn queue(&mut self, message: &ServerMessage) -> Result<(), ChannelError> {
        let plaintext = encode(message).map_err(|e| ChannelError::Encode(e.to_string()))?;
        let sealed = self.noise.encrypt(&plaintext)?;
        encode_frame(&sealed, &mut self.write_buf).map_err(|e| ChannelError::Encode(e.to_string()))
    }

    /// Bytes queued but not yet written.
    pub fn pending(&self) -> usize {
        self.write_buf.len()
    }

    /// Writes everything queued; fails with `TimedOut` when one write makes no progress for `stall` (a peer that
    /// stopped reading fills its receive window and then every write waits). Not safe to cancel half-way (the peer
    /// would see a cut frame), so a cancelled or failed flush must be followed by closing the connection.
    pub async fn flush(&mut self, stall: Duration) -> io::Result<()> {
        while !self.write_buf.is_empty() {
            let written = match tokio::time::timeout(stall, self.stream.write(&self.write_buf)).await {
                Ok(written) => written?,
                Err(_) => {
                    let message = format!("no byte written for {} s", stall.as_secs_f64());
                    return Err(io::Error::new(io::ErrorKind::TimedOut, message));
                }
            };
            if written == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            self.write_buf.drain(..written.min(self.write_buf.len()));
        }
        // A burst (a user list, a history page) leaves a large buffer behind; an idle connection gives it back.
        if self.write_buf.capacity() > KEEP_WRITE_CAPACITY {
            self.write_buf = Vec::new();
        }
        Ok(())
    }

    /// Sends FIN after the last queued bytes, so the peer reads everything before it sees the end.
    pub async fn close(mut self) {
        let _ = self.flush(WRITE_STALL_TIMEOUT).await;
        let _ = self.stream.shutdown().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chatlab_proto::control::ErrorCode;
    use chatlab_proto::noise::Initiator;
    use tokio::net::TcpListener;

    async fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (client, server)
    }

    /// Both ends of a control connection after a completed handshake.
    struct Handshaken {
        client: TcpStream,
        noise: chatlab_proto::noise::Transport,
        /// The key the client saw, and the server's real one.
        key: chatlab_proto::noise::ServerKey,
        public: chatlab_proto::noise::ServerKey,
        channel: ControlChannel,
    }

    async fn handshaken() -> Handshaken {
        let (mut client, server) = pair().await;
        let keypair = StaticKeypair::generate().unwrap();
        let public = keypair.public();
        let accept =
            tokio::spawn(async move { ControlChannel::accept(server, &keypair, Duration::from_secs(5)).await });
        let mut initiator = Initiator::new().unwrap();
        client.write_all(&initiator.start().unwrap()).await.unwrap();
        let mut msg2 = [0u8; chatlab_proto::noise::HANDSHAKE_MSG2_LEN];
        client.read_exact(&mut msg2).await.unwrap();
        let (noise, key) = initiator.finish(&msg2).unwrap();
        let channel = accept.await.unwrap().unwrap();
        Handshaken { client, noise, key, public, channel }
    }

    #[tokio::test]
    async fn handshake_then_messages_both_ways() {
        let Handshaken { mut client, mut noise, key, public, mut channel } = handshaken().await;
        assert_eq!(key, public);

        let mut frame = Vec::new();
        let ping = encode(&ClientMessage::Ping { nonce: 7 }).unwrap();
        encode_frame(&noise.encrypt(&ping).unwrap(), &mut frame).unwrap();
        client.write_all(&frame).await.unwrap();
        let sealed = loop {
            if let Some(sealed) = channel.next_frame().unwrap() {
                break sealed;
            }
            assert!(channel.read_some().await.unwrap());
        };
        assert_eq!(channel.open(&sealed).unwrap(), ClientMessage::Ping { nonce: 7 });

        channel.queue(&ServerMessage::Pong { nonce: 7 }).unwrap();
        assert!(channel.pending() > 0);
        channel.flush(Duration::from_secs(5)).await.unwrap();
        assert_eq!(channel.pending(), 0);
        let mut header = [0u8; 2];
        client.read_exact(&mut header).await.unwrap();
        let mut body = vec![0u8; usize::from(u16::from_be_bytes(header))];
        client.read_exact(&mut body).await.unwrap();
        let reply = chatlab_proto::control::decode_server(&noise.decrypt(&body).unwrap()).unwrap();
        assert_eq!(reply, ServerMessage::Pong { nonce: 7 });

        // A frame the server cannot decrypt is an authentication failure, not a decoding one.
        assert!(matches!(channel.open(&[0u8; 40]), Err(OpenError::Noise(_))));
        channel.close().await;
        assert_eq!(client.read(&mut header).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn a_client_that_never_reads_makes_the_write_time_out() {
        let Handshaken { client: _client, noise: _, mut channel, .. } = handshaken().await;
        // Far more than the socket buffers of both ends hold, and the client reads nothing of it.
        let text = "x".repeat(60_000);
        for _ in 0..400 {
            let message = ServerMessage::Error { req: None, code: ErrorCode::Internal, message: text.clone() };
            channel.queue(&message).unwrap();
        }
        let error = channel.flush(Duration::from_millis(200)).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert!(channel.pending() > 0, "what could not be written is still accounted for");
    }

    #[tokio::test]
    async fn undecodable_plaintext_is_a_codec_error() {
        let Handshaken { client: _client, mut noise, mut channel, .. } = handshaken().await;
        let sealed = noise.encrypt(&[0xc1]).unwrap();
        assert!(matches!(channel.open(&sealed), Err(OpenError::Codec(_))));
        // Not a client message, but the server can still answer.
        channel.queue(&ServerMessage::Error { req: None, code: ErrorCode::Malformed, message: "bad".into() }).unwrap();
    }

    #[tokio::test]
    async fn silent_peer_times_out_and_wrong_sizes_fail() {
        let keypair = StaticKeypair::generate().unwrap();
        let (_client, server) = pair().await;
        let err = ControlChannel::accept(server, &keypair, Duration::from_millis(20)).await.unwrap_err();
        assert!(matches!(err, ChannelError::HandshakeTimeout(_)));

        let (mut client, server) = pair().await;
        client.write_all(&[1u8; 10]).await.unwrap();
        drop(client);
        let err = ControlChannel::accept(server, &keypair, Duration::from_secs(5)).await.unwrap_err();
        assert!(matches!(err, ChannelError::Io(_)), "{err}");
    }

    #[tokio::test]
    async fn pre_login_limit_applies_until_logged_in() {
        let Handshaken { mut client, noise: _, mut channel, .. } = handshaken().await;
        let announced = u16::try_from(MAX_FRAME_BYTES_BEFORE_LOGIN + 1).unwrap();
        client.write_all(&announced.to_be_bytes()).await.unwrap();
        assert!(channel.read_some().await.unwrap());
        assert!(matches!(channel.next_frame(), Err(FrameError::TooLarge { .. })));

        let Handshaken { mut client, noise: _, mut channel, .. } = handshaken().await;
        channel.set_logged_in(true);
        client.write_all(&announced.to_be_bytes()).await.unwrap();
        assert!(channel.read_some().await.unwrap());
        assert_eq!(channel.next_frame(), Ok(None));
        assert!(channel.has_partial_frame());
    }
}
