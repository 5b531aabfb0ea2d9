//! # Password storage: Argon2id
//!
//! A server must be able to check a password without being able to recover it, because its database will
//! leak one day (a stolen backup, a misplaced laptop, a student's copy of the data directory). So it stores a
//! **one-way hash**, and the question is how expensive that hash is for an attacker who has the file.
//!
//! The original Python chat room stored `MD5(password)`. MD5 (like SHA-1 and SHA-256) is built to be *fast*: a
//! single GPU computes tens of billions of MD5 hashes per second, so every short or common password in a leaked
//! table falls in minutes. Without a salt it is worse: equal passwords have equal hashes, so one lookup in a
//! precomputed table cracks every user at once, and users who share a password are visible at a glance.
//!
//! A *password* hash fixes both:
//!
//! - **Salt**: 16 random bytes per password, stored next to the hash and mixed into it. Equal passwords get
//!   different hashes and precomputed tables are useless; the attacker must attack each user separately.
//! - **Cost**: the hash is deliberately slow *and* needs a lot of memory. **Argon2id** (winner of the Password
//!   Hashing Competition, RFC 9106) fills a block of memory (here 19 MiB) with data that depends on the password,
//!   then reads it back in a data-dependent order. A GPU has thousands of cores but little memory per core, so
//!   memory-hard hashing takes away most of its advantage. The "id" variant mixes the side-channel-resistant
//!   Argon2i with the GPU-resistant Argon2d.
//!
//! The result is a **PHC string** that records everything needed to verify it later:
//! `$argon2id$v=19$m=19456,t=2,p=1$<salt in base64>$<hash in base64>`. Because the parameters travel with each
//! hash, the server can raise them later and old hashes still verify.
//!
//! ## Timing and user enumeration
//!
//! If a login for an unknown name returned at once while a login for a real name spent 30 ms in Argon2, anyone
//! could list the accounts by timing failed logins. [`Passwords::verify`] therefore takes the stored hash as an
//! `Option`: for an unknown user it verifies the password against a **dummy hash** with the same parameters,
//! computed once at startup from a random password nobody knows, and then answers "wrong". Both paths do one
//! Argon2 computation, so they take the same time.
//!
//! ## Hashing off the async runtime, behind a semaphore
//!
//! One hash takes tens of milliseconds of CPU and 19 MiB of memory. Run on an async task, it would freeze
//! every connection sharing that runtime thread; run 1 000 at once (a class logging in together), it would need
//! 19 GB. [`PasswordService`] runs each hash on tokio's blocking thread pool and admits at most
//! [`DEFAULT_MAX_CONCURRENT_HASHES`] at a time through a semaphore; the rest wait in line, in order, costing only
//! a small future each. Logins get slower under a burst, never fail, and memory stays bounded.

use std::sync::Arc;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use rand::RngCore;
use tokio::sync::Semaphore;

/// Argon2 memory cost in KiB: 19 MiB, the OWASP Password Storage Cheat Sheet's minimum recommended configuration
/// for Argon2id (m = 19 MiB, t = 2, p = 1). Large enough that GPUs and ASICs lose their parallelism advantage,
/// small enough for a few concurrent logins on a classroom machine.
pub const ARGON2_MEMORY_KIB: u32 = 19 * 1024;

/// Argon2 passes over the memory: 2, as in the OWASP configuration above (more passes trade time for memory).
pub const ARGON2_ITERATIONS: u32 = 2;

/// Argon2 lanes: 1, as in the OWASP configuration above. The server gets its parallelism from hashing several
/// passwords at once (see [`DEFAULT_MAX_CONCURRENT_HASHES`]), not from splitting one hash across threads.
pub const ARGON2_PARALLELISM: u32 = 1;

/// Salt length: 16 bytes (128 bits) is the length RFC 9106 recommends; random salts that long never repeat.
pub const SALT_BYTES: usize = 16;

