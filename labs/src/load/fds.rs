//! Enough file descriptors for the bots.
//!
//! Every bot holds a TCP socket and a UDP socket, and the runtime a few descriptors of its own; a process may
//! hold only `ulimit -n` of them (often 1 024). Rather than let bot number 500 fail with "too many open files", the
//! run raises its own soft limit to the hard limit (which any process may do) and, if that is still too low,
//! refuses to start with a sentence saying what to type.

/// Descriptors one bot holds: its TCP socket, its UDP socket, and one spare for the moment a connection closes
/// while its successor opens.
pub const FDS_PER_BOT: u64 = 3;

/// Descriptors kept for everything else: standard streams, the runtime's event queue and wakers, the known-servers
/// file, `/proc` reads.
pub const FD_RESERVE: u64 = 64;

/// Descriptors `bots` bots need.
pub fn needed(bots: usize) -> u64 {
    (bots as u64).saturating_mul(FDS_PER_BOT).saturating_add(FD_RESERVE)
}

/// Raises the soft open-file limit to the hard one if `bots` need more than the soft one; an error sentence when even
/// the hard limit is too low.
pub fn ensure(bots: usize) -> Result<(), String> {
    verdict(bots, raise_to(needed(bots)))
}

/// Whether `bots` bots fit under the soft limit `limit` (`None`: unlimited or unknown).
fn verdict(bots: usize, limit: Option<u64>) -> Result<(), String> {
    let need = needed(bots);
    match limit {
        Some(limit) if limit < need => Err(format!(
            "{bots} bots need about {need} file descriptors but this process may open only {limit}: raise the limit \
             first (ulimit -n {need}, or more)"
        )),
        _ => Ok(()),
    }
}

/// Tries to make the soft limit at least `need`; the soft limit afterwards, `None` when unlimited or unknown.
#[cfg(unix)]
fn raise_to(need: u64) -> Option<u64> {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let limits = getrlimit(Resource::Nofile);
    let soft = limits.current?;
    if soft >= need {
        return Some(soft);
    }
    let target = limits.maximum.map_or(need, |hard| hard.min(need.max(soft)));
    let raised = rustix::process::Rlimit { current: Some(target), maximum: limits.maximum };
    match setrlimit(Resource::Nofile, raised) {
        Ok(()) => Some(target),
        Err(_) => Some(soft),
    }
}

#[cfg(not(unix))]
fn raise_to(_need: u64) -> Option<u64> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_few_bots_always_fit() {
        assert_eq!(ensure(4), Ok(()));
    }

    #[test]
    fn too_low_a_limit_says_what_to_type() {
        let message = verdict(1000, Some(1024)).expect_err("1000 bots need more than 1024");
        assert!(message.contains("ulimit -n 3064"), "{message}");
        assert_eq!(verdict(300, Some(1024)), Ok(()));
        assert_eq!(verdict(1000, None), Ok(()), "unlimited");
    }

    #[test]
    fn the_need_grows_with_the_bots() {
        assert_eq!(needed(0), FD_RESERVE);
        assert_eq!(needed(100), 100 * FDS_PER_BOT + FD_RESERVE);
        assert_eq!(needed(usize::MAX), u64::MAX);
    }
}
