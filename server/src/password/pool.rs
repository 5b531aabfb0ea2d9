//! A small, fixed pool of threads that do nothing but hash passwords.
//!
//! Why not tokio's blocking pool? It grows to hundreds of threads under load and retires them when idle, so a hash
//! lands on whichever thread is free. Memory a thread touched stays with that thread's allocator arena, so every
//! new thread was a new place for 19 MiB to settle (see [`super::memory`]). A fixed pool has a fixed number of
//! threads, each with one [`HashMemory`] it reuses for hash after hash and gives back to the kernel whenever the
//! queue runs empty: memory during a burst is `threads × m` (76 MiB with the defaults), and after it, nothing.
//!
//! The pool is also the concurrency limit: with `threads` hashes running, the next request waits in the queue, in
//! order, as a small closure. A request whose caller has gone away by the time its turn comes (a client that
//! disconnected while waiting) is skipped without hashing.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use super::memory::HashMemory;

/// One piece of work: runs on a pool thread with that thread's memory.
pub type Job = Box<dyn FnOnce(&mut HashMemory) + Send + 'static>;

/// The pool was shut down: no more work is accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Closed;

#[derive(Default)]
struct Queue {
    jobs: VecDeque<Job>,
    closed: bool,
}

#[derive(Default)]
struct Shared {
    queue: Mutex<Queue>,
    ready: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A fixed set of hashing threads and their queue. Dropping the pool (or [`close`](Self::close)) lets the threads
/// finish the queued work and exit.
pub struct HashPool {
    shared: Arc<Shared>,
    threads: usize,
}

impl std::fmt::Debug for HashPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HashPool").field("threads", &self.threads).finish_non_exhaustive()
    }
}

impl HashPool {
    /// Starts `threads` hashing threads (at least one).
    pub fn new(threads: usize) -> std::io::Result<Self> {
        let shared = Arc::new(Shared::default());
        let threads = threads.max(1);
        for index in 0..threads {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new().name(format!("chatlab-argon2-{index}")).spawn(move || work(&shared))?;
        }
        Ok(Self { shared, threads })
    }

    /// Queues `job`; it runs on the next free thread.
    pub fn submit(&self, job: Job) -> Result<(), Closed> {
        let mut queue = self.shared.lock();
        if queue.closed {
            return Err(Closed);
        }
        queue.jobs.push_back(job);
        drop(queue);
        self.shared.ready.notify_one();
        Ok(())
    }

    /// Refuses new work from now on; the threads finish what is queued and exit.
    pub fn close(&self) {
        self.shared.lock().closed = true;
        self.shared.ready.notify_all();
    }

    /// Jobs waiting for a thread.
    #[cfg(test)]
    pub fn queued(&self) -> usize {
        self.shared.lock().jobs.len()
    }
}

impl Drop for HashPool {
    fn drop(&mut self) {
        self.close();
    }
}

/// One pool thread: takes jobs until the pool is closed and drained.
fn work(shared: &Shared) {
    let mut memory = HashMemory::new();
    loop {
        let job = {
            let mut queue = shared.lock();
            loop {
                if let Some(job) = queue.jobs.pop_front() {
                    break job;
                }
                if queue.closed {
                    return;
                }
                queue = shared.ready.wait(queue).unwrap_or_else(PoisonError::into_inner);
            }
        };
        // A panic is the job's bug: its caller learns of it (its result channel closes), the thread goes on.
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(&mut memory)));
        if outcome.is_err() || shared.lock().jobs.is_empty() {
            memory.release();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::mpsc;
    use std::time::Duration;

    #[test]
    fn jobs_run_on_at_most_the_pools_threads_and_memory_is_released_when_idle() {
        const THREADS: usize = 3;
        let pool = HashPool::new(THREADS).unwrap();
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let (done, finished) = mpsc::channel();
        for _ in 0..60 {
            let (running, peak, done) = (Arc::clone(&running), Arc::clone(&peak), done.clone());
            pool.submit(Box::new(move |memory: &mut HashMemory| {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                memory.blocks(4).unwrap();
                std::thread::sleep(Duration::from_millis(1));
                running.fetch_sub(1, Ordering::SeqCst);
                done.send(std::thread::current().name().map(str::to_owned)).unwrap();
            }))
            .unwrap();
        }
        for _ in 0..60 {
            let name = finished.recv_timeout(Duration::from_secs(10)).unwrap().unwrap();
            assert!(name.starts_with("chatlab-argon2-"), "{name}");
        }
        let peak = peak.load(Ordering::SeqCst);
        assert!((1..=THREADS).contains(&peak), "peak {peak}");
        // Once idle, each thread has unmapped its memory: a job sees none mapped when it starts.
        std::thread::sleep(Duration::from_millis(50));
        let (tx, rx) = mpsc::channel();
        pool.submit(Box::new(move |memory: &mut HashMemory| tx.send(memory.mapped_bytes()).unwrap())).unwrap();
        assert_eq!(rx.recv_timeout(Duration::from_secs(10)).unwrap(), 0);
    }

    #[test]
    fn a_panicking_job_does_not_stop_the_thread() {
        let pool = HashPool::new(1).unwrap();
        pool.submit(Box::new(|_: &mut HashMemory| panic!("a bug in one job"))).unwrap();
        let (tx, rx) = mpsc::channel();
        pool.submit(Box::new(move |_: &mut HashMemory| tx.send(()).unwrap())).unwrap();
        rx.recv_timeout(Duration::from_secs(10)).unwrap();
    }

    #[test]
    fn a_closed_pool_refuses_work_and_finishes_the_queue() {
        let pool = HashPool::new(1).unwrap();
        let (tx, rx) = mpsc::channel();
        for n in 0..5 {
            let tx = tx.clone();
            pool.submit(Box::new(move |_: &mut HashMemory| tx.send(n).unwrap())).unwrap();
        }
        pool.close();
        assert_eq!(pool.submit(Box::new(|_: &mut HashMemory| {})), Err(Closed));
        let got: Vec<i32> = (0..5).map(|_| rx.recv_timeout(Duration::from_secs(10)).unwrap()).collect();
        assert_eq!(got, vec![0, 1, 2, 3, 4], "queued work still runs, in order");
        assert_eq!(pool.queued(), 0);
    }
}
