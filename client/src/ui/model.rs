//! What the chat window shows, as plain data: conversations, message states, unread counts, presence.
//!
//! This module knows nothing about egui or the network, so every rule below is unit-tested without a window:
//!
//! - **Order is the server's id, never a clock.** Message ids only grow (the server assigns them when it stores a
//!   message), so sorting by id gives every client the same order even when their clocks disagree. A message the
//!   user just typed has no id yet; it waits at the end of its conversation, in typing order, as *pending*, and
//!   moves into place when the server's acknowledgement names its id.
//! - **Each message arrives once, whatever the path.** The same message can arrive live, in the login sync, in a
//!   history page after scrolling back, and again after a reconnect. Keying stored messages by id makes every copy
//!   after the first a no-op.
//! - **Three ticks.** A message of one's own is *sending* (typed, not yet acknowledged), then *accepted* (the server
//!   stored it durably; it will not be lost), then *delivered* (a receipt says it reached the other person's
//!   client). These are three different facts, learnt from three different packets, which is exactly what a class
//!   should see.
//! - **Waiting is not failing.** While the connection is down the network side keeps the user's messages (those
//!   typed meanwhile and those still unacknowledged when it broke) and sends them after reconnecting. They show as
//!   *waiting for the connection* until then, go back to *sending* once reconnected, and turn *accepted* when the
//!   acknowledgement arrives; only a refusal (or a wait the network side gives up on) marks one *failed*.
//! - **Unread** counts live messages from others in conversations the user is not looking at; opening the
//!   conversation clears it.
//! - **Date separators** go between two messages whose timestamps fall on different local days.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chatlab_proto::chat::{ChatMessage, Target, Username};
use chrono::{DateTime, NaiveDate, TimeZone};

use super::backend::{LocalId, Problem};

/// Where a message stands.
#[derive(Debug, Clone, PartialEq)]
pub enum MessageState {
    /// Someone else's message (or one's own from another session): nothing to track.
    Received,
    /// Typed and handed to the network side; no acknowledgement yet.
    Sending,
    /// Typed while the connection is down (or sent just before it broke): kept by the network side, sent after the
    /// reconnect.
    Waiting,
    /// Stored by the server.
    Accepted,
    /// Reached these recipients' clients.
    Delivered(BTreeSet<Username>),
    /// Refused; nothing was stored.
    Failed(Problem),
}

/// One message as the view shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The server's id, once known.
    pub id: Option<u64>,
    /// The UI's number, for messages typed in this app.
    pub local_id: Option<LocalId>,
    /// Sender.
    pub from: Username,
    /// The world room or the addressee.
    pub to: Target,
    /// The text.
    pub text: String,
    /// The server's timestamp, once known (UTC milliseconds).
    pub sent_at_ms: Option<i64>,
    /// Where it stands.
    pub state: MessageState,
}

/// How far back a conversation's history is loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HistoryState {
    /// Nothing asked yet; older messages may exist.
    #[default]
    Unknown,
    /// A request is on its way.
    Loading,
    /// The server said older messages exist.
    More,
    /// The oldest message is loaded.
    Complete,
}

/// One conversation: the world room or the chat with one person.
#[derive(Debug, Clone, Default)]
pub struct Conversation {
    stored: BTreeMap<u64, Entry>,
    pending: Vec<Entry>,
    /// Live messages from others not yet seen.
    pub unread: usize,
    /// How far back history is loaded.
    pub history: HistoryState,
}

impl Conversation {
    /// Messages in display order: stored ones by id, then pending ones in typing order.
    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.stored.values().chain(self.pending.iter())
    }

    /// The smallest stored id, the cursor for the next history page.
    pub fn oldest_id(&self) -> Option<u64> {
        self.stored.keys().next().copied()
    }

    /// Number of messages shown.
    pub fn len(&self) -> usize {
        self.stored.len() + self.pending.len()
    }

    /// Whether no message is shown.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A line of the side list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SidebarItem {
    /// The conversation it opens.
    pub target: Target,
    /// For a user: online now? (The world room is always "online".)
    pub online: bool,
    /// Unread messages in it.
    pub unread: usize,
}

/// A line of the conversation view.
#[derive(Debug, Clone, PartialEq)]
pub enum Row<'a> {
    /// The messages below were sent on this local date.
    Date(NaiveDate),
    /// A message.
    Message(&'a Entry),
}

