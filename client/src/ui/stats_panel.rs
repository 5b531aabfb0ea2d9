//! The packet-statistics panel: counters, live plots, the transport switch, impairment sliders and export.
//!
//! What a student should be able to read off it:
//!
//! - **Counters, UDP beside TCP.** chatlab's own UDP engine counts everything it does (packets, acks, every
//!   retransmission and why, duplicates, reordering, rejected forgeries); for TCP the kernel does the work out of
//!   sight and only a few figures come back through `TCP_INFO`. The empty TCP cells are part of the lesson.
//! - **RTT with its band.** Each dot is one RTT sample; the line is SRTT, the smoothed estimate (RFC 6298:
//!   `SRTT ← 7/8·SRTT + 1/8·sample`), and the shaded band reaches up to the RTO (`SRTT + 4·RTTVAR`, floored). A
//!   sample above the band means the timer would have fired: a spurious retransmission or a real loss.
//! - **Packets and retransmissions per second**, computed from successive snapshots; turning up the loss slider
//!   makes the second line climb within seconds.
//! - **Delivery latency CDF**, UDP against TCP: the median is where a curve crosses 0.5, the tail is how long it
//!   takes to reach 1. Under loss, TCP's tail stretches by whole RTOs (200 ms at least on Linux) while chatlab's
//!   fast retransmit keeps it short.
//!
//! The impairment sliders act on this app's own datagrams only (see [`Impairment`]), with a seed so a class can
//! repeat a run exactly.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::time::Duration;

use chatlab_proto::control::Transport;
use chatlab_proto::impair::{GilbertElliott, ImpairmentConfig, ImpairmentError, LossModel};
use egui_plot::{FilledArea, Legend, Line, Plot, PlotPoints, Points};

use super::backend::{Command, Impairment, Problem, StatsUpdate};
use super::export::{self, SeriesPoint};
use super::i18n::Texts;

/// Points of the packets-over-time series kept: at a few reports a second, the last few minutes.
pub const MAX_SERIES_POINTS: usize = 900;

/// Highest loss the slider offers, in percent. Beyond half the packets lost a chat is unusable and the lesson is
/// already clear.
pub const MAX_LOSS_PERCENT: f64 = 50.0;

/// Longest mean loss burst the slider offers, in packets. 1 means independent losses.
pub const MAX_BURST_PACKETS: f64 = 20.0;

/// Longest one-way delay the slider offers, in milliseconds: an intercontinental path.
pub const MAX_DELAY_MS: u64 = 500;

/// Largest jitter the slider offers, in milliseconds.
pub const MAX_JITTER_MS: u64 = 200;

/// Highest duplication and reordering probabilities the sliders offer, in percent.
pub const MAX_DUP_REORDER_PERCENT: f64 = 30.0;

/// Height of each plot in points: three fit below the counters on a 1080-pixel screen.
const PLOT_HEIGHT: f32 = 130.0;

/// Microseconds per millisecond, for plotting durations in ms.
const MICROS_PER_MS: f64 = 1000.0;

/// The impairment sliders' values.
#[derive(Debug, Clone, PartialEq)]
pub struct ImpairmentSliders {
    /// Mean loss, percent.
    pub loss_percent: f64,
    /// Mean loss burst, packets (1: independent losses).
    pub burst: f64,
    /// One-way delay, milliseconds.
    pub delay_ms: u64,
    /// Jitter, milliseconds.
    pub jitter_ms: u64,
    /// Duplication, percent.
    pub duplicate_percent: f64,
    /// Reordering, percent.
    pub reorder_percent: f64,
    /// Seed of the random stream.
    pub seed: u64,
    /// Impair what this app sends.
    pub outgoing: bool,
    /// Impair what this app receives.
    pub incoming: bool,
}

