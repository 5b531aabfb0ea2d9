//! Starting, running and stopping the server.
//!
//! [`run`] takes its sockets from the caller, as mini-redis's `run(listener, shutdown)` does: the binary binds the
//! configured address, tests bind `127.0.0.1:0`, and the desktop app's "host a room here" button binds whatever
//! port is free — all run the same code. [`ServerHandle`] wraps binding, running and stopping for the last two.
//!
//! ## Graceful shutdown, in order
//!
//! 1. Stop accepting connections.
//! 2. Tell the hub. It refuses new chat messages (`ServerShuttingDown`) and lets go of the writer's queue.
//! 3. The writer commits everything it still holds and reports; the hub acknowledges and fans those messages out
//!    as usual. Nothing that reached the writer is lost, and nothing is acknowledged that is not stored.
//! 4. The hub queues `Error{ServerShuttingDown}` for every session and closes the session queues; connections not
//!    logged in send the same error themselves. Each connection writes what it has and closes.
//! 5. Connections still busy after [`SHUTDOWN_GRACE`] are cut off.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chatlab_proto::noise::{Fingerprint, StaticKeypair};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::{JoinHandle, JoinSet};

use crate::admission::{Admission, AdmissionLimits, Admitted};
use crate::clock::utc_now_ms;
use crate::config::ServerConfig;
use crate::conn::{self, ConnContext};
use crate::error::ServerError;
use crate::hub::input::HubInput;
use crate::hub::seed::load_dedup;
use crate::hub::{Dedup, Hub, HubConfig};
use crate::limits::{HUB_QUEUE_DEPTH, REFUSAL_LOG_INTERVAL, SHUTDOWN_GRACE, WRITER_QUEUE_DEPTH};
use crate::net::bind::bind;
use crate::password::PasswordService;
use crate::storage::{SqliteStorage, Storage};
use crate::writer::spawn_writer;

/// Pause after a failed `accept` (for example "too many open files"), so the loop does not spin while the
/// condition lasts; existing connections keep being served meanwhile.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(100);

/// Loads (or creates) the server's key in `data_dir` and returns its fingerprint and whether it was just created.
/// The binary prints it so students can compare it with what their client shows.
pub fn load_identity(data_dir: &std::path::Path) -> Result<(Fingerprint, bool), ServerError> {
    let (keypair, created) = StaticKeypair::load_or_generate(data_dir)
        .map_err(|source| ServerError::Key { dir: data_dir.to_path_buf(), source })?;
    Ok((keypair.public().fingerprint(), created))
}

/// Everything opened before the first connection: key, database, the memory of recent `client_msg_id`s rebuilt
/// from it, password service.
struct Prepared {
    config: ServerConfig,
    keypair: StaticKeypair,
    storage: Arc<dyn Storage>,
    dedup: Dedup,
    passwords: PasswordService,
}

impl Prepared {
    /// Validates the configuration and opens the data directory; blocking work runs off the runtime.
    async fn open(config: ServerConfig) -> Result<Self, ServerError> {
        config.validate()?;
        let task = tokio::task::spawn_blocking(move || -> Result<Prepared, ServerError> {
            let (keypair, created) = StaticKeypair::load_or_generate(&config.data_dir)
                .map_err(|source| ServerError::Key { dir: config.data_dir.clone(), source })?;
            if created {
                tracing::info!(fingerprint = %keypair.public().fingerprint(), "created a new server key");
            }
            let storage: Arc<dyn Storage> = Arc::new(SqliteStorage::open(config.database_path())?);
            // Before any connection: a client resending after a crash must meet a hub that knows what the
            // previous process stored (see `hub::seed`).
            let dedup = load_dedup(storage.as_ref(), utc_now_ms(), Instant::now())?;
            let passwords = PasswordService::new(config.password_params, config.max_concurrent_hashes)?;
            Ok(Prepared { config, keypair, storage, dedup, passwords })
        });
        task.await.map_err(|e| ServerError::Task(e.to_string()))?
    }
}

/// Runs the server on `tcp` and `udp` (normally bound to the same port, see [`bind`]) until `shutdown`
/// completes, then shuts down gracefully (see the module documentation). Fails only if the server cannot start:
/// an invalid configuration, an unusable data directory, or a database from a newer version.
pub async fn run(
    tcp: TcpListener,
    udp: UdpSocket,
    config: ServerConfig,
    shutdown: impl Future,
) -> Result<(), ServerError> {
    let prepared = Prepared::open(config).await?;
    serve(prepared, tcp, udp, shutdown).await
}