/// The whole chat state of one signed-in user. See the module docs.
#[derive(Debug, Clone)]
pub struct ChatModel {
    me: Username,
    conversations: BTreeMap<Target, Conversation>,
    online: BTreeSet<Username>,
    active: Target,
    next_local: u64,
    pending_in: HashMap<LocalId, Target>,
    stored_in: HashMap<u64, Target>,
    max_id: u64,
    /// The connection is down (between a lost connection and the reconnect).
    offline: bool,
}

impl ChatModel {
    /// An empty model for user `me`, looking at the world room.
    pub fn new(me: Username) -> Self {
        let mut conversations = BTreeMap::new();
        conversations.insert(Target::World, Conversation::default());
        ChatModel {
            me,
            conversations,
            online: BTreeSet::new(),
            active: Target::World,
            next_local: 0,
            pending_in: HashMap::new(),
            stored_in: HashMap::new(),
            max_id: 0,
            offline: false,
        }
    }

    /// The signed-in user.
    pub fn me(&self) -> &Username {
        &self.me
    }

    /// The conversation on screen.
    pub fn active(&self) -> &Target {
        &self.active
    }

    /// A conversation, if it has been opened or has messages.
    pub fn conversation(&self, target: &Target) -> Option<&Conversation> {
        self.conversations.get(target)
    }

    /// The largest message id seen, from any source.
    pub fn max_id(&self) -> u64 {
        self.max_id
    }

    /// Whether `user` is online.
    pub fn is_online(&self, user: &Username) -> bool {
        self.online.contains(user)
    }

    /// Puts `target` on screen and clears its unread count.
    pub fn open(&mut self, target: Target) {
        let conversation = self.conversations.entry(target.clone()).or_default();
        conversation.unread = 0;
        self.active = target;
    }

    /// Records a message the user typed; it shows at once as sending (as waiting while the connection is down).
    /// Returns its local id for the send command.
    pub fn compose(&mut self, to: Target, text: String) -> LocalId {
        self.next_local += 1;
        let local_id = LocalId(self.next_local);
        let entry = Entry {
            id: None,
            local_id: Some(local_id),
            from: self.me.clone(),
            to: to.clone(),
            text,
            sent_at_ms: None,
            state: if self.offline { MessageState::Waiting } else { MessageState::Sending },
        };
        self.conversations.entry(to.clone()).or_default().pending.push(entry);
        self.pending_in.insert(local_id, to);
        local_id
    }

    /// The server stored message `local_id` under `id`: it moves from pending into its place by id.
    pub fn accepted(&mut self, local_id: LocalId, id: u64, sent_at_ms: i64) {
        let Some(target) = self.pending_in.remove(&local_id) else { return };
        let Some(conversation) = self.conversations.get_mut(&target) else { return };
        let Some(index) = conversation.pending.iter().position(|e| e.local_id == Some(local_id)) else { return };
        let mut entry = conversation.pending.remove(index);
        entry.id = Some(id);
        entry.sent_at_ms = Some(sent_at_ms);
        entry.state = MessageState::Accepted;
        // If a copy arrived first (history sync racing the acknowledgement), the acknowledged entry replaces it: it
        // carries the local id and the state.
        conversation.stored.insert(id, entry);
        self.stored_in.insert(id, target);
        self.max_id = self.max_id.max(id);
    }

    /// The server refused message `local_id`.
    pub fn rejected(&mut self, local_id: LocalId, problem: Problem) {
        let Some(target) = self.pending_in.remove(&local_id) else { return };
        let Some(conversation) = self.conversations.get_mut(&target) else { return };
        if let Some(entry) = conversation.pending.iter_mut().find(|e| e.local_id == Some(local_id)) {
            entry.state = MessageState::Failed(problem);
        }
    }

    /// Message `id` reached `to`.
    pub fn receipt(&mut self, id: u64, to: Username) {
        let Some(target) = self.stored_in.get(&id) else { return };
        let Some(entry) = self.conversations.get_mut(target).and_then(|c| c.stored.get_mut(&id)) else { return };
        match &mut entry.state {
            MessageState::Delivered(to_whom) => {
                to_whom.insert(to);
            }
            MessageState::Accepted | MessageState::Sending | MessageState::Waiting => {
                entry.state = MessageState::Delivered(BTreeSet::from([to]));
            }
            MessageState::Received | MessageState::Failed(_) => {}
        }
    }