/// Longest password accepted, in bytes. Argon2 itself accepts long inputs cheaply, but a bound keeps every
/// request small and predictable; 1 024 bytes is far beyond any passphrase a person types or a manager generates.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// Largest memory cost a stored hash may ask for when verified, in KiB (256 MiB). A PHC string names its own
/// cost; a damaged or planted string demanding gigabytes must be refused, not obeyed.
pub const MAX_VERIFY_MEMORY_KIB: u32 = 256 * 1024;

/// Largest pass count a stored hash may ask for when verified, for the same reason as [`MAX_VERIFY_MEMORY_KIB`].
pub const MAX_VERIFY_ITERATIONS: u32 = 64;

/// Largest lane count a stored hash may ask for when verified, for the same reason as [`MAX_VERIFY_MEMORY_KIB`].
pub const MAX_VERIFY_PARALLELISM: u32 = 16;

/// Hashes computed at the same time by a [`PasswordService`]. Each needs [`ARGON2_MEMORY_KIB`] (19 MiB) and
/// keeps one core busy for tens of milliseconds, so more hashes than cores add memory without adding throughput.
/// Four keeps a small server's cores busy with at most 76 MiB of hashing memory; a burst of 1 000 logins queues
/// behind the semaphore instead of allocating 19 GB.
pub const DEFAULT_MAX_CONCURRENT_HASHES: usize = 4;

/// Bytes of randomness in the unknown password behind the dummy hash: 32 bytes cannot be guessed.
const DUMMY_PASSWORD_BYTES: usize = 32;

/// Errors of password hashing and verification.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    /// The password is longer than [`MAX_PASSWORD_BYTES`].
    #[error("password is longer than {MAX_PASSWORD_BYTES} bytes")]
    TooLong,
    /// The Argon2 parameters were rejected (e.g. memory below Argon2's minimum of 8 KiB per lane).
    #[error("invalid Argon2 parameters: {0}")]
    InvalidParams(argon2::Error),
    /// The stored hash is not a well-formed PHC string.
    #[error("stored password hash is malformed: {0}")]
    MalformedHash(argon2::password_hash::Error),
    /// The stored hash is well-formed but not something this server verifies: another algorithm than
    /// Argon2id, or costs beyond the `MAX_VERIFY_*` limits.
    #[error("stored password hash is not supported: {0}")]
    UnsupportedHash(String),
    /// Hashing itself failed (only with parameters Argon2 cannot run).
    #[error("password hashing failed: {0}")]
    Hashing(argon2::password_hash::Error),
    /// The [`PasswordService`] was shut down (the server is stopping).
    #[error("password service is shut down")]
    ServiceClosed,
}

/// Argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordParams {
    /// Memory cost in KiB.
    pub memory_kib: u32,
    /// Number of passes over the memory.
    pub iterations: u32,
    /// Number of lanes.
    pub parallelism: u32,
}

impl PasswordParams {
    /// The parameters the server uses: the OWASP minimum recommendation (see the constants' docs).
    pub const RECOMMENDED: Self =
        Self { memory_kib: ARGON2_MEMORY_KIB, iterations: ARGON2_ITERATIONS, parallelism: ARGON2_PARALLELISM };

    /// Argon2's cheapest legal setting (8 KiB, one pass). **Insecure**: for tests only, where thousands of
    /// hashes must run in milliseconds.
    pub const INSECURE_FAST_FOR_TESTS: Self = Self { memory_kib: 8, iterations: 1, parallelism: 1 };

    fn argon2(&self) -> Result<Argon2<'static>, PasswordError> {
        let params = Params::new(self.memory_kib, self.iterations, self.parallelism, None)
            .map_err(PasswordError::InvalidParams)?;
        Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
    }
}

impl Default for PasswordParams {
    fn default() -> Self {
        Self::RECOMMENDED
    }
}

fn check_length(password: &str) -> Result<(), PasswordError> {
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(PasswordError::TooLong);
    }
    Ok(())
}

