//! Behavioural tests every [`Storage`] implementation must pass. Each implementation's own test module calls
//! [`run_all`] with a constructor for a fresh, empty instance, so the SQLite and in-memory versions are held to
//! exactly the same contract.

use super::{
    MessageId, NewMessage, Storage, StorageError, StoredMessage, StoredRecipient, StoredTarget, UserId, UserRecord,
};

/// Messages written by the large paging test: well beyond one page and beyond the 64 KiB single frame that
/// capped the original server's history at about 1 100 short messages.
const LARGE_HISTORY: usize = 20_000;

/// Messages per `append_messages` call in the large test (group commit, as the server would do it).
const LARGE_BATCH: usize = 500;

/// A page size that does not divide the totals evenly, so the last, short page is exercised.
const PAGE: usize = 997;

/// One behavioural case: a name for the log and a function that gets a fresh, empty storage.
type Case = (&'static str, fn(&dyn Storage));

/// Runs every case against fresh instances made by `make`.
pub(crate) fn run_all<S: Storage>(make: &dyn Fn() -> S) {
    let cases: &[Case] = &[
        ("create_and_find_users", create_and_find_users),
        ("duplicate_name_is_taken", duplicate_name_is_taken),
        ("password_hash_is_replaced_for_one_user_only", password_hash_is_replaced_for_one_user_only),
        ("empty_batch_stores_nothing", empty_batch_stores_nothing),
        ("append_assigns_increasing_ids", append_assigns_increasing_ids),
        ("unknown_user_rejects_whole_batch", unknown_user_rejects_whole_batch),
        ("sync_shows_only_what_a_user_may_see", sync_shows_only_what_a_user_may_see),
        ("conversation_scroll_back", conversation_scroll_back),
        ("third_user_never_sees_a_private_conversation", third_user_never_sees_a_private_conversation),
        ("degenerate_bounds_return_nothing", degenerate_bounds_return_nothing),
        ("delivery_receipts_happen_once", delivery_receipts_happen_once),
        ("undelivered_pages_and_shrinks", undelivered_pages_and_shrinks),
        ("large_history_pages_completely", large_history_pages_completely),
        (
            "duplicate_storage_after_crash_client_msg_id_round_trips",
            duplicate_storage_after_crash_client_msg_id_round_trips,
        ),
        ("newest_before_walks_back_over_every_sender", newest_before_walks_back_over_every_sender),
    ];
    for (name, case) in cases {
        let storage = make();
        eprintln!("storage conformance: {name}");
        case(&storage);
    }
}

fn user(storage: &dyn Storage, name: &str) -> UserRecord {
    storage.create_user(name, &format!("$argon2id$for-{name}"), 1_000).unwrap()
}

fn to_world(from: UserId, text: &str) -> NewMessage {
    NewMessage { from, to: StoredTarget::World, text: text.to_owned(), sent_at_ms: 5_000, client_msg_id: None }
}

fn to_user(from: UserId, to: UserId, text: &str) -> NewMessage {
    NewMessage { from, to: StoredTarget::User(to), text: text.to_owned(), sent_at_ms: 5_000, client_msg_id: None }
}

fn named(message: NewMessage, client_msg_id: u64) -> NewMessage {
    NewMessage { client_msg_id: Some(client_msg_id), ..message }
}

fn texts(messages: &[StoredMessage]) -> Vec<&str> {
    messages.iter().map(|m| m.text.as_str()).collect()
}

fn ids(messages: &[StoredMessage]) -> Vec<MessageId> {
    messages.iter().map(|m| m.id).collect()
}

fn create_and_find_users(storage: &dyn Storage) {
    let alice = storage.create_user("alice", "$argon2id$a", 42).unwrap();
    let bob = storage.create_user("bob", "$argon2id$b", 43).unwrap();
    assert_ne!(alice.id, bob.id);
    assert_eq!(alice.name, "alice");
    assert_eq!(alice.password_phc, "$argon2id$a");
    assert_eq!(alice.created_at_ms, 42);
    assert_eq!(storage.find_user("alice").unwrap(), Some(alice));
    assert_eq!(storage.find_user("bob").unwrap(), Some(bob));
    assert_eq!(storage.find_user("carol").unwrap(), None);
    // Names are stored exactly; case-folding is the caller's job.
    assert_eq!(storage.find_user("ALICE").unwrap(), None);
}

fn duplicate_name_is_taken(storage: &dyn Storage) {
    let first = storage.create_user("alice", "$argon2id$first", 1).unwrap();
    let err = storage.create_user("alice", "$argon2id$second", 2).unwrap_err();
    assert!(matches!(err, StorageError::UsernameTaken), "{err:?}");
    assert_eq!(storage.find_user("alice").unwrap(), Some(first));
}

fn password_hash_is_replaced_for_one_user_only(storage: &dyn Storage) {
    let alice = storage.create_user("alice", "$argon2id$old", 1).unwrap();
    let bob = storage.create_user("bob", "$argon2id$bob", 2).unwrap();
    storage.update_password_hash(alice.id, "$argon2id$new").unwrap();
    assert_eq!(storage.find_user("alice").unwrap().unwrap().password_phc, "$argon2id$new");
    assert_eq!(storage.find_user("bob").unwrap(), Some(bob));
    let err = storage.update_password_hash(alice.id + 1000, "$argon2id$x").unwrap_err();
    assert!(matches!(err, StorageError::UnknownUser), "{err:?}");
}

fn empty_batch_stores_nothing(storage: &dyn Storage) {
    assert!(storage.append_messages(&[]).unwrap().is_empty());
    assert_eq!(storage.latest_message_id().unwrap(), 0);
    assert!(storage.mark_delivered(1, &[], 9).unwrap().is_empty());
}

fn append_assigns_increasing_ids(storage: &dyn Storage) {
    let alice = user(storage, "alice");
    let bob = user(storage, "bob");
    let stored = storage
        .append_messages(&[to_world(alice.id, "hello 世界"), to_user(alice.id, bob.id, "hi bob\nsecond line")])
        .unwrap();
    assert_eq!(stored.len(), 2);
    let (world, private) = (&stored[0], &stored[1]);
    assert!(world.id >= 1 && private.id > world.id);
    assert_eq!(world.from.id, alice.id);
    assert_eq!(world.from.name, "alice");
    assert_eq!(world.to, StoredRecipient::World);
    assert!(!world.is_private());
    assert_eq!(world.text, "hello 世界");
    assert_eq!(world.sent_at_ms, 5_000);
    assert_eq!(world.delivered_at_ms, None);
    assert_eq!(world.client_msg_id, None);
    assert!(private.is_private());
    match &private.to {
        StoredRecipient::User(to) => assert_eq!((to.id, to.name.as_str()), (bob.id, "bob")),
        StoredRecipient::World => panic!("private message stored as world"),
    }
    assert_eq!(private.delivered_at_ms, None);
    assert_eq!(storage.latest_message_id().unwrap(), private.id);

    let later = storage.append_messages(&[to_world(bob.id, "later")]).unwrap();
    assert!(later[0].id > private.id);
    assert_eq!(storage.latest_message_id().unwrap(), later[0].id);
}

fn unknown_user_rejects_whole_batch(storage: &dyn Storage) {
    let alice = user(storage, "alice");
    let err = storage.append_messages(&[to_world(alice.id, "fine"), to_world(alice.id + 100, "ghost")]).unwrap_err();
    assert!(matches!(err, StorageError::UnknownUser), "{err:?}");
    let err = storage
        .append_messages(&[to_world(alice.id, "fine"), to_user(alice.id, alice.id + 100, "to a ghost")])
        .unwrap_err();
    assert!(matches!(err, StorageError::UnknownUser), "{err:?}");
    assert_eq!(storage.latest_message_id().unwrap(), 0);
    assert!(storage.sync_after(alice.id, 0, 10).unwrap().is_empty());
    // The storage is still usable afterwards.
    assert_eq!(storage.append_messages(&[to_world(alice.id, "ok")]).unwrap().len(), 1);
}

fn sync_shows_only_what_a_user_may_see(storage: &dyn Storage) {
    let alice = user(storage, "alice");
    let bob = user(storage, "bob");
    let carol = user(storage, "carol");
    storage
        .append_messages(&[
            to_world(alice.id, "w1"),
            to_user(alice.id, bob.id, "a->b"),
            to_user(bob.id, alice.id, "b->a"),
            to_user(carol.id, alice.id, "c->a"),
            to_user(alice.id, alice.id, "a->a note to self"),
            to_world(carol.id, "w2"),
        ])
        .unwrap();
    let alice_sees = storage.sync_after(alice.id, 0, 100).unwrap();
    assert_eq!(texts(&alice_sees), ["w1", "a->b", "b->a", "c->a", "a->a note to self", "w2"]);
    let bob_sees = storage.sync_after(bob.id, 0, 100).unwrap();
    assert_eq!(texts(&bob_sees), ["w1", "a->b", "b->a", "w2"]);
    let carol_sees = storage.sync_after(carol.id, 0, 100).unwrap();
    assert_eq!(texts(&carol_sees), ["w1", "c->a", "w2"]);

    // Incremental: after the id of "b->a", alice gets the rest only.
    let after = alice_sees[2].id;
    let rest = storage.sync_after(alice.id, after, 100).unwrap();
    assert_eq!(texts(&rest), ["c->a", "a->a note to self", "w2"]);
    // Paged: limit 2 then continue from the last id.
    let first = storage.sync_after(alice.id, 0, 2).unwrap();
    assert_eq!(texts(&first), ["w1", "a->b"]);
    let second = storage.sync_after(alice.id, first[1].id, 2).unwrap();
    assert_eq!(texts(&second), ["b->a", "c->a"]);
}

fn conversation_scroll_back(storage: &dyn Storage) {
    let alice = user(storage, "alice");
    let bob = user(storage, "bob");
    let carol = user(storage, "carol");
    storage
        .append_messages(&[
            to_world(alice.id, "w1"),
            to_user(alice.id, bob.id, "ab1"),
            to_user(bob.id, alice.id, "ba1"),
            to_user(alice.id, carol.id, "ac1"),
            to_world(bob.id, "w2"),
            to_user(alice.id, bob.id, "ab2"),
            to_user(alice.id, alice.id, "self1"),
            to_world(carol.id, "w3"),
        ])
        .unwrap();
    let world = storage.conversation_before(alice.id, StoredTarget::World, None, 100).unwrap();
    assert_eq!(texts(&world), ["w1", "w2", "w3"]);
    // Newest `limit` older than the anchor, oldest first.
    let newest_two = storage.conversation_before(carol.id, StoredTarget::World, None, 2).unwrap();
    assert_eq!(texts(&newest_two), ["w2", "w3"]);
    let older = storage.conversation_before(carol.id, StoredTarget::World, Some(newest_two[0].id), 2).unwrap();
    assert_eq!(texts(&older), ["w1"]);

    let with_bob = storage.conversation_before(alice.id, StoredTarget::User(bob.id), None, 100).unwrap();
    assert_eq!(texts(&with_bob), ["ab1", "ba1", "ab2"]);
    // The same conversation seen from the other side.
    let with_alice = storage.conversation_before(bob.id, StoredTarget::User(alice.id), None, 100).unwrap();
    assert_eq!(with_alice, with_bob);
    let before_last =
        storage.conversation_before(alice.id, StoredTarget::User(bob.id), Some(with_bob[2].id), 1).unwrap();
    assert_eq!(texts(&before_last), ["ba1"]);

    let notes = storage.conversation_before(alice.id, StoredTarget::User(alice.id), None, 100).unwrap();
    assert_eq!(texts(&notes), ["self1"]);
    let with_carol = storage.conversation_before(carol.id, StoredTarget::User(alice.id), None, 100).unwrap();
    assert_eq!(texts(&with_carol), ["ac1"]);
}

fn third_user_never_sees_a_private_conversation(storage: &dyn Storage) {
    let alice = user(storage, "alice");
    let bob = user(storage, "bob");
    let eve = user(storage, "eve");
    let secrets: Vec<_> = (0..50)
        .map(|i| {
            if i % 2 == 0 {
                to_user(alice.id, bob.id, &format!("secret {i}"))
            } else {
                to_user(bob.id, alice.id, &format!("secret {i}"))
            }
        })
        .collect();
    storage.append_messages(&secrets).unwrap();
    storage.append_messages(&[to_world(alice.id, "public")]).unwrap();

    let synced = storage.sync_after(eve.id, 0, 1_000).unwrap();
    assert_eq!(texts(&synced), ["public"]);
    for peer in [alice.id, bob.id, eve.id] {
        let seen = storage.conversation_before(eve.id, StoredTarget::User(peer), None, 1_000).unwrap();
        assert!(seen.is_empty(), "eve sees {:?} via peer {peer}", texts(&seen));
    }
    assert!(storage.undelivered_to(eve.id, 0, 1_000).unwrap().is_empty());
    // Eve cannot mark (and so learn about, or forge receipts for) messages addressed to bob.
    let all_ids: Vec<MessageId> = (1..=storage.latest_message_id().unwrap()).collect();
    assert!(storage.mark_delivered(eve.id, &all_ids, 9).unwrap().is_empty());
    assert_eq!(storage.undelivered_to(bob.id, 0, 1_000).unwrap().len(), 25);
}

fn degenerate_bounds_return_nothing(storage: &dyn Storage) {
    let alice = user(storage, "alice");
    let bob = user(storage, "bob");
    let stored = storage.append_messages(&[to_world(alice.id, "w"), to_user(alice.id, bob.id, "p")]).unwrap();
    assert!(storage.sync_after(alice.id, 0, 0).unwrap().is_empty());
    assert!(storage.sync_after(alice.id, MessageId::MAX, 10).unwrap().is_empty());
    assert!(storage.sync_after(alice.id, stored[1].id, 10).unwrap().is_empty());
    for before in [Some(0), Some(1)] {
        assert!(storage.conversation_before(alice.id, StoredTarget::World, before, 10).unwrap().is_empty());
    }
    assert!(storage.conversation_before(alice.id, StoredTarget::World, None, 0).unwrap().is_empty());
    let everything =
        storage.conversation_before(alice.id, StoredTarget::User(bob.id), Some(MessageId::MAX), 10).unwrap();
    assert_eq!(texts(&everything), ["p"]);
    assert!(storage.undelivered_to(bob.id, 0, 0).unwrap().is_empty());
    assert!(storage.undelivered_to(bob.id, MessageId::MAX, 5).unwrap().is_empty());
    // Someone with no account sees the world room only (the server never asks, but nothing leaks if it does).
    assert_eq!(texts(&storage.sync_after(9_999, 0, 10).unwrap()), ["w"]);
}

fn delivery_receipts_happen_once(storage: &dyn Storage) {
    let alice = user(storage, "alice");
    let bob = user(storage, "bob");
    let stored = storage
        .append_messages(&[
            to_user(alice.id, bob.id, "first"),
            to_world(alice.id, "world"),
            to_user(alice.id, bob.id, "second"),
            to_user(bob.id, alice.id, "reply"),
        ])
        .unwrap();
    let [first, world, second, reply] = [&stored[0], &stored[1], &stored[2], &stored[3]];

    // Bob confirms: the world message, alice's incoming reply, an unknown id and an id beyond any are ignored.
    let receipts = storage
        .mark_delivered(bob.id, &[second.id, world.id, reply.id, 10_000, MessageId::MAX, first.id], 777)
        .unwrap();
    let got: Vec<_> = receipts.iter().map(|r| (r.message_id, r.sender, r.delivered_at_ms)).collect();
    assert_eq!(got, [(second.id, alice.id, 777), (first.id, alice.id, 777)]);
    // A second session confirming again produces no second receipt, and keeps the first time.
    assert!(storage.mark_delivered(bob.id, &[first.id, second.id], 999).unwrap().is_empty());
    // The sender sees the state in her history.
    let alice_view = storage.sync_after(alice.id, 0, 10).unwrap();
    let states: Vec<_> = alice_view.iter().map(|m| (m.text.as_str(), m.delivered_at_ms)).collect();
    assert_eq!(states, [("first", Some(777)), ("world", None), ("second", Some(777)), ("reply", None)]);
    let receipts = storage.mark_delivered(alice.id, &[reply.id], 1_000).unwrap();
    assert_eq!(receipts.len(), 1);
    assert_eq!(receipts[0].sender, bob.id);
}

fn undelivered_pages_and_shrinks(storage: &dyn Storage) {
    let alice = user(storage, "alice");
    let bob = user(storage, "bob");
    let batch: Vec<_> = (0..10).map(|i| to_user(alice.id, bob.id, &format!("m{i}"))).collect();
    let stored = storage.append_messages(&batch).unwrap();
    storage.append_messages(&[to_world(alice.id, "w"), to_user(bob.id, alice.id, "back")]).unwrap();

    let page = storage.undelivered_to(bob.id, 0, 4).unwrap();
    assert_eq!(texts(&page), ["m0", "m1", "m2", "m3"]);
    let next = storage.undelivered_to(bob.id, page[3].id, 4).unwrap();
    assert_eq!(texts(&next), ["m4", "m5", "m6", "m7"]);

    storage.mark_delivered(bob.id, &[stored[0].id, stored[5].id], 1).unwrap();
    let waiting = storage.undelivered_to(bob.id, 0, 100).unwrap();
    assert_eq!(texts(&waiting), ["m1", "m2", "m3", "m4", "m6", "m7", "m8", "m9"]);
    assert!(waiting.iter().all(|m| m.delivered_at_ms.is_none()));
    assert_eq!(texts(&storage.undelivered_to(alice.id, 0, 100).unwrap()), ["back"]);
}

fn large_history_pages_completely(storage: &dyn Storage) {
    let names = ["alice", "bob", "carol"];
    let users: Vec<UserId> = names.iter().map(|name| user(storage, name).id).collect();
    let mut all = Vec::with_capacity(LARGE_HISTORY);
    let mut pending = Vec::with_capacity(LARGE_BATCH);
    for i in 0..LARGE_HISTORY {
        let from = users[i % 3];
        // Every fourth message is private, rotating through the pairs.
        let message = if i % 4 == 0 {
            to_user(from, users[(i / 4) % 3], &format!("private {i}"))
        } else {
            to_world(from, &format!("world {i}"))
        };
        pending.push(message);
        if pending.len() == LARGE_BATCH {
            all.extend(storage.append_messages(&pending).unwrap());
            pending.clear();
        }
    }
    all.extend(storage.append_messages(&pending).unwrap());
    assert_eq!(all.len(), LARGE_HISTORY);
    assert!(all.windows(2).all(|pair| pair[0].id < pair[1].id));

    for &me in &users {
        let expected: Vec<&StoredMessage> = all
            .iter()
            .filter(|m| {
                m.from.id == me
                    || match &m.to {
                        StoredRecipient::World => true,
                        StoredRecipient::User(to) => to.id == me,
                    }
            })
            .collect();
        let mut synced = Vec::with_capacity(expected.len());
        let mut after = 0;
        loop {
            let page = storage.sync_after(me, after, PAGE).unwrap();
            assert!(page.len() <= PAGE);
            let Some(last) = page.last() else { break };
            after = last.id;
            let short = page.len() < PAGE;
            synced.extend(page);
            if short {
                break;
            }
        }
        assert_eq!(synced.len(), expected.len(), "user {me}");
        assert!(synced.iter().zip(&expected).all(|(got, want)| got == *want));
    }

    // Scrolling the world room back from the newest message to the first, page by page.
    let expected_world = ids(&all.iter().filter(|m| m.to == StoredRecipient::World).cloned().collect::<Vec<_>>());
    let mut scrolled: Vec<MessageId> = Vec::with_capacity(expected_world.len());
    let mut before = None;
    loop {
        let page = storage.conversation_before(users[0], StoredTarget::World, before, PAGE).unwrap();
        let Some(first) = page.first() else { break };
        before = Some(first.id);
        assert!(page.windows(2).all(|pair| pair[0].id < pair[1].id));
        let mut page_ids = ids(&page);
        page_ids.extend(scrolled);
        scrolled = page_ids;
    }
    assert_eq!(scrolled, expected_world);

    // The startup walk over the whole server, newest first, page by page.
    let mut walked: Vec<MessageId> = Vec::with_capacity(LARGE_HISTORY);
    let mut before = None;
    loop {
        let page = storage.newest_before(before, PAGE).unwrap();
        let Some(last) = page.last() else { break };
        before = Some(last.id);
        walked.extend(ids(&page));
    }
    let mut newest_first = ids(&all);
    newest_first.reverse();
    assert_eq!(walked, newest_first);
}

/// The regression behind the `client_msg_id` column: the server de-duplicated resends only in memory, so a crash
/// between commit and answer made the resend a second stored copy. The id must come back from every read,
/// exactly (the whole `u64` range, including values SQLite's signed integers cannot hold as they are), and a
/// message without one must read back without one.
fn duplicate_storage_after_crash_client_msg_id_round_trips(storage: &dyn Storage) {
    let alice = user(storage, "alice");
    let bob = user(storage, "bob");
    let stored = storage
        .append_messages(&[
            named(to_world(alice.id, "zero"), 0),
            named(to_world(alice.id, "max"), u64::MAX),
            named(to_user(alice.id, bob.id, "top bit"), 1 << 63),
            to_world(bob.id, "anonymous"),
            named(to_user(bob.id, alice.id, "seven"), 7),
        ])
        .unwrap();
    let expected = [Some(0), Some(u64::MAX), Some(1 << 63), None, Some(7)];
    let client_ids = |messages: &[StoredMessage]| messages.iter().map(|m| m.client_msg_id).collect::<Vec<_>>();
    assert_eq!(client_ids(&stored), expected, "as appended");
    assert_eq!(client_ids(&storage.sync_after(alice.id, 0, 10).unwrap()), expected, "sync");
    let mut newest_first = storage.newest_before(None, 10).unwrap();
    newest_first.reverse();
    assert_eq!(newest_first, stored, "the startup walk");
    let world = storage.conversation_before(bob.id, StoredTarget::World, None, 10).unwrap();
    assert_eq!(client_ids(&world), [Some(0), Some(u64::MAX), None], "scroll-back");
    let waiting = storage.undelivered_to(bob.id, 0, 10).unwrap();
    assert_eq!(client_ids(&waiting), [Some(1 << 63)], "undelivered");
    // The same id may name several messages (per user, or a client that reuses ids); storage keeps each as sent.
    let again = storage.append_messages(&[named(to_world(bob.id, "seven again"), 7)]).unwrap();
    assert_eq!(again[0].client_msg_id, Some(7));
    assert_ne!(again[0].id, stored[4].id);
}

fn newest_before_walks_back_over_every_sender(storage: &dyn Storage) {
    assert!(storage.newest_before(None, 10).unwrap().is_empty(), "empty storage");
    let alice = user(storage, "alice");
    let bob = user(storage, "bob");
    let stored = storage
        .append_messages(&[
            to_world(alice.id, "a1"),
            to_user(bob.id, alice.id, "b1"),
            to_user(alice.id, alice.id, "note to self"),
            to_world(bob.id, "b2"),
        ])
        .unwrap();
    assert_eq!(texts(&storage.newest_before(None, 3).unwrap()), ["b2", "note to self", "b1"]);
    assert_eq!(texts(&storage.newest_before(Some(stored[1].id), 10).unwrap()), ["a1"]);
    assert_eq!(texts(&storage.newest_before(Some(MessageId::MAX), 1).unwrap()), ["b2"]);
    for before in [Some(0), Some(1)] {
        assert!(storage.newest_before(before, 10).unwrap().is_empty(), "{before:?}");
    }
    assert!(storage.newest_before(None, 0).unwrap().is_empty(), "limit 0");
}
