//! Every message the control channel carries, in both directions.
//!
//! # Encoding
//!
//! Messages are serde enums encoded with rmp-serde's default ("compact") configuration, which this module's tests
//! pin byte for byte:
//!
//! - A variant with fields is a one-entry map from the variant *name* to the array of its fields, in declaration
//!   order: `Ping { nonce: 5 }` is `{"Ping": [5]}`, bytes `81 a4 50 69 6e 67 91 05`.
//! - A variant without fields is just its name: `Logout` is `"Logout"`.
//! - Structs such as [`ChatMessage`] are arrays of their fields; field *names* are never sent.
//!
//! Dropping field names (rmp-serde's `to_vec` rather than `to_vec_named`) roughly halves small messages, at a price:
//! the field *order* is now the layout, and reordering fields is an incompatible change that must bump
//! [`PROTOCOL_VERSION`](crate::limits::PROTOCOL_VERSION). The known-answer tests below fail on any such change, which
//! is their purpose. Variant *names* are kept (rmp-serde has no index mode for enums): they cost a few bytes per
//! message on a channel that is not the hot path, and make a decrypted capture readable.
//!
//! rmp-serde's decoder is more lenient than its encoder: it also accepts structs as maps of field names and variants
//! given by their index. chatlab never sends those forms and nothing may rely on them; what the decoder does refuse
//! is a field array of the wrong length, so a message cannot smuggle extra fields past an older peer.
//!
//! # Versioning
//!
//! The first message on a fresh Noise channel is [`ClientMessage::Hello`] carrying the client's protocol version; the
//! server answers [`ServerMessage::Welcome`] or an [`ErrorCode::VersionMismatch`] error and closes. So that this
//! negotiation keeps working across versions, the layouts of `Hello`, `Welcome` and `Error` are frozen: every future
//! version must encode them exactly as version 1 does.
//!
//! # Requests, pushes and correlation
//!
//! Requests that get one answer (`SyncHistory`, `History`, `ListUsers`) carry a client-chosen `req` number that the
//! answer, or the error, echoes; the client may have several outstanding. Chat messages are correlated by the
//! client's own `client_msg_id` instead, because their fate arrives in two steps: [`ServerMessage::ChatAccepted`]
//! (durable on the server) and later [`ServerMessage::Receipt`] (reached the addressee). A chat the server refuses is
//! answered by [`ServerMessage::ChatRejected`], so the client knows *which* of its pending messages failed.
//! `Presence`, `Chat` and `Receipt` are pushes the server sends whenever something happens.
//!
//! # Fields a person typed
//!
//! `Register` and `Login` carry the user name as the person typed it (a `String`), and `Chat` carries raw text. The
//! server checks them with the same functions the client uses ([`Username::parse`](crate::chat::Username::parse),
//! [`validate_text`](crate::chat::validate_text), [`Password::check`]), so a bad value earns a precise error code
//! (`UsernameInvalid`, `PasswordInvalid`, `TextTooLong`, `TextInvalid`) rather than a generic `Malformed`. Everything
//! the server sends uses validated types, since the server only ever sends names it has checked.

use serde::{Deserialize, Serialize};

use super::error_code::ErrorCode;
use super::secret::{KeyMaterial, Password};
use crate::chat::{ChatMessage, Target, Username};

/// Most messages one history or user-list page may hold, whatever `limit` the client asked for.
///
/// It bounds the work of one request (one database query, one page in memory). At the typical size of a short chat
/// message (about 100 encoded bytes) 500 messages are about 50 KB and fit one frame; pages of long messages are cut
/// earlier by the byte budget in [`page`](super::page).
pub const MAX_PAGE_ITEMS: usize = 500;

