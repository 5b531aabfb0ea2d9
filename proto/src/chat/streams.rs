//! Conversations to engine streams.
//!
//! The reliability engine orders messages per *stream*, a plain `u32`, so that a loss in one conversation never
//! holds up another. Each side numbers its own outgoing streams: the world room is always stream [`WORLD_STREAM`],
//! and each one-to-one conversation gets the next free number the first time it is used. The numbers mean nothing
//! to the other side (the payload names the conversation); they only have to be stable for the connection's life.

use std::collections::HashMap;

use super::Target;

/// The world room's stream.
pub const WORLD_STREAM: u32 = 0;

/// One-to-one conversations one connection numbers at most; past it they share streams round-robin, which only
/// costs ordering independence, never correctness. The receiver pays a record for every stream it has seen from its
/// budget, for the connection's life ([`STREAM_COST`](crate::engine::budget::STREAM_COST) bytes each): these 1 023
/// and the world room's make 1 024 streams, a quarter of the default budget, so an honest sender talking to a whole
/// school never exceeds it.
pub const MAX_CONVERSATION_STREAMS: u32 = 1023;

const _: () = assert!(
    (MAX_CONVERSATION_STREAMS as usize + 1) * crate::engine::budget::STREAM_COST
        <= crate::engine::budget::DEFAULT_RECEIVE_BUDGET / 4
);

/// Assigns stream numbers to conversations.
#[derive(Debug, Default, Clone)]
pub struct StreamMap {
    by_target: HashMap<Target, u32>,
    next: u32,
}

impl StreamMap {
    pub fn new() -> Self {
        Self::default()
    }

    /// The stream for a conversation, assigning one on first use.
    pub fn stream_for(&mut self, target: &Target) -> u32 {
        if *target == Target::World {
            return WORLD_STREAM;
        }
        if let Some(&stream) = self.by_target.get(target) {
            return stream;
        }
        let stream = 1 + self.next % MAX_CONVERSATION_STREAMS;
        self.next = self.next.wrapping_add(1);
        if self.by_target.len() < MAX_CONVERSATION_STREAMS as usize {
            self.by_target.insert(target.clone(), stream);
        }
        stream
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::Username;

    #[test]
    fn world_is_zero_and_others_are_stable() {
        let mut m = StreamMap::new();
        let ann = Target::User(Username::parse("ann").unwrap());
        let bob = Target::User(Username::parse("bob").unwrap());
        assert_eq!(m.stream_for(&Target::World), WORLD_STREAM);
        let a = m.stream_for(&ann);
        let b = m.stream_for(&bob);
        assert_ne!(a, b);
        assert_ne!(a, WORLD_STREAM);
        assert_eq!(m.stream_for(&ann), a);
    }
}
