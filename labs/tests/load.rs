//! `chatlab-lab load` against a real server library on 127.0.0.1, run in-process through the library function
//! behind the subcommand.
//!
//! Each test starts its own server on port 0 with a temporary data directory and fast (insecure) password hashing,
//! runs a small load for a second or two, and checks the report's counts: nothing here asserts a time.

use std::time::Duration;

use chatlab_labs::load::reason::Operation;
use chatlab_labs::load::{self, LoadConfig, LoadReport, TransportMix};
use chatlab_server::ServerHandle;
use chatlab_server::config::ServerConfig;
use chatlab_server::password::PasswordParams;

/// A server with cheap password hashing and the limits given by `tune`.
async fn server(dir: &std::path::Path, tune: impl FnOnce(&mut ServerConfig)) -> ServerHandle {
    let mut config = ServerConfig::with_data_dir(dir.join("data"));
    config.password_params = PasswordParams::INSECURE_FAST_FOR_TESTS;
    tune(&mut config);
    ServerHandle::start("127.0.0.1:0".parse().expect("literal"), config).await.expect("server starts")
}

/// A small, short load towards `server`.
fn small_load(server: &ServerHandle, dir: &std::path::Path, bots: usize) -> LoadConfig {
    let mut config = LoadConfig::new(server.local_addr().to_string(), bots, dir.join("known_servers"));
    config.login_rate = 100.0;
    config.rate = 10.0;
    config.world_share = 0.3;
    config.duration = Duration::from_secs(2);
    // Generous: a loaded CI machine may be slow, and a run that completes early does not wait for it.
    config.drain = Duration::from_secs(20);
    config.settle = Duration::ZERO;
    config
}

