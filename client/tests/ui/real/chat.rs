//! Chatting through a real server: sending, acknowledgement, private chats, unread badges.

use super::*;

#[test]
fn a_sent_message_appears_and_turns_acknowledged() {
    let room = Room::start();
    let mut harness = registered(&room, "ann");
    let t = Lang::En.texts();
    let (bob, mut bob_events) = room.classmate("bob");
    say(&mut harness, t, "hello over the real network");
    harness.get_by_label("hello over the real network");
    pump_until(&mut harness, "the acknowledgement", |h| h.query_by_label(&acknowledged(t)).is_some());
    // The server stored it and fanned it out: the classmate receives it.
    let message = received(&room, &mut bob_events, "hello over the real network").expect("bob receives the message");
    assert_eq!((message.from, message.to), (name("ann"), Target::World));
    room.runtime.block_on(bob.shutdown());
}

#[test]
fn an_incoming_message_raises_an_unread_badge() {
    let room = Room::start();
    let mut harness = registered(&room, "ann");
    let (bob, _bob_events) = room.classmate("bob");
    room.runtime
        .block_on(bob.send(Target::User(name("ann")), "are you there?"))
        .expect("the server accepts bob's message");
    let bob_target = Target::User(name("bob"));
    let unread = |h: &Harness<'static, ChatApp>| {
        h.state().chat_model().and_then(|m| m.conversation(&bob_target)).map_or(0, |c| c.unread)
    };
    pump_until(&mut harness, "an unread message from bob", |h| unread(h) == 1);
    harness.get_by_label("1");
    // Opening the conversation shows the message and clears the badge.
    harness.get_by_label("bob").click();
    harness.run_steps(2);
    harness.get_by_label("are you there?");
    assert_eq!(unread(&harness), 0);
    room.runtime.block_on(bob.shutdown());
}

#[test]
fn clicking_an_online_user_opens_the_private_chat() {
    let room = Room::start();
    let mut harness = registered(&room, "ann");
    let t = Lang::En.texts();
    let (bob, mut bob_events) = room.classmate("bob");
    // Bob logged in after ann: his name appears in the side list through the server's presence push.
    pump_until(&mut harness, "bob online", |h| h.state().chat_model().is_some_and(|m| m.is_online(&name("bob"))));
    harness.get_by_label("bob").click();
    harness.run_steps(2);
    let bob_target = Target::User(name("bob"));
    assert_eq!(harness.state().chat_model().map(|m| m.active().clone()), Some(bob_target.clone()));
    // What is typed now goes to bob alone.
    say(&mut harness, t, "just between us");
    let message = received(&room, &mut bob_events, "just between us").expect("bob receives the private message");
    assert_eq!((message.from, message.to), (name("ann"), bob_target));
    // Bob's client acknowledged it, so the server sends ann a receipt: the message turns delivered (the server's
    // acknowledgement may come in the same frame, so only this last state is certain to be seen).
    pump_until(&mut harness, "the delivery receipt", |h| h.query_by_label(&delivered(t, "bob")).is_some());
    room.runtime.block_on(bob.shutdown());
}
