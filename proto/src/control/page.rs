//! Filling history and user-list pages so that every page fits one frame.
//!
//! The original Python chat room sent the whole history in one message, and its receive buffer was 64 KiB: after
//! about 1 100 short messages (400 Chinese ones) history silently broke. chatlab never sends a list in one piece. A
//! page is cut when it holds the requested number of items, [`MAX_PAGE_ITEMS`], *or* the bytes that still fit one
//! control message ([`MAX_MESSAGE_BYTES`]), whichever comes first, and the answer's `more` flag tells the client to
//! ask for the next page. Counting items alone is not enough: 500 messages of 4 KiB each would be 2 MB.
//!
//! [`PageBuilder`] does the byte accounting. The server offers items one at a time; the builder measures each
//! encoded item and refuses the first one that would overflow, handing it back. A typical server loop:
//!
//! ```
//! use chatlab_proto::control::{PageBuilder, ServerMessage};
//! # use chatlab_proto::chat::{ChatMessage, Target, Username};
//! # let stored: Vec<ChatMessage> = Vec::new();
//! let mut page = PageBuilder::history(100);
//! // Fetch one more row than can be sent: if anything is left over, `more` is true.
//! let mut more = false;
//! for message in stored.into_iter().take(101) {
//!     if page.push(message).is_err() {
//!         more = true;
//!         break;
//!     }
//! }
//! let reply = ServerMessage::HistoryPage { req: 1, messages: page.into_items(), more };
//! ```
//!
//! The envelope overheads below are computed by hand from the MessagePack layout and checked by the tests against
//! what rmp-serde really writes, with the largest request number and the largest array header.

use serde::Serialize;

use super::codec::{MAX_MESSAGE_BYTES, encoded_len};
use super::message::MAX_PAGE_ITEMS;
use crate::chat::{ChatMessage, Username};

/// Bytes of a `HistoryPage` message besides its messages: map header (1), the variant name `"HistoryPage"` (12),
/// the field array header (1), `req` as a u32 (up to 5), the messages' array header (up to 5) and `more` (1).
pub const HISTORY_PAGE_OVERHEAD_BYTES: usize = 25;

/// Bytes of a `Users` message besides its names: map header (1), `"Users"` (6), field array header (1), `req` (up to
/// 5), the names' array header (up to 5) and `more` (1).
pub const USERS_PAGE_OVERHEAD_BYTES: usize = 19;

/// Collects items for one page without letting it outgrow a control message.
#[derive(Debug, Clone)]
pub struct PageBuilder<T> {
    items: Vec<T>,
    /// Encoded bytes of the page so far, envelope included.
    used: usize,
    /// Items this page may hold.
    max_items: usize,
}

impl PageBuilder<ChatMessage> {
    /// A builder for a `HistoryPage` of at most `limit` messages (and at most [`MAX_PAGE_ITEMS`]).
    pub fn history(limit: usize) -> PageBuilder<ChatMessage> {
        PageBuilder::with_overhead(HISTORY_PAGE_OVERHEAD_BYTES, limit)
    }
}

impl PageBuilder<Username> {
    /// A builder for one `Users` page of at most [`MAX_PAGE_ITEMS`] names.
    pub fn users() -> PageBuilder<Username> {
        PageBuilder::with_overhead(USERS_PAGE_OVERHEAD_BYTES, MAX_PAGE_ITEMS)
    }
}

impl<T: Serialize> PageBuilder<T> {
    fn with_overhead(overhead: usize, limit: usize) -> PageBuilder<T> {
        PageBuilder { items: Vec::new(), used: overhead, max_items: limit.min(MAX_PAGE_ITEMS) }
    }

    /// Adds `item` if the page has room for it, by count and by bytes; otherwise hands it back unchanged.
    ///
    /// An item refused by an *empty* page can never be sent in a page; that cannot happen for chat messages whose
    /// text passed [`validate_text`](crate::chat::validate_text) (a test pins this), so a server that meets it has
    /// stored something invalid and should report an internal error rather than loop.
    pub fn push(&mut self, item: T) -> Result<(), T> {
        if self.items.len() >= self.max_items {
            return Err(item);
        }
        let Ok(len) = encoded_len(&item) else {
            return Err(item);
        };
        match self.used.checked_add(len) {
            Some(total) if total <= MAX_MESSAGE_BYTES => {
                self.used = total;
                self.items.push(item);
                Ok(())
            }
            _ => Err(item),
        }
    }

    /// Items collected so far.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether no item has been added.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Upper bound of the encoded page's size in bytes so far.
    pub fn encoded_bytes(&self) -> usize {
        self.used
    }

