//! The desktop app's window (egui/eframe): sign-in, chat, and the packet-statistics panel.
//!
//! ## How the window stays responsive
//!
//! egui is an *immediate mode* GUI: there are no widget objects that live on between frames. Each frame the app's
//! [`ChatApp::show`] runs from the top, reads its state, and describes the whole window ("a button here, a list
//! there"); egui compares, draws and reports clicks. That makes the window a plain function of the app's state,
//! which is why the state lives in small, testable structs ([`model::ChatModel`], [`settings::Settings`]) and why
//! the views (`sign_in`, `chat_view`, `stats_panel`) are functions that borrow it.
//!
//! It also sets the one rule of this module: **a frame never waits**. Networking sits behind
//! [`backend::Backend`], whose methods return at once. At the top of every frame [`ChatApp`] drains the events
//! the network side queued (with `try_recv`) and folds them into its state ([`ChatApp::handle_event`]); clicks
//! turn into [`backend::Command`]s that are queued and answered later by events. When the network side queues an
//! event it calls the waker, which asks egui for a repaint, so a message that arrives while the mouse is still is
//! shown at once. A dead server, a slow login or a reconnect therefore never freezes the window: the worst case is
//! a "Connecting…" that lasts.
//!
//! ## Files
//!
//! | file | what |
//! |---|---|
//! | [`backend`] | the boundary to the network: commands, events, problems, statistics; the in-memory fake |
//! | [`model`] | conversations, message states, unread counts, presence, date separators (no egui) |
//! | [`i18n`] | every visible word, in English and Simplified Chinese |
//! | [`fonts`] | the embedded Chinese font, a fallback in every family |
//! | `message_text` | a message's text with bidirectional overrides and invisible characters shown as escapes |
//! | [`settings`] | the remembered server, user, language, written atomically |
//! | [`export`] | statistics as CSV and JSON |
//! | `sign_in`, `chat_view`, `stats_panel` | the three parts of the window |
//!
//! ## Running it
//!
//! [`run_app`] opens the window with any backend. The `ui_demo` example runs it against [`backend::FakeBackend`]
//! with a real datagram path in memory (`cargo run -p chatlab-client --example ui_demo`).
//!
//! ## Wiring the real network
//!
//! The `chatlab` binary needs one thing this module does not have: a [`backend::Backend`] over the tokio client
//! core. The usual shape is a struct holding a tokio `UnboundedSender<Command>` (its `send` never blocks), a
//! tokio `UnboundedReceiver<BackendEvent>` (read with `try_recv`), and the [`backend::Waker`] in an
//! `Arc<OnceLock<_>>` that the tokio side calls after each event it sends. A task on the runtime turns commands
//! into client-core calls and client-core events into [`backend::BackendEvent`]s, mapping server errors to
//! [`backend::Problem::Refused`] with their code. The binary then calls
//! `run_app(Box::new(backend), settings::path_from_env(), lang)` on the main thread, with the tokio runtime
//! running on threads of its own.

pub mod backend;
mod chat_view;
pub mod export;
pub mod fonts;
pub mod i18n;
mod message_text;
pub mod model;
pub mod settings;
mod sign_in;
mod stats_panel;

use std::path::PathBuf;
use std::sync::Arc;

use chatlab_proto::chat::{Target, Username};
use chatlab_proto::control::Transport;

use backend::{Backend, BackendEvent, Command, Problem, StatsUpdate, TransportReason};
use i18n::{Lang, Texts};
use model::ChatModel;
use settings::Settings;
use sign_in::SignInForm;
use stats_panel::StatsView;
pub use stats_panel::{ImpairmentSliders, MAX_LOSS_PERCENT};

/// Smallest window that still shows the side list, the conversation and the composer.
pub const MIN_WINDOW_SIZE: [f32; 2] = [640.0, 420.0];

/// Window size at start: room for the chat and the statistics panel side by side on a 1280×800 laptop screen.
pub const INITIAL_WINDOW_SIZE: [f32; 2] = [1200.0, 760.0];

/// Default and smallest width of the statistics panel: the counters table with its three columns, and plots
/// still readable.
pub const STATS_PANEL_WIDTH: f32 = 460.0;
pub const STATS_PANEL_MIN_WIDTH: f32 = 320.0;

/// Most events handled in one frame. A burst (a history sync of thousands of messages) is spread over a few
/// frames instead of making one frame slow; the rest waits for the next frame, which is requested at once.
pub const MAX_EVENTS_PER_FRAME: usize = 512;

/// Where the app stands.
enum Screen {
    /// Not signed in: the sign-in form.
    SignIn,
    /// Signed in: the chat.
    Chat(Box<ChatScreen>),
}

