//! The sign-in screen: errors, success, registration, a changed server key, hosting a room.

use chatlab_client::ui::backend::{Command, FAKE_FINGERPRINT};
use chatlab_client::ui::i18n::Lang;
use chatlab_proto::chat::Target;
use egui_kittest::kittest::Queryable;

use crate::harness::{SERVER, app, name, sign_in, signed_in};

#[test]
fn failed_login_shows_its_error() {
    let (mut harness, _control) = app(Lang::En);
    let t = Lang::En.texts();
    sign_in(&mut harness, t, "ann", "wrong", t.log_in);
    harness.get_by_label("Unknown user name or wrong password.");
    assert!(harness.state().signed_in_as().is_none());
}

#[test]
fn invalid_user_name_is_explained_without_asking_the_server() {
    let (mut harness, control) = app(Lang::En);
    let t = Lang::En.texts();
    sign_in(&mut harness, t, "ann smith", "secret", t.log_in);
    harness.get_by_label_contains("' ' is not allowed");
    assert!(control.commands().is_empty(), "nothing was sent");
}

#[test]
fn login_reaches_the_world_room_and_shows_the_fingerprint_on_first_contact() {
    let (harness, _control) = signed_in(Lang::En);
    let t = Lang::En.texts();
    assert_eq!(harness.state().chat_model().map(|m| m.active().clone()), Some(Target::World));
    assert!(!harness.query_all_by_label(t.world_room).collect::<Vec<_>>().is_empty());
    harness.get_by_label_contains(FAKE_FINGERPRINT);
}

#[test]
fn registering_a_new_account_signs_in() {
    let (mut harness, _control) = app(Lang::En);
    let t = Lang::En.texts();
    sign_in(&mut harness, t, "newbie", "pw", t.register);
    assert_eq!(harness.state().signed_in_as(), Some(&name("newbie")));
}

#[test]
fn a_changed_server_key_is_explained_and_refused() {
    let (mut harness, control) = app(Lang::En);
    control.change_server_key(SERVER);
    let t = Lang::En.texts();
    sign_in(&mut harness, t, "ann", "secret", t.log_in);
    harness.get_by_label_contains("presented a different key");
    assert!(harness.state().signed_in_as().is_none());
}

#[test]
fn hosting_a_room_shows_the_addresses_to_share() {
    let (mut harness, control) = app(Lang::En);
    let t = Lang::En.texts();
    harness.get_by_label(t.host_start).click();
    harness.run();
    harness.get_by_label(t.host_share);
    harness.get_by_label("127.0.0.1:7878");
    assert!(control.commands().iter().any(|c| matches!(c, Command::HostRoom { port: 7878 })));
}

#[test]
fn logging_out_returns_to_the_sign_in_screen_with_the_user_remembered() {
    let (mut harness, control) = signed_in(Lang::En);
    let t = Lang::En.texts();
    harness.get_by_label(t.log_out).click();
    harness.run();
    assert!(harness.state().signed_in_as().is_none());
    assert_eq!(harness.get_by_label(t.username).value().as_deref(), Some("ann"));
    assert!(control.commands().contains(&Command::LogOut));
}
