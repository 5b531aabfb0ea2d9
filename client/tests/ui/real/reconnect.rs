//! Losing the server and getting it back: the banner, the automatic reconnect, the resync.

use super::*;

#[test]
fn a_stopped_server_shows_the_banner_and_the_app_reconnects_when_it_returns() {
    let mut room = Room::start();
    let mut harness = registered(&room, "ann");
    let t = Lang::En.texts();
    // The banner starts with the same words whatever the cause; the cause follows it.
    let banner = (t.connection_lost)("");
    let banner_start = banner.split(':').next().unwrap_or(&banner).to_owned();
    room.stop();
    pump_until(&mut harness, "the connection-lost banner", |h| h.query_by_label_contains(&banner_start).is_some());
    // While the room is down a classmate cannot say anything; once it is back, what they say reaches the app,
    // which proves the session was restored (login and sync), not just the socket.
    room.restart();
    pump_until(&mut harness, "the banner gone", |h| h.query_by_label_contains(&banner_start).is_none());
    let (bob, _bob_events) = room.classmate("bob");
    room.runtime.block_on(bob.send(Target::World, "welcome back")).expect("the server accepts bob's message");
    pump_until(&mut harness, "bob's message after the reconnect", |h| h.query_by_label("welcome back").is_some());
    assert_eq!(harness.state().signed_in_as(), Some(&name("ann")));
    room.runtime.block_on(bob.shutdown());
}

#[test]
fn a_message_typed_while_the_server_is_down_waits_and_is_delivered_once_it_returns() {
    let mut room = Room::start();
    let (bob, mut bob_events) = room.classmate("bob");
    let mut harness = registered(&room, "ann");
    let t = Lang::En.texts();
    let banner = (t.connection_lost)("");
    let banner_start = banner.split(':').next().unwrap_or(&banner).to_owned();
    room.stop();
    pump_until(&mut harness, "the connection-lost banner", |h| h.query_by_label_contains(&banner_start).is_some());
    say(&mut harness, t, "typed during the outage");
    // Kept, and said so: not "failed".
    let waiting = format!("{} {}", t.mark_sending, t.state_waiting);
    harness.get_by_label(&waiting);
    room.restart();
    pump_until(&mut harness, "the message acknowledged after the reconnect", |h| {
        h.query_by_label(&acknowledged(t)).is_some()
    });
    // Bob's client reconnected too and receives it, once.
    let message = received(&room, &mut bob_events, "typed during the outage").expect("bob receives the message");
    assert_eq!(message.from, name("ann"));
    let world = harness.state().chat_model().and_then(|m| m.conversation(&Target::World)).expect("the world room");
    assert_eq!(world.entries().filter(|e| e.text == "typed during the outage").count(), 1);
    room.runtime.block_on(bob.shutdown());
}

#[test]
fn a_server_key_changed_during_the_session_is_explained_and_refused() {
    let mut room = Room::start();
    let mut harness = registered(&room, "ann");
    let t = Lang::En.texts();
    let pinned = room.server.as_ref().map(|s| s.fingerprint().to_string()).expect("the server runs");
    // The server comes back with a new key on the same address: to the app it could be anybody.
    room.stop();
    std::fs::remove_file(room.dir.path().join("server").join("server.key")).expect("the key file existed");
    room.restart();
    let offered = room.server.as_ref().map(|s| s.fingerprint().to_string()).expect("the server runs");
    assert_ne!(pinned, offered);
    pump_until(&mut harness, "the sign-in form with the explanation", |h| {
        h.state().signed_in_as().is_none() && h.query_by_label_contains(&offered).is_some()
    });
    harness.get_by_label_contains(&pinned);
    harness.get_by_label(t.log_in);
}