/// A message at the top of the chat, until dismissed.
#[derive(Debug, Clone, PartialEq)]
enum Notice {
    /// First contact with a server: compare its fingerprint.
    FirstContact { server: String, fingerprint: String },
    /// Chat moved to another transport, and why.
    Transport(Transport, TransportReason),
    /// Back after a lost connection.
    Reconnected,
    /// Something the network side refused or could not do, the session going on.
    Problem(Problem),
}

/// State of the chat screen.
struct ChatScreen {
    model: ChatModel,
    server: String,
    max_text_bytes: usize,
    transport: Transport,
    draft: String,
    /// The connection is down since this problem; the network side is reconnecting.
    lost: Option<Problem>,
    notices: Vec<Notice>,
    /// A live message arrived in the open conversation while the user was reading older ones.
    unseen_below: bool,
    /// Scroll the conversation to its end in the next frame.
    scroll_to_end: bool,
    /// Where the conversation's scroll area was.
    scroll: chat_view::ScrollMemory,
}

impl ChatScreen {
    fn new(user: Username, server: String, max_text_bytes: usize) -> Self {
        ChatScreen {
            model: ChatModel::new(user),
            server,
            max_text_bytes,
            transport: Transport::Udp,
            draft: String::new(),
            lost: None,
            notices: Vec::new(),
            unseen_below: false,
            scroll_to_end: true,
            scroll: chat_view::ScrollMemory::default(),
        }
    }
}

/// The whole app: backend, settings, the current screen and the statistics panel.
pub struct ChatApp {
    backend: Box<dyn Backend>,
    lang: Lang,
    settings: Settings,
    settings_path: Option<PathBuf>,
    screen: Screen,
    sign_in: SignInForm,
    stats: StatsView,
    fonts_installed: bool,
    waker_installed: bool,
}

impl ChatApp {
    /// An app talking to `backend`, remembering its settings at `settings_path` (`None`: remember nothing), in the
    /// language `lang` (or, when `None`, the remembered one, else the system locale's).
    pub fn new(backend: Box<dyn Backend>, settings_path: Option<PathBuf>, lang: Option<Lang>) -> Self {
        let settings = settings_path.as_deref().map(Settings::load).unwrap_or_default();
        let lang = lang.or(settings.lang).unwrap_or_else(Lang::from_env);
        let sign_in = SignInForm::new(&settings.server, &settings.user);
        let mut stats = StatsView::default();
        stats.visible = settings.show_stats;
        ChatApp {
            backend,
            lang,
            settings,
            settings_path,
            screen: Screen::SignIn,
            sign_in,
            stats,
            fonts_installed: false,
            waker_installed: false,
        }
    }

    /// The interface language.
    pub fn lang(&self) -> Lang {
        self.lang
    }

    /// Switches the interface language (and remembers the choice).
    pub fn set_lang(&mut self, lang: Lang) {
        if self.lang != lang {
            self.lang = lang;
            self.settings.lang = Some(lang);
            self.save_settings();
        }
    }

    /// The signed-in user, if any.
    pub fn signed_in_as(&self) -> Option<&Username> {
        match &self.screen {
            Screen::Chat(chat) => Some(chat.model.me()),
            Screen::SignIn => None,
        }
    }

    /// The chat state, when signed in.
    pub fn chat_model(&self) -> Option<&ChatModel> {
        match &self.screen {
            Screen::Chat(chat) => Some(&chat.model),
            Screen::SignIn => None,
        }
    }

    /// Sets the impairment sliders and applies them, as if the user had pressed Apply (for a demo or a lab
    /// script that starts with a lossy path).
    pub fn apply_impairment(&mut self, sliders: ImpairmentSliders) {
        if let Some(command) = self.stats.preset(sliders) {
            self.send_command(command);
        }
    }

    /// Shows or hides the statistics panel.
    pub fn show_statistics(&mut self, visible: bool) {
        self.stats.visible = visible;
    }

    /// The figures the statistics panel shows now (the last report of this session), if any arrived yet.
    pub fn latest_statistics(&self) -> Option<&StatsUpdate> {
        self.stats.latest()
    }

