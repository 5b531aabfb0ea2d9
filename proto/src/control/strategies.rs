//! Proptest strategies that generate every control message, shared by the round-trip and paging tests.

use proptest::collection::vec;
use proptest::prelude::*;

use super::error_code::ErrorCode;
use super::message::{ClientMessage, ServerMessage, Transport};
use super::secret::{KEY_MATERIAL_BYTES, KeyMaterial, Password};
use crate::chat::{ChatMessage, Target, Username, WORLD_NAME};

/// Any valid user name, in canonical form.
pub fn username() -> impl Strategy<Value = Username> {
    "[a-z0-9._-]{1,32}"
        .prop_filter("reserved", |raw| raw != WORLD_NAME)
        .prop_filter_map("valid by construction", |raw| Username::parse(&raw).ok())
}

/// Either conversation target.
pub fn target() -> impl Strategy<Value = Target> {
    prop_oneof![Just(Target::World), username().prop_map(Target::User)]
}

/// Any chat message; the text is arbitrary Unicode, since the codec must carry whatever the server stored.
pub fn chat_message() -> impl Strategy<Value = ChatMessage> {
    (any::<u64>(), username(), target(), ".{0,40}", any::<i64>())
        .prop_map(|(id, from, to, text, sent_at_ms)| ChatMessage { id, from, to, text, sent_at_ms })
}

/// Any error code, known or not.
pub fn error_code() -> impl Strategy<Value = ErrorCode> {
    any::<u16>().prop_map(ErrorCode::from_u16)
}

/// Every variant of [`ClientMessage`] with arbitrary fields.
pub fn client_message() -> impl Strategy<Value = ClientMessage> {
    prop_oneof![
        (any::<u8>(), ".{0,20}").prop_map(|(version, client)| ClientMessage::Hello { version, client }),
        (".{0,40}", ".{0,40}")
            .prop_map(|(username, password)| ClientMessage::Register { username, password: Password::new(password) }),
        (".{0,40}", ".{0,40}")
            .prop_map(|(username, password)| ClientMessage::Login { username, password: Password::new(password) }),
        Just(ClientMessage::Logout),
        (any::<u32>(), any::<u64>(), any::<u16>())
            .prop_map(|(req, after_id, limit)| { ClientMessage::SyncHistory { req, after_id, limit } }),
        (any::<u32>(), target(), any::<Option<u64>>(), any::<u16>())
            .prop_map(|(req, target, before_id, limit)| ClientMessage::History { req, target, before_id, limit }),
        any::<u32>().prop_map(|req| ClientMessage::ListUsers { req }),
        (any::<u64>(), target(), ".{0,60}")
            .prop_map(|(client_msg_id, to, text)| { ClientMessage::Chat { client_msg_id, to, text } }),
        any::<u64>().prop_map(|nonce| ClientMessage::Ping { nonce }),
        vec(any::<u64>(), 0..20).prop_map(|ids| ClientMessage::Received { ids }),
        prop_oneof![Just(Transport::Udp), Just(Transport::Tcp)]
            .prop_map(|transport| ClientMessage::UseTransport { transport }),
    ]
}

/// Every variant of [`ServerMessage`] with arbitrary fields.
pub fn server_message() -> impl Strategy<Value = ServerMessage> {
    prop_oneof![
        (any::<u8>(), ".{0,20}").prop_map(|(version, server)| ServerMessage::Welcome { version, server }),
        username().prop_map(|username| ServerMessage::Registered { username }),
        (username(), any::<u64>(), any::<[u8; KEY_MATERIAL_BYTES]>(), any::<u16>(), any::<u32>()).prop_map(
            |(user, connection_id, key, udp_port, max_text_bytes)| {
                ServerMessage::SessionGrant {
                    user,
                    connection_id,
                    key_material: KeyMaterial::new(key),
                    udp_port,
                    max_text_bytes,
                }
            }
        ),
        (any::<Option<u32>>(), error_code(), ".{0,40}").prop_map(|(req, code, message)| ServerMessage::Error {
            req,
            code,
            message
        }),
        (any::<u64>(), error_code(), ".{0,40}").prop_map(|(client_msg_id, code, message)| {
            ServerMessage::ChatRejected { client_msg_id, code, message }
        }),
        (any::<u32>(), vec(username(), 0..10), any::<bool>()).prop_map(|(req, users, more)| ServerMessage::Users {
            req,
            users,
            more
        }),
        (username(), any::<bool>()).prop_map(|(user, online)| ServerMessage::Presence { user, online }),
        (any::<u32>(), vec(chat_message(), 0..8), any::<bool>())
            .prop_map(|(req, messages, more)| { ServerMessage::HistoryPage { req, messages, more } }),
        chat_message().prop_map(ServerMessage::Chat),
        (any::<u64>(), any::<u64>(), any::<i64>()).prop_map(|(client_msg_id, id, sent_at_ms)| {
            ServerMessage::ChatAccepted { client_msg_id, id, sent_at_ms }
        }),
        (any::<u64>(), username()).prop_map(|(id, to)| ServerMessage::Receipt { id, to }),
        any::<u64>().prop_map(|nonce| ServerMessage::Pong { nonce }),
        Just(ServerMessage::LoggedOut),
    ]
}
