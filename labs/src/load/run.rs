//! One load run, phase by phase: check, log in, chat, drain, log out, report.
//!
//! ```text
//!  preflight   one connection: is the server there? (pins its key once, for every bot)
//!  login       bot i starts at i / login_rate: connect, register (or reuse), log in
//!  chat        every chatting bot sends on its own schedule for `duration`
//!  drain       wait (at most `drain`) until every accepted message reached every bot it should
//!  finish      every bot logs out; after `settle`, the server's quiet "after" second
//! ```
//!
//! The phases do not overlap, so that a world message's expected recipients are simply "every bot that logged in,
//! but its sender": a bot that logs in during the chat would miss the messages before it, and the count of what
//! should have arrived would become a guess.

use std::sync::Arc;
use std::time::Duration;

use chatlab_client::{Client, ClientConfig, ClientError, Transport};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::bot::{self, Bot, Received, Started};
use super::config::LoadConfig;
use super::fds;
use super::procstat;
use super::progress::{Phase, Progress};
use super::reason::{Failures, Operation};
use super::report::{self, ChatReport, Latency, LoadReport, LoginReport, Settings, TransportReport};
use super::sender::{self, Audience};
use super::shared::{Shared, latency_histogram};
use super::watch::Watch;

/// How often the drain phase looks whether everything has arrived.
const DRAIN_POLL: Duration = Duration::from_millis(20);

/// Head start of the chat phase after the last login, so that every bot's schedule starts from the same instant
/// even though their tasks are spawned one after another.
const CHAT_LEAD: Duration = Duration::from_millis(50);

/// Why a run could not take place at all. Failures *during* a run are figures in the report, not errors.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The settings cannot work.
    #[error("{0}")]
    Config(String),
    /// The first connection failed: no bot would get further.
    #[error("the server at {server} cannot be used: {error}")]
    Preflight {
        /// The server.
        server: String,
        /// What the client library said.
        error: ClientError,
    },
    /// `--server-pid` names no process this program can read.
    #[error("cannot read process {0} in /proc: is it the server's pid, on this machine?")]
    ServerPid(u32),
}

/// Runs the load described by `config` and reports what happened.
pub async fn run(config: LoadConfig) -> Result<LoadReport, LoadError> {
    config.validate().map_err(LoadError::Config)?;
    fds::ensure(config.total_bots()).map_err(LoadError::Config)?;
    let fingerprint = preflight(&config).await?;

    let (server_watch, server_note) = match config.server_pid {
        None => (None, Some("not measured (give the server's pid with --server-pid)".to_string())),
        Some(_) if !procstat::AVAILABLE => (None, Some("not available on this OS".to_string())),
        Some(pid) => (Some(Watch::start(pid).await.ok_or(LoadError::ServerPid(pid))?), None),
    };
    let generator_watch = if procstat::AVAILABLE { Watch::start(std::process::id()).await } else { None };

    let shared = Arc::new(Shared::new(config.clone(), rand::random()));
    let progress = Progress::start(Arc::clone(&shared), server_watch.as_ref().map(Watch::gauge), config.progress);

    let login = log_in_all(&shared).await;
    let mut failures = login.failures;
    let logged_in = login.bots.len();

    let audience = Audience {
        chatters: Arc::new(
            login.bots.iter().filter(|b| b.index < config.bots).map(|b| (b.index, b.name.clone())).collect(),
        ),
        world_recipients: u32::try_from(logged_in.saturating_sub(1)).unwrap_or(u32::MAX),
    };
    let chat_start = Instant::now() + CHAT_LEAD;
    let chat_until = chat_start + config.duration;
    progress.set(Phase::Chat { from: chat_start, until: chat_until });
    let mut chatting = JoinSet::new();
    for bot in login.bots.iter().filter(|b| b.index < config.bots) {
        let task =
            sender::chat(Arc::clone(&shared), bot.index, bot.handle.clone(), audience.clone(), chat_start, chat_until);
        chatting.spawn(task);
    }
    let mut sent = Vec::with_capacity(chatting.len());
    while let Some(result) = chatting.join_next().await {
        // A panicking chat task is a bug in this program; its figures are lost, and the counts will say so.
        if let Ok(result) = result {
            sent.push(result);
        }
    }
    progress.set(Phase::Drain);
    let accepted: u64 = sent.iter().map(|s| s.accepted).sum();
    let drain_until = Instant::now() + config.drain;
    while shared.ledger.complete() < accepted && Instant::now() < drain_until {
        tokio::time::sleep(DRAIN_POLL).await;
    }
    let chat_seconds = chat_start.elapsed().as_secs_f64();

    progress.set(Phase::Finish);
    let received = log_out_all(login.bots).await;
    let (server_process, generator_process) = tokio::join!(
        async {
            match server_watch {
                Some(watch) => Some(watch.finish(config.settle).await),
                None => None,
            }
        },
        async {
            match generator_watch {
                Some(watch) => Some(watch.finish(Duration::ZERO).await),
                None => None,
            }
        }
    );
    progress.stop().await;

    let mut transports = TransportReport::default();
    let mut delivery = latency_histogram();
    let mut chat = ChatReport { seconds: config.duration.as_secs_f64(), ..ChatReport::default() };
    for r in received {
        match r.transport {
            Transport::Udp => transports.udp += 1,
            Transport::Tcp => transports.tcp += 1,
        }
        if let Some(reason) = r.fell_back {
            *transports.fell_back_to_tcp.entry(reason).or_default() += 1;
        }
        let _ = delivery.add(&r.latency);
        chat.deliveries += r.deliveries;
        chat.duplicate_deliveries += r.duplicates;
        chat.synced_deliveries += r.synced;
        failures.merge(r.failures);
    }
    let mut ack = latency_histogram();
    for s in sent {
        chat.attempted += s.attempted;
        chat.accepted += s.accepted;
        chat.late_sends += s.late;
        let _ = ack.add(&s.ack_latency);
        failures.merge(s.failures);
    }
    let totals = shared.ledger.totals();
    chat.failed = failures.total(Operation::Send);
    chat.delivered = totals.complete;
    chat.not_delivered = totals.incomplete;
    chat.expected_deliveries = chat.deliveries.saturating_sub(totals.unclaimed_deliveries) + totals.missing_deliveries;
    chat.unclaimed_deliveries = totals.unclaimed_deliveries;
    chat.target_per_s = config.rate * audience.chatters.len() as f64;
    chat.accepted_per_s = per_second(chat.accepted, chat.seconds);
    chat.deliveries_per_s = per_second(chat.deliveries, chat_seconds);
    chat.ack = Latency::of(&ack);
    chat.delivery = Latency::of(&delivery);

    Ok(LoadReport {
        server: config.server.clone(),
        server_fingerprint: fingerprint,
        run_id: format!("{:08x}", shared.run_id),
        settings: Settings {
            bots: config.bots,
            idle: config.idle,
            prefix: config.prefix.clone(),
            reuse: config.reuse,
            transport: config.transport,
            login_rate: config.login_rate,
            rate_per_bot: config.rate,
            world_share: config.world_share,
            duration_s: config.duration.as_secs_f64(),
            message_bytes: config.message_bytes,
        },
        login: LoginReport {
            bots: config.total_bots(),
            registered: login.registered,
            logged_in: logged_in as u64,
            failed: (config.total_bots() - logged_in) as u64,
            seconds: login.seconds,
            logins_per_s: per_second(logged_in as u64, login.seconds),
            login_time: login.time,
        },
        transports,
        chat,
        failures: report::failure_rows(&failures),
        server_process,
        server_process_note: server_note,
        generator_process,
    })
}

