//! The chatlab window against an in-memory server, to try the interface without a network and to take
//! screenshots.
//!
//! ```text
//! cargo run -p chatlab-client --example ui_demo -- [--lang en|zh] [--loss PERCENT] [--size WIDTHxHEIGHT]
//! ```
//!
//! The demo signs in as `ann` to a fake server (`FakeBackend`) with a short history, two classmates who chat
//! now and then, and the statistics panel open. Every message travels through a real chatlab datagram path in
//! memory (`DemoLink`: the protocol's own encryption, acknowledgements and retransmissions over the seeded
//! impairment model), so the counters and plots are genuine; beside the chat, a 64-byte probe message every 50 ms
//! plays the labs' background traffic. The demo starts with some loss and delay, and the sliders change them. Nothing here touches the network. Sign out and back in with ann / secret.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chatlab_client::ui::backend::{FakeBackend, FakeControl};
use chatlab_client::ui::i18n::Lang;
use chatlab_client::ui::{ChatApp, ImpairmentSliders, native_options};
use chatlab_proto::chat::{Target, Username};

/// How often the demo moves packets through its datagram path: often enough that the wait adds little to the
/// RTT the plots show (a real socket would hand packets over the moment they arrive).
const DRIVE: Duration = Duration::from_millis(2);

/// Drive periods between two statistics reports (and pings): four reports a second.
const DRIVES_PER_TICK: u32 = 125;

/// Drive periods between two probe messages (every 50 ms): the lab's background traffic, which keeps the
/// retransmission counters and the latency CDF moving while nobody types.
const DRIVES_PER_PROBE: u32 = 25;

/// Bytes of a probe message, the labs' usual chat-message size.
const PROBE_BYTES: usize = 64;

/// Statistics reports between two messages from the classmates (about three seconds).
const TICKS_PER_CHAT_LINE: u32 = 12;

/// Milliseconds in an hour, to place yesterday's history.
const HOUR_MS: i64 = 3_600_000;

/// What the classmates say, in turn, once: (sender, private to ann?, text).
const SCRIPT: [(&str, bool, &str); 8] = [
    ("bob", false, "Has anyone tried 20 % loss yet? The retransmission counter jumps."),
    ("li.lei", false, "试试把突发长度调到 8，重传超时就会出现了。"),
    ("bob", true, "Can you send me your CSV export after class?"),
    ("han.meimei", false, "TCP 的延迟尾巴比 UDP 长很多，看累积分布图就明白了。"),
    ("li.lei", true, "韩梅梅说实验报告周五交。"),
    ("bob", false, "SRTT settles near twice the delay slider, as expected."),
    ("han.meimei", false, "乱序设成 10% 以后，快速重传变多了。"),
    ("bob", false, "Duplicates are counted but never shown twice. Nice."),
];

fn name(raw: &str) -> Username {
    // The demo's names are fixed and valid; a typo here is a bug in this file.
    Username::parse(raw).unwrap_or_else(|err| panic!("demo user name {raw:?}: {err}"))
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn seed_history(control: &FakeControl) {
    control.add_account(&name("ann"), "secret");
    control.set_clock_ms(now_ms() - 20 * HOUR_MS);
    control.incoming(&name("bob"), Target::World, "Good evening! Is the lab server up for tomorrow?");
    control.incoming(&name("ann"), Target::World, "Yes, the teacher started it on port 7878.");
    control.incoming(&name("li.lei"), Target::World, "明天见！记得带上抓包结果。");
    control.set_clock_ms(now_ms() - HOUR_MS / 2);
    control.incoming(&name("han.meimei"), Target::World, "大家好，今天的实验是比较 UDP 和 TCP 的重传。");
    control.incoming(&name("bob"), Target::User(name("ann")), "Which loss rate did you pick for part 2?");
    control.incoming(&name("ann"), Target::User(name("bob")), "5 % with bursts of 4, seed 7.");
    for user in ["bob", "li.lei", "han.meimei"] {
        control.set_online(&name(user), true);
    }
    control.use_wall_clock();
}

/// Drives the datagram path and lets the classmates talk, until the process ends with the window.
fn run_classroom(control: FakeControl) {
    let mut line = 0usize;
    let mut tick = 0u32;
    loop {
        for drive in 0..DRIVES_PER_TICK {
            std::thread::sleep(DRIVE);
            if drive % DRIVES_PER_PROBE == 0 {
                control.probe(PROBE_BYTES);
            }
            control.drive();
        }
        control.tick();
        tick = tick.wrapping_add(1);
        if tick % TICKS_PER_CHAT_LINE == 0
            && let Some(&(from, private, text)) = SCRIPT.get(line)
        {
            let to = if private { Target::User(name("ann")) } else { Target::World };
            control.incoming(&name(from), to, text);
            line += 1;
        }
    }
}

fn main() {
    let mut lang = None;
    let mut loss_percent = 10.0;
    let mut options = native_options();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next()) {
            ("--lang", Some(code)) => lang = Lang::parse(&code),
            ("--loss", Some(value)) => loss_percent = value.parse().unwrap_or(loss_percent),
            ("--size", Some(value)) => {
                let parsed = value.split_once('x').and_then(|(w, h)| Some((w.parse().ok()?, h.parse().ok()?)));
                if let Some((width, height)) = parsed {
                    options.viewport = options.viewport.with_inner_size([width, height]);
                }
            }
            _ => {
                eprintln!("usage: ui_demo [--lang en|zh] [--loss PERCENT] [--size WIDTHxHEIGHT]");
                std::process::exit(2);
            }
        }
    }

    let (backend, control) = match FakeBackend::with_demo_link() {
        Ok(pair) => pair,
        Err(err) => {
            eprintln!("ui_demo: cannot build the in-memory datagram path: {err}");
            std::process::exit(1);
        }
    };
    seed_history(&control);
    control.sign_in("127.0.0.1:7878", &name("ann"), "secret");
    let classroom = control.clone();
    std::thread::spawn(move || run_classroom(classroom));

    let mut app = ChatApp::new(Box::new(backend), None, lang);
    app.show_statistics(true);
    app.apply_impairment(ImpairmentSliders {
        loss_percent,
        burst: 2.0,
        delay_ms: 20,
        jitter_ms: 5,
        ..ImpairmentSliders::default()
    });
    if let Err(err) = eframe::run_native("chatlab demo", options, Box::new(move |_cc| Ok(Box::new(app)))) {
        eprintln!("ui_demo: cannot open a window: {err}");
        std::process::exit(1);
    }
}
