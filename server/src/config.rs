//! The knobs an operator may turn, with production defaults.
//!
//! Limits that protect the server from a misbehaving peer and that no operator needs to change (frame sizes, queue
//! depths, timeouts of the handshake) are constants in [`crate::limits`]. The ones here are different: a teacher
//! running a load-test lab must be able to raise the flood limit or the connections per address, and the tests
//! need cheap password hashing. Everything else stays fixed so that the protocol behaves the same everywhere.

use std::path::PathBuf;
use std::time::Duration;

use chatlab_proto::limits::MAX_TEXT_BYTES;

use crate::limits::{
    CONTROL_IDLE_TIMEOUT, DEFAULT_FLOOD_BURST, DEFAULT_FLOOD_RATE, DEFAULT_HANDSHAKE_BURST_PER_IP,
    DEFAULT_HANDSHAKE_RATE_PER_IP, DEFAULT_MAX_CONNECTIONS_PER_IP, DEFAULT_MAX_REGISTRATIONS_PER_IP, LOGIN_TIMEOUT,
    MAX_HANDSHAKES_IN_PROGRESS, REGISTRATION_PERIOD, UDP_IDLE_TIMEOUT,
};
use crate::net::fd_limit::default_max_connections;
use crate::password::{DEFAULT_MAX_CONCURRENT_HASHES, PasswordParams};
use crate::rate_limit::BucketShape;

/// Name of the SQLite database inside the data directory.
pub const DATABASE_FILE_NAME: &str = "chat.db";

/// Default data directory, relative to where the server is started.
pub const DEFAULT_DATA_DIR: &str = "./chatlab-data";

/// How the server is configured. `Default` is what production runs with.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Directory of the server's key file (`server.key`) and database (`chat.db`); created if missing.
    pub data_dir: PathBuf,
    /// The software name sent in `Welcome` and shown by clients.
    pub server_name: String,
    /// TCP connections one IP address may hold at once (an IPv6 /64 counts as one address, see
    /// [`crate::net::network`]).
    pub max_connections_per_ip: usize,
    /// TCP connections the whole server may hold at once, so that a flood from many addresses meets a refusal
    /// before the process runs out of file descriptors (see [`crate::net::fd_limit`]). Default: the open-file limit
    /// minus some headroom.
    pub max_connections: usize,
    /// New connections (each a Noise handshake) one address may start at once: the burst of its handshake bucket.
    pub handshake_burst_per_ip: f64,
    /// New connections per second one address may keep up: the refill of its handshake bucket.
    pub handshake_rate_per_ip: f64,
    /// Connections in their handshake at once, from every address together (see
    /// [`MAX_HANDSHAKES_IN_PROGRESS`]).
    pub max_handshakes_in_progress: usize,
    /// Accounts one address may create per hour: a burst of this many, refilled at this many per hour.
    pub max_registrations_per_ip: u32,
    /// Chat messages a user (all their sessions together) may send in one burst (token-bucket capacity).
    pub flood_burst: f64,
    /// Chat messages per second a user may keep up (token-bucket refill rate).
    pub flood_rate: f64,
    /// Argon2id cost of new password hashes.
    pub password_params: PasswordParams,
    /// Password hashes computed at the same time at most.
    pub max_concurrent_hashes: usize,
    /// Longest chat text accepted, in bytes; at most the protocol's [`MAX_TEXT_BYTES`].
    pub max_text_bytes: usize,
    /// Time from connecting to logging in.
    pub login_timeout: Duration,
    /// Silence after which a logged-in connection counts as vanished and is closed (see [`CONTROL_IDLE_TIMEOUT`]).
    /// Keep it several times the clients' heartbeat interval.
    pub control_idle_timeout: Duration,
    /// Silence after which a session that chats over UDP has its pushes moved to TCP.
    pub udp_idle_timeout: Duration,
    /// UDP port announced in the session grant instead of the server's own, for clients that must reach the
    /// datagrams through a relay or a port forward. `None`: the port the UDP socket is bound to.
    pub udp_advertise_port: Option<u16>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            server_name: format!("chatlab-server {}", env!("CARGO_PKG_VERSION")),
            max_connections_per_ip: DEFAULT_MAX_CONNECTIONS_PER_IP,
            max_connections: default_max_connections(),
            handshake_burst_per_ip: DEFAULT_HANDSHAKE_BURST_PER_IP,
            handshake_rate_per_ip: DEFAULT_HANDSHAKE_RATE_PER_IP,
            max_handshakes_in_progress: MAX_HANDSHAKES_IN_PROGRESS,
            max_registrations_per_ip: DEFAULT_MAX_REGISTRATIONS_PER_IP,
            flood_burst: DEFAULT_FLOOD_BURST,
            flood_rate: DEFAULT_FLOOD_RATE,
            password_params: PasswordParams::default(),
            max_concurrent_hashes: DEFAULT_MAX_CONCURRENT_HASHES,
            max_text_bytes: MAX_TEXT_BYTES,
            login_timeout: LOGIN_TIMEOUT,
            control_idle_timeout: CONTROL_IDLE_TIMEOUT,
            udp_idle_timeout: UDP_IDLE_TIMEOUT,
            udp_advertise_port: None,
        }
    }
}

