//! Running one command: connect, log in, do it, log out, and turn every outcome into an exit status.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use chatlab_client::{
    Client, ClientConfig, ClientEvent, ClientHandle, Password, Transport, TransportReason, default_known_servers_path,
};

use crate::args::{Cli, Command};
use crate::exit::{EXIT_CONNECTION, EXIT_GENERAL, Failure};
use crate::output::Output;
use crate::password::{Sources, read_password};

/// Extra wait, beyond the UDP probe timeout, for `stats` to see the transport settle before it reports.
const STATS_SETTLE_GRACE: Duration = Duration::from_millis(250);

/// How often `stats` looks whether the transport has settled.
const STATS_POLL: Duration = Duration::from_millis(50);

/// Time left to the event drain to print its last notices after a one-shot command ended.
const DRAIN_GRACE: Duration = Duration::from_secs(1);

/// Everything a command needs once the arguments are checked.
struct Plan {
    cli: Cli,
    known_servers: PathBuf,
    user: String,
}

/// Checks the arguments that clap cannot, reads the password, and runs the command on a small runtime.
pub fn run(cli: Cli) -> Result<(), Failure> {
    let known_servers = cli.known_servers.clone().or_else(default_known_servers_path).ok_or_else(|| {
        Failure::usage(
            "no configuration directory (neither XDG_CONFIG_HOME nor HOME is set); pass --known-servers PATH",
        )
    })?;
    let user = cli.user.clone().ok_or_else(|| Failure::usage("no user name: pass --user NAME or set CHATLAB_USER"))?;
    let stdin = std::io::stdin();
    let is_terminal = stdin.is_terminal();
    let prompt_text = format!("password for {user} at {}: ", cli.server);
    let mut prompt = || rpassword::prompt_password(&prompt_text);
    let password = read_password(Sources {
        env: std::env::var("CHATLAB_PASSWORD").ok(),
        password_stdin: cli.password_stdin,
        stdin: stdin.lock(),
        is_terminal,
        prompt: &mut prompt,
    })?;
    // One thread is plenty for one connection, and starts faster than a pool.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|err| Failure::new(EXIT_GENERAL, format!("cannot start the async runtime: {err}")))?;
    runtime.block_on(session(Plan { cli, known_servers, user }, Password::new(password)))
}

async fn session(plan: Plan, password: Password) -> Result<(), Failure> {
    let Plan { cli, known_servers, user } = plan;
    let mut config = ClientConfig::new(cli.server.clone(), known_servers.clone());
    config.transport = cli.transport.into();
    config.sync_on_login = false;
    // A one-shot command fails fast on a dropped connection; only `listen` waits through an outage.
    config.reconnect = matches!(cli.command, Command::Listen { .. });
    config.client_name = format!("chatlab-cli {}", env!("CARGO_PKG_VERSION"));
    let probe_timeout = config.udp_probe_timeout;
    let (handle, mut events) = Client::connect(config).await?;
    // The pin, if any, is queued before connect returns: report it before anything else happens.
    if let Ok(event) = events.try_recv() {
        notice(&event, &known_servers);
    }
    let mut out = Output::new(cli.json);
    let result = match cli.command {
        Command::Listen { count, timeout } => match handle.login(&user, password).await {
            Ok(_) => listen(&mut events, &mut out, count, timeout, &known_servers).await,
            Err(err) => Err(err.into()),
        },
        command => {
            let drain = tokio::spawn(drain(events, known_servers.clone()));
            let result = one_shot(&handle, command, &user, password, &mut out, probe_timeout).await;
            handle.shutdown().await;
            let _ = tokio::time::timeout(DRAIN_GRACE, drain).await;
            return result;
        }
    };
    handle.shutdown().await;
    result
}

/// The commands that do one thing and end.
async fn one_shot(
    handle: &ClientHandle,
    command: Command,
    user: &str,
    password: Password,
    out: &mut Output,
    probe_timeout: Duration,
) -> Result<(), Failure> {
    if let Command::Register = command {
        let name = handle.register(user, password).await?;
        out.registered(&name);
        return Ok(());
    }
    handle.login(user, password).await?;
    match command {
        Command::Send { target, text } => {
            let accepted = handle.send(target, &text).await?;
            out.accepted(&accepted);
        }
        Command::History { target, limit } => {
            let page = handle.history(target, None, limit).await?;
            for message in &page.messages {
                if !out.message(message, None) {
                    break;
                }
            }
        }
        Command::Users => {
            for user in handle.users().await? {
                if !out.user(&user) {
                    break;
                }
            }
        }
        Command::Stats => {
            // Let the UDP probe finish so the figures describe the transport actually in use.
            let deadline = Instant::now() + probe_timeout + STATS_SETTLE_GRACE;
            while Instant::now() < deadline {
                let stats = handle.stats().await?;
                if stats.transport == Some(Transport::Tcp) || stats.udp.is_some_and(|udp| udp.received.packets > 0) {
                    break;
                }
                tokio::time::sleep(STATS_POLL).await;
            }
            let stats = handle.stats().await?;
            let text = match out.json() {
                true => serde_json::to_string(&stats),
                false => serde_json::to_string_pretty(&stats),
            }
            .map_err(|err| Failure::new(EXIT_GENERAL, format!("cannot format the statistics: {err}")))?;
            out.line(&text);
        }
        Command::Register | Command::Listen { .. } => {}
    }
    Ok(())
}

