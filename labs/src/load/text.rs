//! The text a bot sends: a stamp the receiving bot can read back, padded to the chosen size.
//!
//! Delivery latency is measured from the moment a bot calls `send` to the moment another bot's client hands the
//! message over. All bots live in one process, so one monotonic clock serves both ends: the sender writes the
//! clock's reading (microseconds since the run started) into the text, and the receiver subtracts it from its own
//! reading. No clock synchronisation, no lookup table shared between sender and receiver.
//!
//! The text starts with a tag naming the run, so messages of other users, or of an earlier run with the same
//! accounts, are never mistaken for this run's:
//!
//! ```text
//! lab-load 3f2a91c0 17 1234567 xxxxxxxxxxxxxxxxxxxx…
//!  tag      run id  seq  µs since the start, then padding
//! ```

/// First word of every load message, so a person reading the world room sees what these messages are.
pub const TAG: &str = "lab-load";

/// Padding character: plain ASCII, so a message of N bytes is N characters and passes every text rule.
const PAD: char = 'x';

/// A stamp read back from a received text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// The sender's message number within its bot.
    pub seq: u64,
    /// When the sender called `send`, in microseconds since the run started.
    pub sent_at_us: u64,
}

/// The text of message `seq` sent at `sent_at_us` in run `run_id`, padded with `x` to `bytes` bytes (a text never
/// gets shorter than its stamp, so a small `bytes` gives the stamp alone).
pub fn compose(run_id: u32, stamp: Stamp, bytes: usize) -> String {
    let mut text = format!("{TAG} {run_id:08x} {} {}", stamp.seq, stamp.sent_at_us);
    if text.len() < bytes {
        text.push(' ');
        while text.len() < bytes {
            text.push(PAD);
        }
    }
    text
}

/// The stamp of a text composed by [`compose`] for run `run_id`; `None` for anything else (another run, another
/// user's message, a malformed text). Received texts come from the network, so nothing here can panic.
pub fn parse(run_id: u32, text: &str) -> Option<Stamp> {
    let mut words = text.split(' ');
    if words.next()? != TAG {
        return None;
    }
    if u32::from_str_radix(words.next()?, 16).ok()? != run_id {
        return None;
    }
    let seq = words.next()?.parse().ok()?;
    let sent_at_us = words.next()?.parse().ok()?;
    Some(Stamp { seq, sent_at_us })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_composed_text_reads_back() {
        let stamp = Stamp { seq: 17, sent_at_us: 1_234_567 };
        let text = compose(0x3f2a_91c0, stamp, 64);
        assert_eq!(text.len(), 64);
        assert!(text.starts_with("lab-load 3f2a91c0 17 1234567 x"), "{text}");
        assert_eq!(parse(0x3f2a_91c0, &text), Some(stamp));
    }

    #[test]
    fn a_size_below_the_stamp_gives_the_stamp_alone() {
        let stamp = Stamp { seq: 1, sent_at_us: 2 };
        let text = compose(7, stamp, 0);
        assert_eq!(text, "lab-load 00000007 1 2");
        assert_eq!(parse(7, &text), Some(stamp));
    }

    #[test]
    fn texts_of_other_runs_and_people_are_ignored() {
        let text = compose(1, Stamp { seq: 1, sent_at_us: 2 }, 40);
        assert_eq!(parse(2, &text), None, "another run");
        for other in ["", "hello", "lab-load", "lab-load 00000001", "lab-load 00000001 x 5", "lab-load zz 1 2"] {
            assert_eq!(parse(1, other), None, "{other:?}");
        }
        assert_eq!(parse(1, "lab-load 00000001 1 99999999999999999999999"), None, "overflow is not a stamp");
    }
}