/// Hashes `password` with Argon2id, a fresh random salt and `params`; returns the PHC string to store.
pub fn hash_password(password: &str, params: &PasswordParams) -> Result<String, PasswordError> {
    check_length(password)?;
    let argon2 = params.argon2()?;
    // rand's thread RNG is a CSPRNG seeded from the operating system: fit for salts.
    let mut salt_bytes = [0u8; SALT_BYTES];
    rand::rng().fill_bytes(&mut salt_bytes);
    let salt = SaltString::encode_b64(&salt_bytes).map_err(PasswordError::Hashing)?;
    let hash = argon2.hash_password(password.as_bytes(), &salt).map_err(PasswordError::Hashing)?;
    Ok(hash.to_string())
}

/// Checks `password` against a stored PHC string. `Ok(false)` means "wrong password"; `Err` means the stored
/// string cannot be used (malformed, not Argon2id, or costs beyond the `MAX_VERIFY_*` limits).
///
/// The parameters and salt come from the PHC string itself. The comparison of the final hash is constant-time.
pub fn verify_password(password: &str, phc: &str) -> Result<bool, PasswordError> {
    check_length(password)?;
    let parsed = PasswordHash::new(phc).map_err(PasswordError::MalformedHash)?;
    if parsed.algorithm != Algorithm::Argon2id.ident() {
        return Err(PasswordError::UnsupportedHash(format!("algorithm {}", parsed.algorithm)));
    }
    // Check the costs before anything allocates the memory they ask for.
    let cost = |name: &str| parsed.params.get_decimal(name).unwrap_or(0);
    let (memory, iterations, lanes) = (cost("m"), cost("t"), cost("p"));
    if memory > MAX_VERIFY_MEMORY_KIB || iterations > MAX_VERIFY_ITERATIONS || lanes > MAX_VERIFY_PARALLELISM {
        return Err(PasswordError::UnsupportedHash(format!(
            "costs m={memory} t={iterations} p={lanes} exceed the limits"
        )));
    }
    Params::try_from(&parsed).map_err(PasswordError::MalformedHash)?;
    // Without a salt and an output there is nothing to compare against; the library would just say "wrong
    // password", hiding a damaged record.
    if parsed.salt.is_none() || parsed.hash.is_none() {
        return Err(PasswordError::MalformedHash(argon2::password_hash::Error::PhcStringField));
    }
    match Argon2::default().verify_password(password.as_bytes(), &parsed) {
        Ok(()) => Ok(true),
        Err(argon2::password_hash::Error::Password) => Ok(false),
        Err(other) => Err(PasswordError::MalformedHash(other)),
    }
}

/// Hashing and verification with fixed parameters and a dummy hash for unknown users (synchronous; see
/// [`PasswordService`] for the async, rate-limited face).
#[derive(Debug, Clone)]
pub struct Passwords {
    params: PasswordParams,
    dummy_phc: String,
}

impl Passwords {
    /// Prepares hashing with `params`, computing the dummy hash once (this costs one hash).
    pub fn new(params: PasswordParams) -> Result<Self, PasswordError> {
        let mut secret = [0u8; DUMMY_PASSWORD_BYTES];
        rand::rng().fill_bytes(&mut secret);
        // Base64 of random bytes: printable, well within MAX_PASSWORD_BYTES, and never typed by anyone.
        let unknown_password = SaltString::encode_b64(&secret).map_err(PasswordError::Hashing)?;
        let dummy_phc = hash_password(unknown_password.as_str(), &params)?;
        Ok(Self { params, dummy_phc })
    }

    /// The parameters new hashes get.
    pub fn params(&self) -> PasswordParams {
        self.params
    }

    /// Hashes a new password (registration, password change).
    pub fn hash(&self, password: &str) -> Result<String, PasswordError> {
        hash_password(password, &self.params)
    }

    /// Checks a login. `stored_phc` is the user's stored hash, or `None` when no such user exists; then the
    /// password is checked against the dummy hash — the same work as for a real user — and the answer is
    /// `false`. Callers should answer "unknown user" and "wrong password" with the same error.
    pub fn verify(&self, password: &str, stored_phc: Option<&str>) -> Result<bool, PasswordError> {
        match stored_phc {
            Some(phc) => verify_password(password, phc),
            None => {
                self.dummy_verify(password)?;
                Ok(false)
            }
        }
    }