/// What a client sends to the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientMessage {
    /// First message after the Noise handshake: the protocol version the client speaks and a free-form software name
    /// for the server's logs (e.g. `"chatlab-cli 0.1.0"`). Layout frozen across versions.
    Hello {
        /// The client's [`PROTOCOL_VERSION`](crate::limits::PROTOCOL_VERSION).
        version: u8,
        /// Software name and version, for logs only.
        client: String,
    },
    /// Create an account. Answered by [`ServerMessage::Registered`] or an error; does not log in.
    Register {
        /// The name as typed; the server parses and case-folds it.
        username: String,
        /// The password; the server hashes it with Argon2id.
        password: Password,
    },
    /// Log in. Answered by [`ServerMessage::SessionGrant`] or an error.
    Login {
        /// The name as typed; the server parses and case-folds it.
        username: String,
        /// The password.
        password: Password,
    },
    /// End the session; the server answers [`ServerMessage::LoggedOut`] and the connection may log in again.
    Logout,
    /// Incremental sync: every message the user may see with `id > after_id`, oldest first, at most `limit` (and at
    /// most [`MAX_PAGE_ITEMS`]) per page. Answered by one [`ServerMessage::HistoryPage`]; while its `more` is true
    /// the client asks again with `after_id` set to the last id it received. `after_id: 0` fetches everything.
    SyncHistory {
        /// Request number echoed by the answer.
        req: u32,
        /// The largest message id the client already has.
        after_id: u64,
        /// Most messages wanted in this page; 0 is an error.
        limit: u16,
    },
    /// Scroll back in one conversation. The page holds the newest `limit` messages with `id < before_id` (or the
    /// newest of all when `before_id` is `None`), **ordered oldest first within the page** so the client can append
    /// it above what it shows. `more` says whether older messages exist; the next request uses the first (oldest)
    /// id of this page as `before_id`.
    History {
        /// Request number echoed by the answer.
        req: u32,
        /// The conversation: the world room or the one-to-one conversation with this user.
        target: Target,
        /// Only messages older than this id; `None` for the newest.
        before_id: Option<u64>,
        /// Most messages wanted in this page; 0 is an error.
        limit: u16,
    },
    /// Ask for the users online now. Answered by one or more [`ServerMessage::Users`].
    ListUsers {
        /// Request number echoed by the answer.
        req: u32,
    },
    /// Send a chat message over TCP (the comparison transport, and the fallback when UDP is blocked).
    Chat {
        /// The client's own number for this message, echoed by `ChatAccepted` or `ChatRejected`. Also lets the
        /// server recognise a resend after a reconnect.
        client_msg_id: u64,
        /// The world room or one user.
        to: Target,
        /// The text, in wire form (see [`normalize_text`](crate::chat::normalize_text)).
        text: String,
    },
    /// Liveness and RTT probe; the server answers [`ServerMessage::Pong`] with the same nonce.
    Ping {
        /// Any number; echoed.
        nonce: u64,
    },
    /// These messages reached the client (from a push or a history page). The server turns this into
    /// [`ServerMessage::Receipt`]s for their senders: the "delivered" tick.
    Received {
        /// Ids of the messages that arrived.
        ids: Vec<u64>,
    },
    /// Which transport the server should push this session's chat messages, acceptances and receipts on. A session
    /// starts on [`Transport::Udp`] once its first datagram authenticates; a client whose datagrams get no answer
    /// (UDP blocked by a firewall) switches to [`Transport::Tcp`], and a lab switches back and forth to compare.
    UseTransport {
        /// The transport for pushes from now on.
        transport: Transport,
    },
}

/// The two ways chat messages travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Transport {
    /// Encrypted datagrams with chatlab's own acknowledgements and retransmissions.
    Udp,
    /// Inside the Noise control channel over TCP: the kernel's acknowledgements and retransmissions.
    Tcp,
}

