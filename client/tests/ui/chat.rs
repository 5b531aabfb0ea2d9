//! The chat screen: sending, message states, private chats, unread badges, the connection banner.

use chatlab_client::ui::backend::{Command, Problem};
use chatlab_client::ui::i18n::Lang;
use chatlab_proto::chat::Target;
use egui_kittest::kittest::Queryable;

use crate::harness::{app, fill, name, sign_in, signed_in};

fn type_message(harness: &mut egui_kittest::Harness<'static, chatlab_client::ui::ChatApp>, text: &str) {
    fill(harness, Lang::En.texts().compose_hint, text);
}

#[test]
fn a_sent_message_appears_at_once_and_turns_acknowledged() {
    let (mut harness, control) = signed_in(Lang::En);
    let t = Lang::En.texts();
    control.hold_acks(true);
    type_message(&mut harness, "hello world room");
    harness.key_press(egui::Key::Enter);
    harness.run();
    harness.get_by_label("hello world room");
    harness.get_by_label(&format!("○ {}", t.state_sending));
    control.release();
    harness.run();
    harness.get_by_label(&format!("√ {}", t.state_accepted));
    assert!(harness.query_by_label(&format!("○ {}", t.state_sending)).is_none());
    assert_eq!(control.stored().last().map(|m| m.text.as_str()), Some("hello world room"));
}

#[test]
fn shift_enter_starts_a_new_line_instead_of_sending() {
    let (mut harness, control) = signed_in(Lang::En);
    type_message(&mut harness, "line one");
    harness.key_press_modifiers(egui::Modifiers::SHIFT, egui::Key::Enter);
    harness.run();
    harness.get_by_label(Lang::En.texts().compose_hint).type_text("line two");
    harness.run();
    assert!(!control.commands().iter().any(|c| matches!(c, Command::Send { .. })));
    harness.key_press(egui::Key::Enter);
    harness.run();
    assert_eq!(control.stored().last().map(|m| m.text.as_str()), Some("line one\nline two"));
}

#[test]
fn a_message_over_the_limit_is_refused_before_sending() {
    let (mut harness, control) = signed_in(Lang::En);
    let t = Lang::En.texts();
    // 1 366 Chinese characters are 4 098 bytes of UTF-8: two over the limit although far fewer than 4 096 characters.
    let long = "字".repeat(1366);
    type_message(&mut harness, &long);
    harness.get_by_label((t.too_long)(4098, 4096).as_str());
    harness.key_press(egui::Key::Enter);
    harness.run();
    assert!(control.stored().is_empty());
}

#[test]
fn clicking_a_user_opens_the_private_chat() {
    let (mut harness, control) = signed_in(Lang::En);
    control.set_online(&name("bob"), true);
    harness.run();
    harness.get_by_label("bob").click();
    harness.run();
    assert_eq!(harness.state().chat_model().map(|m| m.active().clone()), Some(Target::User(name("bob"))));
    type_message(&mut harness, "psst");
    harness.key_press(egui::Key::Enter);
    harness.run();
    let sent = control.stored().last().cloned().expect("a message was stored");
    assert_eq!((sent.to, sent.text.as_str()), (Target::User(name("bob")), "psst"));
    // bob is online, so the fake server reports delivery.
    harness.get_by_label(&format!("√√ {}", (Lang::En.texts().state_delivered)("bob")));
}

#[test]
fn an_incoming_message_raises_an_unread_badge_until_opened() {
    let (mut harness, control) = signed_in(Lang::En);
    control.set_online(&name("bob"), true);
    harness.run();
    assert!(harness.query_by_label("2").is_none());
    control.incoming(&name("bob"), Target::User(name("ann")), "are you there?");
    control.incoming(&name("bob"), Target::User(name("ann")), "hello?");
    harness.run();
    harness.get_by_label("2");
    harness.get_by_label("bob").click();
    harness.run();
    assert!(harness.query_by_label("2").is_none());
    harness.get_by_label("are you there?");
}

