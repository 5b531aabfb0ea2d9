//! The chat screen: the side list of conversations, the conversation itself, and the message composer.
//!
//! Three behaviours of a real chat app live here, each a small rule:
//!
//! - **Following.** The view sticks to the newest message while the user is at the bottom, and stays put while
//!   they read older messages; a "new messages" button then offers the way down.
//! - **Scrolling back.** Reaching the top of a conversation asks for the page before its oldest message. When
//!   the page arrives above what is on screen, the scroll position is moved by the height it added, so the
//!   message the user was reading stays under their eyes instead of jumping away.
//! - **Sending.** Enter sends, Shift+Enter starts a new line. The text is brought into wire form
//!   ([`normalize_text`]) and checked against the server's byte limit *before* sending, with a live byte counter,
//!   because the limit is in bytes of UTF-8: a Chinese character takes three.

use chatlab_proto::chat::{Target, TextError, normalize_text, validate_text_with_limit};
use chrono::{DateTime, Local};

use super::backend::Command;
use super::i18n::Texts;
use super::model::{HistoryState, MessageState, Row};
use super::{ChatScreen, Notice};

/// Pixels from the end of the conversation within which the view counts as "at the bottom". A little slack
/// absorbs rounding of fractional pixel sizes.
const BOTTOM_SLACK: f32 = 4.0;

/// Rows of text the composer shows before it scrolls.
const COMPOSER_ROWS: usize = 3;

/// Default width of the side list: a 32-character user name in the default font, with its badge.
const SIDEBAR_WIDTH: f32 = 200.0;

/// Width reserved right of the composer for the Send button (in either language).
const SEND_BUTTON_WIDTH: f32 = 80.0;

/// Size of the floating "new messages" button, and how far above the bottom of the conversation it floats.
const NEW_MESSAGES_BUTTON: egui::Vec2 = egui::vec2(160.0, 28.0);
const NEW_MESSAGES_LIFT: f32 = 24.0;

/// Where the conversation's scroll area was in the last frame.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct ScrollMemory {
    content_height: f32,
    at_bottom: bool,
    /// A history page was added above: move down by the height it added.
    keep_position: bool,
    /// Offset to apply in the next frame.
    pending_offset: Option<f32>,
}

impl ScrollMemory {
    /// The conversation on screen grew at the top.
    pub(super) fn page_added_above(&mut self) {
        if !self.at_bottom {
            self.keep_position = true;
        }
    }
}

/// Draws the chat screen; returns the commands the user's actions produced.
pub(super) fn show(ui: &mut egui::Ui, chat: &mut ChatScreen, t: &Texts) -> Vec<Command> {
    let mut commands = Vec::new();
    egui::Panel::left("conversations")
        .resizable(true)
        .default_size(SIDEBAR_WIDTH)
        .show(ui, |ui| sidebar(ui, chat, t, &mut commands));
    egui::Panel::bottom("composer").show(ui, |ui| composer(ui, chat, t, &mut commands));
    egui::CentralPanel::default().show(ui, |ui| {
        banners(ui, chat, t);
        conversation(ui, chat, t, &mut commands);
    });
    commands
}

fn target_title(target: &Target, t: &Texts) -> String {
    match target {
        Target::World => t.world_room.to_owned(),
        Target::User(user) => user.to_string(),
    }
}

fn sidebar(ui: &mut egui::Ui, chat: &mut ChatScreen, t: &Texts, commands: &mut Vec<Command>) {
    let items = chat.model.sidebar();
    let mut open = None;
    egui::ScrollArea::vertical().show(ui, |ui| {
        for (index, item) in items.iter().enumerate() {
            if index == 1 || (index == 0 && items.len() == 1) {
                ui.add_space(8.0);
                ui.label(egui::RichText::new(t.online_users).small().strong());
            }
            ui.horizontal(|ui| {
                if let Target::User(_) = item.target {
                    let colour =
                        if item.online { egui::Color32::from_rgb(60, 170, 90) } else { ui.visuals().weak_text_color() };
                    let dot = ui.colored_label(colour, t.presence_dot);
                    if !item.online {
                        dot.on_hover_text(t.offline);
                    }
                }
                let mut title = target_title(&item.target, t);
                if item.target == Target::User(chat.model.me().clone()) {
                    title.push(' ');
                    title.push_str(t.you);
                }
                let selected = item.target == *chat.model.active();
                if ui.selectable_label(selected, title).clicked() {
                    open = Some(item.target.clone());
                }
                if item.unread > 0 {
                    badge(ui, item.unread).on_hover_text((t.unread)(item.unread));
                }
            });
        }
    });
    if let Some(target) = open {
        chat.model.open(target.clone());
        chat.scroll = ScrollMemory::default();
        chat.unseen_below = false;
        chat.scroll_to_end = true;
        request_history_if_unknown(chat, &target, commands);
    }
}

