//! Token buckets: how the server says "not so fast" without punishing anyone else.
//!
//! A token bucket holds up to `capacity` tokens and gains `refill_per_sec` tokens every second. Each action (a chat
//! message, a failed login) takes one token; with the bucket empty the action is refused. The capacity is the burst
//! a person may make (pasting a few lines at once), the refill rate is the pace they may keep up for ever. It is the
//! same algorithm routers use to police traffic, and it needs two numbers of state per bucket.
//!
//! [`KeyedBuckets`] keeps one bucket per key (an account name, an IP address) with a bounded number of keys, so an
//! attacker inventing keys cannot grow the server's memory: when the map is full, buckets that have refilled
//! completely (and so carry no information) are forgotten first, and if none has, the action is refused, which
//! errs on the side of safety.
//!
//! ## Reserving a token before the expensive part
//!
//! Some actions are judged only after an expensive step: a login costs one token only if the password turns out
//! wrong, and the password check takes tens of milliseconds. Looking at the bucket first and charging it after the
//! check would let fifty parallel attempts all pass the look while the first check still runs. So such an action
//! **reserves** a token ([`KeyedBuckets::reserve`]) and later **settles** it ([`KeyedBuckets::settle`]): charged
//! (the token stays spent) or not (it goes back). A bucket whose tokens are all reserved answers
//! [`Reserve::Busy`] rather than "empty": the attempts in flight may well give their tokens back, so the caller
//! waits for them to settle instead of refusing someone for failures that never happened.
//!
//! Time is passed in, as everywhere in chatlab's logic, so the tests run without sleeping.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::Instant;

/// The shape of a bucket: burst size and sustained rate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BucketShape {
    /// Most tokens the bucket can hold: the largest burst.
    pub capacity: f64,
    /// Tokens added per second: the sustained rate.
    pub refill_per_sec: f64,
}

/// One token bucket.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    shape: BucketShape,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(shape: BucketShape, now: Instant) -> Self {
        Self { shape, tokens: shape.capacity, last: now }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.shape.refill_per_sec).min(self.shape.capacity);
        self.last = now;
    }

    /// Takes one token if there is one.
    pub fn try_take(&mut self, now: Instant) -> bool {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Whether a token is available, without taking it.
    pub fn has_token(&mut self, now: Instant) -> bool {
        self.refill(now);
        self.tokens >= 1.0
    }

    /// Seconds until the next token, zero when one is available.
    pub fn wait_secs(&mut self, now: Instant) -> f64 {
        self.refill(now);
        if self.tokens >= 1.0 || self.shape.refill_per_sec <= 0.0 {
            0.0
        } else {
            (1.0 - self.tokens) / self.shape.refill_per_sec
        }
    }

    /// Returns a token taken for an action that turned out not to count (capped at the capacity).
    pub fn give_back(&mut self, now: Instant) {
        self.refill(now);
        self.tokens = (self.tokens + 1.0).min(self.shape.capacity);
    }

    fn is_full(&mut self, now: Instant) -> bool {
        self.refill(now);
        self.tokens >= self.shape.capacity
    }
}

/// The answer of [`KeyedBuckets::reserve`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Reserve {
    /// A token is set aside; [`KeyedBuckets::settle`] must follow.
    Taken,
    /// No token is free, but some are reserved by actions still in flight: ask again once one of them settled.
    Busy,
    /// The bucket is empty (or no room is left to track a new key): refused; the next token comes in this many
    /// seconds.
    Empty(f64),
}

/// A bucket and the tokens reserved from it by actions in flight.
#[derive(Debug, Clone)]
struct Entry {
    bucket: TokenBucket,
    pending: u32,
}

impl Entry {
    /// Whether the entry says nothing a fresh one would not: nothing in flight and the bucket full.
    fn is_blank(&mut self, now: Instant) -> bool {
        self.pending == 0 && self.bucket.is_full(now)
    }
}

/// One bucket per key, with a bound on the number of keys.
#[derive(Debug)]
pub struct KeyedBuckets<K> {
    shape: BucketShape,
    max_keys: usize,
    buckets: HashMap<K, Entry>,
}

impl<K: Eq + Hash + Clone> KeyedBuckets<K> {
    pub fn new(shape: BucketShape, max_keys: usize) -> Self {
        Self { shape, max_keys, buckets: HashMap::new() }
    }

    /// Whether `key` may act now, without taking a token. A new key is allowed only if there is room to track
    /// it: with the map full of buckets that still carry information, the answer is no (fail closed), exactly as
    /// [`try_take`](Self::try_take) would answer.
    pub fn allows(&mut self, key: &K, now: Instant) -> bool {
        match self.buckets.get_mut(key) {
            Some(entry) => entry.bucket.has_token(now),
            None => self.has_room(now),
        }
    }