    /// Stores `message` unless its id is known. Returns its conversation when it was new.
    fn insert(&mut self, message: ChatMessage) -> Option<Target> {
        let target = message.conversation(&self.me);
        let conversation = self.conversations.entry(target.clone()).or_default();
        if conversation.stored.contains_key(&message.id) {
            return None;
        }
        self.max_id = self.max_id.max(message.id);
        self.stored_in.insert(message.id, target.clone());
        // One's own message from another session (or from before a restart) has no local id: it is accepted.
        let state = if message.from == self.me { MessageState::Accepted } else { MessageState::Received };
        let entry = Entry {
            id: Some(message.id),
            local_id: None,
            from: message.from,
            to: message.to,
            text: message.text,
            sent_at_ms: Some(message.sent_at_ms),
            state,
        };
        conversation.stored.insert(message.id, entry);
        Some(target)
    }

    fn count_unread(&mut self, target: &Target, from: &Username) {
        if *target != self.active
            && *from != self.me
            && let Some(conversation) = self.conversations.get_mut(target)
        {
            conversation.unread += 1;
        }
    }

    /// A message pushed live. Counts as unread when it is someone else's and its conversation is not on screen.
    /// Returns its conversation when it was new.
    pub fn receive(&mut self, message: ChatMessage) -> Option<Target> {
        let from = message.from.clone();
        let target = self.insert(message)?;
        self.count_unread(&target, &from);
        Some(target)
    }

    /// Messages from the sync at login or after a reconnect. Those with an id above `unread_after` (the largest id
    /// the user saw last time, when known) count as unread.
    pub fn synced(&mut self, messages: Vec<ChatMessage>, unread_after: Option<u64>) {
        for message in messages {
            let (id, from) = (message.id, message.from.clone());
            if let Some(target) = self.insert(message)
                && unread_after.is_some_and(|seen| id > seen)
            {
                self.count_unread(&target, &from);
            }
        }
    }

    /// Asks to load the page before the oldest message of `target`. Returns the `before_id` to request, or `None`
    /// when a request is already on its way or the beginning is loaded.
    pub fn begin_history(&mut self, target: &Target) -> Option<Option<u64>> {
        let conversation = self.conversations.entry(target.clone()).or_default();
        match conversation.history {
            HistoryState::Loading | HistoryState::Complete => None,
            HistoryState::Unknown | HistoryState::More => {
                conversation.history = HistoryState::Loading;
                Some(conversation.oldest_id())
            }
        }
    }

    /// A history page arrived.
    pub fn history_page(&mut self, target: &Target, messages: Vec<ChatMessage>, more: bool) {
        for message in messages {
            self.insert(message);
        }
        let conversation = self.conversations.entry(target.clone()).or_default();
        conversation.history = if more { HistoryState::More } else { HistoryState::Complete };
    }

    /// The connection was lost: a history request in flight will not be answered, so it may be asked again; the
    /// user's unacknowledged messages wait for the connection.
    pub fn connection_lost(&mut self) {
        self.offline = true;
        for conversation in self.conversations.values_mut() {
            if conversation.history == HistoryState::Loading {
                conversation.history = HistoryState::Unknown;
            }
            for entry in &mut conversation.pending {
                if entry.state == MessageState::Sending {
                    entry.state = MessageState::Waiting;
                }
            }
        }
    }

    /// The connection is back: the waiting messages are being sent.
    pub fn reconnected(&mut self) {
        self.offline = false;
        for entry in self.conversations.values_mut().flat_map(|c| c.pending.iter_mut()) {
            if entry.state == MessageState::Waiting {
                entry.state = MessageState::Sending;
            }
        }
    }

    /// Whether the connection is down.
    pub fn is_offline(&self) -> bool {
        self.offline
    }

    /// The complete list of users online.
    pub fn set_users(&mut self, users: Vec<Username>) {
        self.online = users.into_iter().collect();
    }

    /// `user` came online or went offline.
    pub fn presence(&mut self, user: Username, online: bool) {
        if online {
            self.online.insert(user);
        } else {
            self.online.remove(&user);
        }
    }

    /// The side list: the world room, then every online user and everyone with a conversation, online first,
    /// then by name.
    pub fn sidebar(&self) -> Vec<SidebarItem> {
        let unread = |target: &Target| self.conversations.get(target).map_or(0, |c| c.unread);
        let mut people: BTreeSet<&Username> = self.online.iter().collect();
        people.extend(self.conversations.keys().filter_map(|t| match t {
            Target::User(user) => Some(user),
            Target::World => None,
        }));
        let mut users: Vec<SidebarItem> = people
            .into_iter()
            .map(|user| {
                let target = Target::User(user.clone());
                SidebarItem { online: self.online.contains(user), unread: unread(&target), target }
            })
            .collect();
        users.sort_by(|a, b| b.online.cmp(&a.online).then_with(|| a.target.cmp(&b.target)));
        let mut items = vec![SidebarItem { target: Target::World, online: true, unread: unread(&Target::World) }];
        items.extend(users);
        items
    }