fn request_history_if_unknown(chat: &mut ChatScreen, target: &Target, commands: &mut Vec<Command>) {
    let unknown = chat.model.conversation(target).is_none_or(|c| c.history == HistoryState::Unknown);
    if unknown && let Some(before_id) = chat.model.begin_history(target) {
        commands.push(Command::History { target: target.clone(), before_id });
    }
}

/// A small filled circle with a count, as chat apps show unread messages.
fn badge(ui: &mut egui::Ui, count: usize) -> egui::Response {
    let text = egui::RichText::new(count.to_string()).small().strong().color(egui::Color32::WHITE);
    egui::Frame::new()
        .fill(egui::Color32::from_rgb(215, 60, 60))
        .corner_radius(8.0)
        .inner_margin(egui::Margin::symmetric(6, 1))
        .show(ui, |ui| ui.label(text))
        .inner
}

fn banners(ui: &mut egui::Ui, chat: &mut ChatScreen, t: &Texts) {
    if let Some(problem) = &chat.lost {
        egui::Frame::new()
            .fill(ui.visuals().warn_fg_color.gamma_multiply(0.25))
            .inner_margin(6.0)
            .corner_radius(4.0)
            .show(ui, |ui| {
                ui.horizontal_wrapped(|ui| {
                    ui.spinner();
                    ui.label((t.connection_lost)(&(t.problem)(problem)));
                });
            });
    }
    let mut dismissed = None;
    for (index, notice) in chat.notices.iter().enumerate() {
        let text = match notice {
            Notice::FirstContact { server, fingerprint } => (t.first_contact)(server, fingerprint),
            Notice::Transport(transport, reason) => (t.transport_changed)(*transport, reason),
            Notice::Reconnected => t.reconnected.to_owned(),
            Notice::Problem(problem) => (t.problem)(problem),
        };
        egui::Frame::new()
            .fill(ui.visuals().faint_bg_color)
            .stroke(ui.visuals().widgets.noninteractive.bg_stroke)
            .inner_margin(6.0)
            .corner_radius(4.0)
            .show(ui, |ui| {
                ui.horizontal(|ui| {
                    if ui.button(t.dismiss).clicked() {
                        dismissed = Some(index);
                    }
                    ui.add(egui::Label::new(text).wrap());
                });
            });
    }
    if let Some(index) = dismissed
        && index < chat.notices.len()
    {
        chat.notices.remove(index);
    }
}

fn conversation(ui: &mut egui::Ui, chat: &mut ChatScreen, t: &Texts, commands: &mut Vec<Command>) {
    let target = chat.model.active().clone();
    ui.horizontal(|ui| {
        ui.heading(target_title(&target, t));
        if let Target::User(user) = &target
            && !chat.model.is_online(user)
        {
            ui.weak(t.offline);
        }
    });
    ui.separator();

    let history = chat.model.conversation(&target).map_or(HistoryState::Unknown, |c| c.history);
    let mut load_older = false;
    let mut area = egui::ScrollArea::vertical()
        .id_salt(("conversation", target.to_string()))
        .stick_to_bottom(true)
        .auto_shrink(false);
    if let Some(offset) = chat.scroll.pending_offset.take() {
        area = area.vertical_scroll_offset(offset);
    }
    let scroll_to_end = std::mem::take(&mut chat.scroll_to_end);
    let output = area.show(ui, |ui| {
        ui.vertical_centered(|ui| match history {
            HistoryState::Loading => {
                ui.horizontal(|ui| {
                    ui.spinner();
                    ui.weak(t.loading);
                });
            }
            HistoryState::Complete => {
                ui.weak(t.beginning);
            }
            HistoryState::Unknown | HistoryState::More => {
                load_older = ui.button(t.load_older).clicked();
            }
        });
        let rows = chat.model.rows(&target, &Local);
        if rows.is_empty() && history == HistoryState::Complete {
            ui.vertical_centered(|ui| ui.weak(t.empty_conversation));
        }
        for row in rows {
            match row {
                Row::Date(date) => {
                    ui.add_space(6.0);
                    ui.vertical_centered(|ui| ui.weak(date.format(t.date_format).to_string()));
                }
                Row::Message(entry) => message(ui, entry, chat.model.me() == &entry.from, t),
            }
        }
        if scroll_to_end {
            ui.scroll_to_cursor(Some(egui::Align::BOTTOM));
        }
    });

    let content_height = output.content_size.y;
    let offset = output.state.clamped_offset().y;
    let viewport = output.inner_rect.height();
    if chat.scroll.keep_position {
        chat.scroll.keep_position = false;
        let added = content_height - chat.scroll.content_height;
        if added > 0.0 {
            chat.scroll.pending_offset = Some(offset + added);
            ui.ctx().request_repaint();
        }
    }
    chat.scroll.content_height = content_height;
    chat.scroll.at_bottom = offset + viewport >= content_height - BOTTOM_SLACK;
    if chat.scroll.at_bottom {
        chat.unseen_below = false;
    }
    let at_top = offset <= 0.0;
    let wants_more = matches!(history, HistoryState::Unknown | HistoryState::More);
    if (load_older || (at_top && wants_more && chat.scroll.pending_offset.is_none()))
        && let Some(before_id) = chat.model.begin_history(&target)
    {
        commands.push(Command::History { target: target.clone(), before_id });
    }

    if chat.unseen_below {
        let button = egui::Button::new(t.new_messages);
        let at = egui::Rect::from_center_size(
            output.inner_rect.center_bottom() - egui::vec2(0.0, NEW_MESSAGES_LIFT),
            NEW_MESSAGES_BUTTON,
        );
        if ui.put(at, button).clicked() {
            chat.scroll_to_end = true;
            chat.unseen_below = false;
        }
    }
}

