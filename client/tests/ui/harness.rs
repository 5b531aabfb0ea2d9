//! Shared set-up: a fake server with accounts, an app in a window-sized harness, and sign-in helpers.

use chatlab_client::ui::ChatApp;
use chatlab_client::ui::backend::{FakeBackend, FakeControl};
use chatlab_client::ui::i18n::{Lang, Texts};
use chatlab_proto::chat::Username;
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;

/// The server address every test signs in to (the fake accepts any `host:port`).
pub const SERVER: &str = "127.0.0.1:7878";

/// Window size of the tests: the app's initial size.
pub const SIZE: [f32; 2] = chatlab_client::ui::INITIAL_WINDOW_SIZE;

pub fn name(raw: &str) -> Username {
    Username::parse(raw).expect("test names are valid")
}

/// A fake server with the account ann/secret, and a harness showing the app in `lang` (nothing remembered).
pub fn app(lang: Lang) -> (Harness<'static, ChatApp>, FakeControl) {
    let (backend, control) = FakeBackend::new();
    control.add_account(&name("ann"), "secret");
    let app = ChatApp::new(Box::new(backend), None, Some(lang));
    let harness =
        Harness::builder().with_size(egui::Vec2::from(SIZE)).build_ui_state(|ui, app: &mut ChatApp| app.show(ui), app);
    (harness, control)
}

/// Types into the text field labelled `label`.
pub fn fill(harness: &mut Harness<'static, ChatApp>, label: &str, text: &str) {
    harness.get_by_label(label).focus();
    harness.run();
    harness.get_by_label(label).type_text(text);
    harness.run();
}

/// Fills the sign-in form and presses the button labelled `button`.
pub fn sign_in(harness: &mut Harness<'static, ChatApp>, t: &Texts, user: &str, password: &str, button: &str) {
    fill(harness, t.server_address, SERVER);
    fill(harness, t.username, user);
    fill(harness, t.password, password);
    harness.get_by_label(button).click();
    harness.run();
}

/// Signs in as ann and returns once the chat shows.
pub fn signed_in(lang: Lang) -> (Harness<'static, ChatApp>, FakeControl) {
    let (mut harness, control) = app(lang);
    let t = lang.texts();
    sign_in(&mut harness, t, "ann", "secret", t.log_in);
    assert_eq!(harness.state().signed_in_as(), Some(&name("ann")), "sign-in should succeed");
    (harness, control)
}