    fn texts(&self) -> &'static Texts {
        self.lang.texts()
    }

    fn save_settings(&self) {
        if let Some(path) = &self.settings_path {
            // The settings are a convenience: failing to save them must not interrupt the chat, and there is no
            // good place to show the error, so it goes to the log only.
            if let Err(err) = self.settings.save(path) {
                tracing::warn!("settings not saved: {err}");
            }
        }
    }

    fn remember_seen(&mut self) {
        if let Screen::Chat(chat) = &self.screen {
            let (user, server, id) = (chat.model.me().to_string(), chat.server.clone(), chat.model.max_id());
            self.settings.mark_seen(&user, &server, id);
            self.save_settings();
        }
    }

    fn send_command(&mut self, command: Command) {
        self.backend.send(command);
    }

    /// Folds one event from the network side into the app's state.
    pub fn handle_event(&mut self, event: BackendEvent) {
        match event {
            BackendEvent::LoginFailed(problem) => self.sign_in.failed(sign_in::SignInError::Problem(problem)),
            BackendEvent::ServerKeyChanged { server, pinned, offered } => {
                self.sign_in.failed(sign_in::SignInError::KeyChanged { server, pinned, offered })
            }
            BackendEvent::LoggedIn { user, server, fingerprint, first_contact, max_text_bytes } => {
                self.sign_in.succeeded();
                self.settings.server = server.clone();
                self.settings.user = user.to_string();
                self.save_settings();
                let mut chat = ChatScreen::new(user, server.clone(), max_text_bytes);
                if first_contact {
                    chat.notices.push(Notice::FirstContact { server, fingerprint });
                }
                if let Some(before_id) = chat.model.begin_history(&Target::World) {
                    self.backend.send(Command::History { target: Target::World, before_id });
                }
                self.stats.reset();
                self.screen = Screen::Chat(Box::new(chat));
            }
            BackendEvent::LoggedOut => {
                self.remember_seen();
                self.screen = Screen::SignIn;
                self.stats.reset();
            }
            BackendEvent::SessionEnded(problem) => {
                if matches!(self.screen, Screen::Chat(_)) {
                    self.remember_seen();
                    self.screen = Screen::SignIn;
                    self.stats.reset();
                    self.sign_in.failed(sign_in::SignInError::Problem(problem));
                    // The network side still holds the dead session's tasks; logging out releases them.
                    self.send_command(Command::LogOut);
                }
            }
            BackendEvent::RoomHosted { port, addresses } => self.sign_in.hosted(port, addresses),
            BackendEvent::HostFailed(problem) => self.sign_in.host_failed(problem),
            BackendEvent::Stats(update) => self.stats.update(*update),
            other => self.handle_chat_event(other),
        }
    }

    fn handle_chat_event(&mut self, event: BackendEvent) {
        let unread_after = match &self.screen {
            Screen::Chat(chat) => self.settings.last_seen(chat.model.me().as_str(), &chat.server),
            Screen::SignIn => None,
        };
        let Screen::Chat(chat) = &mut self.screen else { return };
        let model = &mut chat.model;
        match event {
            BackendEvent::Message(message) => {
                if let Some(target) = model.receive(message)
                    && &target == model.active()
                {
                    chat.unseen_below = true;
                }
            }
            BackendEvent::Accepted { local_id, id, sent_at_ms } => model.accepted(local_id, id, sent_at_ms),
            BackendEvent::Rejected { local_id, problem } => model.rejected(local_id, problem),
            BackendEvent::Receipt { id, to } => model.receipt(id, to),
            BackendEvent::Presence { user, online } => model.presence(user, online),
            BackendEvent::Users(users) => model.set_users(users),
            BackendEvent::Synced(messages) => model.synced(messages, unread_after),
            BackendEvent::History { target, messages, more } => {
                if &target == model.active() && !messages.is_empty() {
                    chat.scroll.page_added_above();
                }
                model.history_page(&target, messages, more);
            }
            BackendEvent::TransportChanged { transport, reason } => {
                chat.transport = transport;
                self.stats.transport_changed(transport);
                if reason != TransportReason::SessionStart {
                    chat.notices.retain(|n| !matches!(n, Notice::Transport(..)));
                    chat.notices.push(Notice::Transport(transport, reason));
                }
            }
            BackendEvent::ConnectionLost(problem) => {
                model.connection_lost();
                chat.lost = Some(problem);
            }
            BackendEvent::Reconnected => {
                model.reconnected();
                chat.lost = None;
                chat.notices.retain(|n| *n != Notice::Reconnected);
                chat.notices.push(Notice::Reconnected);
            }
            BackendEvent::ImpairmentFailed(problem) | BackendEvent::Notice(problem) => {
                // The same trouble repeated (on every reconnect, say) is one notice, not a growing pile.
                let notice = Notice::Problem(problem);
                chat.notices.retain(|n| *n != notice);
                chat.notices.push(notice);
            }
            BackendEvent::TransportSwitchFailed { wanted, problem } => self.stats.switch_failed(wanted, problem),
            // Handled in `handle_event`.
            BackendEvent::LoginFailed(_)
            | BackendEvent::ServerKeyChanged { .. }
            | BackendEvent::LoggedIn { .. }
            | BackendEvent::LoggedOut
            | BackendEvent::SessionEnded(_)
            | BackendEvent::RoomHosted { .. }
            | BackendEvent::HostFailed(_)
            | BackendEvent::Stats(_) => {}
        }
    }

    /// Handles the events waiting, at most [`MAX_EVENTS_PER_FRAME`]. Returns whether more may be waiting.
    pub fn poll_backend(&mut self) -> bool {
        for _ in 0..MAX_EVENTS_PER_FRAME {
            match self.backend.try_recv() {
                Some(event) => self.handle_event(event),
                None => return false,
            }
        }
        true
    }

    fn install_once(&mut self, ctx: &egui::Context) {
        if !self.fonts_installed {
            fonts::install(ctx);
            self.fonts_installed = true;
        }
        if !self.waker_installed {
            let ctx = ctx.clone();
            self.backend.set_waker(Arc::new(move || ctx.request_repaint()));
            self.waker_installed = true;
        }
    }

    /// Draws one frame into `ui` (the whole window): events first, then the screen.
    pub fn show(&mut self, ui: &mut egui::Ui) {
        self.install_once(ui.ctx());
        if self.poll_backend() {
            ui.ctx().request_repaint();
        }
        let t = self.texts();
        let top = egui::Panel::top("chatlab_top_bar");
        top.show(ui, |ui| self.top_bar(ui, t));
        match &self.screen {
            Screen::SignIn => {
                egui::CentralPanel::default().show(ui, |ui| {
                    let commands = self.sign_in.show(ui, t);
                    for command in commands {
                        self.send_command(command);
                    }
                });
            }
            Screen::Chat(_) => self.chat_screen(ui, t),
        }
    }

    fn top_bar(&mut self, ui: &mut egui::Ui, t: &'static Texts) {
        ui.horizontal(|ui| {
            ui.strong(t.app_title);
            ui.separator();
            let mut lang = self.lang;
            egui::ComboBox::from_id_salt("language")
                .selected_text(lang.native_name())
                .show_ui(ui, |ui| {
                    for choice in Lang::ALL {
                        ui.selectable_value(&mut lang, choice, choice.native_name());
                    }
                })
                .response
                .on_hover_text(t.language);
            self.set_lang(lang);
            if let Screen::Chat(chat) = &self.screen {
                ui.separator();
                ui.label((t.signed_in_as)(chat.model.me().as_str(), &chat.server));
                let mut log_out = false;
                ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                    log_out = ui.button(t.log_out).clicked();
                    let mut visible = self.stats.visible;
                    if ui.toggle_value(&mut visible, t.statistics).changed() {
                        self.stats.visible = visible;
                        self.settings.show_stats = visible;
                        self.save_settings();
                    }
                });
                if log_out {
                    self.remember_seen();
                    self.send_command(Command::LogOut);
                }
            }
        });
    }

    fn chat_screen(&mut self, ui: &mut egui::Ui, t: &'static Texts) {
        if self.stats.visible {
            let mut commands = Vec::new();
            egui::Panel::right("statistics")
                .resizable(true)
                .default_size(STATS_PANEL_WIDTH)
                .min_size(STATS_PANEL_MIN_WIDTH)
                .show(ui, |ui| commands = self.stats.show(ui, t));
            for command in commands {
                self.send_command(command);
            }
        }
        let Screen::Chat(chat) = &mut self.screen else { return };
        let commands = chat_view::show(ui, chat, t);
        for command in commands {
            self.backend.send(command);
        }
    }
}

