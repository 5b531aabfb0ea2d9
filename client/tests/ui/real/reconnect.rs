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
