//! History: incremental sync in pages, scroll-back, and the page limits.

use chatlab_proto::chat::Target;
use chatlab_proto::control::{ClientMessage, ErrorCode, ServerMessage};
use chatlab_proto::limits::MAX_TEXT_BYTES;

use crate::support::{Client, TestServer, name, to_user};

/// Sends `count` messages over TCP without waiting for each answer (pipelined), then collects the ids.
async fn send_many(client: &mut Client, to: Target, count: usize, text: impl Fn(usize) -> String) -> Vec<u64> {
    let mut pending = Vec::with_capacity(count);
    for n in 0..count {
        let client_msg_id = client.msg_id();
        client.send(&ClientMessage::Chat { client_msg_id, to: to.clone(), text: text(n) }).await;
        pending.push(client_msg_id);
    }
    let mut ids = Vec::with_capacity(count);
    for client_msg_id in pending {
        ids.push(client.chat_outcome(client_msg_id).await.unwrap());
    }
    ids
}

/// Regression test for the original chat room, whose history broke at 64 KiB (about 1 100 short messages): 2 000
/// messages sync completely, in order, over several pages, and a later sync fetches only what is new.
#[tokio::test]
async fn history_of_2000_messages_syncs_in_pages_with_no_ceiling() {
    let server = TestServer::start().await;
    let mut ann = Client::user(server.addr, "ann").await;
    let ids = send_many(&mut ann, Target::World, 2000, |n| format!("message number {n}")).await;
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids increase in sending order");

    let mut reader = Client::user(server.addr, "reader").await;
    let (history, pages) = reader.sync_all(0, 500).await;
    assert_eq!(history.iter().map(|m| m.id).collect::<Vec<_>>(), ids);
    assert_eq!(history[1234].text, "message number 1234");
    assert_eq!(pages, 4, "2 000 messages in pages of 500");

    let newer = ann.chat(Target::World, "one more").await.unwrap();
    let (update, pages) = reader.sync_all(*ids.last().unwrap(), 500).await;
    assert_eq!((update.len(), update[0].id, pages), (1, newer, 1));
    server.stop().await;
}

#[tokio::test]
async fn pages_of_long_texts_are_cut_to_fit_a_frame() {
    let server = TestServer::start().await;
    let mut ann = Client::user(server.addr, "ann").await;
    // 1 365 three-byte characters: 4 095 bytes, just under the limit, and no ASCII to compress.
    let long = "长".repeat(MAX_TEXT_BYTES / 3);
    let ids = send_many(&mut ann, Target::World, 40, |n| format!("{n}{}", &long[..long.len() - 3])).await;
    let mut reader = Client::user(server.addr, "reader").await;
    let (first_page, more) = reader.sync_page(0, 500).await;
    assert!(more, "40 long messages do not fit one frame");
    assert!(first_page.len() > 1 && first_page.len() < 40, "{}", first_page.len());
    let (history, pages) = reader.sync_all(0, 500).await;
    assert!(pages >= 3, "{pages}");
    assert_eq!(history.iter().map(|m| m.id).collect::<Vec<_>>(), ids);
    assert!(history.iter().all(|m| m.text.len() <= MAX_TEXT_BYTES));
    server.stop().await;
}

#[tokio::test]
async fn sync_shows_world_and_own_private_messages_only() {
    let server = TestServer::start().await;
    let mut ann = Client::user(server.addr, "ann").await;
    let mut bob = Client::user(server.addr, "bob").await;
    let _cat = Client::user(server.addr, "cat").await;
    let world = ann.chat(Target::World, "for all").await.unwrap();
    let to_bob = ann.chat(to_user("bob"), "for bob").await.unwrap();
    let to_cat = ann.chat(to_user("cat"), "for cat").await.unwrap();
    let from_bob = bob.chat(to_user("ann"), "from bob").await.unwrap();
    let (seen, _) = bob.sync_all(0, 10).await;
    assert_eq!(seen.iter().map(|m| m.id).collect::<Vec<_>>(), vec![world, to_bob, from_bob]);
    assert!(seen.iter().all(|m| m.id != to_cat));
    server.stop().await;
}

#[tokio::test]
async fn scroll_back_in_one_conversation() {
    let server = TestServer::start().await;
    let mut ann = Client::user(server.addr, "ann").await;
    let mut bob = Client::user(server.addr, "bob").await;
    let private = send_many(&mut ann, to_user("bob"), 7, |n| format!("p{n}")).await;
    send_many(&mut ann, Target::World, 3, |n| format!("w{n}")).await;

    let req = bob.req();
    bob.send(&ClientMessage::History { req, target: to_user("ann"), before_id: None, limit: 3 }).await;
    let (newest, more) = bob.page(req).await;
    assert!(more);
    assert_eq!(newest.iter().map(|m| m.id).collect::<Vec<_>>(), private[4..]);
    let req = bob.req();
    bob.send(&ClientMessage::History { req, target: to_user("ann"), before_id: Some(newest[0].id), limit: 10 }).await;
    let (older, more) = bob.page(req).await;
    assert!(!more);
    assert_eq!(older.iter().map(|m| m.id).collect::<Vec<_>>(), private[..4]);
    assert!(older.iter().all(|m| m.from == name("ann")));

    let req = bob.req();
    bob.send(&ClientMessage::History { req, target: Target::World, before_id: None, limit: 10 }).await;
    let (world, more) = bob.page(req).await;
    assert_eq!((world.len(), more), (3, false));
    server.stop().await;
}

#[tokio::test]
async fn history_requests_with_bad_limits_or_targets_are_refused() {
    let server = TestServer::start().await;
    let mut ann = Client::user(server.addr, "ann").await;
    ann.send(&ClientMessage::SyncHistory { req: 77, after_id: 0, limit: 0 }).await;
    let refused = |req: u32, code: ErrorCode| {
        move |m: &ServerMessage| match m {
            ServerMessage::Error { req: Some(r), code: c, .. } if *r == req && *c == code => Some(()),
            _ => None,
        }
    };
    ann.expect(refused(77, ErrorCode::HistoryLimit)).await;
    ann.send(&ClientMessage::History { req: 78, target: Target::World, before_id: None, limit: 0 }).await;
    ann.expect(refused(78, ErrorCode::HistoryLimit)).await;
    ann.send(&ClientMessage::History { req: 79, target: to_user("ghost"), before_id: None, limit: 5 }).await;
    ann.expect(refused(79, ErrorCode::UnknownUser)).await;
    // A limit above the maximum is served, capped.
    send_many(&mut ann, Target::World, 3, |n| n.to_string()).await;
    let (page, more) = ann.sync_page(0, u16::MAX).await;
    assert_eq!((page.len(), more), (3, false));
    server.stop().await;
}