impl eframe::App for ChatApp {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        self.show(ui);
    }

    fn on_exit(&mut self, _gl: Option<&eframe::glow::Context>) {
        self.remember_seen();
    }
}

/// Opens the chatlab window with `backend` and runs it until the window closes.
///
/// `settings_path` is where the app remembers the last server and user (see [`settings::path_from_env`]); `lang`
/// forces a language (`None`: the remembered one, else the system locale's).
///
/// # Errors
/// When no window can be opened (no display, no OpenGL).
pub fn run_app(backend: Box<dyn Backend>, settings_path: Option<PathBuf>, lang: Option<Lang>) -> eframe::Result {
    let options = native_options();
    let app = ChatApp::new(backend, settings_path, lang);
    eframe::run_native("chatlab", options, Box::new(move |_cc| Ok(Box::new(app))))
}

/// The window options: the glow (OpenGL) renderer, the initial and minimum sizes, the app id for the desktop.
pub fn native_options() -> eframe::NativeOptions {
    eframe::NativeOptions {
        renderer: eframe::Renderer::Glow,
        viewport: egui::ViewportBuilder::default()
            .with_title("chatlab")
            .with_app_id("chatlab")
            .with_inner_size(INITIAL_WINDOW_SIZE)
            .with_min_inner_size(MIN_WINDOW_SIZE),
        ..eframe::NativeOptions::default()
    }
}