    /// Whether a new key fits, after forgetting the buckets that have refilled completely.
    fn has_room(&mut self, now: Instant) -> bool {
        if self.buckets.len() >= self.max_keys {
            self.forget_full(now);
        }
        self.buckets.len() < self.max_keys
    }

    /// The entry of `key`, created full if there is room; `None` when the map is full of entries that still carry
    /// information.
    fn entry(&mut self, key: &K, now: Instant) -> Option<&mut Entry> {
        if !self.buckets.contains_key(key) {
            if !self.has_room(now) {
                return None;
            }
            self.buckets.insert(key.clone(), Entry { bucket: TokenBucket::new(self.shape, now), pending: 0 });
        }
        self.buckets.get_mut(key)
    }

    /// Takes a token for `key`; false when its bucket is empty or no room is left for a new key.
    pub fn try_take(&mut self, key: &K, now: Instant) -> bool {
        self.entry(key, now).is_some_and(|entry| entry.bucket.try_take(now))
    }

    /// Returns a token taken for `key` (see [`TokenBucket::give_back`]); nothing happens for an unknown key.
    pub fn give_back(&mut self, key: &K, now: Instant) {
        if let Some(entry) = self.buckets.get_mut(key) {
            entry.bucket.give_back(now);
        }
    }

    /// Sets a token aside for an action whose cost is known only later (see the module documentation).
    /// [`Reserve::Taken`] must be followed by exactly one [`settle`](Self::settle) for the same key.
    pub fn reserve(&mut self, key: &K, now: Instant) -> Reserve {
        let fallback_wait = self.one_token_secs();
        let Some(entry) = self.entry(key, now) else { return Reserve::Empty(fallback_wait) };
        if entry.bucket.try_take(now) {
            entry.pending = entry.pending.saturating_add(1);
            Reserve::Taken
        } else if entry.pending > 0 {
            Reserve::Busy
        } else {
            Reserve::Empty(entry.bucket.wait_secs(now))
        }
    }

    /// Ends a reservation of `key`: `charged` keeps the token spent, otherwise it goes back to the bucket.
    pub fn settle(&mut self, key: &K, now: Instant, charged: bool) {
        if let Some(entry) = self.buckets.get_mut(key) {
            entry.pending = entry.pending.saturating_sub(1);
            if !charged {
                entry.bucket.give_back(now);
            }
        }
    }

    /// Whether `key` has no charged tokens: its bucket, counting the tokens reserved by actions still in flight as
    /// present, is full. A key never seen (or forgotten because it had refilled) is clean too.
    pub fn is_clean(&mut self, key: &K, now: Instant) -> bool {
        self.buckets.get_mut(key).is_none_or(|entry| {
            entry.bucket.refill(now);
            entry.bucket.tokens + f64::from(entry.pending) >= entry.bucket.shape.capacity
        })
    }

    /// Seconds one token takes to come back, for a refusal that has no bucket to ask.
    fn one_token_secs(&self) -> f64 {
        if self.shape.refill_per_sec > 0.0 { 1.0 / self.shape.refill_per_sec } else { 0.0 }
    }

    /// Seconds until `key` may act again.
    pub fn wait_secs(&mut self, key: &K, now: Instant) -> f64 {
        self.buckets.get_mut(key).map_or(0.0, |entry| entry.bucket.wait_secs(now))
    }

    /// Forgets every bucket that has refilled completely and has nothing in flight: such a bucket says nothing a
    /// new one would not.
    pub fn forget_full(&mut self, now: Instant) {
        self.buckets.retain(|_, entry| !entry.is_blank(now));
    }

    /// Keys currently tracked.
    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    /// Whether no key is tracked.
    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const SHAPE: BucketShape = BucketShape { capacity: 3.0, refill_per_sec: 2.0 };