impl Default for ImpairmentSliders {
    fn default() -> Self {
        ImpairmentSliders {
            loss_percent: 0.0,
            burst: 1.0,
            delay_ms: 0,
            jitter_ms: 0,
            duplicate_percent: 0.0,
            reorder_percent: 0.0,
            seed: 1,
            outgoing: true,
            incoming: true,
        }
    }
}

impl ImpairmentSliders {
    /// The impairment these values describe.
    ///
    /// Loss with a mean burst of one packet is independent (Bernoulli) loss; longer bursts use the Gilbert-Elliott
    /// model with the same mean loss. The incoming direction gets the seed plus one, so the two directions do not
    /// lose the same packet numbers in step.
    pub fn to_impairment(&self) -> Result<Impairment, ImpairmentError> {
        let p = self.loss_percent / 100.0;
        let loss = if p <= 0.0 {
            LossModel::None
        } else if self.burst <= 1.0 {
            LossModel::Bernoulli { p }
        } else {
            LossModel::GilbertElliott(GilbertElliott::from_mean_loss_and_burst(p, self.burst)?)
        };
        let config = ImpairmentConfig {
            loss,
            delay: Duration::from_millis(self.delay_ms),
            jitter: Duration::from_millis(self.jitter_ms),
            duplicate: self.duplicate_percent / 100.0,
            reorder: self.reorder_percent / 100.0,
            seed: self.seed,
            ..ImpairmentConfig::default()
        };
        config.validate()?;
        let incoming = ImpairmentConfig { seed: self.seed.wrapping_add(1), ..config.clone() };
        Ok(Impairment {
            outgoing: if self.outgoing { config } else { ImpairmentConfig::default() },
            incoming: if self.incoming { incoming } else { ImpairmentConfig::default() },
        })
    }
}

/// Outcome of the last impairment or export action, kept until the next.
#[derive(Debug, Clone, PartialEq)]
enum Status {
    Applied,
    Invalid(String),
    Saved(String),
    SaveFailed { path: String, reason: String },
}

/// The panel's state.
pub(super) struct StatsView {
    /// Whether the panel is shown.
    pub(super) visible: bool,
    /// The transport chat uses now.
    pub(super) transport: Transport,
    /// The switch was asked for this transport and has not been answered yet.
    switching: Option<Transport>,
    /// The last switch failed: the transport asked for, and why.
    switch_failed: Option<(Transport, Problem)>,
    latest: Option<StatsUpdate>,
    previous: Option<(f64, u64, u64)>,
    series: VecDeque<SeriesPoint>,
    form: ImpairmentSliders,
    export_path: String,
    status: Option<Status>,
}

impl Default for StatsView {
    fn default() -> Self {
        StatsView {
            visible: false,
            transport: Transport::Udp,
            switching: None,
            switch_failed: None,
            latest: None,
            previous: None,
            series: VecDeque::new(),
            form: ImpairmentSliders::default(),
            export_path: String::from("chatlab-stats.csv"),
            status: None,
        }
    }
}

fn retransmissions(update: &StatsUpdate) -> u64 {
    update.udp.sent.retransmissions_timeout.saturating_add(update.udp.sent.retransmissions_fast)
}

impl StatsView {
    /// The last report taken.
    pub(super) fn latest(&self) -> Option<&StatsUpdate> {
        self.latest.as_ref()
    }

    /// Chat travels over `transport` now: the switch shows it and any pending or failed switch is over.
    pub(super) fn transport_changed(&mut self, transport: Transport) {
        self.transport = transport;
        self.switching = None;
        self.switch_failed = None;
    }

    /// A switch to `wanted` failed: the switch falls back to the transport in use and says why.
    pub(super) fn switch_failed(&mut self, wanted: Transport, problem: Problem) {
        self.switching = None;
        self.switch_failed = Some((wanted, problem));
    }

    /// Forgets the figures (and the switch's state) of the last session.
    pub(super) fn reset(&mut self) {
        self.switching = None;
        self.switch_failed = None;
        self.latest = None;
        self.previous = None;
        self.series.clear();
    }