fn per_second(count: u64, seconds: f64) -> f64 {
    if seconds > 0.0 { count as f64 / seconds } else { 0.0 }
}

/// One connection before the bots: fails the run early, with the library's sentence, when the server is not there
/// or is not the one pinned; and pins the key once, so that the bots do not all write the known-servers file at
/// the same moment.
async fn preflight(config: &LoadConfig) -> Result<String, LoadError> {
    let mut client = ClientConfig::new(config.server.clone(), config.known_servers.clone());
    client.reconnect = false;
    let (handle, _events) =
        Client::connect(client).await.map_err(|error| LoadError::Preflight { server: config.server.clone(), error })?;
    let fingerprint = handle.server_fingerprint().to_string();
    handle.shutdown().await;
    Ok(fingerprint)
}

/// The login phase's outcome.
struct LoggedIn {
    bots: Vec<Bot>,
    failures: Failures,
    registered: u64,
    seconds: f64,
    time: Latency,
}

/// Starts bot `i` at `i / login_rate` seconds and waits for every one of them.
async fn log_in_all(shared: &Arc<Shared>) -> LoggedIn {
    let config = &shared.config;
    let began = Instant::now();
    let mut starting = JoinSet::new();
    for index in 0..config.total_bots() {
        let due = began + Duration::from_secs_f64(index as f64 / config.login_rate);
        tokio::time::sleep_until(due).await;
        starting.spawn(bot::start(Arc::clone(shared), index));
    }
    let mut outcome = LoggedIn {
        bots: Vec::new(),
        failures: Failures::default(),
        registered: 0,
        seconds: 0.0,
        time: Latency::default(),
    };
    let mut time = latency_histogram();
    while let Some(result) = starting.join_next().await {
        let Ok(Started { bot, failures, registered, login_time }) = result else { continue };
        outcome.failures.merge(failures);
        outcome.registered += u64::from(registered);
        if let Some(took) = login_time {
            time.saturating_record(u64::try_from(took.as_micros()).unwrap_or(u64::MAX).max(1));
        }
        outcome.bots.extend(bot);
    }
    outcome.seconds = began.elapsed().as_secs_f64();
    outcome.time = Latency::of(&time);
    outcome.bots.sort_by_key(|b| b.index);
    outcome
}

/// Logs every bot out (all at once) and collects what each one received.
async fn log_out_all(bots: Vec<Bot>) -> Vec<Received> {
    let mut leaving = JoinSet::new();
    for bot in bots {
        leaving.spawn(async move {
            bot.handle.shutdown().await;
            drop(bot.handle);
            bot.receiver.await.ok()
        });
    }
    let mut received = Vec::new();
    while let Some(result) = leaving.join_next().await {
        if let Ok(Some(r)) = result {
            received.push(r);
        }
    }
    received
}