/// `listen`: print messages until `count` arrived, the timeout passed, or a failure that reconnecting cannot cure.
async fn listen(
    events: &mut mpsc::Receiver<ClientEvent>,
    out: &mut Output,
    count: Option<u64>,
    timeout: Option<Duration>,
    known_servers: &Path,
) -> Result<(), Failure> {
    let deadline = timeout.map(|timeout| Instant::now() + timeout);
    let mut received = 0u64;
    if count == Some(0) {
        return Ok(());
    }
    loop {
        let event = match deadline {
            Some(deadline) => match tokio::time::timeout_at(deadline, events.recv()).await {
                Ok(event) => event,
                Err(_) => {
                    return match count {
                        Some(wanted) => Err(Failure::new(
                            EXIT_GENERAL,
                            format!(
                                "timed out after {} s with {received} of {wanted} messages",
                                timeout.map_or(0.0, |t| t.as_secs_f64())
                            ),
                        )),
                        None => Ok(()),
                    };
                }
            },
            None => events.recv().await,
        };
        match event {
            None => return Err(Failure::new(EXIT_CONNECTION, "the client core stopped")),
            Some(ClientEvent::Message { message, source }) => {
                if !out.message(&message, Some(source)) {
                    return Ok(());
                }
                received = received.saturating_add(1);
                if count == Some(received) {
                    return Ok(());
                }
            }
            // After these `listen` would wait for ever: the server's key changed, or the login is refused for good.
            Some(ClientEvent::Error(err)) if err.ends_the_session() => return Err(err.into()),
            Some(other) => notice(&other, known_servers),
        }
    }
}

/// Reports events on standard error while a one-shot command runs.
async fn drain(mut events: mpsc::Receiver<ClientEvent>, known_servers: PathBuf) {
    while let Some(event) = events.recv().await {
        notice(&event, &known_servers);
    }
}

/// The line on standard error an event deserves, if any.
fn notice_text(event: &ClientEvent, known_servers: &Path) -> Option<String> {
    match event {
        ClientEvent::ServerKeyPinned { server, fingerprint } => Some(format!(
            "first contact with {server}: its key fingerprint is {fingerprint}; pinned in {} (compare it with the \
             fingerprint the server printed at startup)",
            known_servers.display()
        )),
        ClientEvent::TransportChanged { reason, .. }
            if !matches!(reason, TransportReason::Requested | TransportReason::UdpConfirmed) =>
        {
            Some(reason.to_string())
        }
        ClientEvent::Disconnected { reason } => Some(format!("disconnected: {reason}")),
        ClientEvent::Reconnecting { attempt, delay } => {
            Some(format!("reconnecting in {} ms (attempt {attempt})", delay.as_millis()))
        }
        ClientEvent::Reconnected => Some("reconnected".to_string()),
        ClientEvent::Error(err) => Some(err.to_string()),
        _ => None,
    }
}

fn notice(event: &ClientEvent, known_servers: &Path) {
    if let Some(text) = notice_text(event, known_servers) {
        eprintln!("chatlab-cli: {text}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chatlab_proto::noise::ServerKey;

    #[test]
    fn notices_for_people() {
        let path = Path::new("/home/ann/.config/chatlab/known_servers");
        let fingerprint = ServerKey::from_bytes([3; 32]).fingerprint();
        let pin = ClientEvent::ServerKeyPinned { server: "lab:7878".into(), fingerprint };
        let text = notice_text(&pin, path).expect("a notice");
        assert!(text.contains(&fingerprint.to_string()) && text.contains("known_servers"), "{text}");
        let blocked = ClientEvent::TransportChanged {
            transport: Transport::Tcp,
            reason: TransportReason::UdpBlocked { server: "lab:7878".into(), waited: Duration::from_secs(3) },
        };
        assert!(notice_text(&blocked, path).expect("a notice").contains("no answer over UDP"));
        let confirmed =
            ClientEvent::TransportChanged { transport: Transport::Udp, reason: TransportReason::UdpConfirmed };
        assert_eq!(notice_text(&confirmed, path), None);
        assert_eq!(notice_text(&ClientEvent::Synced { messages: 2 }, path), None);
        let retry = ClientEvent::Reconnecting { attempt: 2, delay: Duration::from_millis(500) };
        assert_eq!(notice_text(&retry, path).as_deref(), Some("reconnecting in 500 ms (attempt 2)"));
    }
}