    /// Spends exactly the time of a real verification, against the dummy hash, and discards the answer.
    pub fn dummy_verify(&self, password: &str) -> Result<(), PasswordError> {
        verify_password(password, &self.dummy_phc).map(|_| ())
    }
}

/// Async password hashing for the server: every hash runs on tokio's blocking pool, at most
/// `max_concurrent` at a time (see the module documentation). Cheap to clone; clones share the limit.
#[derive(Debug, Clone)]
pub struct PasswordService {
    passwords: Arc<Passwords>,
    semaphore: Arc<Semaphore>,
}

impl PasswordService {
    /// A service with `params` and at most `max_concurrent` simultaneous hashes (at least 1). Computes the
    /// dummy hash, so call it once at startup, outside the async runtime's hot path.
    pub fn new(params: PasswordParams, max_concurrent: usize) -> Result<Self, PasswordError> {
        Ok(Self {
            passwords: Arc::new(Passwords::new(params)?),
            semaphore: Arc::new(Semaphore::new(max_concurrent.max(1))),
        })
    }

    /// The synchronous hasher inside, for callers already on a blocking thread.
    pub fn passwords(&self) -> &Passwords {
        &self.passwords
    }

    /// Hashes a new password off the runtime.
    pub async fn hash(&self, password: String) -> Result<String, PasswordError> {
        self.run(move |passwords| passwords.hash(&password)).await
    }

    /// Checks a login off the runtime; `stored_phc` is `None` for an unknown user (see [`Passwords::verify`]).
    pub async fn verify(&self, password: String, stored_phc: Option<String>) -> Result<bool, PasswordError> {
        self.run(move |passwords| passwords.verify(&password, stored_phc.as_deref())).await
    }

    /// Refuses all later requests with [`PasswordError::ServiceClosed`] (requests already hashing finish).
    /// Called at server shutdown so a queue of logins does not keep the process alive.
    pub fn shutdown(&self) {
        self.semaphore.close();
    }