    /// The rows of `target`'s conversation with date separators in time zone `tz`.
    pub fn rows<Tz: TimeZone>(&self, target: &Target, tz: &Tz) -> Vec<Row<'_>> {
        let Some(conversation) = self.conversations.get(target) else { return Vec::new() };
        let mut rows = Vec::with_capacity(conversation.len() + 4);
        let mut last_date = None;
        for entry in conversation.entries() {
            if let Some(date) = entry.sent_at_ms.and_then(|ms| local_date(ms, tz))
                && last_date != Some(date)
            {
                rows.push(Row::Date(date));
                last_date = Some(date);
            }
            rows.push(Row::Message(entry));
        }
        rows
    }
}

/// The local calendar date of a UTC millisecond timestamp; `None` when it is outside the representable range (a
/// corrupt timestamp from the wire must not panic the view).
pub fn local_date<Tz: TimeZone>(ms: i64, tz: &Tz) -> Option<NaiveDate> {
    DateTime::from_timestamp_millis(ms).map(|utc| utc.with_timezone(tz).date_naive())
}

#[cfg(test)]
mod tests {
    use chatlab_proto::control::ErrorCode;
    use chrono::FixedOffset;

    use super::*;

    /// 2024-03-01 09:00:00 UTC.
    const T0: i64 = 1_709_283_600_000;
    const HOUR: i64 = 3_600_000;

    fn name(raw: &str) -> Username {
        Username::parse(raw).unwrap()
    }

    fn msg(id: u64, from: &str, to: Target, at: i64) -> ChatMessage {
        ChatMessage { id, from: name(from), to, text: format!("m{id}"), sent_at_ms: at }
    }

    fn ids(model: &ChatModel, target: &Target) -> Vec<Option<u64>> {
        model.conversation(target).map(|c| c.entries().map(|e| e.id).collect()).unwrap_or_default()
    }

    #[test]
    fn messages_are_ordered_by_id_whatever_the_arrival_order() {
        let mut model = ChatModel::new(name("ann"));
        model.receive(msg(5, "bob", Target::World, T0));
        model.history_page(
            &Target::World,
            vec![msg(1, "bob", Target::World, T0), msg(3, "cy", Target::World, T0)],
            false,
        );
        model.synced(vec![msg(4, "bob", Target::World, T0)], None);
        assert_eq!(ids(&model, &Target::World), vec![Some(1), Some(3), Some(4), Some(5)]);
    }

    #[test]
    fn a_message_arriving_twice_is_shown_once() {
        let mut model = ChatModel::new(name("ann"));
        assert!(model.receive(msg(2, "bob", Target::World, T0)).is_some());
        assert!(model.receive(msg(2, "bob", Target::World, T0)).is_none());
        model.synced(vec![msg(2, "bob", Target::World, T0)], Some(0));
        assert_eq!(model.conversation(&Target::World).map(Conversation::len), Some(1));
        assert_eq!(model.conversation(&Target::World).map(|c| c.unread), Some(0));
    }

    #[test]
    fn own_message_goes_from_sending_to_accepted_to_delivered() {
        let mut model = ChatModel::new(name("ann"));
        let bob = Target::User(name("bob"));
        model.receive(msg(7, "bob", bob.clone(), T0));
        let local = model.compose(bob.clone(), String::from("hi"));
        assert_eq!(ids(&model, &bob), vec![Some(7), None]);
        let state = |m: &ChatModel| m.conversation(&bob).and_then(|c| c.entries().last().map(|e| e.state.clone()));
        assert_eq!(state(&model), Some(MessageState::Sending));
        model.accepted(local, 9, T0 + 1000);
        assert_eq!(ids(&model, &bob), vec![Some(7), Some(9)]);
        assert_eq!(state(&model), Some(MessageState::Accepted));
        model.receipt(9, name("bob"));
        assert_eq!(state(&model), Some(MessageState::Delivered(BTreeSet::from([name("bob")]))));
        assert_eq!(model.max_id(), 9);
    }