/// What the server sends to a client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ServerMessage {
    /// Answer to a compatible `Hello`. Layout frozen across versions.
    Welcome {
        /// The server's [`PROTOCOL_VERSION`](crate::limits::PROTOCOL_VERSION).
        version: u8,
        /// Software name and version.
        server: String,
    },
    /// The account was created under this canonical (case-folded) name.
    Registered {
        /// The canonical name.
        username: Username,
    },
    /// Login succeeded. Everything the client needs to start the encrypted UDP transport.
    SessionGrant {
        /// The canonical name of the logged-in user.
        user: Username,
        /// Random id that labels this session's datagrams in their clear header.
        connection_id: u64,
        /// Input to HKDF-SHA256, which derives one AES-256-GCM key per direction.
        key_material: KeyMaterial,
        /// UDP port for datagrams (normally the TCP port).
        udp_port: u16,
        /// The text limit this server enforces, at most [`MAX_TEXT_BYTES`](crate::limits::MAX_TEXT_BYTES).
        max_text_bytes: u32,
    },
    /// A request failed. Layout frozen across versions.
    Error {
        /// The `req` of the failed request, if it had one.
        req: Option<u32>,
        /// Stable code for programs.
        code: ErrorCode,
        /// Human explanation, e.g. which character of a user name is not allowed.
        message: String,
    },
    /// A chat message was refused; nothing was stored.
    ChatRejected {
        /// The client's id of the refused message.
        client_msg_id: u64,
        /// Why, for programs.
        code: ErrorCode,
        /// Why, for people.
        message: String,
    },
    /// One page of the online-user list. Long lists are split; `more` is true on every page but the last.
    Users {
        /// The `ListUsers` request answered.
        req: u32,
        /// Users online, sorted by name.
        users: Vec<Username>,
        /// Whether another page follows.
        more: bool,
    },
    /// Someone came online or went offline (their first session started or their last one ended).
    Presence {
        /// Who.
        user: Username,
        /// Online now?
        online: bool,
    },
    /// One page of history, answering `SyncHistory` or `History` (see their docs for order and paging).
    HistoryPage {
        /// The request answered.
        req: u32,
        /// The messages, oldest first.
        messages: Vec<ChatMessage>,
        /// Whether more messages exist beyond this page.
        more: bool,
    },
    /// A chat message for this user, pushed as it happens.
    Chat(ChatMessage),
    /// The server stored the client's chat message durably under `id`: the "sent" tick.
    ChatAccepted {
        /// The client's id of the message.
        client_msg_id: u64,
        /// The server-assigned message id.
        id: u64,
        /// The server-assigned timestamp, UTC ms since the Unix epoch.
        sent_at_ms: i64,
    },
    /// Message `id`, sent by this user, reached user `to`.
    Receipt {
        /// The message.
        id: u64,
        /// Who received it.
        to: Username,
    },
    /// Answer to [`ClientMessage::Ping`].
    Pong {
        /// The ping's nonce.
        nonce: u64,
    },
    /// The session ended at the client's request.
    LoggedOut,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::secret::KEY_MATERIAL_BYTES;

    fn name(raw: &str) -> Username {
        Username::parse(raw).expect("test names are valid")
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn check_client(msg: ClientMessage, expected_hex: &str) {
        let bytes = rmp_serde::to_vec(&msg).expect("encode");
        assert_eq!(hex(&bytes), expected_hex, "{msg:?}");
        let back: ClientMessage = rmp_serde::from_slice(&bytes).expect("decode");
        assert_eq!(back, msg);
    }

    fn check_server(msg: ServerMessage, expected_hex: &str) {
        let bytes = rmp_serde::to_vec(&msg).expect("encode");
        assert_eq!(hex(&bytes), expected_hex, "{msg:?}");
        let back: ServerMessage = rmp_serde::from_slice(&bytes).expect("decode");
        assert_eq!(back, msg);
    }

    #[test]
    fn known_answer_hello() {
        // {"Hello": [1, "cli"]}
        check_client(ClientMessage::Hello { version: 1, client: String::from("cli") }, "81a548656c6c6f9201a3636c69");
    }

    #[test]
    fn known_answer_login() {
        // {"Login": ["Bob", "pw"]}
        check_client(
            ClientMessage::Login { username: String::from("Bob"), password: Password::new("pw") },
            "81a54c6f67696e92a3426f62a27077",
        );
    }

    #[test]
    fn known_answer_logout_is_a_bare_name() {
        check_client(ClientMessage::Logout, "a64c6f676f7574");
    }

    #[test]
    fn known_answer_history_with_and_without_cursor() {
        // {"History": [3, {"User": "bob"}, nil, 50]}
        check_client(
            ClientMessage::History { req: 3, target: Target::User(name("bob")), before_id: None, limit: 50 },
            "81a7486973746f7279940381a455736572a3626f62c032",
        );
        // {"History": [3, "World", 300, 50]}
        check_client(
            ClientMessage::History { req: 3, target: Target::World, before_id: Some(300), limit: 50 },
            "81a7486973746f72799403a5576f726c64cd012c32",
        );
    }

    #[test]
    fn known_answer_chat_over_tcp() {
        // {"Chat": [9, "World", "hi"]}
        check_client(
            ClientMessage::Chat { client_msg_id: 9, to: Target::World, text: String::from("hi") },
            "81a4436861749309a5576f726c64a26869",
        );
    }

    #[test]
    fn known_answer_received() {
        // {"Received": [[1, 2]]}
        check_client(ClientMessage::Received { ids: vec![1, 2] }, "81a8526563656976656491920102");
    }

    #[test]
    fn known_answer_error() {
        // {"Error": [nil, 205, "no"]}
        check_server(
            ServerMessage::Error { req: None, code: ErrorCode::BadCredentials, message: String::from("no") },
            "81a54572726f7293c0cccda26e6f",
        );
    }

    #[test]
    fn known_answer_session_grant() {
        let key = [0x11; KEY_MATERIAL_BYTES];
        // {"SessionGrant": ["bob", 2, bin(32 x 0x11), 7878, 4096]}
        let expected =
            format!("81ac53657373696f6e4772616e7495a3626f6202c420{}cd1ec6cd1000", "11".repeat(KEY_MATERIAL_BYTES));
        check_server(
            ServerMessage::SessionGrant {
                user: name("bob"),
                connection_id: 2,
                key_material: KeyMaterial::new(key),
                udp_port: 7878,
                max_text_bytes: 4096,
            },
            &expected,
        );
    }

    #[test]
    fn known_answer_chat_push_is_a_newtype_variant() {
        // {"Chat": [7, "bob", "World", "hi", 1000]}: the message array directly, no extra wrapper.
        check_server(
            ServerMessage::Chat(ChatMessage {
                id: 7,
                from: name("bob"),
                to: Target::World,
                text: String::from("hi"),
                sent_at_ms: 1_000,
            }),
            "81a4436861749507a3626f62a5576f726c64a26869cd03e8",
        );
    }

    #[test]
    fn known_answer_logged_out() {
        check_server(ServerMessage::LoggedOut, "a94c6f676765644f7574");
    }

    #[test]
    fn debug_output_hides_secrets() {
        let login = ClientMessage::Login { username: String::from("bob"), password: Password::new("hunter2") };
        assert!(!format!("{login:?}").contains("hunter2"));
        let grant = ServerMessage::SessionGrant {
            user: name("bob"),
            connection_id: 1,
            key_material: KeyMaterial::new([0x5a; KEY_MATERIAL_BYTES]),
            udp_port: 1,
            max_text_bytes: 1,
        };
        let debug = format!("{grant:?}");
        assert!(!debug.contains("90"), "{debug}");
        assert!(debug.contains("key_material: ***"), "{debug}");
    }
}