    async fn run<T, F>(&self, work: F) -> Result<T, PasswordError>
    where
        T: Send + 'static,
        F: FnOnce(&Passwords) -> Result<T, PasswordError> + Send + 'static,
    {
        let permit = Arc::clone(&self.semaphore).acquire_owned().await.map_err(|_| PasswordError::ServiceClosed)?;
        let passwords = Arc::clone(&self.passwords);
        // The permit moves into the blocking closure: it is released when the hash is *done*, not when the
        // caller stops waiting. A client that disconnects mid-login cancels our future, but the blocking hash
        // keeps running and keeps its memory — so it must keep its place in the limit too.
        let handle = tokio::task::spawn_blocking(move || {
            let result = work(&passwords);
            drop(permit);
            result
        });
        match handle.await {
            Ok(result) => result,
            // A panic inside Argon2 is a bug: let it surface rather than turn it into a login failure.
            Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
            // Cancelled: only happens when the runtime itself is shutting down.
            Err(_) => Err(PasswordError::ServiceClosed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    const FAST: PasswordParams = PasswordParams::INSECURE_FAST_FOR_TESTS;

    #[test]
    fn hash_then_verify() {
        let phc = hash_password("correct horse battery staple", &FAST).unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=8,t=1,p=1$"), "{phc}");
        assert!(verify_password("correct horse battery staple", &phc).unwrap());
        assert!(!verify_password("correct horse battery stapler", &phc).unwrap());
        assert!(!verify_password("", &phc).unwrap());
    }

    #[test]
    fn recommended_params_produce_the_owasp_phc_prefix() {
        let phc = hash_password("密码 with unicode", &PasswordParams::default()).unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(verify_password("密码 with unicode", &phc).unwrap());
    }

    #[test]
    fn same_password_gets_different_salts() {
        let a = hash_password("same", &FAST).unwrap();
        let b = hash_password("same", &FAST).unwrap();
        assert_ne!(a, b);
        assert!(verify_password("same", &a).unwrap() && verify_password("same", &b).unwrap());
    }

    /// Argon2id v=19, m=8 KiB, t=1, p=1, salt "saltsaltsalt", password "chatlab", 32-byte output. The expected
    /// string was produced independently by the reference C implementation (libargon2's
    /// `argon2id_hash_encoded`), so this pins both our parameter wiring and the PHC encoding.
    const KNOWN_ANSWER: &str =
        "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHRzYWx0$s6WIALBUOOdErYotBXrLbBhNk4SwtrEnZIFBmc6b0Vw";

    #[test]
    fn known_answer_vector() {
        assert_eq!(hash_with_salt("chatlab", b"saltsaltsalt"), KNOWN_ANSWER);
        assert!(verify_password("chatlab", KNOWN_ANSWER).unwrap());
        assert!(!verify_password("chatlab!", KNOWN_ANSWER).unwrap());
    }

    fn hash_with_salt(password: &str, salt: &[u8]) -> String {
        let salt = SaltString::encode_b64(salt).unwrap();
        FAST.argon2().unwrap().hash_password(password.as_bytes(), &salt).unwrap().to_string()
    }

    #[test]
    fn too_long_password_is_refused_both_ways() {
        let long = "x".repeat(MAX_PASSWORD_BYTES + 1);
        let exact = "x".repeat(MAX_PASSWORD_BYTES);
        assert!(matches!(hash_password(&long, &FAST), Err(PasswordError::TooLong)));
        let phc = hash_password(&exact, &FAST).unwrap();
        assert!(verify_password(&exact, &phc).unwrap());
        assert!(matches!(verify_password(&long, &phc), Err(PasswordError::TooLong)));
    }

    #[test]
    fn invalid_params_are_an_error() {
        let bad = PasswordParams { memory_kib: 0, ..FAST };
        assert!(matches!(hash_password("pw", &bad), Err(PasswordError::InvalidParams(_))));
        assert!(matches!(Passwords::new(bad), Err(PasswordError::InvalidParams(_))));
    }

    #[test]
    fn malformed_hashes_are_errors_not_panics() {
        for phc in ["", "md5:5f4dcc3b5aa765d61d8327deb882cf99", "$argon2id$", "$argon2id$v=19$m=x$aa$bb", "$$$$"] {
            assert!(matches!(verify_password("pw", phc), Err(PasswordError::MalformedHash(_))), "{phc:?}");
        }
    }

    #[test]
    fn other_algorithms_and_excessive_costs_are_unsupported() {
        let argon2i = Argon2::new(Algorithm::Argon2i, Version::V0x13, Params::new(8, 1, 1, None).unwrap());
        let salt = SaltString::encode_b64(b"saltsaltsalt").unwrap();
        let phc = argon2i.hash_password(b"pw", &salt).unwrap().to_string();
        assert!(matches!(verify_password("pw", &phc), Err(PasswordError::UnsupportedHash(_))));

        let genuine = hash_password("pw", &FAST).unwrap();
        for (from, to) in [("m=8,", "m=4194304,"), ("t=1,", "t=1000,"), ("p=1$", "p=64$")] {
            let greedy = genuine.replacen(from, to, 1);
            assert_ne!(greedy, genuine);
            assert!(matches!(verify_password("pw", &greedy), Err(PasswordError::UnsupportedHash(_))), "{greedy}");
        }
    }

    #[test]
    fn hash_without_output_is_malformed() {
        let genuine = hash_password("pw", &FAST).unwrap();
        let without_hash = genuine.rsplit_once('$').unwrap().0;
        assert!(matches!(verify_password("pw", without_hash), Err(PasswordError::MalformedHash(_))));
    }

    #[test]
    fn unknown_user_runs_the_dummy_and_is_refused() {
        let passwords = Passwords::new(FAST).unwrap();
        assert_eq!(passwords.params(), FAST);
        assert!(passwords.dummy_phc.starts_with("$argon2id$v=19$m=8,t=1,p=1$"));
        assert!(!passwords.verify("anything", None).unwrap());
        assert!(!passwords.verify("", None).unwrap());
        passwords.dummy_verify("whatever").unwrap();
        let long = "x".repeat(MAX_PASSWORD_BYTES + 1);
        assert!(matches!(passwords.verify(&long, None), Err(PasswordError::TooLong)));
        let phc = passwords.hash("hunter2").unwrap();
        assert!(passwords.verify("hunter2", Some(&phc)).unwrap());
        assert!(!passwords.verify("hunter3", Some(&phc)).unwrap());
    }

    #[test]
    fn dummy_hash_uses_the_same_params_as_real_ones() {
        // Same parameters ⇒ same amount of work ⇒ no timing difference between known and unknown users.
        let passwords = Passwords::new(PasswordParams::RECOMMENDED).unwrap();
        let real = passwords.hash("pw").unwrap();
        let params_of = |phc: &str| phc.split('$').nth(3).map(str::to_owned);
        assert_eq!(params_of(&real), params_of(&passwords.dummy_phc));
    }

    #[tokio::test]
    async fn service_hashes_and_verifies() {
        let service = PasswordService::new(FAST, 2).unwrap();
        let phc = service.hash("s3cret".to_owned()).await.unwrap();
        assert!(service.verify("s3cret".to_owned(), Some(phc.clone())).await.unwrap());
        assert!(!service.verify("wrong".to_owned(), Some(phc)).await.unwrap());
        assert!(!service.verify("s3cret".to_owned(), None).await.unwrap());
        assert!(matches!(service.hash("x".repeat(MAX_PASSWORD_BYTES + 1)).await, Err(PasswordError::TooLong)));
        assert!(service.passwords().hash("sync").is_ok());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn service_never_runs_more_than_its_limit() {
        const LIMIT: usize = 3;
        const REQUESTS: usize = 200;
        let service = PasswordService::new(FAST, LIMIT).unwrap();
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..REQUESTS {
            let service = service.clone();
            let (running, peak) = (Arc::clone(&running), Arc::clone(&peak));
            tasks.spawn(async move {
                service
                    .run(move |passwords| {
                        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                        peak.fetch_max(now, Ordering::SeqCst);
                        // Hold the slot a little so overlapping requests would be caught.
                        std::thread::sleep(Duration::from_millis(1));
                        let phc = passwords.hash(&format!("pw{i}"));
                        running.fetch_sub(1, Ordering::SeqCst);
                        phc
                    })
                    .await
            });
        }
        let mut done = 0;
        while let Some(joined) = tasks.join_next().await {
            assert!(joined.unwrap().is_ok());
            done += 1;
        }
        assert_eq!(done, REQUESTS);
        let peak = peak.load(Ordering::SeqCst);
        assert!((1..=LIMIT).contains(&peak), "peak {peak}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn cancelled_caller_keeps_its_slot_until_the_hash_ends() {
        let service = PasswordService::new(FAST, 1).unwrap();
        let release = Arc::new(std::sync::Barrier::new(2));
        let hold = Arc::clone(&release);
        let blocked = {
            let service = service.clone();
            tokio::spawn(async move {
                service
                    .run(move |_| {
                        hold.wait();
                        Ok(())
                    })
                    .await
            })
        };
        // Give the first request time to take the only permit, then abandon it.
        while service.semaphore.available_permits() != 0 {
            tokio::task::yield_now().await;
        }
        blocked.abort();
        let second = tokio::time::timeout(Duration::from_millis(50), service.hash("pw".to_owned())).await;
        assert!(second.is_err(), "second hash ran while the first was still hashing");
        release.wait();
        service.hash("pw".to_owned()).await.unwrap();
    }

    #[tokio::test]
    async fn shutdown_refuses_new_work() {
        let service = PasswordService::new(FAST, 1).unwrap();
        service.shutdown();
        assert!(matches!(service.hash("pw".to_owned()).await, Err(PasswordError::ServiceClosed)));
        assert!(matches!(service.verify("pw".to_owned(), None).await, Err(PasswordError::ServiceClosed)));
    }

    #[tokio::test]
    async fn zero_limit_is_raised_to_one() {
        let service = PasswordService::new(FAST, 0).unwrap();
        assert_eq!(service.semaphore.available_permits(), 1);
        assert!(service.hash("pw".to_owned()).await.is_ok());
    }
}