/// The identities every report must satisfy.
fn assert_counts_add_up(report: &LoadReport) {
    let chat = &report.chat;
    assert_eq!(chat.attempted, chat.accepted + chat.failed, "sent = accepted + failed: {chat:?}");
    assert_eq!(chat.accepted, chat.delivered + chat.not_delivered, "accepted = delivered + not delivered: {chat:?}");
    let send_failures: u64 = report.failures.iter().filter(|r| r.operation == Operation::Send).map(|r| r.count).sum();
    assert_eq!(send_failures, chat.failed, "failed sends = the sum of their reasons: {:?}", report.failures);
    let login = &report.login;
    assert_eq!(login.logged_in + login.failed, login.bots as u64, "{login:?}");
    let transports = &report.transports;
    assert_eq!(transports.udp + transports.tcp, login.logged_in, "{transports:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_load_over_both_transports_delivers_every_message_and_the_counts_add_up() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = server(dir.path(), |_| {}).await;
    let mut config = small_load(&server, dir.path(), 6);
    config.idle = 1;
    config.transport = TransportMix::Mix;
    config.server_pid = Some(std::process::id());

    let report = load::run(config).await.expect("the run starts");

    assert_counts_add_up(&report);
    assert!(report.failures.is_empty(), "nothing is refused under the default limits: {:?}", report.failures);
    assert_eq!((report.login.logged_in, report.login.registered), (7, 7));
    assert_eq!((report.transports.udp, report.transports.tcp), (4, 3), "mix: even bots UDP, odd bots TCP");
    assert!(report.transports.fell_back_to_tcp.is_empty(), "{:?}", report.transports);
    let chat = &report.chat;
    assert!(chat.accepted > 0, "{chat:?}");
    assert_eq!((chat.failed, chat.not_delivered), (0, 0), "{chat:?}");
    assert_eq!(chat.delivered, chat.accepted);
    assert_eq!(chat.deliveries, chat.expected_deliveries, "{chat:?}");
    assert!(chat.deliveries > chat.accepted, "world messages reach every other bot, the idle one too: {chat:?}");
    assert_eq!((chat.duplicate_deliveries, chat.unclaimed_deliveries, chat.synced_deliveries), (0, 0, 0));
    assert_eq!(chat.ack.count, chat.accepted);
    assert_eq!(chat.delivery.count, chat.deliveries);
    assert!(chat.delivery.p50_ms > 0.0 && chat.delivery.max_ms >= chat.delivery.p99_ms);

    // This test process stands in for the server's: the readings exist on Linux and say they are missing elsewhere.
    if cfg!(target_os = "linux") {
        let process = report.server_process.expect("a readable pid is measured");
        assert!(process.before.rss_bytes > 0 && process.peak.rss_bytes >= process.before.rss_bytes);
        assert!(process.after.is_some());
    } else {
        assert_eq!(report.server_process_note.as_deref(), Some("not available on this OS"));
    }
    let table = report.to_table();
    assert!(table.contains("7 of 7 bots logged in") && table.contains("refused and failed: none"), "{table}");
    let json = serde_json::to_value(&report).expect("the report is JSON");
    assert_eq!(json["chat"]["accepted"], chat.accepted);
    server.shutdown().await.expect("the server stops cleanly");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_by_a_tiny_flood_limit_are_reported_by_reason() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = server(dir.path(), |config| {
        config.flood_burst = 1.0;
        config.flood_rate = 0.5;
    })
    .await;
    let mut config = small_load(&server, dir.path(), 3);
    config.rate = 20.0;

    let report = load::run(config).await.expect("the run starts");

    assert_counts_add_up(&report);
    let flood = report
        .failures
        .iter()
        .find(|row| row.operation == Operation::Send && row.kind == "RateLimited(FloodLimited)")
        .unwrap_or_else(|| panic!("flood refusals by reason: {:?}", report.failures));
    assert!(flood.count > 0 && report.chat.failed >= flood.count);
    assert!(report.chat.accepted > 0, "the burst gets through: {:?}", report.chat);
    assert_eq!(report.chat.not_delivered, 0, "what was accepted was delivered: {:?}", report.chat);
    let table = report.to_table();
    assert!(table.contains("RateLimited(FloodLimited)") && table.contains("--flood-rate"), "{table}");
    server.shutdown().await.expect("the server stops cleanly");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_per_address_cap_are_refused_by_reason() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = server(dir.path(), |config| config.max_connections_per_ip = 3).await;
    let mut config = small_load(&server, dir.path(), 5);
    config.rate = 0.0;
    config.duration = Duration::ZERO;

    let report = load::run(config).await.expect("the run starts");

    assert_counts_add_up(&report);
    let refused: u64 = report
        .failures
        .iter()
        // Refused at `accept` before any cryptography, a connection over the cap is reset (the client sees it as a
        // reset or as a close during the handshake); the first one every 10 s is told why (`TooManyConnections`).
        .filter(|row| {
            row.operation == Operation::Connect
                && ["too many connections", "closed the connection", "reset by peer"]
                    .iter()
                    .any(|sign| row.reason.contains(sign))
        })
        .map(|row| row.count)
        .sum();
    // Three bots fit under the cap; the pre-flight connection may still hold its slot for a moment when the first
    // bots arrive, so one more may be refused.
    assert!((2..=3).contains(&refused), "{:?}", report.failures);
    assert_eq!(report.login.failed, refused, "every failure is a refused connection: {:?}", report.failures);
    assert!(report.to_table().contains("--max-connections-per-ip"));
    server.shutdown().await.expect("the server stops cleanly");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reuse_logs_in_to_the_accounts_of_an_earlier_run() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = server(dir.path(), |_| {}).await;
    let mut config = small_load(&server, dir.path(), 3);
    config.prefix = "again".into();
    config.rate = 0.0;
    config.duration = Duration::ZERO;
    let first = load::run(config.clone()).await.expect("the run starts");
    assert_eq!((first.login.logged_in, first.login.registered), (3, 3), "{:?}", first.failures);

    let taken = load::run(config.clone()).await.expect("the run starts");
    assert_eq!(taken.login.logged_in, 0);
    assert!(taken.failures.iter().all(|r| r.operation == Operation::Register && r.kind == "UsernameTaken"));
    assert!(taken.to_table().contains("--reuse"), "the table says what to do");

    config.reuse = true;
    config.bots = 4;
    let again = load::run(config).await.expect("the run starts");
    assert_eq!((again.login.logged_in, again.login.registered), (4, 1), "only the new bot registers");
    assert!(again.failures.is_empty(), "{:?}", again.failures);
    server.shutdown().await.expect("the server stops cleanly");
}
