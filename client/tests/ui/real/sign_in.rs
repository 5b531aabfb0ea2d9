//! Signing in to a real server: a refusal, an unreachable address, first contact with its fingerprint.

use super::*;

#[test]
fn a_failed_login_shows_its_error() {
    let room = Room::start();
    let mut harness = room.app();
    let t = Lang::En.texts();
    submit(&mut harness, &room, t, "nobody", PASSWORD, t.log_in);
    pump_until(&mut harness, "the refusal", |h| h.query_by_label("Unknown user name or wrong password.").is_some());
    assert!(harness.state().signed_in_as().is_none());
}

#[test]
fn an_unreachable_server_is_explained() {
    let room = Room::start();
    let mut harness = room.app();
    let t = Lang::En.texts();
    // A port nothing listens on: bind one, note it, free it.
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    fill(&mut harness, t.server_address, &free.to_string());
    fill(&mut harness, t.username, "ann");
    fill(&mut harness, t.password, PASSWORD);
    harness.get_by_label(t.log_in).click();
    pump_until(&mut harness, "the unreachable server", |h| h.query_by_label_contains(&free.to_string()).is_some());
    assert!(harness.state().signed_in_as().is_none());
}

#[test]
fn login_reaches_the_world_room_with_the_servers_fingerprint() {
    let room = Room::start();
    let fingerprint = room.server.as_ref().map(|s| s.fingerprint().to_string()).unwrap_or_default();
    let harness = registered(&room, "ann");
    assert_eq!(harness.state().signed_in_as(), Some(&name("ann")));
    assert_eq!(harness.state().chat_model().map(|m| m.active().clone()), Some(Target::World));
    // First contact: the window shows the key's fingerprint to compare with the server operator's.
    harness.get_by_label_contains(&fingerprint);
}