    /// Takes a new report and extends the per-second series from the difference with the previous one.
    pub(super) fn update(&mut self, update: StatsUpdate) {
        let t = update.elapsed.as_secs_f64();
        let (packets, retx) = (update.udp.sent.packets, retransmissions(&update));
        if let Some((t0, packets0, retx0)) = self.previous {
            let dt = t - t0;
            // Counters only grow within a session; a smaller value means a new session, which starts the
            // series again rather than plotting a negative rate.
            if dt > 0.0 && packets >= packets0 && retx >= retx0 {
                if self.series.len() == MAX_SERIES_POINTS {
                    self.series.pop_front();
                }
                self.series.push_back(SeriesPoint {
                    t_s: t,
                    packets_per_s: (packets - packets0) as f64 / dt,
                    retransmissions_per_s: (retx - retx0) as f64 / dt,
                });
            } else if dt <= 0.0 || packets < packets0 {
                self.series.clear();
            }
        }
        self.previous = Some((t, packets, retx));
        self.latest = Some(update);
    }

    /// Sets the sliders (and the status line) as if the user had moved them and pressed Apply; returns the
    /// command to send, or `None` when the values are invalid.
    pub(super) fn preset(&mut self, sliders: ImpairmentSliders) -> Option<Command> {
        self.form = sliders;
        match self.form.to_impairment() {
            Ok(impairment) => {
                self.status = Some(Status::Applied);
                Some(Command::SetImpairment(Box::new(impairment)))
            }
            Err(err) => {
                self.status = Some(Status::Invalid(err.to_string()));
                None
            }
        }
    }

    /// Draws the panel; returns the commands it produced (transport switch, impairment).
    pub(super) fn show(&mut self, ui: &mut egui::Ui, t: &Texts) -> Vec<Command> {
        let mut commands = Vec::new();
        egui::ScrollArea::vertical().id_salt("statistics_scroll").show(ui, |ui| {
            ui.heading(t.stats_title);
            commands.extend(self.transport_switch(ui, t));
            ui.separator();
            match &self.latest {
                None => {
                    ui.weak(t.stats_empty);
                }
                Some(update) => {
                    counters(ui, update, t);
                    plots(ui, update, &self.series, t);
                }
            }
            ui.separator();
            commands.extend(self.impairment(ui, t));
            ui.separator();
            self.export(ui, t);
        });
        commands
    }

    /// The transport radio buttons. A click shows the wanted transport at once with a spinner; the answer (the
    /// transport actually in use) puts the switch right, and a failure also says why beside it, where the user
    /// looks.
    fn transport_switch(&mut self, ui: &mut egui::Ui, t: &Texts) -> Option<Command> {
        let mut command = None;
        let shown = self.switching.unwrap_or(self.transport);
        ui.horizontal(|ui| {
            ui.label(t.transport_label);
            for (transport, label) in [(Transport::Udp, t.transport_udp), (Transport::Tcp, t.transport_tcp)] {
                if ui.radio(shown == transport, label).clicked() && shown != transport {
                    self.switching = (transport != self.transport).then_some(transport);
                    self.switch_failed = None;
                    command = Some(Command::SetTransport(transport));
                }
            }
        });
        if let Some(wanted) = self.switching {
            ui.horizontal(|ui| {
                ui.spinner();
                ui.weak((t.transport_switching)(wanted));
            });
        }
        if let Some((wanted, problem)) = &self.switch_failed {
            let sentence = (t.transport_switch_failed)(*wanted, &(t.problem)(problem));
            ui.add(egui::Label::new(egui::RichText::new(sentence).color(ui.visuals().error_fg_color)).wrap());
        }
        command
    }

