//! The statistics panel fed by a real session: counters that move as the app's own traffic crosses a lossy path.

use chatlab_client::ui::ImpairmentSliders;
use chatlab_client::ui::model::MessageState;

use super::*;

/// Messages sent through the lossy path: with 40 % of the app's datagrams dropped, the chance that all of them and
/// their acknowledgements get through at the first try is below one in a hundred thousand, so a retransmission is
/// certain in practice; and the seeded loss makes each run draw the same losses.
const MESSAGES: usize = 20;

/// Share of the app's outgoing datagrams the impairment drops, in percent.
const LOSS_PERCENT: f64 = 40.0;

fn packets_sent(h: &Harness<'static, ChatApp>) -> u64 {
    h.state().latest_statistics().map_or(0, |s| s.udp.sent.packets)
}

fn retransmissions(h: &Harness<'static, ChatApp>) -> u64 {
    h.state().latest_statistics().map_or(0, |s| s.udp.sent.retransmissions_timeout + s.udp.sent.retransmissions_fast)
}

fn acknowledged_count(h: &Harness<'static, ChatApp>) -> usize {
    let Some(world) = h.state().chat_model().and_then(|m| m.conversation(&Target::World)) else { return 0 };
    world.entries().filter(|e| matches!(e.state, MessageState::Accepted | MessageState::Delivered(_))).count()
}

/// Whether some label reads `text` (a number may show in several cells).
fn shows(h: &Harness<'static, ChatApp>, text: &str) -> bool {
    h.query_all_by_label(text).next().is_some()
}

#[test]
fn the_statistics_panel_shows_changing_counters() {
    let room = Room::start();
    let mut harness = registered(&room, "ann");
    let t = Lang::En.texts();
    harness.get_by_label(t.statistics).click();
    harness.run_steps(2);
    pump_until(&mut harness, "the first statistics report", |h| h.state().latest_statistics().is_some());
    let before = packets_sent(&harness);
    assert!(shows(&harness, &before.to_string()), "the panel shows {before} packets sent");
    harness.state_mut().apply_impairment(ImpairmentSliders {
        loss_percent: LOSS_PERCENT,
        incoming: false,
        ..ImpairmentSliders::default()
    });
    harness.run_steps(2);
    harness.get_by_label(t.impair_applied);
    for i in 0..MESSAGES {
        say(&mut harness, t, &format!("through the lossy path {i}"));
    }
    // Every message gets through in the end: that is what the acknowledgements and retransmissions are for.
    pump_until(&mut harness, "every message acknowledged", |h| acknowledged_count(h) == MESSAGES);
    // The panel's next reports show the packets and the retransmissions they cost.
    pump_until(&mut harness, "the counters moving", |h| {
        let packets = packets_sent(h);
        packets >= before + MESSAGES as u64 && retransmissions(h) > 0 && shows(h, &packets.to_string())
    });
    harness.get_by_label(t.row_retx_timeout);
}
