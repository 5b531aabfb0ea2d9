//! The one error type of the server's public face.
//!
//! Only failures that stop the server are errors here: a data directory that cannot be created, a port that is
//! taken, a database from a newer version. Everything a *peer* can cause (bad bytes, wrong passwords, floods) is
//! handled inside the connection or session it belongs to and never reaches this type.

use std::path::PathBuf;

use chatlab_proto::noise::NoiseError;

use crate::config::ConfigError;
use crate::password::PasswordError;
use crate::storage::StorageError;

/// Why the server could not start or had to stop.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The configuration cannot work.
    #[error("invalid configuration: {0}")]
    Config(#[from] ConfigError),
    /// Binding or reading the address of the listening sockets failed.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: String,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// The server's key could not be loaded or created.
    #[error("server key in {}: {source}", dir.display())]
    Key {
        /// The data directory.
        dir: PathBuf,
        /// The key layer's explanation.
        #[source]
        source: NoiseError,
    },
    /// The database could not be opened.
    #[error("database: {0}")]
    Storage(#[from] StorageError),
    /// The password service could not be prepared (invalid Argon2 parameters).
    #[error("password hashing: {0}")]
    Password(#[from] PasswordError),
    /// A socket or thread operation failed while running.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// A task of the server stopped unexpectedly (a bug: it panicked).
    #[error("internal task failed: {0}")]
    Task(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_cause() {
        let err = ServerError::Bind {
            addr: "0.0.0.0:7878".into(),
            source: std::io::Error::new(std::io::ErrorKind::AddrInUse, "in use"),
        };
        assert_eq!(err.to_string(), "cannot listen on 0.0.0.0:7878: in use");
        let err = ServerError::from(ConfigError::NotPositive("flood_rate"));
        assert_eq!(err.to_string(), "invalid configuration: flood_rate must be greater than zero");
    }
}
