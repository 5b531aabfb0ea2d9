//! The sign-in screen: server address, user name and password; log in or register; or host a room here.
//!
//! The form checks what it can before anything goes on the wire (an empty address, a user name outside
//! `[a-z0-9._-]`, an empty password) so the student gets the explanation at once, in their language, without a
//! round trip. Everything else (wrong password, name taken, nobody listening at that address, a changed server
//! key) comes back from the network side as an event and is shown under the buttons.
//!
//! **Trust on first use.** A server proves who it is with a long-lived key. The first time the app connects to an
//! address it pins that key and the chat shows its fingerprint for the student to compare with the one the server
//! printed at startup; if the key at that address ever changes, the sign-in is refused with an explanation of
//! what that can mean (an impostor on the network, or a reinstalled server), exactly like SSH's `known_hosts`.

use chatlab_proto::chat::{NameError, Username};
use chatlab_proto::control::{Password, PasswordError};

use super::backend::{Account, Command, Problem};
use super::i18n::Texts;

/// The port chatlab servers use unless told otherwise (the design's default, for TCP and UDP alike).
pub const DEFAULT_PORT: u16 = 7878;

/// Width of the sign-in form: wide enough for an IPv6 address with port, narrow enough to read as one card.
const FORM_WIDTH: f32 = 380.0;

/// Why the form was not sent, or why signing in failed.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum SignInError {
    /// The server address field is empty.
    ServerEmpty,
    /// The user name is not valid.
    Name(NameError),
    /// The password is not acceptable.
    Password(PasswordError),
    /// The network side's answer.
    Problem(Problem),
    /// The server's key changed since the first contact.
    KeyChanged { server: String, pinned: String, offered: String },
}

impl SignInError {
    fn sentence(&self, t: &Texts) -> String {
        match self {
            SignInError::ServerEmpty => t.err_server_empty.to_owned(),
            SignInError::Name(err) => (t.name_error)(err),
            SignInError::Password(PasswordError::Empty) => t.err_password_empty.to_owned(),
            SignInError::Password(PasswordError::TooLong { len, max }) => (t.password_too_long)(*len, *max),
            SignInError::Problem(problem) => (t.problem)(problem),
            SignInError::KeyChanged { server, pinned, offered } => (t.key_changed)(server, pinned, offered),
        }
    }
}

/// The "host a room here" part.
#[derive(Debug, Clone, PartialEq)]
enum HostState {
    Idle,
    Starting,
    Running { addresses: Vec<String> },
    Failed(Problem),
}

/// The sign-in form's state.
pub(super) struct SignInForm {
    server: String,
    user: String,
    password: String,
    busy: bool,
    error: Option<SignInError>,
    host_port: u16,
    host: HostState,
}

impl SignInForm {
    /// A form pre-filled with the remembered server and user.
    pub(super) fn new(server: &str, user: &str) -> Self {
        SignInForm {
            server: server.to_owned(),
            user: user.to_owned(),
            password: String::new(),
            busy: false,
            error: None,
            host_port: DEFAULT_PORT,
            host: HostState::Idle,
        }
    }

    /// Checks the fields and builds the sign-in command.
    pub(super) fn submit(&self, account: Account) -> Result<Command, SignInError> {
        let server = self.server.trim();
        if server.is_empty() {
            return Err(SignInError::ServerEmpty);
        }
        let user = Username::parse(self.user.trim()).map_err(SignInError::Name)?;
        let password = Password::new(self.password.clone());
        password.check().map_err(SignInError::Password)?;
        Ok(Command::SignIn { server: server.to_owned(), user, password, account })
    }

    /// The network side refused.
    pub(super) fn failed(&mut self, error: SignInError) {
        self.busy = false;
        self.error = Some(error);
    }

    /// Signed in: forget the password, keep the rest for next time.
    pub(super) fn succeeded(&mut self) {
        self.busy = false;
        self.error = None;
        self.password.clear();
    }

    /// The hosted room runs; this computer signs in to it on the loopback address.
    pub(super) fn hosted(&mut self, port: u16, addresses: Vec<String>) {
        self.server = format!("127.0.0.1:{port}");
        self.host = HostState::Running { addresses };
    }

    pub(super) fn host_failed(&mut self, problem: Problem) {
        self.host = HostState::Failed(problem);
    }

    fn try_submit(&mut self, account: Account) -> Option<Command> {
        match self.submit(account) {
            Ok(command) => {
                self.busy = true;
                self.error = None;
                Some(command)
            }
            Err(error) => {
                self.error = Some(error);
                None
            }
        }
    }