    /// The collected items, oldest first if they were pushed that way.
    pub fn into_items(self) -> Vec<T> {
        self.items
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::{Target, validate_text};
    use crate::control::codec::encode;
    use crate::control::message::ServerMessage;
    use crate::control::strategies::{chat_message, username};
    use crate::limits::{MAX_TEXT_BYTES, MAX_USERNAME_CHARS};
    use proptest::prelude::*;

    fn largest_message() -> ChatMessage {
        let text = "中".repeat(MAX_TEXT_BYTES / 3);
        assert_eq!(validate_text(&text), Ok(()));
        let name = Username::parse(&"z".repeat(MAX_USERNAME_CHARS)).expect("valid name");
        ChatMessage { id: u64::MAX, from: name.clone(), to: Target::User(name), text, sent_at_ms: i64::MIN }
    }

    #[test]
    fn history_overhead_matches_the_real_envelope() {
        // An empty array has a one-byte header; the constant assumes the largest (five-byte) one.
        let empty = ServerMessage::HistoryPage { req: u32::MAX, messages: Vec::new(), more: true };
        assert_eq!(encode(&empty).expect("encode").len() + 4, HISTORY_PAGE_OVERHEAD_BYTES);
    }

    #[test]
    fn users_overhead_matches_the_real_envelope() {
        let empty = ServerMessage::Users { req: u32::MAX, users: Vec::new(), more: true };
        assert_eq!(encode(&empty).expect("encode").len() + 4, USERS_PAGE_OVERHEAD_BYTES);
    }

    #[test]
    fn pages_of_the_largest_messages_fit_one_control_message() {
        let mut page = PageBuilder::history(MAX_PAGE_ITEMS);
        let mut refused = None;
        while refused.is_none() {
            if let Err(item) = page.push(largest_message()) {
                refused = Some(item);
            }
        }
        // The page was cut by bytes, long before the item limit, and its first refusal was not on an empty page.
        assert!(page.len() > 1 && page.len() < MAX_PAGE_ITEMS, "{}", page.len());
        let bytes = encode(&ServerMessage::HistoryPage { req: u32::MAX, messages: page.into_items(), more: true })
            .expect("a full page still encodes");
        assert!(bytes.len() <= MAX_MESSAGE_BYTES);
    }

    #[test]
    fn item_limit_applies_and_is_capped() {
        let mut page = PageBuilder::history(2);
        let msg = largest_message();
        assert_eq!(page.push(msg.clone()), Ok(()));
        assert_eq!(page.push(msg.clone()), Ok(()));
        assert_eq!(page.push(msg.clone()), Err(msg));
        assert_eq!(PageBuilder::history(usize::MAX).max_items, MAX_PAGE_ITEMS);
    }

    #[test]
    fn zero_limit_refuses_everything() {
        let mut page = PageBuilder::history(0);
        let msg = largest_message();
        assert_eq!(page.push(msg.clone()), Err(msg));
        assert!(page.is_empty());
    }

    #[test]
    fn item_that_fits_no_page_is_handed_back() {
        let mut page = PageBuilder::history(10);
        let mut msg = largest_message();
        msg.text = "x".repeat(MAX_MESSAGE_BYTES);
        assert_eq!(page.push(msg.clone()), Err(msg));
        assert!(page.is_empty());
    }

    #[test]
    fn unencodable_item_is_handed_back() {
        #[derive(Debug, PartialEq)]
        struct Refuses;
        impl Serialize for Refuses {
            fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
                Err(serde::ser::Error::custom("refused"))
            }
        }
        let mut page = PageBuilder::with_overhead(0, 5);
        assert_eq!(page.push(Refuses), Err(Refuses));
    }

    #[test]
    fn users_page_holds_every_name_up_to_the_item_limit() {
        let mut page = PageBuilder::users();
        for n in 0..MAX_PAGE_ITEMS {
            let name = Username::parse(&format!("{n:0>32}")).expect("valid name");
            assert_eq!(page.push(name), Ok(()));
        }
        let name = Username::parse("late").expect("valid name");
        assert_eq!(page.push(name.clone()), Err(name));
        let bytes = encode(&ServerMessage::Users { req: 0, users: page.into_items(), more: true }).expect("encode");
        assert!(bytes.len() <= MAX_MESSAGE_BYTES);
    }

    proptest! {
        #[test]
        fn accounting_is_an_upper_bound_of_the_real_size(
            messages in proptest::collection::vec(chat_message(), 0..30),
            req in any::<u32>(),
        ) {
            let mut page = PageBuilder::history(MAX_PAGE_ITEMS);
            for msg in messages {
                prop_assert!(page.push(msg).is_ok());
            }
            let predicted = page.encoded_bytes();
            let real = encode(&ServerMessage::HistoryPage { req, messages: page.into_items(), more: false })
                .expect("encode")
                .len();
            prop_assert!(real <= predicted && predicted <= real + 8, "real {} predicted {}", real, predicted);
        }

        #[test]
        fn user_accounting_is_an_upper_bound(names in proptest::collection::vec(username(), 0..30)) {
            let mut page = PageBuilder::users();
            for name in names {
                prop_assert!(page.push(name).is_ok());
            }
            let predicted = page.encoded_bytes();
            let real = encode(&ServerMessage::Users { req: 0, users: page.into_items(), more: false })
                .expect("encode")
                .len();
            prop_assert!(real <= predicted);
        }
    }
}