#[test]
fn a_lost_connection_shows_a_banner_and_the_resync_fills_the_gap() {
    let (mut harness, control) = signed_in(Lang::En);
    let t = Lang::En.texts();
    let detail = String::from("connection reset by peer");
    control.lose_connection(Problem::Disconnected { detail: detail.clone() });
    // The banner's spinner keeps repainting, so step a fixed number of frames instead of running to rest.
    harness.run_steps(3);
    harness.get_by_label_contains(&detail);
    let missed = control.incoming(&name("cy"), Target::World, "you missed this");
    control.reconnect(missed.id - 1);
    harness.run();
    harness.get_by_label(t.reconnected);
    harness.get_by_label("you missed this");
    assert!(harness.query_by_label_contains(&detail).is_none());
}

/// Types into the composer while the connection banner shows: its spinner keeps repainting, so a fixed number of
/// frames is stepped instead of running to rest.
fn type_under_the_banner(
    harness: &mut egui_kittest::Harness<'static, chatlab_client::ui::ChatApp>,
    lang: Lang,
    text: &str,
) {
    let hint = lang.texts().compose_hint;
    harness.get_by_label(hint).focus();
    harness.run_steps(2);
    harness.get_by_label(hint).type_text(text);
    harness.run_steps(2);
}

/// Regression: a message sent while the connection banner showed was marked failed, although the network side keeps
/// it and sends it after the reconnect.
#[test]
fn a_message_sent_while_disconnected_is_sent_after_the_reconnect_not_failed() {
    let (mut harness, control) = signed_in(Lang::En);
    let t = Lang::En.texts();
    control.lose_connection(Problem::Disconnected { detail: String::from("network unreachable") });
    // The banner's spinner keeps repainting, so step a fixed number of frames instead of running to rest.
    harness.run_steps(3);
    type_under_the_banner(&mut harness, Lang::En, "written in the tunnel");
    harness.key_press(egui::Key::Enter);
    harness.run_steps(3);
    harness.get_by_label("written in the tunnel");
    harness.get_by_label(&format!("○ {}", t.state_waiting));
    assert!(harness.query_by_label_contains(t.mark_failed).is_none(), "waiting is not failing");
    assert!(control.stored().is_empty(), "nothing goes out while the connection is lost");
    assert_eq!(control.waiting(), 1);

    control.reconnect(0);
    harness.run();
    harness.get_by_label(&format!("√ {}", t.state_accepted));
    assert!(harness.query_by_label(&format!("○ {}", t.state_waiting)).is_none());
    let stored: Vec<String> = control.stored().into_iter().map(|m| m.text).collect();
    assert_eq!(stored, ["written in the tunnel"], "stored exactly once");
}

#[test]
fn a_message_unacknowledged_when_the_connection_breaks_waits_and_is_acknowledged_later() {
    let (mut harness, control) = signed_in(Lang::En);
    let t = Lang::En.texts();
    control.hold_acks(true);
    type_message(&mut harness, "in flight");
    harness.key_press(egui::Key::Enter);
    harness.run();
    harness.get_by_label(&format!("○ {}", t.state_sending));
    control.lose_connection(Problem::Disconnected { detail: String::from("reset") });
    harness.run_steps(3);
    harness.get_by_label(&format!("○ {}", t.state_waiting));
    control.reconnect(0);
    harness.run();
    harness.get_by_label(&format!("○ {}", t.state_sending));
    control.release();
    harness.run();
    harness.get_by_label(&format!("√ {}", t.state_accepted));
}

#[test]
fn a_message_waiting_for_the_connection_says_so_in_chinese() {
    let (mut harness, control) = signed_in(Lang::Zh);
    let t = Lang::Zh.texts();
    control.lose_connection(Problem::Other(String::from("网络不可达")));
    harness.run_steps(3);
    type_under_the_banner(&mut harness, Lang::Zh, "隧道里写的");
    harness.key_press(egui::Key::Enter);
    harness.run_steps(3);
    harness.get_by_label(&format!("○ {}", t.state_waiting));
    control.reconnect(0);
    harness.run();
    harness.get_by_label(&format!("√ {}", t.state_accepted));
}

#[test]
fn older_messages_load_when_scrolling_back() {
    let (mut harness, control) = app(Lang::En);
    for i in 0..120 {
        control.incoming(&name("bob"), Target::World, &format!("message {i}"));
    }
    let t = Lang::En.texts();
    sign_in(&mut harness, t, "ann", "secret", t.log_in);
    harness.get_by_label("message 119");
    let loaded = |h: &egui_kittest::Harness<'static, chatlab_client::ui::ChatApp>| {
        h.state().chat_model().and_then(|m| m.conversation(&Target::World)).map_or(0, |c| c.len())
    };
    assert!(loaded(&harness) < 120, "only the recent window arrives at login");
    for _ in 0..6 {
        if let Some(button) = harness.query_by_label(t.load_older) {
            button.scroll_to_me();
        }
        harness.run();
    }
    assert_eq!(loaded(&harness), 120, "reaching the top loads the older pages");
    harness.get_by_label(t.beginning);
}