    /// Draws the form; returns the commands its buttons asked for.
    pub(super) fn show(&mut self, ui: &mut egui::Ui, t: &Texts) -> Vec<Command> {
        let mut commands = Vec::new();
        ui.vertical_centered(|ui| {
            ui.set_max_width(FORM_WIDTH);
            ui.add_space(24.0);
            ui.heading(t.sign_in_title);
            ui.add_space(12.0);
            let mut enter = false;
            enter |= labelled_field(ui, t.server_address, &mut self.server, false);
            enter |= labelled_field(ui, t.username, &mut self.user, false);
            enter |= labelled_field(ui, t.password, &mut self.password, true);
            ui.add_space(8.0);
            ui.add_enabled_ui(!self.busy, |ui| {
                ui.horizontal(|ui| {
                    if ui.button(t.log_in).clicked() || enter {
                        commands.extend(self.try_submit(Account::LogIn));
                    }
                    if ui.button(t.register).clicked() {
                        commands.extend(self.try_submit(Account::Register));
                    }
                });
            });
            if self.busy {
                ui.horizontal(|ui| {
                    ui.spinner();
                    ui.label(t.connecting);
                });
            }
            if let Some(error) = &self.error {
                ui.add_space(6.0);
                ui.colored_label(ui.visuals().error_fg_color, error.sentence(t));
            }
            ui.add_space(24.0);
            ui.separator();
            commands.extend(self.host_section(ui, t));
        });
        commands
    }

    fn host_section(&mut self, ui: &mut egui::Ui, t: &Texts) -> Option<Command> {
        let mut command = None;
        ui.heading(t.host_title);
        ui.label(t.host_explain);
        ui.horizontal(|ui| {
            let label = ui.label(t.host_port);
            ui.add(egui::DragValue::new(&mut self.host_port)).labelled_by(label.id);
            let idle = !matches!(self.host, HostState::Starting | HostState::Running { .. });
            if ui.add_enabled(idle, egui::Button::new(t.host_start)).clicked() {
                self.host = HostState::Starting;
                command = Some(Command::HostRoom { port: self.host_port });
            }
        });
        match &self.host {
            HostState::Idle => {}
            HostState::Starting => {
                ui.horizontal(|ui| {
                    ui.spinner();
                    ui.label(t.host_starting);
                });
            }
            HostState::Running { addresses } => {
                ui.label(t.host_share);
                for address in addresses {
                    ui.add(egui::Label::new(egui::RichText::new(address).monospace().strong()).selectable(true));
                }
            }
            HostState::Failed(problem) => {
                ui.colored_label(ui.visuals().error_fg_color, (t.problem)(problem));
            }
        }
        command
    }
}

/// A label above a one-line text field tied to it (so screen readers and tests find the field by its label).
/// Returns whether Enter was pressed in the field.
fn labelled_field(ui: &mut egui::Ui, label: &str, value: &mut String, password: bool) -> bool {
    let label = ui.label(label);
    let response =
        ui.add(egui::TextEdit::singleline(value).password(password).desired_width(f32::INFINITY)).labelled_by(label.id);
    ui.add_space(4.0);
    response.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(server: &str, user: &str, password: &str) -> SignInForm {
        let mut form = SignInForm::new(server, user);
        form.password = password.to_owned();
        form
    }

    #[test]
    fn a_complete_form_becomes_a_sign_in_command_with_a_folded_name() {
        let command = form(" 10.0.0.1:7878 ", "Ann", "secret").submit(Account::Register).unwrap();
        let Command::SignIn { server, user, password, account } = command else { panic!("not a sign-in") };
        assert_eq!((server.as_str(), user.as_str(), password.expose()), ("10.0.0.1:7878", "ann", "secret"));
        assert_eq!(account, Account::Register);
    }

    #[test]
    fn empty_server_is_refused_first() {
        assert_eq!(form("  ", "", "").submit(Account::LogIn).unwrap_err(), SignInError::ServerEmpty);
    }

    #[test]
    fn invalid_name_is_refused_before_the_network() {
        let err = form("h:1", "ann smith", "x").submit(Account::LogIn).unwrap_err();
        assert!(matches!(err, SignInError::Name(NameError::BadChar { ch: ' ', .. })));
        assert_eq!(
            form("h:1", "world", "x").submit(Account::LogIn).unwrap_err(),
            SignInError::Name(NameError::Reserved)
        );
    }

    #[test]
    fn empty_password_is_refused() {
        assert_eq!(
            form("h:1", "ann", "").submit(Account::LogIn).unwrap_err(),
            SignInError::Password(PasswordError::Empty)
        );
    }

    #[test]
    fn success_forgets_the_password_and_failure_keeps_the_error() {
        let mut f = form("h:1", "ann", "secret");
        assert!(f.try_submit(Account::LogIn).is_some());
        assert!(f.busy);
        f.failed(SignInError::Problem(Problem::TimedOut { address: String::from("h:1") }));
        assert!(!f.busy && f.error.is_some());
        f.succeeded();
        assert!(f.password.is_empty() && f.error.is_none());
    }

    #[test]
    fn hosting_points_the_form_at_the_local_room() {
        let mut f = form("", "", "");
        f.hosted(7000, vec![String::from("192.168.1.2:7000")]);
        assert_eq!(f.server, "127.0.0.1:7000");
        assert!(matches!(f.host, HostState::Running { .. }));
    }
}