    fn impairment(&mut self, ui: &mut egui::Ui, t: &Texts) -> Option<Command> {
        let mut command = None;
        egui::CollapsingHeader::new(t.impair_title).id_salt("impairment").default_open(true).show(ui, |ui| {
            ui.weak(t.impair_explain);
            let f = &mut self.form;
            ui.add(egui::Slider::new(&mut f.loss_percent, 0.0..=MAX_LOSS_PERCENT).text(t.impair_loss));
            ui.add(egui::Slider::new(&mut f.burst, 1.0..=MAX_BURST_PACKETS).text(t.impair_burst));
            ui.add(egui::Slider::new(&mut f.delay_ms, 0..=MAX_DELAY_MS).text(t.impair_delay));
            ui.add(egui::Slider::new(&mut f.jitter_ms, 0..=MAX_JITTER_MS).text(t.impair_jitter));
            ui.add(egui::Slider::new(&mut f.duplicate_percent, 0.0..=MAX_DUP_REORDER_PERCENT).text(t.impair_duplicate));
            ui.add(egui::Slider::new(&mut f.reorder_percent, 0.0..=MAX_DUP_REORDER_PERCENT).text(t.impair_reorder));
            ui.horizontal(|ui| {
                let label = ui.label(t.impair_seed);
                ui.add(egui::DragValue::new(&mut f.seed)).labelled_by(label.id);
                ui.checkbox(&mut f.outgoing, t.impair_outgoing);
                ui.checkbox(&mut f.incoming, t.impair_incoming);
            });
            ui.horizontal(|ui| {
                let mut apply = ui.button(t.impair_apply).clicked();
                if ui.button(t.impair_reset).clicked() {
                    *f = ImpairmentSliders::default();
                    apply = true;
                }
                if apply {
                    match f.to_impairment() {
                        Ok(impairment) => {
                            command = Some(Command::SetImpairment(Box::new(impairment)));
                            self.status = Some(Status::Applied);
                        }
                        Err(err) => self.status = Some(Status::Invalid(err.to_string())),
                    }
                }
            });
            match &self.status {
                Some(Status::Applied) => {
                    ui.weak(t.impair_applied);
                }
                Some(Status::Invalid(reason)) => {
                    ui.colored_label(ui.visuals().error_fg_color, (t.impair_invalid)(reason));
                }
                _ => {}
            }
        });
        command
    }

    fn export(&mut self, ui: &mut egui::Ui, t: &Texts) {
        egui::CollapsingHeader::new(t.export_title).id_salt("export").default_open(true).show(ui, |ui| {
            ui.horizontal(|ui| {
                let label = ui.label(t.export_path);
                ui.add(egui::TextEdit::singleline(&mut self.export_path).desired_width(f32::INFINITY))
                    .labelled_by(label.id);
            });
            ui.horizontal(|ui| {
                let enabled = self.latest.is_some();
                let csv = ui.add_enabled(enabled, egui::Button::new(t.export_csv)).clicked();
                let json = ui.add_enabled(enabled, egui::Button::new(t.export_json)).clicked();
                if let Some(update) = &self.latest
                    && (csv || json)
                {
                    let extension = if csv { "csv" } else { "json" };
                    let path = PathBuf::from(self.export_path.trim()).with_extension(extension);
                    let series: Vec<SeriesPoint> = self.series.iter().copied().collect();
                    let contents = if csv {
                        Ok(export::to_csv(update))
                    } else {
                        export::to_json(update, &series).map_err(|e| e.to_string())
                    };
                    let shown = path.display().to_string();
                    self.status =
                        Some(match contents.and_then(|c| export::write(&path, &c).map_err(|e| e.to_string())) {
                            Ok(()) => Status::Saved(shown),
                            Err(reason) => Status::SaveFailed { path: shown, reason },
                        });
                }
            });
            match &self.status {
                Some(Status::Saved(path)) => {
                    ui.weak((t.export_saved)(path));
                }
                Some(Status::SaveFailed { path, reason }) => {
                    ui.colored_label(ui.visuals().error_fg_color, (t.export_failed)(path, reason));
                }
                _ => {}
            }
        });
    }
}