    #[test]
    fn burst_then_refusal_then_refill() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(SHAPE, t0);
        assert!(b.try_take(t0) && b.try_take(t0) && b.try_take(t0));
        assert!(!b.try_take(t0));
        assert!((b.wait_secs(t0) - 0.5).abs() < 1e-9);
        assert!(b.try_take(t0 + Duration::from_millis(500)));
        assert!(!b.try_take(t0 + Duration::from_millis(500)));
    }

    #[test]
    fn refill_never_exceeds_capacity() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(SHAPE, t0);
        let later = t0 + Duration::from_secs(3600);
        for _ in 0..3 {
            assert!(b.try_take(later));
        }
        assert!(!b.try_take(later));
    }

    #[test]
    fn keys_are_independent() {
        let t0 = Instant::now();
        let mut k = KeyedBuckets::new(BucketShape { capacity: 1.0, refill_per_sec: 0.1 }, 10);
        assert!(k.try_take(&"ann", t0));
        assert!(!k.try_take(&"ann", t0));
        assert!(!k.allows(&"ann", t0));
        assert!(k.allows(&"bob", t0));
        assert!(k.try_take(&"bob", t0));
        assert!(k.wait_secs(&"ann", t0) > 9.0);
    }

    #[test]
    fn full_map_forgets_refilled_buckets_first_and_refuses_otherwise() {
        let t0 = Instant::now();
        let mut k = KeyedBuckets::new(BucketShape { capacity: 1.0, refill_per_sec: 1.0 }, 2);
        assert!(k.try_take(&1, t0));
        assert!(k.try_take(&2, t0));
        // Both buckets are empty: there is no room for a third key, so it is refused.
        assert!(!k.try_take(&3, t0));
        // A second later both have refilled and carry no information: they are forgotten to make room.
        assert!(k.try_take(&3, t0 + Duration::from_secs(1)));
        assert_eq!(k.len(), 1);
    }

    #[test]
    fn login_rate_limit_bypass_full_map_fails_closed_in_allows() {
        let t0 = Instant::now();
        let mut k = KeyedBuckets::new(BucketShape { capacity: 1.0, refill_per_sec: 1.0 }, 1);
        assert!(k.try_take(&1, t0));
        // The only slot holds an empty bucket: a new key must not slip through the check.
        assert!(!k.allows(&2, t0));
        assert!(k.allows(&2, t0 + Duration::from_secs(1)), "once the bucket refilled it is forgotten");
    }

    #[test]
    fn given_back_tokens_never_exceed_the_capacity() {
        let t0 = Instant::now();
        let mut k = KeyedBuckets::new(BucketShape { capacity: 2.0, refill_per_sec: 0.001 }, 4);
        assert!(k.try_take(&"a", t0) && k.try_take(&"a", t0));
        assert!(!k.try_take(&"a", t0));
        k.give_back(&"a", t0);
        k.give_back(&"a", t0);
        k.give_back(&"a", t0);
        k.give_back(&"unknown", t0);
        assert!(k.try_take(&"a", t0) && k.try_take(&"a", t0));
        assert!(!k.try_take(&"a", t0), "three returns still make only two tokens");
        assert_eq!(k.len(), 1);
    }

    #[test]
    fn reservations_in_flight_make_a_bucket_busy_not_empty() {
        let t0 = Instant::now();
        let mut k = KeyedBuckets::new(BucketShape { capacity: 2.0, refill_per_sec: 0.5 }, 4);
        assert_eq!(k.reserve(&"a", t0), Reserve::Taken);
        assert_eq!(k.reserve(&"a", t0), Reserve::Taken);
        assert_eq!(k.reserve(&"a", t0), Reserve::Busy, "both tokens are only reserved");
        assert!(k.is_clean(&"a", t0), "reserved tokens are not failures");
        k.settle(&"a", t0, false);
        assert_eq!(k.reserve(&"a", t0), Reserve::Taken, "an uncharged settlement gives the token back");
        k.settle(&"a", t0, true);
        k.settle(&"a", t0, true);
        assert!(!k.is_clean(&"a", t0));
        assert_eq!(k.reserve(&"a", t0), Reserve::Empty(2.0), "nothing in flight: refused, with the wait");
        assert!(k.is_clean(&"a", t0 + Duration::from_secs(4)), "clean again once refilled");
        assert!(k.is_clean(&"never seen", t0));
    }

    #[test]
    fn entries_with_reservations_in_flight_are_never_forgotten() {
        let t0 = Instant::now();
        let mut k = KeyedBuckets::new(BucketShape { capacity: 1.0, refill_per_sec: 1000.0 }, 1);
        assert_eq!(k.reserve(&1, t0), Reserve::Taken);
        k.forget_full(t0 + Duration::from_secs(1));
        assert_eq!(k.len(), 1, "a reservation in flight keeps its entry");
        assert!(matches!(k.reserve(&2, t0 + Duration::from_secs(1)), Reserve::Empty(_)), "no room: fail closed");
        k.settle(&1, t0 + Duration::from_secs(1), false);
        assert_eq!(k.reserve(&2, t0 + Duration::from_secs(2)), Reserve::Taken);
    }
}