    #[test]
    fn pending_messages_stay_in_typing_order_after_stored_ones() {
        let mut model = ChatModel::new(name("ann"));
        let a = model.compose(Target::World, String::from("a"));
        let b = model.compose(Target::World, String::from("b"));
        model.receive(msg(3, "bob", Target::World, T0));
        let texts: Vec<&str> = model.conversation(&Target::World).unwrap().entries().map(|e| e.text.as_str()).collect();
        assert_eq!(texts, vec!["m3", "a", "b"]);
        model.accepted(b, 5, T0);
        model.accepted(a, 4, T0);
        let texts: Vec<&str> = model.conversation(&Target::World).unwrap().entries().map(|e| e.text.as_str()).collect();
        assert_eq!(texts, vec!["m3", "a", "b"]);
    }

    /// Regression: a message typed while the connection was down showed as failed, though the network side keeps
    /// it and sends it after the reconnect.
    #[test]
    fn a_message_sent_while_disconnected_waits_then_sends_then_is_accepted_not_failed() {
        let mut model = ChatModel::new(name("ann"));
        let state = |m: &ChatModel, n: usize| {
            m.conversation(&Target::World).and_then(|c| c.entries().nth(n).map(|e| e.state.clone()))
        };
        let in_flight = model.compose(Target::World, String::from("before"));
        model.connection_lost();
        assert!(model.is_offline());
        let typed = model.compose(Target::World, String::from("during"));
        assert_eq!((state(&model, 0), state(&model, 1)), (Some(MessageState::Waiting), Some(MessageState::Waiting)));
        model.reconnected();
        assert!(!model.is_offline());
        assert_eq!((state(&model, 0), state(&model, 1)), (Some(MessageState::Sending), Some(MessageState::Sending)));
        model.accepted(in_flight, 1, T0);
        model.accepted(typed, 2, T0);
        assert_eq!((state(&model, 0), state(&model, 1)), (Some(MessageState::Accepted), Some(MessageState::Accepted)));
    }

    #[test]
    fn a_waiting_message_can_still_fail_or_be_accepted_before_the_reconnect_is_reported() {
        let mut model = ChatModel::new(name("ann"));
        let failed = model.compose(Target::World, String::from("a"));
        let early = model.compose(Target::World, String::from("b"));
        model.connection_lost();
        model.rejected(failed, Problem::OutboxFull { queued: 50 });
        model.accepted(early, 4, T0);
        let states: Vec<MessageState> =
            model.conversation(&Target::World).unwrap().entries().map(|e| e.state.clone()).collect();
        assert_eq!(states, vec![MessageState::Accepted, MessageState::Failed(Problem::OutboxFull { queued: 50 })]);
    }

    #[test]
    fn rejected_message_stays_visible_as_failed() {
        let mut model = ChatModel::new(name("ann"));
        let local = model.compose(Target::World, String::from("spam"));
        let problem = Problem::Refused { code: ErrorCode::FloodLimited, message: String::from("slow down") };
        model.rejected(local, problem.clone());
        let entry = model.conversation(&Target::World).unwrap().entries().last().cloned().unwrap();
        assert_eq!(entry.state, MessageState::Failed(problem));
    }

    #[test]
    fn acknowledgements_for_unknown_ids_are_ignored() {
        let mut model = ChatModel::new(name("ann"));
        model.accepted(LocalId(42), 1, T0);
        model.rejected(LocalId(42), Problem::Other(String::from("x")));
        model.receipt(99, name("bob"));
        assert!(model.conversation(&Target::World).unwrap().is_empty());
    }

    #[test]
    fn unread_counts_live_messages_elsewhere_and_opening_clears_it() {
        let mut model = ChatModel::new(name("ann"));
        let bob = Target::User(name("bob"));
        model.receive(msg(1, "bob", bob.clone(), T0));
        model.receive(msg(2, "bob", bob.clone(), T0));
        model.receive(msg(3, "cy", Target::World, T0));
        assert_eq!(model.conversation(&bob).map(|c| c.unread), Some(2));
        assert_eq!(model.conversation(&Target::World).map(|c| c.unread), Some(0), "world is on screen");
        model.open(bob.clone());
        assert_eq!(model.conversation(&bob).map(|c| c.unread), Some(0));
        assert_eq!(model.active(), &bob);
    }