fn counters(ui: &mut egui::Ui, update: &StatsUpdate, t: &Texts) {
    egui::CollapsingHeader::new(t.counters).id_salt("counters").default_open(true).show(ui, |ui| {
        egui::Grid::new("counters_grid").striped(true).num_columns(3).show(ui, |ui| {
            ui.strong(t.figure);
            ui.strong(t.udp);
            ui.strong(t.tcp);
            ui.end_row();
            for row in export::counter_rows(update) {
                ui.label((row.label)(t));
                ui.monospace(row.udp.display(t));
                ui.monospace(row.tcp.display(t));
                ui.end_row();
            }
        });
    });
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * MICROS_PER_MS
}

fn quiet_plot(id: &str) -> Plot<'_> {
    // The panel scrolls; a plot that grabbed the wheel or drags would trap the pointer.
    Plot::new(id)
        .height(PLOT_HEIGHT)
        .legend(Legend::default())
        .allow_scroll(false)
        .allow_zoom(false)
        .allow_drag(false)
        .allow_boxed_zoom(false)
}

fn plots(ui: &mut egui::Ui, update: &StatsUpdate, series: &VecDeque<SeriesPoint>, t: &Texts) {
    ui.label(t.plot_rtt);
    let samples = &update.rtt_samples;
    let xs: Vec<f64> = samples.iter().map(|s| s.at.as_secs_f64()).collect();
    let srtt: Vec<f64> = samples.iter().map(|s| ms(s.srtt)).collect();
    let rto: Vec<f64> = samples.iter().map(|s| ms(s.rto)).collect();
    let rtt: Vec<[f64; 2]> = samples.iter().map(|s| [s.at.as_secs_f64(), ms(s.rtt)]).collect();
    let srtt_line: Vec<[f64; 2]> = xs.iter().zip(&srtt).map(|(&x, &y)| [x, y]).collect();
    quiet_plot("rtt_plot").x_axis_label(t.axis_seconds).y_axis_label(t.axis_ms).include_y(0.0).show(ui, |plot| {
        if !xs.is_empty() {
            plot.add(
                FilledArea::new(t.plot_rto_band, &xs, &srtt, &rto)
                    .fill_color(egui::Color32::from_rgba_unmultiplied(90, 140, 220, 50)),
            );
        }
        plot.line(Line::new(t.plot_srtt, PlotPoints::from(srtt_line)));
        plot.points(Points::new(t.plot_rtt_sample, PlotPoints::from(rtt)).radius(2.0));
    });

    ui.label(t.plot_packets);
    let packets: Vec<[f64; 2]> = series.iter().map(|p| [p.t_s, p.packets_per_s]).collect();
    let retx: Vec<[f64; 2]> = series.iter().map(|p| [p.t_s, p.retransmissions_per_s]).collect();
    quiet_plot("packets_plot").x_axis_label(t.axis_seconds).y_axis_label(t.axis_per_second).include_y(0.0).show(
        ui,
        |plot| {
            plot.line(Line::new(t.plot_packets_sent, PlotPoints::from(packets)));
            plot.line(Line::new(t.plot_retransmissions, PlotPoints::from(retx)));
        },
    );

    ui.label(t.plot_cdf);
    let udp: Vec<[f64; 2]> = update.udp_latency_cdf.iter().map(|&(x, y)| [x, y]).collect();
    let tcp: Vec<[f64; 2]> = update.tcp_latency_cdf.iter().map(|&(x, y)| [x, y]).collect();
    quiet_plot("cdf_plot").x_axis_label(t.axis_ms).y_axis_label(t.axis_fraction).include_y(0.0).include_y(1.0).show(
        ui,
        |plot| {
            plot.line(Line::new(t.udp, PlotPoints::from(udp)));
            plot.line(Line::new(t.tcp, PlotPoints::from(tcp)));
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ui::export::tests::sample_update;

    #[test]
    fn a_failed_switch_falls_back_to_the_transport_in_use_and_keeps_the_reason() {
        let mut view = StatsView { switching: Some(Transport::Tcp), ..StatsView::default() };
        let problem = Problem::Disconnected { detail: String::from("reset") };
        view.switch_failed(Transport::Tcp, problem.clone());
        assert_eq!(view.switching.unwrap_or(view.transport), Transport::Udp);
        assert_eq!(view.switch_failed, Some((Transport::Tcp, problem)));
        view.transport_changed(Transport::Tcp);
        assert_eq!((view.transport, view.switching, view.switch_failed), (Transport::Tcp, None, None));
    }

    #[test]
    fn default_form_is_a_perfect_link() {
        let impairment = ImpairmentSliders::default().to_impairment().unwrap();
        assert_eq!(impairment.outgoing.loss, LossModel::None);
        assert_eq!(impairment.outgoing.delay, Duration::ZERO);
    }

    #[test]
    fn burst_length_one_is_independent_loss_and_longer_is_gilbert_elliott() {
        let mut form = ImpairmentSliders { loss_percent: 10.0, ..ImpairmentSliders::default() };
        assert_eq!(form.to_impairment().unwrap().outgoing.loss, LossModel::Bernoulli { p: 0.1 });
        form.burst = 4.0;
        let loss = form.to_impairment().unwrap().outgoing.loss;
        assert!(matches!(loss, LossModel::GilbertElliott(_)));
        assert!((loss.mean_loss() - 0.1).abs() < 1e-9);
    }

    #[test]
    fn directions_get_different_seeds_and_can_be_switched_off() {
        let form = ImpairmentSliders { loss_percent: 5.0, seed: 9, incoming: false, ..ImpairmentSliders::default() };
        let impairment = form.to_impairment().unwrap();
        assert_eq!(impairment.outgoing.seed, 9);
        assert_eq!(impairment.incoming, ImpairmentConfig::default());
        let both = ImpairmentSliders { incoming: true, ..form }.to_impairment().unwrap();
        assert_eq!(both.incoming.seed, 10);
    }

    #[test]
    fn out_of_range_settings_are_an_error_not_a_panic() {
        // The sliders clamp their values; the form still checks, since a value could come from elsewhere.
        let form = ImpairmentSliders { duplicate_percent: 150.0, ..ImpairmentSliders::default() };
        assert!(matches!(form.to_impairment(), Err(ImpairmentError::ProbabilityOutOfRange { .. })));
        // 90 % loss in bursts of 2 packets would need p(good→bad) > 1.
        let form = ImpairmentSliders { loss_percent: 90.0, burst: 2.0, ..ImpairmentSliders::default() };
        assert!(matches!(form.to_impairment(), Err(ImpairmentError::UnreachableLossAndBurst { .. })));
    }

    #[test]
    fn series_is_the_rate_between_reports_and_restarts_with_a_new_session() {
        let mut view = StatsView::default();
        let mut a = sample_update(100);
        a.elapsed = Duration::from_secs(1);
        let mut b = sample_update(300);
        b.elapsed = Duration::from_secs(3);
        b.udp.sent.retransmissions_fast = 4;
        view.update(a);
        view.update(b);
        assert_eq!(view.series.len(), 1);
        let point = view.series[0];
        assert_eq!((point.t_s, point.packets_per_s, point.retransmissions_per_s), (3.0, 100.0, 2.0));
        let mut fresh = sample_update(5);
        fresh.elapsed = Duration::from_millis(500);
        view.update(fresh);
        assert!(view.series.is_empty(), "a new session starts a new series");
        assert_eq!(view.latest.as_ref().map(|u| u.udp.sent.packets), Some(5));
    }

    #[test]
    fn series_is_bounded() {
        let mut view = StatsView::default();
        for i in 0..(MAX_SERIES_POINTS as u64 + 20) {
            let mut u = sample_update(i * 10);
            u.elapsed = Duration::from_secs(i + 1);
            view.update(u);
        }
        assert_eq!(view.series.len(), MAX_SERIES_POINTS);
    }
}
