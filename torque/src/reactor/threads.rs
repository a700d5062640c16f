//! Calls into the reactor from other threads, and the thread pool (IReactorThreads).
//!
//! `call_from_thread` pushes a boxed closure onto a mutex-protected queue and wakes the
//! backend through its coalescing [`Waker`]. The reactor swaps the whole queue out
//! once per pass, so a call made from inside such a call lands in the fresh queue and
//! runs on a later pass: thread calls cannot starve I/O.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use super::Reactor;
use crate::sys::waker::Waker;

pub(crate) type ThreadCall = Box<dyn FnOnce(&Reactor) + Send>;

/// The part of a reactor other threads can reach.
pub(crate) struct ThreadShared {
    pub(crate) queue: Mutex<Vec<ThreadCall>>,
    /// Mirrors `!queue.is_empty()` so the reactor's prepare step needs no lock.
    pub(crate) queued: AtomicUsize,
    pub(crate) waker: Arc<Waker>,
    /// Set when the reactor is dropped; later calls are dropped.
    pub(crate) closed: AtomicBool,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding these locks cannot leave the data inconsistent (pushes
    // and swaps only), so poisoning is ignored.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A `Send + Sync + Clone` handle to a reactor, for other threads.
///
/// ```
/// let reactor = torque::Reactor::new()?;
/// let handle = reactor.handle();
/// std::thread::spawn(move || handle.call_from_thread(|r| r.crash()));
/// reactor.run()?;
/// # Ok::<(), torque::ReactorError>(())
/// ```
#[derive(Clone)]
pub struct ReactorHandle {
    pub(crate) shared: Arc<ThreadShared>,
}

impl ReactorHandle {
    /// Runs `f` on the reactor thread on its next pass, waking it if it is asleep.
    /// Calls from one thread run in the order made. A call made while the reactor
    /// is not running waits for its next `run()` or `iterate()`; once the reactor is
    /// dropped, calls are dropped (the closure is dropped on this thread), never a
    /// panic.
    pub fn call_from_thread(&self, f: impl FnOnce(&Reactor) + Send + 'static) {
        if self.is_closed() {
            return;
        }
        let mut queue = lock(&self.shared.queue);
        queue.push(Box::new(f));
        // Set under the lock, so it can never be cleared while an item is queued.
        self.shared.queued.store(1, Ordering::Release);
        drop(queue);
        self.shared.waker.wake();
    }

    /// Interrupts the reactor's wait without queueing anything.
    pub fn wake(&self) {
        self.shared.waker.wake();
    }

    /// Whether the reactor is gone, so calls would be dropped.
    pub fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::Acquire)
    }
}

impl std::fmt::Debug for ReactorHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReactorHandle").field("closed", &self.is_closed()).finish()
    }
}

type Job = Box<dyn FnOnce() + Send>;

struct PoolState {
    jobs: VecDeque<Job>,
    idle: usize,
    threads: usize,
    max_threads: usize,
    stopping: bool,
}

struct PoolShared {
    state: Mutex<PoolState>,
    work: Condvar,
}

/// A lazily grown pool of worker threads (Twisted's reactor thread pool).
pub(crate) struct ThreadPool {
    shared: Arc<PoolShared>,
    workers: Vec<JoinHandle<()>>,
}

impl ThreadPool {
    pub(crate) fn new(max_threads: usize) -> ThreadPool {
        ThreadPool {
            shared: Arc::new(PoolShared {
                state: Mutex::new(PoolState {
                    jobs: VecDeque::new(),
                    idle: 0,
                    threads: 0,
                    max_threads: max_threads.max(1),
                    stopping: false,
                }),
                work: Condvar::new(),
            }),
            workers: Vec::new(),
        }
    }

    pub(crate) fn set_max_threads(&self, max: usize) {
        lock(&self.shared.state).max_threads = max.max(1);
    }

    /// Queues `job`, starting a worker if none is idle and the cap allows.
    pub(crate) fn submit(&mut self, job: Job) {
        let mut state = lock(&self.shared.state);
        state.jobs.push_back(job);
        let spawn = state.jobs.len() > state.idle && state.threads < state.max_threads;
        if spawn {
            state.threads += 1;
        }
        let number = state.threads;
        drop(state);
        self.shared.work.notify_one();
        if spawn {
            let shared = Arc::clone(&self.shared);
            let spawned = std::thread::Builder::new()
                .name(format!("torque-pool-{number}"))
                .spawn(move || worker(&shared));
            match spawned {
                Ok(handle) => self.workers.push(handle),
                Err(e) => {
                    lock(&self.shared.state).threads -= 1;
                    tracing::error!(error = %e, "cannot start a thread-pool worker");
                }
            }
        }
    }

    /// Lets queued jobs finish, then joins every worker.
    pub(crate) fn stop(mut self) {
        self.signal_stop();
        for handle in self.workers.drain(..) {
            let _ = handle.join();
        }
    }

    fn signal_stop(&self) {
        lock(&self.shared.state).stopping = true;
        self.shared.work.notify_all();
    }

    /// Asks the workers to finish without waiting for them (used on drop).
    pub(crate) fn detach(mut self) {
        self.signal_stop();
        self.workers.clear();
    }
}

fn worker(shared: &PoolShared) {
    let mut state = lock(&shared.state);
    loop {
        if let Some(job) = state.jobs.pop_front() {
            drop(state);
            // Jobs catch their own panics (see `Reactor::call_in_thread`).
            job();
            state = lock(&shared.state);
            continue;
        }
        if state.stopping {
            state.threads -= 1;
            return;
        }
        state.idle += 1;
        state = shared.work.wait(state).unwrap_or_else(|e| e.into_inner());
        state.idle -= 1;
    }
}