fn time_of(ms: i64, t: &Texts) -> Option<String> {
    DateTime::from_timestamp_millis(ms).map(|utc| utc.with_timezone(&Local).format(t.time_format).to_string())
}

fn message(ui: &mut egui::Ui, entry: &super::model::Entry, mine: bool, t: &Texts) {
    ui.add_space(4.0);
    ui.horizontal(|ui| {
        let name = egui::RichText::new(entry.from.as_str()).strong();
        ui.label(if mine { name.color(ui.visuals().hyperlink_color) } else { name });
        if let Some(time) = entry.sent_at_ms.and_then(|ms| time_of(ms, t)) {
            ui.weak(time);
        }
        if mine {
            let (mark, words) = match &entry.state {
                MessageState::Sending => (t.mark_sending, t.state_sending.to_owned()),
                MessageState::Waiting => (t.mark_sending, t.state_waiting.to_owned()),
                MessageState::Accepted => (t.mark_accepted, t.state_accepted.to_owned()),
                MessageState::Delivered(to) => {
                    let names: Vec<&str> = to.iter().map(|u| u.as_str()).collect();
                    (t.mark_delivered, (t.state_delivered)(&names.join(", ")))
                }
                MessageState::Failed(problem) => (t.mark_failed, (t.state_failed)(&(t.problem)(problem))),
                MessageState::Received => ("", String::new()),
            };
            if !words.is_empty() {
                let colour = if matches!(entry.state, MessageState::Failed(_)) {
                    ui.visuals().error_fg_color
                } else {
                    ui.visuals().weak_text_color()
                };
                ui.label(egui::RichText::new(format!("{mark} {words}")).small().color(colour));
            }
        }
    });
    // Never the raw text: an override or an invisible character is drawn as an escape (see `message_text`).
    let text = super::message_text::message_layout(&entry.text, ui.style());
    ui.add(egui::Label::new(text).selectable(true).wrap());
}

fn composer(ui: &mut egui::Ui, chat: &mut ChatScreen, t: &Texts, commands: &mut Vec<Command>) {
    ui.add_space(4.0);
    let mut send = false;
    let mut verdict = Ok(());
    let mut wire = String::new();
    ui.horizontal(|ui| {
        let editor = egui::TextEdit::multiline(&mut chat.draft)
            .id_salt("composer")
            .hint_text(t.compose_hint)
            .desired_rows(COMPOSER_ROWS)
            .desired_width(ui.available_width() - SEND_BUTTON_WIDTH)
            .return_key(egui::KeyboardShortcut::new(egui::Modifiers::SHIFT, egui::Key::Enter));
        let response = ui.add(editor).on_hover_text(t.compose_hint);
        // The text is read after the editor took this frame's keystrokes: a letter typed in the same frame as
        // Enter belongs to the message.
        wire = normalize_text(&chat.draft);
        verdict = validate_text_with_limit(&wire, chat.max_text_bytes);
        if response.has_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter) && i.modifiers.is_none()) {
            send = true;
        }
        let button =
            egui::Button::new(t.send).min_size(egui::vec2(SEND_BUTTON_WIDTH - ui.spacing().item_spacing.x, 0.0));
        if ui.add_enabled(verdict.is_ok(), button).clicked() {
            send = true;
        }
    });
    ui.horizontal(|ui| match &verdict {
        Err(TextError::TooLong { len, max }) => {
            ui.colored_label(ui.visuals().error_fg_color, (t.too_long)(*len, *max));
        }
        Err(TextError::ControlChar { ch, .. }) => {
            ui.colored_label(ui.visuals().error_fg_color, (t.control_char)(*ch));
        }
        Ok(()) | Err(TextError::Empty) => {
            ui.weak((t.bytes_used)(wire.len(), chat.max_text_bytes));
        }
    });
    if send && verdict.is_ok() {
        let to = chat.model.active().clone();
        let local_id = chat.model.compose(to.clone(), wire.clone());
        commands.push(Command::Send { local_id, to, text: wire });
        chat.draft.clear();
        chat.scroll_to_end = true;
        // The composer was drawn with the text still in it; draw again with it cleared.
        ui.ctx().request_repaint();
    }
}