async fn serve(prepared: Prepared, tcp: TcpListener, udp: UdpSocket, shutdown: impl Future) -> Result<(), ServerError> {
    let Prepared { config, keypair, storage, dedup, passwords } = prepared;
    let local = tcp.local_addr()?;
    let udp_port = match config.udp_advertise_port {
        Some(port) => port,
        None => udp.local_addr()?.port(),
    };

    let (hub_tx, hub_rx) = mpsc::channel(HUB_QUEUE_DEPTH);
    let (writer_tx, writer_rx) = mpsc::channel(WRITER_QUEUE_DEPTH);
    let writer = spawn_writer(Arc::clone(&storage), writer_rx, hub_tx.clone())?;
    let hub_config = HubConfig {
        flood: config.flood_shape(),
        max_text_bytes: config.max_text_bytes,
        engine: HubConfig::engine_for_idle_timeout(config.udp_idle_timeout),
        udp_port,
    };
    let hub = tokio::spawn(Hub::new(hub_config, Arc::new(udp), writer_tx, dedup).run(hub_rx));

    let admission = Admission::new(AdmissionLimits::from_config(&config));
    let context = Arc::new(ConnContext {
        keypair,
        storage,
        passwords: passwords.clone(),
        admission: Arc::clone(&admission),
        hub: hub_tx.clone(),
        server_name: config.server_name.clone(),
        login_timeout: config.login_timeout,
        control_idle_timeout: config.control_idle_timeout,
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut refusal_summary = tokio::time::interval(REFUSAL_LOG_INTERVAL);
    refusal_summary.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tracing::info!(%local, udp_port, data = %config.data_dir.display(), "chatlab server running");

    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = tcp.accept() => match accepted {
                Ok((stream, peer)) => match admission.admit(peer.ip(), Instant::now()) {
                    Admitted::Slot(slot) => {
                        connections.spawn(conn::serve(stream, peer, Arc::clone(&context), slot, stop_rx.clone()));
                    }
                    Admitted::Explain(ticket) => {
                        connections.spawn(conn::explain_refusal(stream, peer, Arc::clone(&context), ticket));
                    }
                    // Counted for the summary; the socket is reset before any cryptography.
                    Admitted::Refused(_) => reset(stream),
                },
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                }
            },
            _ = refusal_summary.tick() => log_refusals(&admission),
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    log_refusals(&admission);

    tracing::info!("shutting down: no new connections; storing and delivering what is in flight");
    drop(tcp);
    let _ = stop_tx.send(true);
    let _ = hub_tx.send(HubInput::Shutdown).await;
    drop(hub_tx);
    drop(context);
    if let Err(error) = hub.await {
        tracing::error!(%error, "hub task failed");
    }
    let joined = tokio::task::spawn_blocking(move || writer.join()).await;
    if !matches!(joined, Ok(Ok(()))) {
        tracing::error!("storage writer thread failed");
    }
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async { while connections.join_next().await.is_some() {} });
    if drained.await.is_err() {
        tracing::warn!(remaining = connections.len(), "closing connections that did not finish in time");
        connections.shutdown().await;
    }
    passwords.shutdown();
    tracing::info!("chatlab server stopped");
    Ok(())
}

/// Closes a refused connection at once with a reset (`SO_LINGER` 0) rather than a normal close. The descriptor is
/// free again at once, the peer learns at once that it was refused, and the server keeps no `TIME_WAIT` entry for
/// it: a flood of thousands of refused connections a second leaves nothing behind in the kernel either.
fn reset(stream: tokio::net::TcpStream) {
    if let Err(error) = stream.set_zero_linger() {
        tracing::debug!(%error, "could not set SO_LINGER on a refused connection");
    }
    drop(stream);
}

/// Writes the refusal summary of the last interval, if anything was refused (see `admission::refusals`).
fn log_refusals(admission: &Admission) {
    if let Some(report) = admission.take_refusal_report() {
        tracing::info!(interval_secs = REFUSAL_LOG_INTERVAL.as_secs(), refused = report.total(), "refusals: {report}");
    }
}

/// A server running in the background of this process: for tests and for the desktop app's "host a room here".
#[derive(Debug)]
pub struct ServerHandle {
    addr: SocketAddr,
    fingerprint: Fingerprint,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), ServerError>>,
}

impl ServerHandle {
    /// Opens the data directory, binds TCP and UDP to `addr` (port 0: any free port), and starts serving. Errors
    /// of the data directory or the bind are returned here, before anything runs.
    pub async fn start(addr: SocketAddr, config: ServerConfig) -> Result<Self, ServerError> {
        let prepared = Prepared::open(config).await?;
        let fingerprint = prepared.keypair.public().fingerprint();
        let (tcp, udp) = bind(addr).await?;
        let addr = tcp.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(prepared, tcp, udp, stopped));
        Ok(Self { addr, fingerprint, stop: Some(stop), task })
    }

    /// The address both transports listen on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The fingerprint of the server's key, for people to compare with what their client shows.
    pub fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }

    /// Whether the server has stopped (after [`shutdown`](Self::shutdown) or a failure).
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Shuts down gracefully and waits until the server has stopped.
    pub async fn shutdown(mut self) -> Result<(), ServerError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.task).await.map_err(|e| ServerError::Task(e.to_string()))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::password::PasswordParams;

    fn test_config(dir: &std::path::Path) -> ServerConfig {
        ServerConfig { password_params: PasswordParams::INSECURE_FAST_FOR_TESTS, ..ServerConfig::with_data_dir(dir) }
    }

    #[tokio::test]
    async fn handle_starts_and_stops() {
        let dir = tempfile::tempdir().unwrap();
        let handle = ServerHandle::start(SocketAddr::from(([127, 0, 0, 1], 0)), test_config(dir.path())).await.unwrap();
        assert_ne!(handle.local_addr().port(), 0);
        let (fingerprint, created) = load_identity(dir.path()).unwrap();
        assert!(!created);
        assert_eq!(fingerprint, handle.fingerprint());
        assert!(!handle.is_finished());
        handle.shutdown().await.unwrap();
        assert!(dir.path().join("chat.db").exists());
    }

    #[tokio::test]
    async fn invalid_config_and_unusable_data_dir_fail_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let bad = ServerConfig { flood_rate: 0.0, ..test_config(dir.path()) };
        let err = ServerHandle::start(SocketAddr::from(([127, 0, 0, 1], 0)), bad).await.unwrap_err();
        assert!(matches!(err, ServerError::Config(_)), "{err}");

        let file = dir.path().join("not-a-dir");
        std::fs::write(&file, b"x").unwrap();
        let err = ServerHandle::start(SocketAddr::from(([127, 0, 0, 1], 0)), test_config(&file)).await.unwrap_err();
        assert!(matches!(err, ServerError::Key { .. }), "{err}");
        assert!(load_identity(&file).is_err());
    }
}
