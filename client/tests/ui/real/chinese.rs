//! Chinese through a real server: the interface in Chinese, Chinese messages both ways, the statistics panel, and
//! not one missing glyph (the harness panics on a character no font can draw).

use super::*;

/// A world-room message from a classmate, with the punctuation Chinese text uses (full-width colon, book-title marks).
const WORLD_TEXT: &str = "大家好！欢迎来到世界聊天室，今天我们学习《计算机网络》：丢包、重传与拥塞。";

/// A private message from the classmate.
const PRIVATE_TEXT: &str = "韩梅梅，你好吗？";

/// What the app's user answers.
const ANSWER: &str = "我很好，谢谢！这条消息经过 UDP 发送。";

#[test]
fn a_chinese_session_with_a_real_server_renders_every_glyph() {
    let room = Room::start();
    let mut harness = registered_in(&room, "han.meimei", Lang::Zh);
    let t = Lang::Zh.texts();
    let (li_lei, mut li_lei_events) = room.classmate("li.lei");
    room.runtime.block_on(li_lei.send(Target::World, WORLD_TEXT)).expect("the server accepts the world message");
    room.runtime
        .block_on(li_lei.send(Target::User(name("han.meimei")), PRIVATE_TEXT))
        .expect("the server accepts the private message");
    harness.get_by_label(t.statistics).click();
    harness.run_steps(2);
    pump_until(&mut harness, "the world message", |h| h.query_by_label(WORLD_TEXT).is_some());
    pump_until(&mut harness, "a report in the statistics panel", |h| h.state().latest_statistics().is_some());
    assert!(harness.query_all_by_label_contains(t.world_room).count() >= 2, "side list and heading");
    harness.get_by_label(t.online_users);
    harness.get_by_label(t.impair_title);
    // The name shows in the side list and above the world message; the side list comes first in the tree.
    harness.query_all_by_label("li.lei").next().expect("li.lei in the side list").click();
    harness.run_steps(2);
    harness.get_by_label(PRIVATE_TEXT);
    say(&mut harness, t, ANSWER);
    let message = received(&room, &mut li_lei_events, ANSWER).expect("li.lei receives the answer");
    assert_eq!(message.to, Target::User(name("li.lei")));
    // Acknowledged by the server, then delivered: the receipt may come in the same frame, so only the last state is
    // certain to be seen.
    pump_until(&mut harness, "the answer delivered", |h| h.query_by_label(&delivered(t, "li.lei")).is_some());
    room.runtime.block_on(li_lei.shutdown());
}