    #[test]
    fn own_messages_from_another_session_are_not_unread() {
        let mut model = ChatModel::new(name("ann"));
        let bob = Target::User(name("bob"));
        model.receive(msg(1, "ann", bob.clone(), T0));
        let conversation = model.conversation(&bob).unwrap();
        assert_eq!(conversation.unread, 0);
        assert_eq!(conversation.entries().next().map(|e| e.state.clone()), Some(MessageState::Accepted));
    }

    #[test]
    fn synced_messages_are_unread_only_after_the_last_seen_id() {
        let mut model = ChatModel::new(name("ann"));
        let bob = Target::User(name("bob"));
        model.synced(vec![msg(1, "bob", bob.clone(), T0), msg(2, "bob", bob.clone(), T0)], Some(1));
        assert_eq!(model.conversation(&bob).map(|c| c.unread), Some(1));
        let mut fresh = ChatModel::new(name("ann"));
        fresh.synced(vec![msg(1, "bob", bob.clone(), T0)], None);
        assert_eq!(fresh.conversation(&bob).map(|c| c.unread), Some(0));
    }

    #[test]
    fn history_requests_do_not_overlap_and_stop_at_the_beginning() {
        let mut model = ChatModel::new(name("ann"));
        assert_eq!(model.begin_history(&Target::World), Some(None));
        assert_eq!(model.begin_history(&Target::World), None, "one request at a time");
        model.history_page(&Target::World, vec![msg(10, "bob", Target::World, T0)], true);
        assert_eq!(model.begin_history(&Target::World), Some(Some(10)));
        model.history_page(&Target::World, vec![msg(4, "bob", Target::World, T0)], false);
        assert_eq!(model.begin_history(&Target::World), None);
        assert_eq!(model.conversation(&Target::World).map(|c| c.history), Some(HistoryState::Complete));
    }

    #[test]
    fn a_lost_connection_allows_asking_for_history_again() {
        let mut model = ChatModel::new(name("ann"));
        assert!(model.begin_history(&Target::World).is_some());
        model.connection_lost();
        assert!(model.begin_history(&Target::World).is_some());
    }

    #[test]
    fn sidebar_lists_world_then_online_users_then_offline_correspondents() {
        let mut model = ChatModel::new(name("ann"));
        model.set_users(vec![name("ann"), name("zed"), name("bob")]);
        model.receive(msg(1, "cy", Target::User(name("ann")), T0));
        model.presence(name("zed"), false);
        model.presence(name("dee"), true);
        let items: Vec<(String, bool, usize)> =
            model.sidebar().into_iter().map(|i| (i.target.to_string(), i.online, i.unread)).collect();
        assert_eq!(
            items,
            vec![
                (String::from("world"), true, 0),
                (String::from("ann"), true, 0),
                (String::from("bob"), true, 0),
                (String::from("dee"), true, 0),
                (String::from("cy"), false, 1),
            ]
        );
    }

    #[test]
    fn date_separators_follow_the_local_day() {
        let mut model = ChatModel::new(name("ann"));
        // 09:00 UTC and 20:00 UTC on 1 March, 08:00 UTC on 2 March.
        model.receive(msg(1, "bob", Target::World, T0));
        model.receive(msg(2, "bob", Target::World, T0 + 11 * HOUR));
        model.receive(msg(3, "bob", Target::World, T0 + 23 * HOUR));
        model.compose(Target::World, String::from("pending"));
        let kinds = |tz: &FixedOffset| -> Vec<String> {
            model
                .rows(&Target::World, tz)
                .iter()
                .map(|r| match r {
                    Row::Date(d) => d.to_string(),
                    Row::Message(e) => e.text.clone(),
                })
                .collect()
        };
        let utc = FixedOffset::east_opt(0).unwrap();
        assert_eq!(kinds(&utc), vec!["2024-03-01", "m1", "m2", "2024-03-02", "m3", "pending"]);
        // In Beijing (UTC+8) 20:00 UTC is already 2 March.
        let beijing = FixedOffset::east_opt(8 * 3600).unwrap();
        assert_eq!(kinds(&beijing), vec!["2024-03-01", "m1", "2024-03-02", "m2", "m3", "pending"]);
    }

    #[test]
    fn absurd_timestamps_get_no_separator_instead_of_a_panic() {
        let mut model = ChatModel::new(name("ann"));
        model.receive(msg(1, "bob", Target::World, i64::MAX));
        model.receive(msg(2, "bob", Target::World, i64::MIN));
        let rows = model.rows(&Target::World, &FixedOffset::east_opt(0).unwrap());
        assert_eq!(rows.len(), 2);
    }
}
