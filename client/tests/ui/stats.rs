//! The statistics panel: live counters, the transport switch, impairment, export.

use std::time::Duration;

use chatlab_client::ui::backend::{Command, Problem, StatsUpdate, TcpStats, TransportReason};
use chatlab_client::ui::i18n::Lang;
use chatlab_proto::control::Transport;
use chatlab_proto::stats::{ReceiveCounters, RttSample, SendCounters, StatsSnapshot};
use egui_kittest::kittest::{NodeT, Queryable};

use crate::harness::{fill, signed_in};

fn update(elapsed_ms: u64, packets: u64, retransmissions: u64) -> StatsUpdate {
    StatsUpdate {
        elapsed: Duration::from_millis(elapsed_ms),
        udp: StatsSnapshot {
            sent: SendCounters { packets, retransmissions_timeout: retransmissions, ..SendCounters::default() },
            received: ReceiveCounters::default(),
            srtt_us: 1_500,
            rttvar_us: 300,
            min_rtt_us: Some(1_000),
            latest_rtt_us: Some(1_400),
            rto_us: 2_700,
            messages_in_flight: 0,
            estimated_loss_rate: 0.0,
            ack_latency_p50_us: None,
            ack_latency_p99_us: None,
            head_of_line_wait_p99_us: None,
        },
        rtt_samples: vec![RttSample {
            at: Duration::from_millis(elapsed_ms),
            rtt: Duration::from_micros(1_400),
            srtt: Duration::from_micros(1_500),
            rto: Duration::from_micros(2_700),
        }],
        tcp: TcpStats { frames_sent: 3, ..TcpStats::default() },
        udp_latency_cdf: vec![(1.0, 0.5), (2.0, 1.0)],
        tcp_latency_cdf: vec![(1.5, 1.0)],
    }
}

/// Scrolls the panel to the button labelled `label` and clicks it (the panel is taller than the window).
fn click(harness: &mut egui_kittest::Harness<'static, chatlab_client::ui::ChatApp>, label: &str) {
    harness.get_by_label(label).scroll_to_me();
    harness.run();
    harness.get_by_label(label).click();
    harness.run();
}

fn open_panel(harness: &mut egui_kittest::Harness<'static, chatlab_client::ui::ChatApp>) {
    harness.get_by_label(Lang::En.texts().statistics).click();
    harness.run();
}

#[test]
fn the_statistics_panel_shows_changing_counters() {
    let (mut harness, control) = signed_in(Lang::En);
    let t = Lang::En.texts();
    open_panel(&mut harness);
    harness.get_by_label(t.stats_empty);
    control.push_stats(update(1_000, 4_242, 7));
    harness.run();
    harness.get_by_label("4242");
    harness.get_by_label(t.row_retx_timeout);
    control.push_stats(update(2_000, 5_151, 9));
    harness.run();
    harness.get_by_label("5151");
    assert!(harness.query_by_label("4242").is_none(), "the counter moved on");
}

#[test]
fn the_transport_switch_asks_the_network_side() {
    let (mut harness, control) = signed_in(Lang::En);
    let t = Lang::En.texts();
    open_panel(&mut harness);
    harness.get_by_label(t.transport_tcp).click();
    harness.run();
    assert!(control.commands().contains(&Command::SetTransport(Transport::Tcp)));
    harness.get_by_label((t.transport_changed)(Transport::Tcp, &TransportReason::Requested).as_str());
}

/// Regression: a failed switch was shown as a generic impairment notice at the top of the chat, and said nothing
/// about the switch.
#[test]
fn a_failed_transport_switch_says_why_beside_the_switch_and_keeps_the_transport_in_use() {
    let (mut harness, control) = signed_in(Lang::En);
    let t = Lang::En.texts();
    open_panel(&mut harness);
    let reason = "the server did not take the request";
    control.fail_transport_switches(Some(Problem::Other(String::from(reason))));
    harness.get_by_label(t.transport_tcp).click();
    harness.run();
    assert!(control.commands().contains(&Command::SetTransport(Transport::Tcp)));
    harness.get_by_label(&(t.transport_switch_failed)(Transport::Tcp, reason));
    assert_eq!(harness.get_by_label(t.transport_udp).accesskit_node().toggled(), Some(egui::accesskit::Toggled::True));
    assert_eq!(harness.get_by_label(t.transport_tcp).accesskit_node().toggled(), Some(egui::accesskit::Toggled::False));
    assert!(harness.query_by_label_contains("Chat now travels over").is_none(), "no change was announced");

    control.fail_transport_switches(None);
    harness.get_by_label(t.transport_tcp).click();
    harness.run();
    assert!(harness.query_by_label(&(t.transport_switch_failed)(Transport::Tcp, reason)).is_none(), "cleared");
    assert_eq!(harness.get_by_label(t.transport_tcp).accesskit_node().toggled(), Some(egui::accesskit::Toggled::True));
}

#[test]
fn a_transport_switch_while_the_connection_is_lost_fails_in_chinese_too() {
    let (mut harness, control) = signed_in(Lang::Zh);
    let t = Lang::Zh.texts();
    harness.get_by_label(t.statistics).click();
    harness.run();
    control.lose_connection(Problem::Disconnected { detail: String::from("reset") });
    harness.run_steps(3);
    harness.get_by_label(t.transport_tcp).click();
    harness.run_steps(3);
    let reason = (t.problem)(&Problem::Disconnected { detail: String::from("reconnecting") });
    harness.get_by_label(&(t.transport_switch_failed)(Transport::Tcp, &reason));
}

#[test]
fn applying_the_impairment_sends_it() {
    let (mut harness, control) = signed_in(Lang::En);
    let t = Lang::En.texts();
    open_panel(&mut harness);
    harness.get_by_label(t.impair_apply).click();
    harness.run();
    harness.get_by_label(t.impair_applied);
    assert!(control.commands().iter().any(|c| matches!(c, Command::SetImpairment(_))));
}

#[test]
fn statistics_export_to_csv_and_json() {
    let (mut harness, control) = signed_in(Lang::En);
    let t = Lang::En.texts();
    open_panel(&mut harness);
    control.push_stats(update(1_000, 10, 0));
    harness.run();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run1.csv");
    harness.get_by_label(t.export_path).scroll_to_me();
    harness.run();
    harness.get_by_label(t.export_path).focus();
    harness.run();
    harness.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::A);
    harness.run();
    fill(&mut harness, t.export_path, path.to_str().unwrap());
    click(&mut harness, t.export_csv);
    let csv = std::fs::read_to_string(&path).unwrap();
    assert!(csv.contains("packets_sent,10,3"));
    click(&mut harness, t.export_json);
    let json = std::fs::read_to_string(path.with_extension("json")).unwrap();
    assert!(json.contains("\"udp_latency_cdf\""));
}

#[test]
fn a_failed_export_says_why() {
    let (mut harness, control) = signed_in(Lang::En);
    let t = Lang::En.texts();
    open_panel(&mut harness);
    control.push_stats(update(1_000, 10, 0));
    harness.run();
    harness.get_by_label(t.export_path).scroll_to_me();
    harness.run();
    harness.get_by_label(t.export_path).focus();
    harness.run();
    harness.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::A);
    harness.run();
    fill(&mut harness, t.export_path, "/nonexistent-dir/x.csv");
    click(&mut harness, t.export_csv);
    harness.get_by_label_contains("Could not write /nonexistent-dir/x.csv");
}
