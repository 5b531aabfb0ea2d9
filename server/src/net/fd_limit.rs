//! The default total connection cap, from the process's open-file limit.
//!
//! On Unix every socket is a file descriptor, and a process may hold only so many (`RLIMIT_NOFILE`, shown by
//! `ulimit -n`; most systems start processes at 1 024). When a server reaches that number, `accept` fails with
//! "too many open files" for everyone, and so does opening the database. The server therefore stops admitting
//! connections a little earlier, at the soft limit minus [`FD_HEADROOM`] descriptors kept for its own files: then
//! a flood of connections meets a clean refusal while the server itself keeps working. An operator who raises
//! `ulimit -n` for a big lab gets a bigger cap without touching any option.

use crate::limits::{FD_HEADROOM, MAX_DEFAULT_CONNECTIONS};

/// The default for [`ServerConfig::max_connections`](crate::ServerConfig::max_connections): this process's soft
/// open-file limit minus [`FD_HEADROOM`], at most [`MAX_DEFAULT_CONNECTIONS`]; [`FALLBACK_MAX_CONNECTIONS`](crate::limits::FALLBACK_MAX_CONNECTIONS) where the
/// limit cannot be read.
pub fn default_max_connections() -> usize {
    cap_for_fd_limit(soft_fd_limit())
}

/// The cap for a soft open-file limit (`None`: unlimited), never zero: a server that admits nobody is no server,
/// and with a tiny limit a few connections are still better than none.
fn cap_for_fd_limit(limit: Option<u64>) -> usize {
    match limit {
        None => MAX_DEFAULT_CONNECTIONS,
        Some(limit) => {
            let limit = usize::try_from(limit).unwrap_or(usize::MAX);
            limit.saturating_sub(FD_HEADROOM).clamp(1, MAX_DEFAULT_CONNECTIONS)
        }
    }
}

/// The soft `RLIMIT_NOFILE`, `None` when unlimited.
#[cfg(unix)]
fn soft_fd_limit() -> Option<u64> {
    rustix::process::getrlimit(rustix::process::Resource::Nofile).current
}

/// Elsewhere the limit is not a number to read; the typical Unix value stands in.
#[cfg(not(unix))]
fn soft_fd_limit() -> Option<u64> {
    u64::try_from(crate::limits::TYPICAL_SOFT_FD_LIMIT).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::{FALLBACK_MAX_CONNECTIONS, TYPICAL_SOFT_FD_LIMIT};

    #[test]
    fn the_usual_limit_gives_the_fallback_value() {
        let typical = u64::try_from(TYPICAL_SOFT_FD_LIMIT).unwrap();
        assert_eq!(cap_for_fd_limit(Some(typical)), FALLBACK_MAX_CONNECTIONS);
        assert_eq!(FALLBACK_MAX_CONNECTIONS, 900);
    }

    #[test]
    fn raised_limits_raise_the_cap_up_to_the_ceiling() {
        assert_eq!(cap_for_fd_limit(Some(20_000)), 20_000 - FD_HEADROOM);
        assert_eq!(cap_for_fd_limit(Some(1 << 20)), MAX_DEFAULT_CONNECTIONS);
        assert_eq!(cap_for_fd_limit(Some(u64::MAX)), MAX_DEFAULT_CONNECTIONS);
        assert_eq!(cap_for_fd_limit(None), MAX_DEFAULT_CONNECTIONS);
    }

    #[test]
    fn a_tiny_limit_still_admits_someone() {
        assert_eq!(cap_for_fd_limit(Some(0)), 1);
        assert_eq!(cap_for_fd_limit(Some(10)), 1);
    }

    #[test]
    fn this_process_gets_a_usable_cap() {
        let cap = default_max_connections();
        assert!((1..=MAX_DEFAULT_CONNECTIONS).contains(&cap));
    }
}