/// Why a configuration cannot run.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    /// A limit that must be positive is zero (or, for the flood shape, not a positive finite number).
    #[error("{0} must be greater than zero")]
    NotPositive(&'static str),
    /// The text limit is above what the protocol allows.
    #[error("max_text_bytes {0} is above the protocol's limit of {MAX_TEXT_BYTES}")]
    TextLimit(usize),
}

impl ServerConfig {
    /// A configuration with every default but the data directory.
    pub fn with_data_dir(data_dir: impl Into<PathBuf>) -> Self {
        Self { data_dir: data_dir.into(), ..Self::default() }
    }

    /// Checks that every limit can work.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_connections_per_ip == 0 {
            return Err(ConfigError::NotPositive("max_connections_per_ip"));
        }
        if self.max_connections == 0 {
            return Err(ConfigError::NotPositive("max_connections"));
        }
        if !(self.handshake_burst_per_ip.is_finite() && self.handshake_burst_per_ip >= 1.0) {
            return Err(ConfigError::NotPositive("handshake_burst_per_ip (at least 1)"));
        }
        if !(self.handshake_rate_per_ip.is_finite() && self.handshake_rate_per_ip > 0.0) {
            return Err(ConfigError::NotPositive("handshake_rate_per_ip"));
        }
        if self.max_handshakes_in_progress == 0 {
            return Err(ConfigError::NotPositive("max_handshakes_in_progress"));
        }
        if self.max_registrations_per_ip == 0 {
            return Err(ConfigError::NotPositive("max_registrations_per_ip"));
        }
        if !(self.flood_burst.is_finite() && self.flood_burst >= 1.0) {
            return Err(ConfigError::NotPositive("flood_burst (at least 1)"));
        }
        if !(self.flood_rate.is_finite() && self.flood_rate > 0.0) {
            return Err(ConfigError::NotPositive("flood_rate"));
        }
        if self.max_text_bytes == 0 {
            return Err(ConfigError::NotPositive("max_text_bytes"));
        }
        if self.max_text_bytes > MAX_TEXT_BYTES {
            return Err(ConfigError::TextLimit(self.max_text_bytes));
        }
        if self.login_timeout.is_zero() {
            return Err(ConfigError::NotPositive("login_timeout"));
        }
        if self.control_idle_timeout.is_zero() {
            return Err(ConfigError::NotPositive("control_idle_timeout"));
        }
        if self.udp_idle_timeout.is_zero() {
            return Err(ConfigError::NotPositive("udp_idle_timeout"));
        }
        Ok(())
    }

    /// The flood-control bucket of one user.
    pub fn flood_shape(&self) -> BucketShape {
        BucketShape { capacity: self.flood_burst, refill_per_sec: self.flood_rate }
    }

    /// The handshake bucket of one address.
    pub fn handshake_shape(&self) -> BucketShape {
        BucketShape { capacity: self.handshake_burst_per_ip, refill_per_sec: self.handshake_rate_per_ip }
    }

    /// The registration bucket of one address: `max_registrations_per_ip` at once, refilled at that many per
    /// [`REGISTRATION_PERIOD`].
    pub fn registration_shape(&self) -> BucketShape {
        let per_period = f64::from(self.max_registrations_per_ip);
        BucketShape { capacity: per_period, refill_per_sec: per_period / REGISTRATION_PERIOD.as_secs_f64() }
    }

    /// The database file.
    pub fn database_path(&self) -> PathBuf {
        self.data_dir.join(DATABASE_FILE_NAME)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid_and_production_grade() {
        let config = ServerConfig::default();
        assert_eq!(config.validate(), Ok(()));
        assert_eq!(config.password_params, PasswordParams::RECOMMENDED);
        assert_eq!(config.max_text_bytes, MAX_TEXT_BYTES);
        assert_eq!(config.control_idle_timeout, CONTROL_IDLE_TIMEOUT);
        assert_eq!(ServerConfig::with_data_dir("/x").database_path(), PathBuf::from("/x/chat.db"));
    }

    #[test]
    fn every_bad_limit_is_refused() {
        let ok = ServerConfig::default();
        let cases: Vec<(ServerConfig, ConfigError)> = vec![
            (
                ServerConfig { max_connections_per_ip: 0, ..ok.clone() },
                ConfigError::NotPositive("max_connections_per_ip"),
            ),
            (ServerConfig { max_connections: 0, ..ok.clone() }, ConfigError::NotPositive("max_connections")),
            (
                ServerConfig { handshake_burst_per_ip: 0.5, ..ok.clone() },
                ConfigError::NotPositive("handshake_burst_per_ip (at least 1)"),
            ),
            (
                ServerConfig { handshake_rate_per_ip: f64::NAN, ..ok.clone() },
                ConfigError::NotPositive("handshake_rate_per_ip"),
            ),
            (
                ServerConfig { max_handshakes_in_progress: 0, ..ok.clone() },
                ConfigError::NotPositive("max_handshakes_in_progress"),
            ),
            (
                ServerConfig { max_registrations_per_ip: 0, ..ok.clone() },
                ConfigError::NotPositive("max_registrations_per_ip"),
            ),
            (ServerConfig { flood_burst: 0.5, ..ok.clone() }, ConfigError::NotPositive("flood_burst (at least 1)")),
            (
                ServerConfig { flood_burst: f64::NAN, ..ok.clone() },
                ConfigError::NotPositive("flood_burst (at least 1)"),
            ),
            (ServerConfig { flood_rate: 0.0, ..ok.clone() }, ConfigError::NotPositive("flood_rate")),
            (ServerConfig { flood_rate: f64::INFINITY, ..ok.clone() }, ConfigError::NotPositive("flood_rate")),
            (ServerConfig { max_text_bytes: 0, ..ok.clone() }, ConfigError::NotPositive("max_text_bytes")),
            (
                ServerConfig { max_text_bytes: MAX_TEXT_BYTES + 1, ..ok.clone() },
                ConfigError::TextLimit(MAX_TEXT_BYTES + 1),
            ),
            (ServerConfig { login_timeout: Duration::ZERO, ..ok.clone() }, ConfigError::NotPositive("login_timeout")),
            (
                ServerConfig { control_idle_timeout: Duration::ZERO, ..ok.clone() },
                ConfigError::NotPositive("control_idle_timeout"),
            ),
            (
                ServerConfig { udp_idle_timeout: Duration::ZERO, ..ok.clone() },
                ConfigError::NotPositive("udp_idle_timeout"),
            ),
        ];
        for (config, expected) in cases {
            assert_eq!(config.validate(), Err(expected));
        }
    }

    #[test]
    fn flood_shape_follows_the_config() {
        let config = ServerConfig { flood_burst: 3.0, flood_rate: 2.0, ..ServerConfig::default() };
        assert_eq!(config.flood_shape(), BucketShape { capacity: 3.0, refill_per_sec: 2.0 });
    }

    #[test]
    fn registration_limit_is_a_burst_refilled_per_hour() {
        let config = ServerConfig { max_registrations_per_ip: 120, ..ServerConfig::default() };
        let shape = config.registration_shape();
        assert_eq!(shape.capacity, 120.0);
        assert!((shape.refill_per_sec * 3600.0 - 120.0).abs() < 1e-9, "{shape:?}");
        let handshakes = ServerConfig { handshake_burst_per_ip: 4.0, handshake_rate_per_ip: 2.0, ..config };
        assert_eq!(handshakes.handshake_shape(), BucketShape { capacity: 4.0, refill_per_sec: 2.0 });
    }

    #[test]
    fn default_registration_limit_lets_a_class_of_100_behind_one_address_register_within_an_hour() {
        let shape = ServerConfig::default().registration_shape();
        let within_an_hour = shape.capacity + shape.refill_per_sec * REGISTRATION_PERIOD.as_secs_f64();
        assert!(shape.capacity >= 100.0 && within_an_hour >= 100.0, "{shape:?}");
    }
}