/// Regression: the text was read before the editor took the frame's keystrokes, so a letter typed in the same
/// frame as Enter was shown in the composer but missing from the message sent.
#[test]
fn a_letter_typed_in_the_same_frame_as_enter_is_sent() {
    let (mut harness, control) = signed_in(Lang::En);
    type_message(&mut harness, "packet");
    // `Harness::event` gives every queued event a frame of its own; pushing into the input puts both in one.
    let enter = egui::Event::Key {
        key: egui::Key::Enter,
        physical_key: None,
        pressed: true,
        repeat: false,
        modifiers: egui::Modifiers::NONE,
    };
    harness.input_mut().events.extend([egui::Event::Text(String::from("s")), enter]);
    harness.step();
    harness.run();
    assert_eq!(control.stored().last().map(|m| m.text.as_str()), Some("packets"));
    assert_eq!(harness.get_by_label(Lang::En.texts().compose_hint).value().as_deref(), Some(""));
}

#[test]
fn a_refused_automatic_login_returns_to_the_sign_in_form_with_the_reason() {
    let (mut harness, control) = signed_in(Lang::En);
    control.lose_connection(Problem::Disconnected { detail: String::from("reset") });
    harness.run_steps(3);
    // The password was changed meanwhile: the automatic login after the reconnect is refused for good.
    let refusal = Problem::Refused {
        code: chatlab_proto::control::ErrorCode::BadCredentials,
        message: String::from("wrong password"),
    };
    control.end_session(refusal);
    harness.run_steps(3);
    assert!(harness.state().signed_in_as().is_none(), "back to the sign-in form");
    harness.get_by_label("Unknown user name or wrong password.");
    harness.get_by_label(Lang::En.texts().log_in);
    // The network side was told to let the dead session go.
    assert!(control.commands().contains(&Command::LogOut));
}

#[test]
fn a_failure_outside_any_request_is_a_notice_not_a_lost_connection() {
    let (mut harness, control) = signed_in(Lang::En);
    let t = Lang::En.texts();
    // Twice, as a failure repeated on every reconnect would: one notice, not a pile.
    control.background_failure(Problem::Other(String::from("the history sync was refused")));
    control.background_failure(Problem::Other(String::from("the history sync was refused")));
    harness.run_steps(3);
    harness.get_by_label_contains("the history sync was refused");
    assert!(harness.query_by_label_contains((t.connection_lost)("").trim_end_matches(" Reconnecting…")).is_none());
    assert!(harness.state().chat_model().is_some_and(|m| !m.is_offline()), "the chat is still connected");
    // Messages still go out at once, not into the outbox.
    type_message(&mut harness, "still here");
    harness.key_press(egui::Key::Enter);
    harness.run();
    harness.get_by_label(&format!("√ {}", t.state_accepted));
}

/// Issue 9: a message must not be able to reverse a line or hide text. A right-to-left override, an isolate and a
/// zero-width space arrive in the text as sent and are shown as visible escapes; a zero-width joiner inside an emoji
/// is left alone, so the emoji stays one picture.
#[test]
fn a_right_to_left_override_in_a_message_is_shown_as_an_escape_and_emoji_stay_whole() {
    let (mut harness, control) = signed_in(Lang::En);
    control.incoming(&name("mallory"), Target::World, "see you\u{202E}nna :bob\u{2066} a\u{200B}nn");
    control.incoming(&name("bob"), Target::World, "at the desk \u{1F469}\u{200D}\u{1F4BB}");
    harness.run();
    harness.get_by_label("see you\\u{202e}nna :bob\\u{2066} a\\u{200b}nn");
    assert!(harness.query_by_label_contains("\u{202E}").is_none(), "the raw override is on screen");
    assert!(harness.query_by_label_contains("\u{200B}").is_none(), "the raw zero-width space is on screen");
    harness.get_by_label("at the desk \u{1F469}\u{200D}\u{1F4BB}");
}
